/* SPDX-License-Identifier: Apache-2.0 */
/* ima-writer: plays a node's kernel for tests and the demo. It appends
 * measurements in the kernel's binary format to a securityfs-like folder,
 * keeps runtime_measurements_count in step and extends PCR 10 of a TPM in
 * every allocated bank with exactly the digests the kernel would
 * (docs/formats.md section 3). Template hashes are computed with OpenSSL
 * directly (ima-gen), not with kima's ima/ library, so the verifier is
 * checked against an independent computation. Run with --help for the
 * commands. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "buf.h"
#include "fileio.h"
#include "hex.h"
#include "ima-gen.h"
#include "log.h"
#include "macro.h"
#include "quote.h"

#define PCR_IMA    10
#define DATA_MAX   (16 * 1024)
#define LINE_MAX_  8192
#define ARGS_MAX   32
#define CONTAINER0 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const char *const bank_name[GEN_BANKS] = {"sha1", "sha256", "sha384", "sha512"};
static const uint16_t bank_alg[GEN_BANKS] = {TPM2_ALG_SHA1, TPM2_ALG_SHA256, TPM2_ALG_SHA384,
                                             TPM2_ALG_SHA512};

struct writer {
    const char *dir; /* <securityfs>/ima */
    struct tpm *tpm;
    int hash_algo;        /* the kernel's ima_hash_algo: file digests, violations */
    int banks[GEN_BANKS]; /* allocated banks of PCR 10, as GEN_BANKS indexes */
    size_t nbanks;
    bool no_tpm;
};

/* One measurement to append. */
struct meas {
    const char *template; /* ima-ng or ima-cgpath */
    const char *path;
    const char *dep;
    char cgroup[1024];
    uint8_t digest[64];
    size_t digest_len;
    int digest_algo;
    bool violation;
};

static int bank_by_name(const char *s, size_t len) {
    for (int b = 0; b < GEN_BANKS; b++) {
        if (strlen(bank_name[b]) == len && strncmp(s, bank_name[b], len) == 0) {
            return b;
        }
    }
    return -1;
}

/* "sha256:HEX", a bare HEX (its width picks the algorithm) or "file:PATH"
 * (hashed with the kernel's hash algorithm). */
static int parse_digest(struct writer *w, const char *s, struct meas *m) {
    const char *colon = strchr(s, ':');
    size_t hl;

    if (strncmp(s, "file:", 5) == 0) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t len;
        int r = read_file_capped(s + 5, (size_t)1 << 30, &data, &len);
        if (r < 0) {
            log_error("cannot read %s: %s", s + 5, strerror(-r));
            return r;
        }
        m->digest_algo = w->hash_algo;
        m->digest_len = gen_bank_size(w->hash_algo);
        gen_hash(w->hash_algo, data, len, m->digest);
        return 0;
    }
    if (colon) {
        m->digest_algo = bank_by_name(s, (size_t)(colon - s));
        s = colon + 1;
    } else {
        m->digest_algo = -1;
        for (int b = 0; b < GEN_BANKS; b++) {
            if (strlen(s) == 2 * gen_bank_size(b)) {
                m->digest_algo = b;
            }
        }
    }
    hl = strlen(s);
    if (m->digest_algo < 0 || hl != 2 * gen_bank_size(m->digest_algo) ||
        hex_decode(s, hl, m->digest, sizeof(m->digest)) != (int)(hl / 2)) {
        log_error("bad digest \"%s\": want sha1|sha256|sha384|sha512:HEX, HEX or file:PATH", s);
        return -EINVAL;
    }
    m->digest_len = hl / 2;
    return 0;
}

static void put_field(struct kbuf *b, const void *data, size_t len) {
    uint32_t n = (uint32_t)len;
    kbuf_append(b, &n, 4);
    kbuf_append(b, data, len);
}

static void put_string(struct kbuf *b, const char *s) {
    put_field(b, s, strlen(s) + 1);
}

