/* SPDX-License-Identifier: Apache-2.0 */
/* kima-agent: registers the node's TPM with the verifier, then sends a fresh
 * quote and the new IMA measurements every interval and as soon as the
 * measurement count grows. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <tss2/tss2_mu.h>

#include "base64.h"
#include "client.h"
#include "fileio.h"
#include "hex.h"
#include "json-util.h"
#include "keys.h"
#include "kima-config.h"
#include "list.h"
#include "log.h"
#include "parse.h"
#include "quote.h"

#define IMA_SEND_MAX   (64u << 20)
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define POLL_MS        50

struct agent {
    const char *verifier, *node, *tcti, *securityfs, *cert, *key, *cacert, *state_dir;
    const char *boot_id_file;
    uint64_t interval_ms, min_interval_ms;
    enum tpm_key_type ak_alg;
    bool once;
    struct tpm *tpm;
    struct tpm_key ek, ak;
    struct client *client;
    char list_path[4200], count_path[4200];
    uint32_t digest_len;
    /* Where the verifier's next index starts in the list. */
    uint64_t known_index, known_offset;
    /* Entry offsets of the last batch sent: [from, from + n]. */
    uint64_t batch_from, *batch_offsets;
    size_t batch_n;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(uint64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    while (!stop && nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* state-dir/heartbeat: touched while the loop runs (--healthcheck live). */
static void heartbeat(const struct agent *a) {
    char path[4200];
    int fd;

    snprintf(path, sizeof(path), "%s/heartbeat", a->state_dir);
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
        futimens(fd, NULL);
        close(fd);
    }
}

static void usage(FILE *f) {
    fprintf(f,
            "Usage: kima-agent [OPTIONS]\n"
            "\n"
            "The kima node agent: registers the node's TPM with the verifier, then attests\n"
            "the node continuously (a fresh quote and the new IMA measurements).\n"
            "Every option can also be set by the environment variable in brackets.\n"
            "\n"
            "  --verifier URL       https://verifier:8443                   [KIMA_VERIFIER_URL]\n"
            "  --node NAME          node name (default: $NODE_NAME, then the host name)\n"
            "                                                             [KIMA_NODE]\n"
            "  --tcti STRING        TPM (device:/dev/tpmrm0)                 [KIMA_TCTI]\n"
            "  --securityfs DIR     where ima/ is (/sys/kernel/security)    [KIMA_SECURITYFS]\n"
            "  --cert PEM --key PEM the node's client certificate (OU kima-agent, CN the node)\n"
            "                                                    [KIMA_CERT, KIMA_KEY]\n"
            "  --cacert PEM         CA of the verifier's certificate        [KIMA_CACERT]\n"
            "  --state-dir DIR      AK and list position (/var/lib/kima-agent) "
            "[KIMA_STATE_DIR]\n"
            "  --interval-ms N      attest at least this often (2000)       [KIMA_INTERVAL_MS]\n"
            "  --min-interval-ms N  and at most this often (200)           "
            "[KIMA_MIN_INTERVAL_MS]\n"
            "  --ak-alg rsa|ecc     AK type when one is created (rsa)       [KIMA_AK_ALG]\n"
            "  --boot-id-file F     (/proc/sys/kernel/random/boot_id)       [KIMA_BOOT_ID_FILE]\n"
            "  --once               one round: exit 0 trusted, 1 not trusted, 2 error\n"
            "  --healthcheck live|ready  probe: exit 0 when the loop ran within 60 s (live)\n"
            "                       or evidence was accepted within 3 intervals + 10 s (ready)\n"
            "  --log-level L, --log-format F, -h/--help, --version\n"
            "\n"
            "The agent never exits on a transient error: it retries with exponential\n"
            "backoff (0.5 s to 30 s, with jitter). SIGTERM exits 0.\n");
}

static const char *env_or(const char *n, const char *d) {
    const char *v = getenv(n);
    return v && *v ? v : d;
}

/* state-dir/position: "<index> <offset> <boot id>" of the verifier's next entry. */
static void save_position(struct agent *a, const char *boot_id) {
    char path[4200], tmp[4300];
    FILE *f;

    snprintf(path, sizeof(path), "%s/position", a->state_dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    if (f &&
        fprintf(f, "%llu %llu %s\n", (unsigned long long)a->known_index,
                (unsigned long long)a->known_offset, boot_id) > 0 &&
        fclose(f) == 0) {
        rename(tmp, path);
    }
}

static void load_position(struct agent *a, const char *boot_id) {
    char path[4200], b[128] = "";
    unsigned long long idx, off;
    FILE *f;

    snprintf(path, sizeof(path), "%s/position", a->state_dir);
    f = fopen(path, "r");
    if (f && fscanf(f, "%llu %llu %127s", &idx, &off, b) == 3 && strcmp(b, boot_id) == 0) {
        a->known_index = idx;
        a->known_offset = off;
    }
    if (f) {
        fclose(f);
    }
}

static int read_boot_id(struct agent *a, char *out, size_t outsz) {
    _cleanup_free_ uint8_t *d = NULL;
    size_t len;

    if (read_file_capped(a->boot_id_file, 256, &d, &len) < 0) {
        snprintf(out, outsz, "unknown");
        return 0;
    }
    while (len && (d[len - 1] == '\n' || d[len - 1] == ' ')) {
        len--;
    }
    snprintf(out, outsz, "%.*s", (int)(len < 64 ? len : 64), (char *)d);
    return 0;
}

static uint64_t read_count(struct agent *a) {
    _cleanup_free_ uint8_t *d = NULL;
    size_t len;
    uint64_t v = 0;

    if (read_file_capped(a->count_path, 64, &d, &len) == 0) {
        while (len && (d[len - 1] == '\n')) {
            len--;
        }
        parse_u64_n((const char *)d, len, &v);
    }
    return v;
}

/* The byte offset of entry `index`: from what was sent, or by parsing the
 * list from the start (after a restart without a saved position). */
static int offset_of(struct agent *a, uint64_t index, uint64_t *ret) {
    struct ima_parser p;
    _cleanup_free_ uint8_t *data = NULL;
    size_t len;
    long n;
    int r;

    struct stat st;

    /* A remembered offset holds only while the list is at least that long
     * (after a reboot a new list starts). securityfs files report size 0:
     * there the agent restarts with the node anyway. */
    if (stat(a->list_path, &st) < 0) {
        return -errno;
    }
    if (st.st_size == 0) {
        st.st_size = INT64_MAX;
    }
    if (index == a->known_index && a->known_offset <= (uint64_t)st.st_size) {
        *ret = a->known_offset;
        return 0;
    }
    if (a->batch_offsets && index >= a->batch_from && index - a->batch_from <= a->batch_n &&
        a->batch_offsets[index - a->batch_from] <= (uint64_t)st.st_size) {
        *ret = a->batch_offsets[index - a->batch_from];
        return 0;
    }
    if (index == 0) {
        *ret = 0;
        return 0;
    }
    r = read_file_capped(a->list_path, SIZE_MAX / 2, &data, &len);
    if (r < 0) {
        return r;
    }
    ima_parser_init(&p, a->digest_len);
    n = ima_parser_skip_to(&p, data, len, index);
    if (n < 0) {
        log_warn("the verifier expects entry %llu, the list has fewer", (unsigned long long)index);
        return -ERANGE;
    }
    *ret = (uint64_t)n;
    return 0;
}

/* Read the list from `offset` to its end (at most IMA_SEND_MAX). */
static int read_list_from(struct agent *a, uint64_t offset, uint8_t **ret, size_t *ret_len) {
    int fd = open(a->list_path, O_RDONLY | O_CLOEXEC), r;

    if (fd < 0) {
        r = -errno;
        log_error("cannot open %s: %s", a->list_path, strerror(-r));
        return r;
    }
    if (lseek(fd, (off_t)offset, SEEK_SET) != (off_t)offset) {
        /* securityfs seq files can seek; if one cannot, read and skip. */
        uint8_t skip[65536];
        for (uint64_t left = offset; left > 0;) {
            long n = read_full(fd, skip, left < sizeof(skip) ? left : sizeof(skip));
            if (n <= 0) {
                close(fd);
                return -EIO;
            }
            left -= (uint64_t)n;
        }
    }
    r = read_fd_capped(fd, IMA_SEND_MAX, ret, ret_len);
    if (r == -EFBIG) {
        log_error("more than %u bytes of new measurements: the verifier would not get them in "
                  "one round",
                  IMA_SEND_MAX);
    }
    close(fd);
    return r;
}

/* Remember every entry offset of the batch, to answer the next index. */
static void index_batch(struct agent *a, uint64_t from, uint64_t offset, const uint8_t *d,
                        size_t len) {
    struct ima_parser p;
    struct ima_entry e;
    size_t off = 0, n = 0, alloc = 64;
    uint64_t *offs = malloc(alloc * sizeof(*offs));

    if (!offs) {
        return;
    }
    ima_parser_init(&p, a->digest_len);
    offs[n++] = offset;
    while (off < len) {
        int k = ima_parser_next(&p, d + off, len - off, &e);
        if (k <= 0) {
            break;
        }
        off += (size_t)k;
        if (n == alloc) {
            uint64_t *no = realloc(offs, 2 * alloc * sizeof(*offs));
            if (!no) {
                break;
            }
            offs = no;
            alloc *= 2;
        }
        offs[n++] = offset + off;
    }
    free(a->batch_offsets);
    a->batch_offsets = offs;
    a->batch_from = from;
    a->batch_n = n - 1;
}

static int registration(struct agent *a) {
    uint8_t ekbuf[sizeof(TPM2B_PUBLIC)], akbuf[sizeof(TPM2B_PUBLIC)], cred[64], msg[512], proof[32];
    size_t eklen = 0, aklen = 0, clen, ml = strlen(a->node), bl, sl, off = 0;
    _cleanup_free_ uint8_t *cert = NULL, *blob = NULL, *secret = NULL;
    size_t certlen = 0;
    json_t *req, *resp = NULL;
    TPM2B_ID_OBJECT id = {0};
    TPM2B_ENCRYPTED_SECRET es = {0};
    unsigned int plen;
    char path[512], err[256];
    int status;

    Tss2_MU_TPM2B_PUBLIC_Marshal(&a->ek.public, ekbuf, sizeof(ekbuf), &eklen);
    Tss2_MU_TPM2B_PUBLIC_Marshal(&a->ak.public, akbuf, sizeof(akbuf), &aklen);
    tpm_ek_read_cert(a->tpm, TPM_KEY_RSA, &cert, &certlen);
    req = json_pack("{s:o,s:o}", "ek_pub", json_base64(ekbuf, eklen), "ak_pub",
                    json_base64(akbuf, aklen));
    if (cert) {
        json_object_set_new(req, "ek_cert", json_base64(cert, certlen));
    }
    snprintf(path, sizeof(path), "/v1/nodes/%s/registration", a->node);
    status = client_post(a->client, path, req, &resp);
    json_decref(req);
    if (status != 201) {
        log_error("registration refused: %d %s", status,
                  resp ? json_string_value(json_object_get(resp, "detail")) : "no answer");
        json_decref(resp);
        return status < 0 ? status : -EACCES;
    }
    if (json_get_base64(resp, "credential_blob", sizeof(TPM2B_ID_OBJECT), &blob, &bl, err,
                        sizeof(err)) < 0 ||
        json_get_base64(resp, "secret", sizeof(TPM2B_ENCRYPTED_SECRET), &secret, &sl, err,
                        sizeof(err)) < 0 ||
        Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(blob, bl, &off, &id) != TSS2_RC_SUCCESS ||
        (off = 0, Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(secret, sl, &off, &es)) !=
                TSS2_RC_SUCCESS) {
        log_error("the verifier's registration answer is malformed");
        json_decref(resp);
        return -EBADMSG;
    }
    json_decref(resp);
    if (tpm_activate_credential(a->tpm, &a->ak, &a->ek, &id, &es, cred, &clen) < 0) {
        return -EIO;
    }
    memcpy(msg, a->node, ml);
    memcpy(msg + ml, a->ak.name.name, a->ak.name.size);
    HMAC(EVP_sha256(), cred, (int)clen, msg, ml + a->ak.name.size, proof, &plen);
    OPENSSL_cleanse(cred, sizeof(cred));
    req = json_pack("{s:o}", "proof", json_base64(proof, plen));
    snprintf(path, sizeof(path), "/v1/nodes/%s/activation", a->node);
    status = client_post(a->client, path, req, &resp);
    json_decref(req);
    json_decref(resp);
    if (status != 200) {
        log_error("activation refused: %d", status);
        return status < 0 ? status : -EACCES;
    }
    log_info("node %s registered and activated", a->node);
    return 0;
}

/* One attestation round. Returns 1 trusted, 0 not trusted, negative on error
 * (-ENOENT: the verifier does not know the node: register again). */
static int round_once(struct agent *a) {
    json_t *resp = NULL, *req;
    const char *nb, *sel_s, *verdict;
    uint8_t nonce[64];
    _cleanup_free_ uint8_t *list = NULL;
    size_t len = 0;
    uint64_t next, offset, newnext;
    TPML_PCR_SELECTION sel;
    struct tpm_quote q;
    char path[512], boot_id[80];
    int n, status, r;

    snprintf(path, sizeof(path), "/v1/nodes/%s/challenges", a->node);
    status = client_post(a->client, path, NULL, &resp);
    if (status == 404 || status == 403) {
        json_decref(resp);
        return -ENOENT;
    }
    if (status != 200) {
        json_decref(resp);
        return status < 0 ? status : -EAGAIN;
    }
    nb = json_string_value(json_object_get(resp, "nonce"));
    sel_s = json_string_value(json_object_get(resp, "pcr_selection"));
    next = (uint64_t)json_integer_value(json_object_get(resp, "ima_next_index"));
    n = nb ? base64_decode(nb, strlen(nb), nonce, sizeof(nonce)) : -1;
    if (n <= 0 || !sel_s || tpm_pcr_selection_parse(sel_s, &sel) < 0) {
        json_decref(resp);
        return -EBADMSG;
    }
    /* Quote first, then read the list: the list then holds at least what
     * the quote covers, and the verifier finds the matching prefix. */
    r = tpm_quote(a->tpm, &a->ak, nonce, (size_t)n, &sel, &q);
    if (r == 0) {
        r = offset_of(a, next, &offset);
        if (r == -ERANGE) {
            /* The list is shorter than the verifier's position: the node
             * rebooted and the kernel started a new list. Send it from
             * entry 0; the verifier accepts that only when the quote or the
             * boot id shows the reboot. */
            log_info("the list restarted (reboot?): sending it from entry 0");
            next = offset = 0;
            a->known_index = a->known_offset = 0;
            free(a->batch_offsets);
            a->batch_offsets = NULL;
            r = 0;
        }
    }
    if (r == 0) {
        r = read_list_from(a, offset, &list, &len);
    }
    if (r < 0) {
        json_decref(resp);
        return r;
    }
    read_boot_id(a, boot_id, sizeof(boot_id));
    req = json_pack("{s:s,s:{s:o,s:o},s:{},s:{s:I,s:o,s:I},s:s}", "nonce", nb, "quote", "attest",
                    json_base64(q.attest, q.attest_len), "signature", json_base64(q.sig, q.sig_len),
                    "pcrs", "ima", "from", (json_int_t)next, "entries", json_base64(list, len),
                    "digest_size", (json_int_t)a->digest_len, "boot_id", boot_id);
    json_decref(resp);
    for (size_t i = 0; i < q.pcrs.n; i++) {
        enum ima_hash_alg alg;
        char idx[8], hex[129];
        json_t *bank;
        if (ima_hash_from_tpm_alg(q.pcrs.v[i].alg, &alg) < 0) {
            continue;
        }
        bank = json_object_get(json_object_get(req, "pcrs"), ima_hash_name(alg));
        if (!bank) {
            bank = json_object();
            json_object_set_new(json_object_get(req, "pcrs"), ima_hash_name(alg), bank);
        }
        snprintf(idx, sizeof(idx), "%u", q.pcrs.v[i].pcr);
        json_object_set_new(bank, idx,
                            json_string(hex_encode(q.pcrs.v[i].digest, q.pcrs.v[i].size, hex)));
    }
    index_batch(a, next, offset, list, len);
    snprintf(path, sizeof(path), "/v1/nodes/%s/evidence", a->node);
    status = client_post(a->client, path, req, &resp);
    json_decref(req);
    if (status != 200) {
        log_warn("evidence refused: %d %s", status,
                 resp ? json_string_value(json_object_get(resp, "detail")) : "no answer");
        json_decref(resp);
        return status == 404 ? -ENOENT : status < 0 ? status : -EAGAIN;
    }
    verdict = json_string_value(json_object_get(resp, "verdict"));
    newnext = (uint64_t)json_integer_value(json_object_get(resp, "ima_next_index"));
    if (offset_of(a, newnext, &offset) == 0) {
        a->known_index = newnext;
        a->known_offset = offset;
        save_position(a, boot_id);
    }
    r = verdict && strcmp(verdict, "trusted") == 0;
    log_debug("round: %s, next index %llu", verdict ? verdict : "?", (unsigned long long)newnext);
    if (!r) {
        log_warn("the verifier says untrusted: %s",
                 json_string_value(json_object_get(resp, "reason")));
    }
    json_decref(resp);
    return r;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
            {"verifier", required_argument, NULL, 'v'},
            {"node", required_argument, NULL, 'n'},
            {"tcti", required_argument, NULL, 't'},
            {"securityfs", required_argument, NULL, 's'},
            {"cert", required_argument, NULL, 'c'},
            {"key", required_argument, NULL, 'k'},
            {"cacert", required_argument, NULL, 'a'},
            {"state-dir", required_argument, NULL, 'd'},
            {"interval-ms", required_argument, NULL, 'i'},
            {"min-interval-ms", required_argument, NULL, 'm'},
            {"ak-alg", required_argument, NULL, 'g'},
            {"boot-id-file", required_argument, NULL, 'b'},
            {"once", no_argument, NULL, 'o'},
            {"healthcheck", required_argument, NULL, 'H'},
            {"log-level", required_argument, NULL, 'L'},
            {"log-format", required_argument, NULL, 'F'},
            {"help", no_argument, NULL, 'h'},
            {"version", no_argument, NULL, 'V'},
            {0},
    };
    struct agent a = {0};
    const char *s_interval = env_or("KIMA_INTERVAL_MS", NULL);
    const char *s_min = env_or("KIMA_MIN_INTERVAL_MS", NULL), *alg = env_or("KIMA_AK_ALG", "rsa");
    const char *level = env_or("KIMA_LOG_LEVEL", NULL), *format = env_or("KIMA_LOG_FORMAT", NULL);
    char host[256], blob[4400], per_bank[4200];
    uint64_t backoff = BACKOFF_MIN_MS, last_count = 0;
    int64_t last_round = 0, last_heartbeat = INT64_MIN / 2;
    const char *health = NULL;
    bool registered = false;
    struct stat st;
    int o, r;

    a.verifier = env_or("KIMA_VERIFIER_URL", NULL);
    a.node = env_or("KIMA_NODE", env_or("NODE_NAME", NULL));
    a.tcti = env_or("KIMA_TCTI", "device:/dev/tpmrm0");
    a.securityfs = env_or("KIMA_SECURITYFS", "/sys/kernel/security");
    a.cert = env_or("KIMA_CERT", NULL);
    a.key = env_or("KIMA_KEY", NULL);
    a.cacert = env_or("KIMA_CACERT", NULL);
    a.state_dir = env_or("KIMA_STATE_DIR", "/var/lib/kima-agent");
    a.boot_id_file = env_or("KIMA_BOOT_ID_FILE", "/proc/sys/kernel/random/boot_id");
    a.interval_ms = 2000;
    a.min_interval_ms = 200;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'v':
            a.verifier = optarg;
            break;
        case 'n':
            a.node = optarg;
            break;
        case 't':
            a.tcti = optarg;
            break;
        case 's':
            a.securityfs = optarg;
            break;
        case 'c':
            a.cert = optarg;
            break;
        case 'k':
            a.key = optarg;
            break;
        case 'a':
            a.cacert = optarg;
            break;
        case 'd':
            a.state_dir = optarg;
            break;
        case 'i':
            s_interval = optarg;
            break;
        case 'm':
            s_min = optarg;
            break;
        case 'g':
            alg = optarg;
            break;
        case 'b':
            a.boot_id_file = optarg;
            break;
        case 'H':
            health = optarg;
            break;
        case 'o':
            a.once = true;
            break;
        case 'L':
            level = optarg;
            break;
        case 'F':
            format = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("kima-agent %s\n", KIMA_VERSION);
            return 0;
        default:
            usage(stderr);
            return 64;
        }
    }
    if (log_setup(level, format) < 0) {
        fprintf(stderr,
                "kima-agent: --log-level takes error, warn, info or debug; --log-format logfmt "
                "or json\n");
        return 64;
    }
    if (health) {
        /* For Kubernetes probes: live = the loop turned within 60 s; ready =
         * the verifier accepted evidence within 3 intervals and 10 s. */
        char path[4200];
        bool live = strcmp(health, "live") == 0;
        int64_t max_ms;
        if (!live && strcmp(health, "ready") != 0) {
            fprintf(stderr, "kima-agent: --healthcheck live|ready\n");
            return 64;
        }
        if (s_interval && parse_u64_range(s_interval, 100, 3600000, &a.interval_ms) < 0) {
            return 64;
        }
        max_ms = live ? 60000 : 3 * (int64_t)a.interval_ms + 10000;
        snprintf(path, sizeof(path), "%s/%s", a.state_dir, live ? "heartbeat" : "position");
        if (stat(path, &st) < 0 ||
            (int64_t)time(NULL) * 1000 - (int64_t)st.st_mtime * 1000 > max_ms) {
            fprintf(stderr, "kima-agent: not %s (%s)\n", health, path);
            return 1;
        }
        return 0;
    }
    if ((s_interval && parse_u64_range(s_interval, 100, 3600000, &a.interval_ms) < 0) ||
        (s_min && parse_u64_range(s_min, 10, 3600000, &a.min_interval_ms) < 0) ||
        (strcmp(alg, "rsa") != 0 && strcmp(alg, "ecc") != 0) || optind != argc || !a.verifier) {
        fprintf(stderr, "kima-agent: --verifier is required; intervals in ms; --ak-alg rsa|ecc "
                        "(see --help)\n");
        return 64;
    }
    a.ak_alg = strcmp(alg, "ecc") == 0 ? TPM_KEY_ECC : TPM_KEY_RSA;
    if (!a.node) {
        if (gethostname(host, sizeof(host)) < 0) {
            return 64;
        }
        host[sizeof(host) - 1] = 0;
        a.node = host;
    }
    /* The per-bank SHA-256 list when the kernel has one (>= 6.10). */
    snprintf(per_bank, sizeof(per_bank), "%s/ima/binary_runtime_measurements_sha256", a.securityfs);
    if (stat(per_bank, &st) == 0) {
        snprintf(a.list_path, sizeof(a.list_path), "%s", per_bank);
        a.digest_len = 32;
    } else {
        snprintf(a.list_path, sizeof(a.list_path), "%s/ima/binary_runtime_measurements",
                 a.securityfs);
        a.digest_len = 20;
    }
    snprintf(a.count_path, sizeof(a.count_path), "%s/ima/runtime_measurements_count", a.securityfs);
    setenv("TSS2_LOG", "all+none", 0);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    mkdir(a.state_dir, 0700);
    snprintf(blob, sizeof(blob), "%s/ak.blob", a.state_dir);

    a.ek = (struct tpm_key)TPM_KEY_INIT;
    a.ak = (struct tpm_key)TPM_KEY_INIT;
    if (tpm_open(a.tcti, &a.tpm) < 0 || tpm_ek_load(a.tpm, TPM_KEY_RSA, &a.ek) < 0) {
        log_error("no usable TPM at %s", a.tcti);
        return a.once ? 2 : 1;
    }
    r = tpm_ak_load(a.tpm, &a.ek, blob, &a.ak);
    if (r == -ENOENT) {
        r = tpm_ak_create(a.tpm, &a.ek, a.ak_alg, blob, &a.ak);
    } else if (r == 0) {
        registered = true; /* a known AK: the verifier has the node already */
    }
    if (r < 0 || client_new(a.verifier, a.cert, a.key, a.cacert, &a.client) < 0) {
        log_error("cannot set up the AK (%s) or the HTTPS client", blob);
        return a.once ? 2 : 1;
    }
    {
        char boot_id[80];
        read_boot_id(&a, boot_id, sizeof(boot_id));
        load_position(&a, boot_id);
    }
    log_info("kima-agent %s for node %s, verifier %s, list %s", KIMA_VERSION, a.node, a.verifier,
             a.list_path);

    while (!stop) {
        int64_t t = now_ms();
        uint64_t count = read_count(&a);

        if (t - last_heartbeat >= 5000) {
            heartbeat(&a);
            last_heartbeat = t;
        }
        bool due = t - last_round >= (int64_t)a.interval_ms ||
                   (count != last_count && t - last_round >= (int64_t)a.min_interval_ms);

        if (!due) {
            sleep_ms(POLL_MS);
            continue;
        }
        if (!registered) {
            r = registration(&a);
            registered = r == 0;
        } else {
            last_count = count;
            last_round = t;
            r = round_once(&a);
            if (r == -ENOENT) {
                log_warn("the verifier does not know node %s: registering again", a.node);
                registered = false;
                a.known_index = a.known_offset = 0;
                continue;
            }
            if (a.once && r >= 0) {
                break;
            }
        }
        if (r < 0) {
            /* Exponential backoff with jitter, capped; never exit on it. */
            uint32_t jitter = 0;
            RAND_bytes((uint8_t *)&jitter, sizeof(jitter));
            if (a.once) {
                break;
            }
            sleep_ms(backoff / 2 + jitter % (backoff / 2 + 1));
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
        } else {
            backoff = BACKOFF_MIN_MS;
        }
    }
    tpm_key_release(a.tpm, &a.ak);
    tpm_key_release(a.tpm, &a.ek);
    tpm_close(a.tpm);
    client_free(a.client);
    free(a.batch_offsets);
    if (a.once) {
        return r < 0 ? 2 : r == 1 ? 0 : 1;
    }
    log_info("stopped");
    return 0;
}
