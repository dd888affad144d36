/* SPDX-License-Identifier: Apache-2.0 */
/* kimactl certs revoke: the CRL of a `kimactl certs init` installation,
 * DIR/crl.pem, which the verifier reads with --crl. Each run signs a new CRL
 * with DIR/ca.key that keeps every entry of the previous one (whose
 * signature must verify with the same CA), adds the certificates named, and
 * takes the previous CRL number plus one. The file is replaced atomically. */
#include "certs.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "hex.h"
#include "kimactl.h"
#include "macro.h"
#include "parse.h"

#define REVOKE_MAX 256

static void usage(FILE *f) {
    fprintf(f,
            "Usage: kimactl certs revoke --out DIR [--node NODE]... [--operator NAME]...\n"
            "                            [--cert PEM]... [--days N]\n"
            "\n"
            "Revokes certificates of DIR's CA (DIR as given to kimactl certs init) and\n"
            "writes DIR/crl.pem, the CRL kima-verifier reads with --crl: signed with\n"
            "DIR/ca.key, every entry of the previous DIR/crl.pem kept, its CRL number\n"
            "one more, nextUpdate --days ahead (default 30; the verifier warns once it\n"
            "has passed, and keeps enforcing it). With nothing to revoke, it re-signs\n"
            "the CRL with a new nextUpdate.\n"
            "  --node NODE       the agent certificate DIR/agents/NODE/tls.crt\n"
            "  --operator NAME   the operator certificate DIR/operators/NAME/tls.crt\n"
            "  --cert PEM        any certificate file that DIR's CA issued\n"
            "A revoked node's or operator's folder moves to DIR/revoked/, so that\n"
            "kimactl certs init --node NODE issues a new certificate. Then publish the CRL:\n"
            "  kubectl -n kima-system create secret generic kima-crl \\\n"
            "      --from-file=crl.pem=DIR/crl.pem --dry-run=client -o yaml | kubectl apply -f -\n"
            "Exit codes: 0 done, 2 a certificate or DIR/crl.pem is not of DIR's CA,\n"
            "64 usage error, 66 a file not readable, 70 failure.\n");
}

struct target {
    const char *kind; /* "agent", "operator" or NULL for --cert */
    const char *name; /* the node or operator, or the file */
    char path[CERTS_PATH_MAX];
    X509 *crt;
};

static X509 *read_cert(const char *path) {
    FILE *f = fopen(path, "re");
    X509 *x;

    if (!f) {
        return NULL;
    }
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    return x;
}

/* The previous CRL, or NULL when there is none; -1 when it is not DIR's CA's. */
static int read_old_crl(const char *path, X509 *ca, X509_CRL **ret_crl) {
    FILE *f = fopen(path, "re");
    X509_CRL *crl;
    EVP_PKEY *pub = X509_get0_pubkey(ca);

    *ret_crl = NULL;
    if (!f) {
        if (errno == ENOENT) {
            return 0;
        }
        fprintf(stderr, "kimactl certs: cannot read %s: %s\n", path, strerror(errno));
        return -EXIT_NOINPUT;
    }
    crl = PEM_read_X509_CRL(f, NULL, NULL, NULL);
    fclose(f);
    if (!crl || !pub || X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) != 0 ||
        X509_CRL_verify(crl, pub) != 1) {
        fprintf(stderr,
                "kimactl certs: %s is not a CRL signed by this CA; move it away to start a new "
                "one\n",
                path);
        X509_CRL_free(crl);
        return -EXIT_MALFORMED;
    }
    *ret_crl = crl;
    return 0;
}

static bool issued_by(X509 *crt, X509 *ca) {
    EVP_PKEY *pub = X509_get0_pubkey(ca);
    return pub && X509_NAME_cmp(X509_get_issuer_name(crt), X509_get_subject_name(ca)) == 0 &&
           X509_verify(crt, pub) == 1;
}

/* The next CRL number: the previous one plus one, or 1. */
static ASN1_INTEGER *next_number(X509_CRL *old) {
    ASN1_INTEGER *prev = old ? X509_CRL_get_ext_d2i(old, NID_crl_number, NULL, NULL) : NULL;
    BIGNUM *bn = prev ? ASN1_INTEGER_to_BN(prev, NULL) : BN_new();
    ASN1_INTEGER *next = NULL;

    if (bn && BN_add_word(bn, 1)) {
        next = BN_to_ASN1_INTEGER(bn, NULL);
    }
    BN_free(bn);
    ASN1_INTEGER_free(prev);
    return next;
}

static int add_entry(X509_CRL *crl, const ASN1_INTEGER *serial, const ASN1_TIME *when) {
    X509_REVOKED *r = X509_REVOKED_new();

    if (!r || !X509_REVOKED_set_serialNumber(r, (ASN1_INTEGER *)serial) ||
        !X509_REVOKED_set_revocationDate(r, (ASN1_TIME *)when) || !X509_CRL_add0_revoked(crl, r)) {
        X509_REVOKED_free(r);
        return -1;
    }
    return 0;
}