/* The template data of an entry, as ima_template_lib.c lays it out. */
static int template_data(const struct writer *w, const struct meas *m, struct kbuf *b) {
    uint8_t dng[16 + 64];
    int algo = m->violation ? w->hash_algo : m->digest_algo;
    size_t plen = strlen(bank_name[algo]) + 2, dlen = gen_bank_size(algo);

    /* d-ng: "<algo>:\0" then the digest; a violation has zeros (v5.19+). */
    snprintf((char *)dng, sizeof(dng), "%s:", bank_name[algo]);
    memset(dng + plen, 0, dlen);
    if (!m->violation) {
        memcpy(dng + plen, m->digest, dlen);
    }
    if (strcmp(m->template, "ima-cgpath") == 0) {
        put_string(b, m->dep);
        put_string(b, m->cgroup);
    }
    put_field(b, dng, plen + dlen);
    put_string(b, m->path);
    return b->len > DATA_MAX ? -E2BIG : 0;
}

static int append_file(const char *path, const void *data, size_t len) {
    _cleanup_close_ int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    return write_full(fd, data, len);
}

static int bump_count(const char *dir) {
    char path[4096], tmp[4096];
    _cleanup_free_ uint8_t *data = NULL;
    size_t len;
    unsigned long long n = 0;
    FILE *f;

    snprintf(path, sizeof(path), "%s/runtime_measurements_count", dir);
    snprintf(tmp, sizeof(tmp), "%s/.runtime_measurements_count.new", dir);
    if (read_file_capped(path, 64, &data, &len) == 0) {
        n = strtoull((const char *)data, NULL, 10);
    }
    f = fopen(tmp, "we");
    if (!f) {
        return -errno;
    }
    fprintf(f, "%llu\n", n + 1);
    if (fclose(f) != 0 || rename(tmp, path) < 0) {
        return -errno;
    }
    return 0;
}

/* Append one entry (`entry`, in the list's sha1 form) to the list and to each
 * per-bank list present (with that bank's template digest), bump the count,
 * then extend PCR 10 in every bank: the kernel's order in
 * ima_add_template_entry(). The list is locked so concurrent writers keep
 * list order and extend order the same. */
static int append_entry(struct writer *w, const char *template, const uint8_t *data, size_t dlen,
                        bool violation) {
    struct kbuf entry;
    struct tpm_pcr_values ext = {0};
    uint8_t hashes[GEN_BANKS][64];
    char path[4096];
    _cleanup_close_ int lock = -1;
    int r = 0;

    for (int b = 0; b < GEN_BANKS; b++) {
        if (violation) {
            memset(hashes[b], 0xff, gen_bank_size(b));
        } else {
            gen_hash(b, data, dlen, hashes[b]);
        }
    }
    kbuf_init(&entry, 2 * DATA_MAX);
    snprintf(path, sizeof(path), "%s/binary_runtime_measurements", w->dir);
    lock = open(path, O_RDONLY | O_CLOEXEC);
    if (lock < 0 || flock(lock, LOCK_EX) < 0) {
        r = -errno;
        log_error("cannot lock %s: %s (run init first)", path, strerror(-r));
        goto out;
    }
    for (int b = -1; b < GEN_BANKS; b++) {
        uint32_t pcr = PCR_IMA, nl = (uint32_t)strlen(template);
        uint8_t zero[64] = {0};
        int lb = b < 0 ? 0 : b;

        if (b >= 0) {
            snprintf(path, sizeof(path), "%s/binary_runtime_measurements_%s", w->dir, bank_name[b]);
            if (access(path, F_OK) < 0) {
                continue;
            }
        }
        entry.len = 0;
        kbuf_append(&entry, &pcr, 4);
        kbuf_append(&entry, violation ? zero : hashes[lb], gen_bank_size(lb));
        kbuf_append(&entry, &nl, 4);
        kbuf_append(&entry, template, nl);
        put_field(&entry, data, dlen);
        r = append_file(path, entry.data, entry.len);
        if (r < 0) {
            log_error("cannot append to %s: %s", path, strerror(-r));
            goto out;
        }
    }
    r = bump_count(w->dir);
    if (r < 0) {
        log_error("cannot update runtime_measurements_count: %s", strerror(-r));
        goto out;
    }
    if (!w->no_tpm) {
        for (size_t i = 0; i < w->nbanks; i++) {
            int b = w->banks[i];
            tpm_pcr_values_set(&ext, bank_alg[b], PCR_IMA, hashes[b], gen_bank_size(b));
        }
        r = tpm_pcr_extend(w->tpm, PCR_IMA, &ext);
    }
out:
    kbuf_free(&entry);
    return r;
}

