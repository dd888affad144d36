/* SPDX-License-Identifier: Apache-2.0 */
/* kimactl certs init: the PKI of a kima installation. A CA (kept and reused
 * when it exists, so nodes can be added later), the verifier's server
 * certificate, operator certificates (OU kima-operator) and per-node agent
 * certificates (OU kima-agent, CN the node), each folder in the layout of a
 * Kubernetes TLS Secret (tls.crt, tls.key, ca.crt). ECDSA P-256 keys,
 * written 0600. `kimactl certs revoke` (certs-revoke.c) keeps DIR/crl.pem. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "certs.h"
#include "kimactl.h"
#include "parse.h"

#define NAMES_MAX 256

static void usage(FILE *f) {
    fprintf(f,
            "Usage: kimactl certs init --out DIR [--server-name NAME]... [--node NODE]...\n"
            "                          [--operator NAME]... [--metrics NAME]... [--days N]\n"
            "       kimactl certs revoke --out DIR ... (kimactl certs revoke --help)\n"
            "\n"
            "Makes (or, when DIR/ca.key exists, reuses) a CA and issues:\n"
            "  DIR/verifier/          the verifier's server certificate for every --server-name\n"
            "                         (DNS names or IP addresses; default the in-cluster\n"
            "                         Service kima-verifier.kima-system.svc)\n"
            "  DIR/operators/NAME/    an operator's client certificate (OU kima-operator)\n"
            "  DIR/metrics/NAME/      a scraper's client certificate (OU kima-metrics): it\n"
            "                         may read /metrics and nothing else\n"
            "  DIR/agents/NODE/       a node's agent certificate (OU kima-agent, CN NODE):\n"
            "                         copy it to the node's /etc/kima/agent\n"
            "Each folder holds tls.crt, tls.key and ca.crt, as a Kubernetes TLS Secret:\n"
            "  kubectl -n kima-system create secret generic kima-verifier-tls \\\n"
            "      --from-file=DIR/verifier/\n"
            "Existing certificates are kept; --days (default 365) sets the validity.\n"
            "Exit codes: 0 done, 64 usage error, 70 failure.\n");
}

static EVP_PKEY *new_key(void) {
    return EVP_EC_gen("P-256");
}

static int write_pem(const char *path, EVP_PKEY *key, X509 *crt) {
    FILE *f;
    int fd, ok;

    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, key ? 0600 : 0644);
    if (fd < 0 || !(f = fdopen(fd, "w"))) {
        fprintf(stderr, "kimactl certs: cannot write %s: %s\n", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, crt);
    if (fclose(f) != 0 || !ok) {
        fprintf(stderr, "kimactl certs: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

static int add_ext(X509 *crt, X509 *issuer, int nid, const char *value) {
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx(&ctx, issuer, crt, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext) {
        return -1;
    }
    ok = X509_add_ext(crt, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

/* Issue a certificate for key, signed by ca_key (self-signed when ca is NULL). */
static X509 *issue(EVP_PKEY *key, const char *cn, const char *ou, X509 *ca, EVP_PKEY *ca_key,
                   int days, const char *usage_ext, const char *san) {
    X509 *crt = X509_new();
    X509_NAME *name = X509_NAME_new();
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    bool is_ca = ca == NULL;

    if (!crt || !name || RAND_bytes(serial, sizeof(serial)) != 1) {
        goto fail;
    }
    serial[0] &= 0x7f;
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(crt))) {
        goto fail;
    }
    X509_set_version(crt, 2);
    if (ou) {
        X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_UTF8, (const unsigned char *)ou, -1, -1, 0);
    }
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_set_subject_name(crt, name);
    X509_set_issuer_name(crt, is_ca ? name : X509_get_subject_name(ca));
    X509_gmtime_adj(X509_getm_notBefore(crt), -300);
    X509_gmtime_adj(X509_getm_notAfter(crt), (long)days * 86400);
    X509_set_pubkey(crt, key);
    if (add_ext(crt, is_ca ? crt : ca, NID_basic_constraints,
                is_ca ? "critical,CA:TRUE,pathlen:0" : "critical,CA:FALSE") < 0 ||
        add_ext(crt, is_ca ? crt : ca, NID_key_usage,
                is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature") < 0 ||
        add_ext(crt, is_ca ? crt : ca, NID_subject_key_identifier, "hash") < 0 ||
        (!is_ca && add_ext(crt, ca, NID_authority_key_identifier, "keyid:always") < 0) ||
        (usage_ext && add_ext(crt, ca, NID_ext_key_usage, usage_ext) < 0) ||
        (san && add_ext(crt, ca, NID_subject_alt_name, san) < 0) ||
        !X509_sign(crt, is_ca ? key : ca_key, EVP_sha256())) {
        goto fail;
    }
    X509_NAME_free(name);
    BN_free(bn);
    return crt;
fail:
    X509_NAME_free(name);
    BN_free(bn);
    X509_free(crt);
    return NULL;
}