static bool listed(X509_CRL *crl, const ASN1_INTEGER *serial) {
    STACK_OF(X509_REVOKED) *sk = X509_CRL_get_REVOKED(crl);

    for (int i = 0; i < sk_X509_REVOKED_num(sk); i++) {
        if (ASN1_INTEGER_cmp(X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(sk, i)),
                             serial) == 0) {
            return true;
        }
    }
    return false;
}

/* A new CRL: the old one's entries, the targets', signed by the CA. */
static X509_CRL *build(X509_CRL *old, struct target *t, size_t nt, X509 *ca, EVP_PKEY *key,
                       int days) {
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *now = X509_gmtime_adj(NULL, 0), *next = X509_gmtime_adj(NULL, (long)days * 86400);
    ASN1_INTEGER *number = next_number(old);
    STACK_OF(X509_REVOKED) *prev = old ? X509_CRL_get_REVOKED(old) : NULL;
    X509V3_CTX ctx;
    X509_EXTENSION *aki = NULL;
    bool ok = crl && now && next && number && X509_CRL_set_version(crl, X509_CRL_VERSION_2) &&
              X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) &&
              X509_CRL_set1_lastUpdate(crl, now) && X509_CRL_set1_nextUpdate(crl, next) &&
              X509_CRL_add1_ext_i2d(crl, NID_crl_number, number, 0, 0) == 1;

    for (int i = 0; ok && i < sk_X509_REVOKED_num(prev); i++) {
        X509_REVOKED *dup = X509_REVOKED_dup(sk_X509_REVOKED_value(prev, i));
        ok = dup && X509_CRL_add0_revoked(crl, dup);
        if (!ok) {
            X509_REVOKED_free(dup);
        }
    }
    for (size_t i = 0; ok && i < nt; i++) {
        const ASN1_INTEGER *serial = X509_get0_serialNumber(t[i].crt);
        ok = listed(crl, serial) || add_entry(crl, serial, now) == 0;
    }
    if (ok) {
        X509V3_set_ctx(&ctx, ca, NULL, NULL, crl, 0);
        aki = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
        ok = aki && X509_CRL_add_ext(crl, aki, -1) && X509_CRL_sort(crl) &&
             X509_CRL_sign(crl, key, EVP_sha256()) > 0;
    }
    X509_EXTENSION_free(aki);
    ASN1_TIME_free(now);
    ASN1_TIME_free(next);
    ASN1_INTEGER_free(number);
    if (!ok) {
        X509_CRL_free(crl);
        return NULL;
    }
    return crl;
}