static int write_entry(struct writer *w, const struct meas *m) {
    struct kbuf data;
    int r;

    kbuf_init(&data, DATA_MAX + 4096);
    r = template_data(w, m, &data);
    if (r < 0) {
        log_error("an entry of %zu bytes is too big", data.len);
    } else {
        r = append_entry(w, m->template, data.data, data.len, m->violation);
    }
    kbuf_free(&data);
    return r;
}

/* Replay a binary list (sha1 template digests, as a kernel's
 * binary_runtime_measurements) entry by entry, as if the kernel measured
 * it now: a real kernel's list on a TPM without that kernel. */
static int cmd_replay(struct writer *w, const char *file) {
    _cleanup_free_ uint8_t *list = NULL;
    size_t len, off = 0;
    unsigned long long n = 0;
    int r = read_file_capped(file, (size_t)1 << 30, &list, &len);

    if (r < 0) {
        log_error("cannot read %s: %s", file, strerror(-r));
        return r;
    }
    while (off < len) {
        uint32_t pcr, nl, dl;
        char name[256];
        static const uint8_t zero[20];
        bool violation;

        if (len - off < 28) {
            break;
        }
        memcpy(&pcr, list + off, 4);
        memcpy(&nl, list + off + 24, 4);
        if (pcr != PCR_IMA || nl == 0 || nl >= sizeof(name) || len - off - 28 < (size_t)nl + 4) {
            log_error("%s: entry %llu is not a PCR 10 entry of this tool's kind", file, n);
            return -EBADMSG;
        }
        memcpy(name, list + off + 28, nl);
        name[nl] = 0;
        memcpy(&dl, list + off + 28 + nl, 4);
        if (strcmp(name, "ima") == 0 || dl > DATA_MAX || len - off - 32 - nl < dl) {
            log_error("%s: entry %llu: unsupported template or truncated data", file, n);
            return -EBADMSG;
        }
        violation = memcmp(list + off + 4, zero, 20) == 0;
        r = append_entry(w, name, list + off + 32 + nl, dl, violation);
        if (r < 0) {
            return r;
        }
        off += 32 + (size_t)nl + dl;
        n++;
    }
    if (off != len) {
        log_error("%s: %zu trailing bytes after entry %llu", file, len - off, n);
        return -EBADMSG;
    }
    return 0;
}

/* Kubelet's cgroup of a container (docs/design.md section 4). */
static int pod_cgroup(const char *uid, const char *layout, const char *qos, const char *runtime,
                      const char *container, char *out, size_t outsz) {
    char u[64], q[32] = "", prefix[32];
    bool systemd = strcmp(layout, "systemd") == 0;
    int n;

    if (strlen(uid) > 36 || (!systemd && strcmp(layout, "cgroupfs") != 0) ||
        (strcmp(qos, "guaranteed") != 0 && strcmp(qos, "burstable") != 0 &&
         strcmp(qos, "besteffort") != 0) ||
        (strcmp(runtime, "containerd") != 0 && strcmp(runtime, "crio") != 0 &&
         strcmp(runtime, "docker") != 0)) {
        log_error("bad pod: uid at most 36 characters, --layout systemd|cgroupfs, "
                  "--qos guaranteed|burstable|besteffort, --runtime containerd|crio|docker");
        return -EINVAL;
    }
    snprintf(u, sizeof(u), "%s", uid);
    snprintf(prefix, sizeof(prefix), "%s",
             strcmp(runtime, "containerd") == 0 ? "cri-containerd" : runtime);
    if (systemd) {
        for (char *c = u; *c; c++) {
            *c = *c == '-' ? '_' : *c;
        }
        if (strcmp(qos, "guaranteed") != 0) {
            snprintf(q, sizeof(q), "-%s", qos);
        }
        n = snprintf(out, outsz, "/kubepods.slice%s%s%s/kubepods%s-pod%s.slice/%s-%s.scope",
                     *q ? "/kubepods" : "", q, *q ? ".slice" : "", q, u, prefix, container);
    } else {
        n = snprintf(out, outsz, "/kubepods%s%s/pod%s/%s", strcmp(qos, "guaranteed") ? "/" : "",
                     strcmp(qos, "guaranteed") ? qos : "", u, container);
    }
    return n < 0 || (size_t)n >= outsz ? -E2BIG : 0;
}

