/* SPDX-License-Identifier: Apache-2.0 */
/* kimactl audit verify over a deployment's chains (audit-deploy.h): the
 * chains from --chain or a --deployment directory, each verified alone,
 * then the deployment's rules across them, and the report. */
#include "audit-deploy.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/pem.h>

#include "audit.h"
#include "fileio.h"
#include "json-util.h"
#include "kimactl.h"
#include "macro.h"

struct chain {
    char label[320];   /* how the report names it: "--chain N" or the directory */
    char dirname[256]; /* the directory's name under --deployment, or "" */
    char *pubpath;     /* owned */
    char **files;      /* owned, each owned */
    size_t nfiles;
    char *headpath; /* owned, or NULL */
    bool has_head;
    struct audit_head head;
    char head_problem[600]; /* why the head file was not used, or "" */
    struct audit_verify_result res;
    unsigned problems; /* gaps, tail, truncation, head and replica problems */
};

struct deploy {
    struct chain *chains; /* owned */
    size_t n;
    unsigned problems; /* the deployment's own */
};

static void chain_free(struct chain *c) {
    for (size_t i = 0; i < c->nfiles; i++) {
        free(c->files[i]);
    }
    free(c->files);
    free(c->pubpath);
    free(c->headpath);
}

static const char *replica_of(const struct chain *c) {
    return c->res.replica[0] ? c->res.replica : "-";
}

static int add_file(struct chain *c, const char *path, size_t len) {
    char **f;

    if (len == 0 || c->nfiles >= AUDIT_DEPLOY_FILES_MAX) {
        fprintf(stderr, "kimactl audit verify: %s: %s\n", c->label,
                len == 0 ? "an empty file name" : "more than 4096 files in one chain");
        return -EINVAL;
    }
    f = realloc(c->files, (c->nfiles + 1) * sizeof(*f));
    if (!f) {
        return -ENOMEM;
    }
    c->files = f;
    c->files[c->nfiles] = strndup(path, len);
    return c->files[c->nfiles++] ? 0 : -ENOMEM;
}