static int mkdirs(const char *dir) {
    char p[PATH_MAX];

    snprintf(p, sizeof(p), "%s", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0755);
            *s = '/';
        }
    }
    return mkdir(p, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

/* DIR/{tls.crt,tls.key,ca.crt}, unless DIR/tls.crt exists. */
static int leaf(const char *dir, const char *cn, const char *ou, X509 *ca, EVP_PKEY *ca_key,
                int days, const char *usage_ext, const char *san) {
    char p[CERTS_PATH_MAX];
    EVP_PKEY *key = NULL;
    X509 *crt = NULL;
    int r = -1;

    snprintf(p, sizeof(p), "%s/tls.crt", dir);
    if (access(p, F_OK) == 0) {
        printf("kept      %s\n", p);
        return 0;
    }
    if (mkdirs(dir) < 0 || !(key = new_key()) ||
        !(crt = issue(key, cn, ou, ca, ca_key, days, usage_ext, san))) {
        fprintf(stderr, "kimactl certs: cannot issue the certificate of %s\n", cn);
        goto out;
    }
    snprintf(p, sizeof(p), "%s/tls.key", dir);
    if (write_pem(p, key, NULL) < 0) {
        goto out;
    }
    snprintf(p, sizeof(p), "%s/ca.crt", dir);
    if (write_pem(p, NULL, ca) < 0) {
        goto out;
    }
    snprintf(p, sizeof(p), "%s/tls.crt", dir);
    if (write_pem(p, NULL, crt) < 0) {
        goto out;
    }
    printf("issued    %s (CN=%s%s%s)\n", p, cn, ou ? ", OU=" : "", ou ? ou : "");
    r = 0;
out:
    EVP_PKEY_free(key);
    X509_free(crt);
    return r;
}

bool certs_safe_name(const char *s) {
    return *s && strlen(s) <= 253 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyz"
                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") == strlen(s) &&
           s[0] != '.' && s[0] != '-';
}

int certs_read_ca(const char *dir, X509 **ret_ca, EVP_PKEY **ret_key) {
    char kp[CERTS_PATH_MAX], cp[CERTS_PATH_MAX];
    EVP_PKEY *key;
    X509 *ca;
    FILE *f;

    snprintf(kp, sizeof(kp), "%s/ca.key", dir);
    snprintf(cp, sizeof(cp), "%s/ca.crt", dir);
    if (!(f = fopen(kp, "re"))) {
        int r = -errno;
        if (r != -ENOENT) {
            fprintf(stderr, "kimactl certs: cannot read %s: %s\n", kp, strerror(-r));
        }
        return r;
    }
    key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    f = fopen(cp, "re");
    ca = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f) {
        fclose(f);
    }
    if (!key || !ca || X509_check_private_key(ca, key) != 1) {
        fprintf(stderr, "kimactl certs: %s and %s are not a CA and its key\n", cp, kp);
        EVP_PKEY_free(key);
        X509_free(ca);
        return -EINVAL;
    }
    *ret_ca = ca;
    *ret_key = key;
    return 0;
}

static int load_ca(const char *out, int days, X509 **ret_ca, EVP_PKEY **ret_key) {
    char kp[CERTS_PATH_MAX], cp[CERTS_PATH_MAX];
    int r = certs_read_ca(out, ret_ca, ret_key);

    snprintf(kp, sizeof(kp), "%s/ca.key", out);
    snprintf(cp, sizeof(cp), "%s/ca.crt", out);
    if (r == 0) {
        printf("kept      %s\n", cp);
        return 0;
    }
    if (r != -ENOENT) {
        return -1;
    }
    *ret_key = new_key();
    *ret_ca = *ret_key ? issue(*ret_key, "kima CA", NULL, NULL, NULL, days * 5, NULL, NULL) : NULL;
    if (!*ret_ca || mkdirs(out) < 0 || write_pem(kp, *ret_key, NULL) < 0 ||
        write_pem(cp, NULL, *ret_ca) < 0) {
        fprintf(stderr, "kimactl certs: cannot make the CA in %s\n", out);
        return -1;
    }
    printf("issued    %s (the CA; keep ca.key offline)\n", cp);
    return 0;
}

/* What `kimactl certs init` was asked for. */
struct certs_init {
    const char *out;
    const char *servers[NAMES_MAX], *nodes[NAMES_MAX], *ops[NAMES_MAX], *scrapers[NAMES_MAX];
    size_t ns, nn, no, nm;
    int days;
};

/* A --server-name ('s', which may also be an IPv6 address), --node ('n'),
 * --operator ('p') or --metrics ('m'); at most NAMES_MAX of each. 0, or
 * -EINVAL once printed. */