static const char usage_text[] =
        "Usage: ima-writer [GLOBAL OPTIONS] COMMAND [ARGS]\n"
        "Plays a node's kernel: appends IMA measurements to SECURITYFS/ima/,\n"
        "keeps runtime_measurements_count and extends PCR 10 in every allocated bank.\n"
        "\n"
        "Commands:\n"
        "  init [--per-bank] [--boot-aggregate]\n"
        "        create SECURITYFS/ima with an empty list and a count of 0; --per-bank\n"
        "        also keeps binary_runtime_measurements_<bank> lists; --boot-aggregate\n"
        "        writes the kernel's first entry from PCRs 0-9\n"
        "  pod UID PATH DIGEST [--layout systemd|cgroupfs] [--qos Q] [--runtime R]\n"
        "        [--container ID] [--dep CHAIN]\n"
        "        an ima-cgpath entry of a process in the pod's container cgroup\n"
        "  host PATH DIGEST [--template ima-ng|ima-cgpath] [--cgroup PATH] [--dep CHAIN]\n"
        "        a host process's entry (default ima-ng)\n"
        "  violation PATH [--pod UID [pod options]] [--template T]\n"
        "        a ToMToU/open-writers violation: zero digests, PCR extended with 0xff\n"
        "  replay LIST\n"
        "        append every entry of a binary list (a real kernel's) as if measured now\n"
        "  batch [FILE]\n"
        "        one command a line from FILE (default stdin), '#' comments; one TPM\n"
        "        connection for all, \"ok N\" printed after each line when --ack is given\n"
        "DIGEST: sha1|sha256|sha384|sha512:HEX, a bare HEX, or file:PATH (hashed).\n"
        "\n"
        "Global options:\n"
        "  --securityfs DIR   the securityfs root (default $KIMA_SECURITYFS or .)\n"
        "  --tcti STRING      the TPM (default $KIMA_TCTI)\n"
        "  --no-tpm           write the list only (to forge lists in tests)\n"
        "  --hash-algo ALG    the kernel's ima_hash (default sha256)\n"
        "  --ack              batch: acknowledge each line on stdout\n"
        "  -h, --help\n";

struct opts {
    const char *layout, *qos, *runtime, *container, *dep, *template, *cgroup, *pod;
    bool per_bank, boot_aggregate;
};

enum {
    OPT_LAYOUT = 256,
    OPT_QOS,
    OPT_RUNTIME,
    OPT_CONTAINER,
    OPT_DEP,
    OPT_TEMPLATE,
    OPT_CGROUP,
    OPT_POD,
    OPT_PER_BANK,
    OPT_BOOT_AGGREGATE,
    OPT_SECURITYFS,
    OPT_TCTI,
    OPT_NO_TPM,
    OPT_HASH_ALGO,
    OPT_ACK,
};

static const struct option options[] = {
        {"layout", required_argument, NULL, OPT_LAYOUT},
        {"qos", required_argument, NULL, OPT_QOS},
        {"runtime", required_argument, NULL, OPT_RUNTIME},
        {"container", required_argument, NULL, OPT_CONTAINER},
        {"dep", required_argument, NULL, OPT_DEP},
        {"template", required_argument, NULL, OPT_TEMPLATE},
        {"cgroup", required_argument, NULL, OPT_CGROUP},
        {"pod", required_argument, NULL, OPT_POD},
        {"per-bank", no_argument, NULL, OPT_PER_BANK},
        {"boot-aggregate", no_argument, NULL, OPT_BOOT_AGGREGATE},
        {"securityfs", required_argument, NULL, OPT_SECURITYFS},
        {"tcti", required_argument, NULL, OPT_TCTI},
        {"no-tpm", no_argument, NULL, OPT_NO_TPM},
        {"hash-algo", required_argument, NULL, OPT_HASH_ALGO},
        {"ack", no_argument, NULL, OPT_ACK},
        {"help", no_argument, NULL, 'h'},
        {},
};