/* "PUBKEY:FILE[,FILE...][:HEAD]" into c. */
static int chain_from_arg(struct chain *c, const char *arg, size_t index) {
    const char *colon = strchr(arg, ':'), *files, *head, *p;
    int r;

    snprintf(c->label, sizeof(c->label), "--chain %zu", index + 1);
    if (!colon || colon == arg) {
        fprintf(stderr, "kimactl audit verify: --chain %.200s: want PUBKEY:FILE[,FILE...][:HEAD]\n",
                arg);
        return -EINVAL;
    }
    files = colon + 1;
    head = strchr(files, ':');
    if (!(c->pubpath = strndup(arg, (size_t)(colon - arg)))) {
        return -ENOMEM;
    }
    if (head && !(c->headpath = strdup(head + 1))) {
        return -ENOMEM;
    }
    if (head && !head[1]) {
        fprintf(stderr, "kimactl audit verify: --chain %.200s: an empty head file name\n", arg);
        return -EINVAL;
    }
    for (p = files;;) {
        size_t n = strcspn(p, head ? ",:" : ",");
        r = add_file(c, p, n);
        if (r < 0) {
            return r;
        }
        if (p[n] != ',') {
            return 0;
        }
        p += n + 1;
    }
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether `name` is the live log or a rotated one (audit.log.<digits>). */
static bool log_file_name(const char *name) {
    if (strcmp(name, "audit.log") == 0) {
        return true;
    }
    return strncmp(name, "audit.log.", 10) == 0 && name[10] &&
           strspn(name + 10, "0123456789") == strlen(name + 10);
}

/* DIR/<replica>: its key, its files (rotated in name order, the names end
 * in zero-padded seqs, then the live one) and its head if there is one. */
static int chain_from_dir(struct chain *c, const char *dir, const char *name) {
    char path[4200], *live = NULL;
    struct dirent *e;
    struct stat st;
    DIR *d;
    int r = 0;

    snprintf(c->label, sizeof(c->label), "%.200s/%.100s", dir, name);
    snprintf(c->dirname, sizeof(c->dirname), "%s", name);
    snprintf(path, sizeof(path), "%s/%s/audit.key.pub", dir, name);
    c->pubpath = strdup(path);
    snprintf(path, sizeof(path), "%s/%s/audit.head.json", dir, name);
    if (stat(path, &st) == 0) {
        c->headpath = strdup(path);
    }
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    d = opendir(path);
    if (!c->pubpath || !d) {
        r = d ? -ENOMEM : -errno;
    }
    while (r == 0 && (e = readdir(d))) {
        snprintf(path, sizeof(path), "%s/%s/%s", dir, name, e->d_name);
        if (strcmp(e->d_name, "audit.log") == 0) {
            live = strdup(path);
            r = live ? 0 : -ENOMEM;
        } else if (log_file_name(e->d_name)) {
            r = add_file(c, path, strlen(path));
        }
    }
    if (d) {
        closedir(d);
    }
    if (r == 0) {
        if (c->nfiles > 1) {
            qsort(c->files, c->nfiles, sizeof(*c->files), by_name);
        }
        r = live ? add_file(c, live, strlen(live)) : 0;
    }
    free(live);
    if (r == 0 && c->nfiles == 0) {
        fprintf(stderr, "kimactl audit verify: %s holds no audit.log file\n", c->label);
        r = -ENOENT;
    }
    return r;
}

/* Every subdirectory of dir, in name order, a chain. */
static int chains_from_deployment(struct deploy *dp, const char *dir) {
    char *names[AUDIT_DEPLOY_CHAINS_MAX], path[4200];
    size_t n = 0;
    struct dirent *e;
    struct stat st;
    DIR *d = opendir(dir);
    int r = 0;

    if (!d) {
        fprintf(stderr, "kimactl audit verify: cannot read --deployment %s: %s\n", dir,
                strerror(errno));
        return -ENOENT;
    }
    while ((e = readdir(d))) {
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (e->d_name[0] == '.' || stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
            continue;
        }
        if (n + dp->n >= AUDIT_DEPLOY_CHAINS_MAX) {
            fprintf(stderr, "kimactl audit verify: more than %d chains\n", AUDIT_DEPLOY_CHAINS_MAX);
            r = -E2BIG;
            break;
        }
        if (!(names[n] = strdup(e->d_name))) {
            r = -ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof(*names), by_name);
    for (size_t i = 0; i < n; i++) {
        if (r == 0) {
            r = chain_from_dir(&dp->chains[dp->n++], dir, names[i]);
        }
        free(names[i]);
    }
    if (r == 0 && n == 0) {
        fprintf(stderr, "kimactl audit verify: --deployment %s holds no replica directory\n", dir);
        r = -ENOENT;
    }
    return r;
}

/* The head file: a signed head (GET /v1/audit/head's answer) that must be
 * signed by the chain's key. false, said, when it is not. */
static bool chain_head(struct chain *c, EVP_PKEY *pub) {
    _cleanup_free_ uint8_t *data = NULL;
    json_auto_t *j = NULL;
    char err[256] = "";
    size_t len;

    if (read_file_capped(c->headpath, AUDIT_DEPLOY_HEAD_MAX, &data, &len) < 0 ||
        !(j = json_loadb((const char *)data, len, 0, NULL)) ||
        audit_head_from_json(j, &c->head, err, sizeof(err)) < 0) {
        snprintf(c->head_problem, sizeof(c->head_problem),
                 "the head file %.250s cannot be read or is not a head%s%.250s", c->headpath,
                 err[0] ? ": " : "", err);
        return false;
    }
    if (!audit_head_signature_ok(&c->head, pub)) {
        snprintf(c->head_problem, sizeof(c->head_problem),
                 "the head file %.250s is not signed by %.250s (untrusted head)", c->headpath,
                 c->pubpath);
        return false;
    }
    c->has_head = true;
    return true;
}

static EVP_PKEY *chain_key(const struct chain *c) {
    FILE *f = fopen(c->pubpath, "re");
    EVP_PKEY *pub;

    if (!f) {
        fprintf(stderr, "kimactl audit verify: %s: cannot read %s: %s\n", c->label, c->pubpath,
                strerror(errno));
        return NULL;
    }
    pub = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (!pub || EVP_PKEY_get_base_id(pub) != EVP_PKEY_ED25519) {
        fprintf(stderr, "kimactl audit verify: %s: %s is not an Ed25519 public key (PEM)\n",
                c->label, c->pubpath);
        EVP_PKEY_free(pub);
        return NULL;
    }
    return pub;
}

/* The chain alone: 0, or EXIT_NOINPUT for a key or file that cannot be
 * read (said). */
static int chain_verify(struct chain *c) {
    EVP_PKEY *pub = chain_key(c);
    int r;

    if (!pub) {
        return EXIT_NOINPUT;
    }
    if (c->headpath) {
        chain_head(c, pub);
    }
    r = audit_verify_head((const char *const *)c->files, c->nfiles, pub,
                          c->has_head ? &c->head : NULL, &c->res);
    EVP_PKEY_free(pub);
    if (r < 0) {
        fprintf(stderr, "kimactl audit verify: %s: cannot read its files: %s\n", c->label,
                strerror(-r));
        return EXIT_NOINPUT;
    }
    return 0;
}

/* The chain's block: its figures and every gap. Counts its problems. */
static void chain_report(struct chain *c, bool allow_unsigned_tail) {
    const struct audit_verify_result *res = &c->res;
    uint64_t signed_seq = res->last_checkpoint_seq;

    if (c->has_head && res->head_matched && c->head.seq > signed_seq) {
        signed_seq = c->head.seq;
    }
    c->problems = res->ngaps + (c->head_problem[0] != 0) + (res->truncated ? 1 : 0) +
                  (res->unsigned_tail && !allow_unsigned_tail ? 1 : 0) +
                  (res->replica[0] && !res->replica_signed ? 1 : 0) + (res->records == 0);
    printf("chain %s [%s]: key %.23s..., %zu files, %" PRIu64 " records, seq %" PRIu64 "-%" PRIu64
           ", last signed seq %" PRIu64 "%s: %s\n",
           replica_of(c), c->label, res->key_fp, c->nfiles, res->records, res->first_seq,
           res->last_seq, signed_seq, c->has_head ? " (with its signed head)" : "",
           c->problems ? "NOT intact" : "intact");
    for (unsigned i = 0; i < res->ngaps && i < AUDIT_GAPS_MAX; i++) {
        printf("  GAP %s\n", res->gaps[i]);
    }
    if (res->ngaps > AUDIT_GAPS_MAX) {
        printf("  ... and %u more gaps\n", res->ngaps - AUDIT_GAPS_MAX);
    }
    if (res->truncated) {
        printf("  GAP truncated: the files end at seq %" PRIu64 ", the replica's signed head is "
               "seq %" PRIu64 " (records cut)\n",
               res->last_seq, c->head.seq);
    }
    if (res->unsigned_tail) {
        printf("  %s unsigned tail: seq %" PRIu64 "-%" PRIu64 " (%" PRIu64
               " records, the first at %s) follow the last signed checkpoint%s\n",
               allow_unsigned_tail ? "NOTE" : "GAP", res->last_seq - res->unsigned_tail + 1,
               res->last_seq, res->unsigned_tail, res->first_unsigned_time,
               allow_unsigned_tail ? " (accepted: --allow-unsigned-tail)" : "");
    }
    if (c->head_problem[0]) {
        printf("  PROBLEM %s\n", c->head_problem);
    }
    if (res->replica[0] && !res->replica_signed) {
        printf("  PROBLEM the replica name \"%s\" is signed by no checkpoint\n", res->replica);
    }
    if (res->records == 0) {
        /* A replica writes its name and a checkpoint when it starts. */
        printf("  PROBLEM no records: the chain's files are empty (the live file just after a "
               "rotation, without its rotated files?)\n");
    }
}

_printf_(2, 3) static void problem(struct deploy *dp, const char *fmt, ...) {
    va_list ap;

    printf("PROBLEM ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    dp->problems++;
}

/* Across chains: one chain per replica name, one key per chain, and a
 * directory named as its chain's replica. */
static void deployment_rules(struct deploy *dp) {
    for (size_t i = 0; i < dp->n; i++) {
        const struct chain *a = &dp->chains[i];
        /* A log from before replicas had names ("-") is the directory's. */
        if (a->dirname[0] && a->res.replica[0] && strcmp(a->dirname, a->res.replica) != 0) {
            problem(dp, "%s: the directory is named \"%s\" but its chain is replica \"%s\"",
                    a->label, a->dirname, replica_of(a));
        }
        for (size_t k = i + 1; k < dp->n; k++) {
            const struct chain *b = &dp->chains[k];
            if (strcmp(replica_of(a), replica_of(b)) == 0) {
                problem(dp, "two chains claim replica \"%s\": %s and %s", replica_of(a), a->label,
                        b->label);
            }
            if (strcmp(a->res.key_fp, b->res.key_fp) == 0) {
                problem(dp,
                        "two chains use the same key %s: %s and %s (each replica needs its own)",
                        a->res.key_fp, a->label, b->label);
            }
        }
    }
}

/* --expect-replicas N or NAME,NAME,...: 0, or EXIT_USAGE (said). */
static int expected_rules(struct deploy *dp, const char *expect) {
    char name[AUDIT_REPLICA_MAX + 1], err[160];
    size_t len;

    if (strspn(expect, "0123456789") == strlen(expect) && strlen(expect) <= 3 && expect[0]) {
        unsigned long want = strtoul(expect, NULL, 10);
        if (want != dp->n) {
            problem(dp, "expected %lu replicas, found %zu chains", want, dp->n);
        }
        return 0;
    }
    for (const char *p = expect;; p += len + 1) {
        len = strcspn(p, ",");
        snprintf(name, sizeof(name), "%.*s", (int)(len < sizeof(name) ? len : sizeof(name) - 1), p);
        if (len >= sizeof(name) || audit_replica_check(name, err, sizeof(err)) < 0) {
            fprintf(stderr, "kimactl audit verify: --expect-replicas: \"%.*s\": %s\n",
                    (int)(len > 80 ? 80 : len), p, len >= sizeof(name) ? "too long" : err);
            return EXIT_USAGE;
        }
        bool found = false;
        for (size_t i = 0; i < dp->n && !found; i++) {
            found = strcmp(replica_of(&dp->chains[i]), name) == 0;
        }
        if (!found) {
            problem(dp, "replica \"%s\" is expected but has no chain", name);
        }
        if (!p[len]) {
            break;
        }
    }
    for (size_t i = 0; i < dp->n; i++) {
        const char *r = replica_of(&dp->chains[i]);
        size_t rl = strlen(r);
        const char *hit = strstr(expect, r);
        while (hit && !((hit == expect || hit[-1] == ',') && (hit[rl] == ',' || !hit[rl]))) {
            hit = strstr(hit + 1, r);
        }
        if (!hit) {
            problem(dp, "%s: replica \"%s\" is not an expected replica", dp->chains[i].label, r);
        }
    }
    return 0;
}

static int collect(struct deploy *dp, const struct audit_deploy_args *args) {
    int r = 0;

    if (args->nchains > AUDIT_DEPLOY_CHAINS_MAX) {
        fprintf(stderr, "kimactl audit verify: more than %d chains\n", AUDIT_DEPLOY_CHAINS_MAX);
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < args->nchains && r == 0; i++) {
        r = chain_from_arg(&dp->chains[dp->n++], args->chains[i], i);
        if (r == -EINVAL) {
            return EXIT_USAGE;
        }
    }
    if (r == 0 && args->deployment) {
        r = chains_from_deployment(dp, args->deployment);
    }
    if (r == -ENOMEM) {
        return EXIT_SOFTWARE;
    }
    return r == -EINVAL ? EXIT_USAGE : r < 0 ? EXIT_NOINPUT : 0;
}

int audit_deploy_verify(const struct audit_deploy_args *args) {
    struct deploy dp = {0};
    uint64_t records = 0;
    unsigned chain_problems = 0, bad_chains = 0;
    int code;

    dp.chains = calloc(AUDIT_DEPLOY_CHAINS_MAX, sizeof(*dp.chains));
    if (!dp.chains) {
        return EXIT_SOFTWARE;
    }
    code = collect(&dp, args);
    for (size_t i = 0; i < dp.n && code == 0; i++) {
        code = chain_verify(&dp.chains[i]);
    }
    for (size_t i = 0; i < dp.n && code == 0; i++) {
        chain_report(&dp.chains[i], args->allow_unsigned_tail);
        records += dp.chains[i].res.records;
        chain_problems += dp.chains[i].problems;
        bad_chains += dp.chains[i].problems > 0;
    }
    if (code == 0) {
        deployment_rules(&dp);
        code = args->expect ? expected_rules(&dp, args->expect) : 0;
    }
    if (code == 0 && chain_problems + dp.problems == 0) {
        printf("deployment intact: %zu chains, %" PRIu64 " records\n", dp.n, records);
    } else if (code == 0) {
        printf("deployment NOT intact: %u problems in %u of %zu chains, %u across chains (%" PRIu64
               " records)\n",
               chain_problems, bad_chains, dp.n, dp.problems, records);
        code = EXIT_MISMATCH;
    }
    for (size_t i = 0; i < dp.n; i++) {
        chain_free(&dp.chains[i]);
    }
    free(dp.chains);
    return code;
}