static int add_name(struct certs_init *a, int opt, const char *name) {
    if (!certs_safe_name(name) && !(opt == 's' && strchr(name, ':'))) {
        fprintf(stderr, "kimactl certs: \"%s\" is not a host, node or user name\n", name);
        return -EINVAL;
    }
    if (a->ns == NAMES_MAX || a->nn == NAMES_MAX || a->no == NAMES_MAX || a->nm == NAMES_MAX) {
        fprintf(stderr, "kimactl certs: at most %d names of a kind\n", NAMES_MAX);
        return -EINVAL;
    }
    if (opt == 's') {
        a->servers[a->ns++] = name;
    } else if (opt == 'n') {
        a->nodes[a->nn++] = name;
    } else if (opt == 'm') {
        a->scrapers[a->nm++] = name;
    } else {
        a->ops[a->no++] = name;
    }
    return 0;
}

/* The options of certs init: 0 to go on, 1 once --help is printed, or
 * -EINVAL once the usage error is. */
static int parse_init_args(struct certs_init *a, int argc, char **argv) {
    static const struct option opts[] = {
            {"out", required_argument, NULL, 'o'},
            {"server-name", required_argument, NULL, 's'},
            {"node", required_argument, NULL, 'n'},
            {"operator", required_argument, NULL, 'p'},
            {"metrics", required_argument, NULL, 'm'},
            {"days", required_argument, NULL, 'd'},
            {"help", no_argument, NULL, 'h'},
            {0},
    };
    uint64_t v;
    int c;

    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            a->out = optarg;
            break;
        case 's':
        case 'n':
        case 'p':
        case 'm':
            if (add_name(a, c, optarg) < 0) {
                return -EINVAL;
            }
            break;
        case 'd':
            if (parse_u64_range(optarg, 1, 3650, &v) < 0) {
                fprintf(stderr, "kimactl certs: --days takes 1 to 3650\n");
                return -EINVAL;
            }
            a->days = (int)v;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return -EINVAL;
        }
    }
    if (optind != argc - 1 || strcmp(argv[optind], "init") != 0 || !a->out) {
        usage(stderr);
        return -EINVAL;
    }
    if (a->ns == 0) {
        a->servers[a->ns++] = "kima-verifier.kima-system.svc";
        a->servers[a->ns++] = "kima-verifier.kima-system.svc.cluster.local";
    }
    return 0;
}

/* The verifier's subjectAltName: "IP:" or "DNS:" and each server name,
 * comma-separated (cut at outsz). */
static void server_san(const char *const *servers, size_t n, char *out, size_t outsz) {
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        struct in6_addr a;
        bool ip =
                inet_pton(AF_INET, servers[i], &a) == 1 || inet_pton(AF_INET6, servers[i], &a) == 1;
        size_t l = strlen(out);
        snprintf(out + l, outsz - l, "%s%s:%s", l ? "," : "", ip ? "IP" : "DNS", servers[i]);
    }
}

/* The CA, then the verifier's, the operators' and the agents'
 * certificates, up to the first failure (printed). 0 or -1. */
static int issue_all(const struct certs_init *a, const char *san) {
    X509 *ca = NULL;
    EVP_PKEY *ca_key = NULL;
    char dir[CERTS_PATH_MAX];
    int r = load_ca(a->out, a->days, &ca, &ca_key);

    if (r == 0) {
        snprintf(dir, sizeof(dir), "%s/verifier", a->out);
        r = leaf(dir, "kima-verifier", NULL, ca, ca_key, a->days, "serverAuth", san);
    }
    for (size_t i = 0; i < a->no && r == 0; i++) {
        snprintf(dir, sizeof(dir), "%s/operators/%s", a->out, a->ops[i]);
        r = leaf(dir, a->ops[i], "kima-operator", ca, ca_key, a->days, "clientAuth", NULL);
    }
    for (size_t i = 0; i < a->nm && r == 0; i++) {
        snprintf(dir, sizeof(dir), "%s/metrics/%s", a->out, a->scrapers[i]);
        r = leaf(dir, a->scrapers[i], "kima-metrics", ca, ca_key, a->days, "clientAuth", NULL);
    }
    for (size_t i = 0; i < a->nn && r == 0; i++) {
        snprintf(dir, sizeof(dir), "%s/agents/%s", a->out, a->nodes[i]);
        r = leaf(dir, a->nodes[i], "kima-agent", ca, ca_key, a->days, "clientAuth", NULL);
    }
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return r < 0 ? -1 : 0;
}

int cmd_certs(int argc, char **argv) {
    struct certs_init a = {.days = 365};
    char san[8192];
    int r;

    if (argc >= 2 && strcmp(argv[1], "revoke") == 0) {
        return certs_revoke(argc - 1, argv + 1);
    }
    r = parse_init_args(&a, argc, argv);
    if (r != 0) {
        return r > 0 ? 0 : EXIT_USAGE;
    }
    server_san(a.servers, a.ns, san, sizeof(san));
    return issue_all(&a, san) < 0 ? EXIT_SOFTWARE : 0;
}