struct global {
    const char *securityfs, *tcti, *hash_algo;
    bool no_tpm, ack, help;
};

/* Parse argv into global and command options; the positional arguments are
 * moved to the front of argv[optind..]. Returns optind or -1. */
static int parse(int argc, char **argv, struct global *g, struct opts *o) {
    int c;

    optind = 0; /* re-initialise getopt for batch lines */
    while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
        switch (c) {
        case OPT_LAYOUT:
            o->layout = optarg;
            break;
        case OPT_QOS:
            o->qos = optarg;
            break;
        case OPT_RUNTIME:
            o->runtime = optarg;
            break;
        case OPT_CONTAINER:
            o->container = optarg;
            break;
        case OPT_DEP:
            o->dep = optarg;
            break;
        case OPT_TEMPLATE:
            o->template = optarg;
            break;
        case OPT_CGROUP:
            o->cgroup = optarg;
            break;
        case OPT_POD:
            o->pod = optarg;
            break;
        case OPT_PER_BANK:
            o->per_bank = true;
            break;
        case OPT_BOOT_AGGREGATE:
            o->boot_aggregate = true;
            break;
        case OPT_SECURITYFS:
            g->securityfs = optarg;
            break;
        case OPT_TCTI:
            g->tcti = optarg;
            break;
        case OPT_NO_TPM:
            g->no_tpm = true;
            break;
        case OPT_HASH_ALGO:
            g->hash_algo = optarg;
            break;
        case OPT_ACK:
            g->ack = true;
            break;
        case 'h':
            g->help = true;
            break;
        default:
            return -1;
        }
    }
    return optind;
}

static bool bank_allocated(const struct writer *w, int bank) {
    for (size_t i = 0; i < w->nbanks; i++) {
        if (w->banks[i] == bank) {
            return true;
        }
    }
    return false;
}

/* ima_calc_boot_aggregate: the ima_hash_algo bank if allocated, else sha256,
 * else sha1; H(PCR 0-7), and PCRs 8-9 too for banks other than sha1. With no
 * TPM the digest is zeros. */
static int boot_aggregate(struct writer *w, const char *template) {
    const int order[] = {w->hash_algo, 1, 0};
    struct meas m = {
            .template = template, .path = "boot_aggregate", .dep = "swapper/0", .cgroup = "/"};
    int bank = -1;

    for (size_t i = 0; i < 3 && bank < 0; i++) {
        if (bank_allocated(w, order[i])) {
            bank = order[i];
        }
    }
    m.digest_algo = bank < 0 ? w->hash_algo : bank;
    m.digest_len = gen_bank_size(m.digest_algo);
    if (bank >= 0 && !w->no_tpm) {
        TPML_PCR_SELECTION sel = {0};
        struct tpm_pcr_values vals;
        uint8_t cat[10 * 64];
        unsigned n = bank == 0 ? 8 : 10;
        int r;

        sel.count = 1;
        sel.pcrSelections[0].hash = bank_alg[bank];
        sel.pcrSelections[0].sizeofSelect = 3;
        sel.pcrSelections[0].pcrSelect[0] = 0xff;
        sel.pcrSelections[0].pcrSelect[1] = 0x03;
        r = tpm_pcr_read(w->tpm, &sel, &vals);
        if (r < 0) {
            return r;
        }
        for (unsigned i = 0; i < n; i++) {
            const struct tpm_pcr_value *v = tpm_pcr_values_find(&vals, bank_alg[bank], i);
            if (!v) {
                return -EIO;
            }
            memcpy(cat + i * gen_bank_size(bank), v->digest, gen_bank_size(bank));
        }
        gen_hash(bank, cat, n * gen_bank_size(bank), m.digest);
    }
    return write_entry(w, &m);
}

