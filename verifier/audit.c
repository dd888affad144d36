/* SPDX-License-Identifier: Apache-2.0 */
/* The audit log's writer: records, checkpoints, rotation. audit-verify.c
 * reads. */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "audit-internal.h"
#include "base64.h"
#include "fileio.h"
#include "hex.h"
#include "log.h"

struct audit_log {
    pthread_mutex_t lock;      /* appends, rotation */
    pthread_mutex_t sync_lock; /* one fsync at a time */
    char *path;
    int fd;
    EVP_PKEY *key;
    uint64_t max_bytes, size;
    unsigned checkpoint_every, since_checkpoint;
    uint64_t seq;    /* last record written */
    uint64_t synced; /* last record known on disk */
    char hash[65];   /* of the last record */
};

void audit_sha256_hex(const void *data, size_t len, char out[65]) {
    uint8_t md[32];
    unsigned int n;

    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    hex_encode(md, 32, out);
}

static void now_rfc3339(char *out, size_t outsz) {
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

int audit_split_line(const char *line, size_t len, char *body, size_t bodysz, char hash[65]) {
    static const char marker[] = ",\"hash\":\"";
    const char *m = NULL;

    for (const char *p = line; (p = memmem(p, len - (size_t)(p - line), marker, 9)); p++) {
        m = p;
    }
    if (!m || len < (size_t)(m - line) + 9 + 64 + 2 || m[9 + 64] != '"' || m[9 + 65] != '}' ||
        (size_t)(m - line) + 9 + 66 != len || (size_t)(m - line) + 2 > bodysz) {
        return -EBADMSG;
    }
    memcpy(body, line, (size_t)(m - line));
    body[m - line] = '}';
    body[m - line + 1] = 0;
    memcpy(hash, m + 9, 64);
    hash[64] = 0;
    return (int)(m - line) + 1;
}

static int write_record(struct audit_log *a, json_t *rec) {
    char *body = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
    char hash[65];
    size_t blen;
    int r;

    if (!body) {
        return -ENOMEM;
    }
    blen = strlen(body);
    audit_sha256_hex(body, blen, hash);
    /* body minus its closing brace, the hash, the brace, a newline */
    body[blen - 1] = 0;
    {
        size_t n = blen - 1 + 9 + 64 + 3;
        char *line = malloc(n + 1);
        if (!line) {
            free(body);
            return -ENOMEM;
        }
        snprintf(line, n + 1, "%s,\"hash\":\"%s\"}\n", body, hash);
        r = write_full(a->fd, line, n);
        free(line);
        if (r == 0) {
            a->size += n;
            memcpy(a->hash, hash, 65);
        }
    }
    free(body);
    return r;
}

static json_t *new_record(struct audit_log *a, const char *type, const char *node,
                          const struct audit_pod *pod, json_t *details) {
    char t[64];
    json_t *rec = json_object();

    now_rfc3339(t, sizeof(t));
    json_object_set_new(rec, "seq", json_integer((json_int_t)(a->seq + 1)));
    json_object_set_new(rec, "time", json_string(t));
    json_object_set_new(rec, "type", json_string(type));
    if (node) {
        json_object_set_new(rec, "node", json_string(node));
    }
    if (pod) {
        json_object_set_new(rec, "pod",
                            json_pack("{s:s?,s:s?,s:s?}", "namespace", pod->namespace_, "name",
                                      pod->name, "uid", pod->uid));
    }
    json_object_set(rec, "details", details ? details : json_object());
    if (!details) {
        json_decref(json_object_get(rec, "details"));
    }
    json_object_set_new(rec, "prev", json_string(a->hash));
    return rec;
}

static int append_locked(struct audit_log *a, const char *type, const char *node,
                         const struct audit_pod *pod, json_t *details) {
    json_t *rec = new_record(a, type, node, pod, details);
    int r;

    if (!rec) {
        return -ENOMEM;
    }
    r = write_record(a, rec);
    json_decref(rec);
    if (r == 0) {
        a->seq++;
        a->since_checkpoint++;
    }
    return r;
}

static int checkpoint_locked(struct audit_log *a) {
    char msg[200], sigb64[128];
    uint8_t sig[64];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *c;
    json_t *d;
    int r, ok;

    snprintf(msg, sizeof(msg), "%s\n%" PRIu64 "\n%s", AUDIT_CHECKPOINT_CONTEXT, a->seq + 1,
             a->hash);
    c = EVP_MD_CTX_new();
    ok = c && EVP_DigestSignInit(c, NULL, NULL, NULL, a->key) > 0 &&
         EVP_DigestSign(c, sig, &siglen, (const uint8_t *)msg, strlen(msg)) > 0;
    EVP_MD_CTX_free(c);
    if (!ok) {
        return -EIO;
    }
    base64_encode(sig, siglen, sigb64);
    d = json_pack("{s:s}", "signature", sigb64);
    r = append_locked(a, "checkpoint", NULL, NULL, d);
    json_decref(d);
    if (r == 0) {
        a->since_checkpoint = 0;
    }
    return r;
}

/* Recover seq and hash from an existing file; cut a torn last line. */
static int recover(struct audit_log *a) {
    _cleanup_free_ uint8_t *data = NULL;
    size_t len, end, start;
    char body[AUDIT_LINE_MAX], hash[65];
    json_auto_t *j = NULL;
    json_error_t jerr;

    if (read_file_capped(a->path, SIZE_MAX / 2, &data, &len) < 0) {
        return -EIO;
    }
    end = len;
    if (end > 0 && data[end - 1] != '\n') {
        /* Torn write: never fsynced for an answer. */
        while (end > 0 && data[end - 1] != '\n') {
            end--;
        }
        log_warn("audit log %s: cutting a torn last line (%zu bytes)", a->path, len - end);
        if (ftruncate(a->fd, (off_t)end) < 0) {
            return -errno;
        }
    }
    a->size = end;
    if (end == 0) {
        return 0;
    }
    start = end - 1;
    while (start > 0 && data[start - 1] != '\n') {
        start--;
    }
    if (audit_split_line((const char *)data + start, end - 1 - start, body, sizeof(body), hash) <
                0 ||
        !(j = json_loads(body, 0, &jerr)) || !json_is_integer(json_object_get(j, "seq"))) {
        log_error("audit log %s: the last record is not a kima audit record", a->path);
        return -EBADMSG;
    }
    a->seq = (uint64_t)json_integer_value(json_object_get(j, "seq"));
    memcpy(a->hash, hash, 65);
    a->synced = a->seq;
    return 0;
}

int audit_open(const char *path, EVP_PKEY *key, uint64_t max_bytes, unsigned checkpoint_every,
               struct audit_log **ret) {
    struct audit_log *a = calloc(1, sizeof(*a));
    int r;

    if (!a) {
        return -ENOMEM;
    }
    pthread_mutex_init(&a->lock, NULL);
    pthread_mutex_init(&a->sync_lock, NULL);
    a->path = strdup(path);
    a->key = key;
    a->max_bytes = max_bytes;
    a->checkpoint_every = checkpoint_every ? checkpoint_every : 1000;
    memset(a->hash, '0', 64);
    a->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (a->fd < 0) {
        r = -errno;
        free(a->path);
        free(a);
        return r;
    }
    r = recover(a);
    if (r < 0) {
        close(a->fd);
        free(a->path);
        free(a);
        return r;
    }
    *ret = a;
    return 0;
}

static int rotate_locked(struct audit_log *a) {
    char rotated[4096];
    int r, fd;

    r = checkpoint_locked(a);
    if (r < 0 || fsync(a->fd) < 0) {
        return r < 0 ? r : -errno;
    }
    snprintf(rotated, sizeof(rotated), "%s.%020" PRIu64, a->path, a->seq);
    if (rename(a->path, rotated) < 0) {
        return -errno;
    }
    fd = open(a->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -errno;
    }
    close(a->fd);
    a->fd = fd;
    a->size = 0;
    a->synced = a->seq;
    return 0;
}

int audit_append(struct audit_log *a, const char *type, const char *node,
                 const struct audit_pod *pod, json_t *details, uint64_t *ret_seq) {
    int r;

    pthread_mutex_lock(&a->lock);
    r = append_locked(a, type, node, pod, details);
    if (r == 0 && ret_seq) {
        *ret_seq = a->seq;
    }
    if (r == 0 && a->since_checkpoint >= a->checkpoint_every) {
        r = checkpoint_locked(a);
    }
    if (r == 0 && a->max_bytes && a->size > a->max_bytes) {
        r = rotate_locked(a);
    }
    pthread_mutex_unlock(&a->lock);
    if (r < 0) {
        log_error("audit log %s: write failed: %s", a->path, strerror(-r));
    }
    return r;
}

int audit_sync(struct audit_log *a, uint64_t seq) {
    uint64_t upto;
    int fd, r = 0;

    pthread_mutex_lock(&a->sync_lock);
    pthread_mutex_lock(&a->lock);
    upto = a->seq;
    fd = a->fd;
    pthread_mutex_unlock(&a->lock);
    /* A caller that waited here may find its record synced by another. */
    if (a->synced < seq) {
        if (fdatasync(fd) < 0) {
            r = -errno;
        } else {
            a->synced = upto;
        }
    }
    pthread_mutex_unlock(&a->sync_lock);
    return r;
}

int audit_checkpoint(struct audit_log *a) {
    int r;

    pthread_mutex_lock(&a->lock);
    r = checkpoint_locked(a);
    pthread_mutex_unlock(&a->lock);
    return r == 0 ? audit_sync(a, a->seq) : r;
}

void audit_close(struct audit_log *a) {
    if (!a) {
        return;
    }
    if (a->since_checkpoint > 0) {
        audit_checkpoint(a);
    }
    fsync(a->fd);
    close(a->fd);
    pthread_mutex_destroy(&a->lock);
    pthread_mutex_destroy(&a->sync_lock);
    free(a->path);
    free(a);
}

int audit_key_load_or_create(const char *path, EVP_PKEY **ret) {
    FILE *f = fopen(path, "r");
    EVP_PKEY *k;
    char pub[4096];
    int fd;

    if (f) {
        k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
        if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_ED25519) {
            EVP_PKEY_free(k);
            log_error("audit key %s is not an Ed25519 private key (PEM)", path);
            return -EBADMSG;
        }
        *ret = k;
        return 0;
    }
    if (errno != ENOENT) {
        return -errno;
    }
    k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!k || !f || !PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL)) {
        if (f) {
            fclose(f);
        } else if (fd >= 0) {
            close(fd);
        }
        EVP_PKEY_free(k);
        return -EIO;
    }
    fclose(f);
    snprintf(pub, sizeof(pub), "%s.pub", path);
    f = fopen(pub, "w");
    if (f) {
        PEM_write_PUBKEY(f, k);
        fclose(f);
    }
    log_info("generated the audit key %s (public key %s)", path, pub);
    *ret = k;
    return 0;
}