/* Write DIR/crl.pem through a temporary file, synced, then renamed. */
static int write_atomic(const char *dir, const char *path, X509_CRL *crl) {
    char tmp[CERTS_PATH_MAX + 32];
    FILE *f;
    int fd, ok, dfd;

    snprintf(tmp, sizeof(tmp), "%s/.crl.pem.%ld", dir, (long)getpid());
    unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 || !(f = fdopen(fd, "w"))) {
        fprintf(stderr, "kimactl certs: cannot write %s: %s\n", tmp, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    ok = PEM_write_X509_CRL(f, crl) && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0 || !ok || rename(tmp, path) < 0) {
        fprintf(stderr, "kimactl certs: cannot write %s: %s\n", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

static const char *serial_hex(X509 *crt, char *out, size_t outsz) {
    const ASN1_INTEGER *s = X509_get0_serialNumber(crt);
    int len = ASN1_STRING_length(s);

    if (len <= 0 || (size_t)len * 2 + 1 > outsz) {
        snprintf(out, outsz, "?");
        return out;
    }
    return hex_encode(ASN1_STRING_get0_data(s), (size_t)len, out);
}

/* Move DIR/agents/NODE to DIR/revoked/agent-NODE-SERIAL, so init can issue anew. */
static int move_aside(const char *dir, struct target *t) {
    char from[CERTS_PATH_MAX], to[CERTS_PATH_MAX + 128], hex[130], rdir[CERTS_PATH_MAX];

    snprintf(from, sizeof(from), "%s/%ss/%s", dir, t->kind, t->name);
    snprintf(rdir, sizeof(rdir), "%s/revoked", dir);
    snprintf(to, sizeof(to), "%s/%s-%s-%s", rdir, t->kind, t->name,
             serial_hex(t->crt, hex, sizeof(hex)));
    if ((mkdir(rdir, 0755) < 0 && errno != EEXIST) || rename(from, to) < 0) {
        fprintf(stderr, "kimactl certs: the CRL is written, but %s cannot move to %s: %s\n", from,
                to, strerror(errno));
        return -1;
    }
    printf("moved     %s to %s\n", from, to);
    return 0;
}

static int add_target(struct target *t, size_t *n, const char *kind, const char *name) {
    for (size_t i = 0; i < *n; i++) {
        if (t[i].kind == kind && strcmp(t[i].name, name) == 0) {
            return 0;
        }
    }
    if (*n == REVOKE_MAX) {
        fprintf(stderr, "kimactl certs: at most %d certificates a run\n", REVOKE_MAX);
        return -1;
    }
    if (kind && !certs_safe_name(name)) {
        fprintf(stderr, "kimactl certs: \"%s\" is not a node or user name\n", name);
        return -1;
    }
    t[*n] = (struct target){.kind = kind, .name = name};
    (*n)++;
    return 0;
}

static int run(const char *dir, struct target *t, size_t nt, int days) {
    char crl_path[CERTS_PATH_MAX], hex[130];
    X509 *ca = NULL;
    EVP_PKEY *key = NULL;
    X509_CRL *old = NULL, *crl = NULL;
    int r, code = EXIT_SOFTWARE;

    snprintf(crl_path, sizeof(crl_path), "%s/crl.pem", dir);
    r = certs_read_ca(dir, &ca, &key);
    if (r < 0) {
        if (r == -ENOENT) {
            fprintf(stderr, "kimactl certs: no CA in %s (kimactl certs init makes it)\n", dir);
        }
        return EXIT_NOINPUT;
    }
    if ((r = read_old_crl(crl_path, ca, &old)) < 0) {
        code = -r;
        goto out;
    }
    for (size_t i = 0; i < nt; i++) {
        if (t[i].kind) {
            snprintf(t[i].path, sizeof(t[i].path), "%s/%ss/%s/tls.crt", dir, t[i].kind, t[i].name);
        } else {
            snprintf(t[i].path, sizeof(t[i].path), "%s", t[i].name);
        }
        if (!(t[i].crt = read_cert(t[i].path))) {
            fprintf(stderr, "kimactl certs: cannot read a certificate from %s%s\n", t[i].path,
                    t[i].kind ? " (a revoked one is in DIR/revoked/)" : "");
            code = EXIT_NOINPUT;
            goto out;
        }
        if (!issued_by(t[i].crt, ca)) {
            fprintf(stderr, "kimactl certs: %s was not issued by %s/ca.crt\n", t[i].path, dir);
            code = EXIT_MALFORMED;
            goto out;
        }
    }
    if (!(crl = build(old, t, nt, ca, key, days)) || write_atomic(dir, crl_path, crl) < 0) {
        fprintf(stderr, "kimactl certs: cannot make the CRL\n");
        goto out;
    }
    code = EXIT_OK;
    for (size_t i = 0; i < nt; i++) {
        bool before = old && listed(old, X509_get0_serialNumber(t[i].crt));
        printf("%s %s (serial %s)\n", before ? "already  " : "revoked  ", t[i].path,
               serial_hex(t[i].crt, hex, sizeof(hex)));
        if (t[i].kind && move_aside(dir, &t[i]) < 0) {
            code = EXIT_SOFTWARE;
        }
    }
    {
        ASN1_INTEGER *num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
        long n = num ? ASN1_INTEGER_get(num) : -1;
        printf("wrote     %s (CRL number %ld, %d revoked, next update in %d days)\n", crl_path, n,
               sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), days);
        ASN1_INTEGER_free(num);
    }
out:
    for (size_t i = 0; i < nt; i++) {
        X509_free(t[i].crt);
    }
    X509_CRL_free(old);
    X509_CRL_free(crl);
    X509_free(ca);
    EVP_PKEY_free(key);
    return code;
}

int certs_revoke(int argc, char **argv) {
    static const struct option opts[] = {
            {"out", required_argument, NULL, 'o'},
            {"node", required_argument, NULL, 'n'},
            {"operator", required_argument, NULL, 'p'},
            {"cert", required_argument, NULL, 'c'},
            {"days", required_argument, NULL, 'd'},
            {"help", no_argument, NULL, 'h'},
            {0},
    };
    _cleanup_free_ struct target *t = calloc(REVOKE_MAX, sizeof(*t));
    const char *dir = NULL;
    size_t nt = 0;
    int days = 30, c;
    uint64_t v;

    if (!t) {
        return EXIT_SOFTWARE;
    }
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            dir = optarg;
            break;
        case 'n':
        case 'p':
        case 'c':
            if (add_target(t, &nt, c == 'n' ? "agent" : c == 'p' ? "operator" : NULL, optarg) < 0) {
                return EXIT_USAGE;
            }
            break;
        case 'd':
            if (parse_u64_range(optarg, 1, 3650, &v) < 0) {
                fprintf(stderr, "kimactl certs: --days takes 1 to 3650\n");
                return EXIT_USAGE;
            }
            days = (int)v;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc || !dir) {
        usage(stderr);
        return EXIT_USAGE;
    }
    return run(dir, t, nt, days);
}