static int cmd_init(struct writer *w, const struct opts *o) {
    char path[4096];

    char parent[4096];

    snprintf(parent, sizeof(parent), "%.*s", (int)(strrchr(w->dir, '/') - w->dir), w->dir);
    if ((mkdir(parent, 0755) < 0 && errno != EEXIST) ||
        (mkdir(w->dir, 0755) < 0 && errno != EEXIST)) {
        log_error("cannot create %s: %s", w->dir, strerror(errno));
        return -errno;
    }
    for (int b = -1; b < GEN_BANKS; b++) {
        _cleanup_close_ int fd = -1;
        if (b >= 0 && (!o->per_bank || !bank_allocated(w, b))) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/binary_runtime_measurements%s%s", w->dir, b < 0 ? "" : "_",
                 b < 0 ? "" : bank_name[b]);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            log_error("cannot create %s: %s", path, strerror(errno));
            return -errno;
        }
    }
    snprintf(path, sizeof(path), "%s/runtime_measurements_count", w->dir);
    {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write_full(fd, "0\n", 2) < 0) {
            log_error("cannot write %s", path);
            return -EIO;
        }
    }
    return o->boot_aggregate ? boot_aggregate(w, o->template ? o->template : "ima-ng") : 0;
}

/* pod, host and violation. */
static int cmd_measure(struct writer *w, const char *cmd, int nargs, char **args,
                       const struct opts *o) {
    struct meas m = {.dep = o->dep};
    const char *uid = NULL;
    bool violation = strcmp(cmd, "violation") == 0;
    int want = strcmp(cmd, "pod") == 0 ? 3 : violation ? 1 : 2;
    int r;

    if (nargs != want) {
        log_error("%s takes %d arguments, not %d (see --help)", cmd, want, nargs);
        return -EINVAL;
    }
    if (strcmp(cmd, "pod") == 0) {
        uid = args[0];
        args++;
    } else if (violation) {
        uid = o->pod;
    }
    m.path = args[0];
    m.violation = violation;
    if (!violation && (r = parse_digest(w, args[1], &m)) < 0) {
        return r;
    }
    if (uid) {
        m.template = o->template ? o->template : "ima-cgpath";
        if (!m.dep) {
            m.dep = "/usr/bin/containerd-shim-runc-v2:/usr/lib/systemd/systemd:swapper/0";
        }
        r = pod_cgroup(uid, o->layout ? o->layout : "systemd", o->qos ? o->qos : "besteffort",
                       o->runtime ? o->runtime : "containerd",
                       o->container ? o->container : CONTAINER0, m.cgroup, sizeof(m.cgroup));
        if (r < 0) {
            return r;
        }
    } else {
        m.template = o->template ? o->template : "ima-ng";
        if (!m.dep) {
            m.dep = "/usr/lib/systemd/systemd:swapper/0";
        }
        snprintf(m.cgroup, sizeof(m.cgroup), "%s",
                 o->cgroup ? o->cgroup : "/system.slice/containerd.service");
    }
    if (strcmp(m.template, "ima-ng") != 0 && strcmp(m.template, "ima-cgpath") != 0) {
        log_error("--template must be ima-ng or ima-cgpath");
        return -EINVAL;
    }
    return write_entry(w, &m);
}

static int run(struct writer *w, int argc, char **argv, struct opts *o) {
    const char *cmd = argv[0];

    if (strcmp(cmd, "init") == 0 && argc == 1) {
        return cmd_init(w, o);
    }
    if (strcmp(cmd, "replay") == 0 && argc == 2) {
        return cmd_replay(w, argv[1]);
    }
    if (strcmp(cmd, "pod") == 0 || strcmp(cmd, "host") == 0 || strcmp(cmd, "violation") == 0) {
        return cmd_measure(w, cmd, argc - 1, argv + 1, o);
    }
    log_error("unknown command \"%s\" (see --help)", cmd);
    return -EINVAL;
}

/* Split a line on blanks (no quoting: paths with blanks are not supported
 * in batch mode). */
static int split(char *line, char **argv, int max) {
    char *save = NULL;
    int n = 1;

    for (char *tok = strtok_r(line, " \t\r\n", &save); tok;
         tok = strtok_r(NULL, " \t\r\n", &save)) {
        if (n == max) {
            return -1; /* more words than a command takes */
        }
        argv[n++] = tok;
    }
    return n;
}

static int batch(struct writer *w, const char *file, bool ack) {
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "re");
    char line[LINE_MAX_];
    unsigned long long n = 0;
    int r = 0;

    if (!f) {
        log_error("cannot open %s: %s", file, strerror(errno));
        return -errno;
    }
    while (fgets(line, sizeof(line), f)) {
        char *argv[ARGS_MAX] = {"batch"};
        struct global g = {0};
        struct opts o = {0};
        int argc, first;

        n++;
        if (line[0] == '#' || strspn(line, " \t\r\n") == strlen(line)) {
            continue;
        }
        if (!strchr(line, '\n') && !feof(f)) {
            log_error("line %llu: longer than %d bytes", n, LINE_MAX_ - 2);
            r = -E2BIG;
            break;
        }
        argc = split(line, argv, ARGS_MAX);
        first = argc < 0 ? -1 : parse(argc, argv, &g, &o);
        if (first < 0 || first >= argc || g.securityfs || g.tcti) {
            log_error("line %llu: bad command", n);
            r = -EINVAL;
            break;
        }
        r = run(w, argc - first, argv + first, &o);
        if (r < 0) {
            log_error("line %llu failed", n);
            break;
        }
        if (ack) {
            printf("ok %llu\n", n);
            fflush(stdout);
        }
    }
    if (f != stdin) {
        fclose(f);
    }
    return r;
}

int main(int argc, char **argv) {
    struct global g = {0};
    struct opts o = {0};
    struct writer w = {0};
    char dir[4096];
    uint16_t algs[TPM2_NUM_PCR_BANKS];
    int first, r, n;

    log_setup("info", "logfmt");
    first = parse(argc, argv, &g, &o);
    if (first < 0) {
        fputs(usage_text, stderr);
        return 64;
    }
    if (g.help) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (first >= argc) {
        fputs(usage_text, stderr);
        return 64;
    }
    snprintf(dir, sizeof(dir), "%s/ima",
             g.securityfs                ? g.securityfs
             : getenv("KIMA_SECURITYFS") ? getenv("KIMA_SECURITYFS")
                                         : ".");
    w.dir = dir;
    w.no_tpm = g.no_tpm;
    w.hash_algo = bank_by_name(g.hash_algo ? g.hash_algo : "sha256",
                               strlen(g.hash_algo ? g.hash_algo : "sha256"));
    if (w.hash_algo < 0) {
        log_error("--hash-algo must be sha1, sha256, sha384 or sha512");
        return 64;
    }
    if (!w.no_tpm) {
        const char *tcti = g.tcti ? g.tcti : getenv("KIMA_TCTI");
        setenv("TSS2_LOG", "all+none", 0);
        if (!tcti || tpm_open(tcti, &w.tpm) < 0) {
            log_error("no TPM: give --tcti (or $KIMA_TCTI), or --no-tpm");
            return 69;
        }
        n = tpm_pcr_banks(w.tpm, PCR_IMA, algs, TPM2_NUM_PCR_BANKS);
        for (int i = 0; i < n; i++) {
            for (int b = 0; b < GEN_BANKS; b++) {
                if (algs[i] == bank_alg[b]) {
                    w.banks[w.nbanks++] = b;
                }
            }
        }
        if (n <= 0 || w.nbanks != (size_t)n) {
            log_error("PCR 10 must be allocated in sha1/sha256/sha384/sha512 banks only");
            tpm_close(w.tpm);
            return 69;
        }
    }
    if (strcmp(argv[first], "batch") == 0 && argc - first <= 2) {
        r = batch(&w, argc - first == 2 ? argv[first + 1] : "-", g.ack);
    } else {
        r = run(&w, argc - first, argv + first, &o);
    }
    tpm_close(w.tpm);
    return r < 0 ? 1 : 0;
}
