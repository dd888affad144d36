/* SPDX-License-Identifier: Apache-2.0 */
/* The audit log's writer: records, caps, checkpoints (by count, by timer, at
 * rotation and close), rotation, the signed head. audit-verify.c reads. */
#include "audit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
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
#include "json-util.h"
#include "log.h"
#include "time-util.h"

struct audit_log {
    pthread_mutex_t lock;      /* appends, rotation, checkpoints, the head */
    pthread_mutex_t sync_lock; /* one fsync at a time */
    char *path;
    int fd;
    EVP_PKEY *key;
    uint64_t max_bytes, size;
    unsigned checkpoint_every, since_checkpoint;
    int64_t checkpoint_ms;     /* the timer's interval */
    int64_t unsigned_since_ms; /* stamp of the oldest unsigned record */
    int64_t (*clock)(void *ud);
    void *clock_ud;
    uint64_t seq;    /* last record written */
    uint64_t synced; /* last record known on disk */
    char hash[65];   /* of the last record */
    bool broken;     /* a partial record could not be cut back */
    /* The chain's replica ("" until audit_set_replica) and its key's
     * fingerprint; the replica the log's last checkpoint named when it was
     * opened ("" when none did). */
    char replica[AUDIT_REPLICA_MAX + 1];
    char key_fp[AUDIT_KEY_FP_LEN + 1];
    char last_replica[AUDIT_REPLICA_MAX + 1];
};

void audit_sha256_hex(const void *data, size_t len, char out[65]) {
    uint8_t md[32];
    unsigned int n;

    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    hex_encode(md, 32, out);
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

size_t audit_checkpoint_message(uint64_t seq, const char *prev, char out[AUDIT_MSG_MAX]) {
    int n = snprintf(out, AUDIT_MSG_MAX, "%s\n%" PRIu64 "\n%.64s", AUDIT_CHECKPOINT_CONTEXT, seq,
                     prev);
    return n < 0 ? 0 : (size_t)n;
}

size_t audit_checkpoint_message_v2(uint64_t seq, const char *prev, const char *replica,
                                   const char *key_fp, char out[AUDIT_MSG_MAX]) {
    int n = snprintf(out, AUDIT_MSG_MAX, "%s\n%" PRIu64 "\n%.64s\n%.63s\n%.71s",
                     AUDIT_CHECKPOINT_CONTEXT_V2, seq, prev, replica, key_fp);
    return n < 0 ? 0 : (size_t)n;
}

int audit_replica_check(const char *name, char *err, size_t errsz) {
    size_t n = name ? strnlen(name, AUDIT_REPLICA_MAX + 1) : 0;

    if (n == 0) {
        snprintf(err, errsz, "the replica name is empty");
        return -EINVAL;
    }
    if (n > AUDIT_REPLICA_MAX) {
        snprintf(err, errsz, "the replica name is longer than %d characters", AUDIT_REPLICA_MAX);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
            snprintf(err, errsz,
                     "the replica name holds %s at %zu: only lowercase letters, digits and '-' "
                     "(a DNS-1123 label)",
                     c >= 'A' && c <= 'Z' ? "an uppercase letter" : "a character not allowed",
                     i + 1);
            return -EINVAL;
        }
    }
    if (name[0] == '-' || name[n - 1] == '-') {
        snprintf(err, errsz, "the replica name must start and end with a letter or digit");
        return -EINVAL;
    }
    return 0;
}

int audit_key_fingerprint(EVP_PKEY *key, char out[AUDIT_KEY_FP_LEN + 1]) {
    uint8_t raw[32];
    size_t len = sizeof(raw);
    char hex[65];

    if (!key || EVP_PKEY_get_base_id(key) != EVP_PKEY_ED25519 ||
        EVP_PKEY_get_raw_public_key(key, raw, &len) != 1 || len != sizeof(raw)) {
        return -EINVAL;
    }
    audit_sha256_hex(raw, len, hex);
    snprintf(out, AUDIT_KEY_FP_LEN + 1, "sha256:%s", hex);
    return 0;
}

size_t audit_head_message(uint64_t seq, const char *hash, const char *time,
                          char out[AUDIT_MSG_MAX]) {
    int n = snprintf(out, AUDIT_MSG_MAX, "%s\n%" PRIu64 "\n%.64s\n%.39s", AUDIT_HEAD_CONTEXT, seq,
                     hash, time);
    return n < 0 ? 0 : (size_t)n;
}

static int64_t realtime_ms(void *ud) {
    (void)ud;
    return time_wall_ms();
}

static int64_t now_ms(const struct audit_log *a) {
    return a->clock(a->clock_ud);
}

/* RFC 3339 UTC with milliseconds. */
static void format_time(int64_t ms, char out[40]) {
    int64_t sec = ms / 1000, rem = ms % 1000;
    time_t t;
    struct tm tm;
    char buf[96];
    size_t n;

    if (rem < 0) {
        rem += 1000;
        sec--;
    }
    t = (time_t)sec;
    gmtime_r(&t, &tm);
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)rem);
    n = strnlen(buf, 39);
    memcpy(out, buf, n);
    out[n] = 0;
}

/* Base64 Ed25519 signature of msg into out (89 bytes). */
static int sign_b64(EVP_PKEY *key, const char *msg, size_t len, char out[89]) {
    uint8_t sig[64];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_DigestSignInit(c, NULL, NULL, NULL, key) > 0 &&
             EVP_DigestSign(c, sig, &siglen, (const uint8_t *)msg, len) > 0 && siglen == 64;

    EVP_MD_CTX_free(c);
    if (!ok) {
        return -EIO;
    }
    base64_encode(sig, siglen, out);
    return 0;
}

/* --- Records. Whatever the caller hands in, the line must be written and
 * must stay readable by audit_verify(): strings are cut, non-UTF-8 is
 * escaped, and details that still do not fit are summarised. */

/* A JSON string of at most AUDIT_FIELD_MAX bytes of text for `len` bytes. */
static json_t *capped_string(const char *s, size_t len) {
    char tail[48], *buf;
    size_t tlen, cut;
    json_t *j;

    if (len <= AUDIT_FIELD_MAX && (j = json_stringn(s, len))) {
        return j;
    }
    if (len > AUDIT_FIELD_MAX) {
        /* The marker style of json_string_untrusted(): "...[N bytes]". */
        tlen = (size_t)snprintf(tail, sizeof(tail), "...[%zu bytes]", len);
        cut = AUDIT_FIELD_MAX - tlen;
        while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80) {
            cut--; /* back to the start of a character */
        }
        buf = malloc(cut + tlen);
        if (!buf) {
            return NULL;
        }
        memcpy(buf, s, cut);
        memcpy(buf + cut, tail, tlen);
        j = json_stringn(buf, cut + tlen);
        free(buf);
        if (j) {
            return j;
        }
    }
    /* Not UTF-8 (made with json_string_nocheck and the like): \xNN. */
    return json_string_untrusted(s, len, AUDIT_FIELD_MAX);
}

/* A copy of `v` with every key and string capped; NULL when nested deeper
 * than AUDIT_DEPTH_MAX, when two capped keys collide, or without memory. */
static json_t *capped_copy(const json_t *v, int depth) {
    json_t *out, *x;

    switch (json_typeof(v)) {
    case JSON_STRING:
        return capped_string(json_string_value(v), json_string_length(v));
    case JSON_OBJECT: {
        const char *k;
        if (depth >= AUDIT_DEPTH_MAX || !(out = json_object())) {
            return NULL;
        }
        json_object_foreach((json_t *)v, k, x) {
            json_t *ck = capped_string(k, strlen(k)), *cx = capped_copy(x, depth + 1);
            const char *key = json_string_value(ck);
            /* Two long keys cut to the same text: no value may vanish. */
            bool ok = key && cx && !json_object_get(out, key);
            if (ok) {
                ok = json_object_set_new(out, key, cx) == 0; /* takes cx either way */
            } else {
                json_decref(cx);
            }
            json_decref(ck);
            if (!ok) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    case JSON_ARRAY: {
        size_t i;
        if (depth >= AUDIT_DEPTH_MAX || !(out = json_array())) {
            return NULL;
        }
        json_array_foreach(v, i, x) {
            json_t *cx = capped_copy(x, depth + 1);
            if (!cx || json_array_append_new(out, cx) < 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    default:
        return json_copy((json_t *)v);
    }
}

/* What stands for details that cannot be written whole: their size and
 * hash, so that a copy kept elsewhere can be matched. */
static json_t *details_summary(const json_t *details) {
    char *text = json_dumps(details, JSON_COMPACT | JSON_ENCODE_ANY);
    char hash[65];
    json_t *j;

    if (!text) {
        return json_pack("{s:b,s:s}", "truncated", 1, "error",
                         "the details could not be serialized");
    }
    audit_sha256_hex(text, strlen(text), hash);
    j = json_pack("{s:b,s:I,s:s}", "truncated", 1, "bytes", (json_int_t)strlen(text), "sha256",
                  hash);
    free(text);
    return j;
}

/* Set `key` to a capped string; a missing value is no field, or null. */
static int set_capped(json_t *o, const char *key, const char *s, bool null) {
    if (!s) {
        return null ? json_object_set_new(o, key, json_null()) : 0;
    }
    return json_object_set_new(o, key, capped_string(s, strlen(s)));
}

/* The record without its hash; `details` is stolen. */
static json_t *new_record(struct audit_log *a, int64_t now, const char *type, const char *node,
                          const struct audit_pod *pod, json_t *details) {
    char t[40];
    json_t *rec = json_object(), *p = pod ? json_object() : NULL;
    int r;

    format_time(now, t);
    r = !rec || (pod && !p) || !details;
    r = r || json_object_set_new(rec, "seq", json_integer((json_int_t)(a->seq + 1))) < 0;
    r = r || json_object_set_new(rec, "time", json_string(t)) < 0;
    r = r || set_capped(rec, "type", type, false) < 0 || set_capped(rec, "node", node, false) < 0;
    if (pod && !r) {
        r = set_capped(p, "namespace", pod->namespace_, true) < 0 ||
            set_capped(p, "name", pod->name, true) < 0 ||
            set_capped(p, "uid", pod->uid, true) < 0 || json_object_set(rec, "pod", p) < 0;
    }
    r = r || json_object_set(rec, "details", details) < 0;
    r = r || json_object_set_new(rec, "prev", json_string(a->hash)) < 0;
    json_decref(p);
    json_decref(details);
    if (r) {
        json_decref(rec);
        return NULL;
    }
    return rec;
}

/* The line: body, hash, newline. Caller frees. */
static char *record_line(const json_t *rec, size_t *ret_len, char hash[65]) {
    char *body = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER), *line;
    size_t blen, n;

    if (!body) {
        return NULL;
    }
    blen = strlen(body);
    audit_sha256_hex(body, blen, hash);
    /* body minus its closing brace, the hash, the brace, a newline */
    n = blen - 1 + 9 + 64 + 3;
    line = malloc(n + 1);
    if (line) {
        body[blen - 1] = 0;
        snprintf(line, n + 1, "%s,\"hash\":\"%s\"}\n", body, hash);
        *ret_len = n;
    }
    free(body);
    return line;
}

static int append_locked(struct audit_log *a, const char *type, const char *node,
                         const struct audit_pod *pod, json_t *details) {
    int64_t now = now_ms(a);
    json_t *d = details ? capped_copy(details, 0) : json_object(), *rec;
    _cleanup_free_ char *line = NULL;
    char hash[65];
    size_t len = 0;
    int r;

    if (a->broken) {
        json_decref(d);
        return -EIO;
    }
    if (!d) {
        d = details_summary(details);
    }
    rec = new_record(a, now, type, node, pod, d);
    line = rec ? record_line(rec, &len, hash) : NULL;
    json_decref(rec);
    if (line && len - 1 > AUDIT_LINE_MAX) {
        free(line);
        rec = new_record(a, now, type, node, pod, details_summary(details));
        line = rec ? record_line(rec, &len, hash) : NULL;
        json_decref(rec);
        if (line && len - 1 > AUDIT_LINE_MAX) {
            return -E2BIG; /* cannot happen: every other field is capped */
        }
    }
    if (!line) {
        return -ENOMEM;
    }
    r = write_full(a->fd, line, len);
    if (r < 0) {
        /* A partial line (a full disk, a file size limit) must not stay:
         * the next record would follow its bytes and break the chain for
         * good. Cut back to the last whole record; if even that fails,
         * refuse further writes until the log is reopened (recover() cuts
         * a torn last line). */
        if (ftruncate(a->fd, (off_t)a->size) < 0) {
            a->broken = true;
            log_error("audit log %s: cannot cut a partial record back: %s; no more records "
                      "until it is reopened",
                      a->path, strerror(errno));
        }
        return r;
    }
    a->size += len;
    memcpy(a->hash, hash, 65);
    a->seq++;
    if (a->since_checkpoint++ == 0) {
        a->unsigned_since_ms = now;
    }
    return 0;
}

static int checkpoint_locked(struct audit_log *a) {
    char msg[AUDIT_MSG_MAX], sigb64[89];
    bool named = a->replica[0] != 0;
    json_t *d;
    int r;

    r = sign_b64(
            a->key, msg,
            named ? audit_checkpoint_message_v2(a->seq + 1, a->hash, a->replica, a->key_fp, msg)
                  : audit_checkpoint_message(a->seq + 1, a->hash, msg),
            sigb64);
    if (r < 0) {
        return r;
    }
    d = named ? json_pack("{s:s,s:s,s:s}", "signature", sigb64, "replica", a->replica, "key",
                          a->key_fp)
              : json_pack("{s:s}", "signature", sigb64);
    r = d ? append_locked(a, "checkpoint", NULL, NULL, d) : -ENOMEM;
    json_decref(d);
    if (r == 0) {
        a->since_checkpoint = 0;
    }
    return r;
}

/* seq, hash and the unsigned tail from the last line of `data` (whole
 * lines, `end` bytes, end > 0) of the file `name`. */
static int recover_last(struct audit_log *a, const uint8_t *data, size_t end, const char *name) {
    _cleanup_free_ char *body = NULL;
    size_t start = end - 1;
    char hash[65];
    json_auto_t *j = NULL;
    json_error_t jerr;
    const char *type;

    while (start > 0 && data[start - 1] != '\n') {
        start--;
    }
    /* Sized by the line, not AUDIT_LINE_MAX: an older version's oversized
     * last record must not keep the verifier from starting. */
    body = malloc(end - start + 2);
    if (!body) {
        return -ENOMEM;
    }
    if (audit_split_line((const char *)data + start, end - 1 - start, body, end - start + 2, hash) <
                0 ||
        !(j = json_loads(body, 0, &jerr)) || !json_is_integer(json_object_get(j, "seq"))) {
        log_error("audit log %s: the last record is not a kima audit record", name);
        return -EBADMSG;
    }
    a->seq = (uint64_t)json_integer_value(json_object_get(j, "seq"));
    memcpy(a->hash, hash, 65);
    a->synced = a->seq;
    type = json_string_value(json_object_get(j, "type"));
    if (!type || strcmp(type, "checkpoint") != 0) {
        /* An unsigned tail left by a crash: the timer signs it. */
        a->since_checkpoint = 1;
        a->unsigned_since_ms = now_ms(a);
    } else {
        const char *rep =
                json_string_value(json_object_get(json_object_get(j, "details"), "replica"));
        snprintf(a->last_replica, sizeof(a->last_replica), "%s", rep ? rep : "");
    }
    return 0;
}

/* The newest rotated file beside the live one (PATH.<20 digits>, the seq of
 * its last record), or "" when there is none. */
static void newest_rotated(const char *path, char out[PATH_MAX]) {
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    size_t blen = strlen(base);
    char dir[PATH_MAX - 512], best[256] = "";
    struct dirent *e;
    DIR *d;

    out[0] = 0;
    if (!slash) {
        snprintf(dir, sizeof(dir), ".");
    } else if (slash == path) {
        snprintf(dir, sizeof(dir), "/");
    } else if ((size_t)(slash - path) < sizeof(dir)) {
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    } else {
        return;
    }
    d = opendir(dir);
    while (d && (e = readdir(d))) {
        const char *tail = e->d_name + blen + 1;
        /* The names end in zero-padded seqs: the greatest name is the newest. */
        if (strncmp(e->d_name, base, blen) == 0 && e->d_name[blen] == '.' && strlen(tail) == 20 &&
            strspn(tail, "0123456789") == 20 && strcmp(e->d_name, best) > 0) {
            snprintf(best, sizeof(best), "%s", e->d_name);
        }
    }
    if (d) {
        closedir(d);
    }
    if (best[0]) {
        snprintf(out, PATH_MAX, "%s/%s", dir, best);
    }
}

/* Recover seq and hash from an existing file; cut a torn last line. An
 * empty live file just after a rotation continues the newest rotated
 * file's chain, not a new one. */
static int recover(struct audit_log *a) {
    _cleanup_free_ uint8_t *data = NULL;
    char rotated[PATH_MAX];
    size_t len, end;

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
    if (end > 0) {
        return recover_last(a, data, end, a->path);
    }
    newest_rotated(a->path, rotated);
    if (!rotated[0]) {
        return 0;
    }
    free(data);
    data = NULL;
    if (read_file_capped(rotated, SIZE_MAX / 2, &data, &len) < 0) {
        log_error("audit log %s: cannot read the rotated file %s to continue its chain", a->path,
                  rotated);
        return -EIO;
    }
    /* A rotated file was synced whole; a torn end would be no record. */
    return len > 0 && data[len - 1] == '\n' ? recover_last(a, data, len, rotated) : -EBADMSG;
}

int audit_open(const char *path, EVP_PKEY *key, uint64_t max_bytes, unsigned checkpoint_every,
               struct audit_log **ret) {
    struct audit_log *a;
    int r;

    if (!path || !key || !ret) {
        return -EINVAL;
    }
    a = calloc(1, sizeof(*a));
    if (!a) {
        return -ENOMEM;
    }
    pthread_mutex_init(&a->lock, NULL);
    pthread_mutex_init(&a->sync_lock, NULL);
    a->path = strdup(path);
    a->key = key;
    a->max_bytes = max_bytes;
    a->checkpoint_every = checkpoint_every ? checkpoint_every : 1000;
    a->checkpoint_ms = AUDIT_CHECKPOINT_MS_DEFAULT;
    a->clock = realtime_ms;
    memset(a->hash, '0', 64);
    a->fd = a->path ? open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
    if (a->fd < 0) {
        r = a->path ? -errno : -ENOMEM;
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

void audit_set_checkpoint_ms(struct audit_log *a, int64_t interval_ms) {
    if (!a) {
        return;
    }
    pthread_mutex_lock(&a->lock);
    a->checkpoint_ms = interval_ms < AUDIT_CHECKPOINT_MS_MIN   ? AUDIT_CHECKPOINT_MS_MIN
                       : interval_ms > AUDIT_CHECKPOINT_MS_MAX ? AUDIT_CHECKPOINT_MS_MAX
                                                               : interval_ms;
    pthread_mutex_unlock(&a->lock);
}

void audit_set_clock(struct audit_log *a, int64_t (*now)(void *ud), void *ud) {
    if (!a) {
        return;
    }
    pthread_mutex_lock(&a->lock);
    a->clock = now ? now : realtime_ms;
    a->clock_ud = now ? ud : NULL;
    if (a->since_checkpoint > 0) {
        a->unsigned_since_ms = now_ms(a); /* the old stamp is of another clock */
    }
    pthread_mutex_unlock(&a->lock);
}

static int rotate_locked(struct audit_log *a) {
    char rotated[PATH_MAX];
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

int audit_set_replica(struct audit_log *a, const char *replica) {
    char err[160], fp[AUDIT_KEY_FP_LEN + 1];
    uint64_t seq;
    json_t *d;
    int r;

    if (!a || audit_replica_check(replica, err, sizeof(err)) < 0 ||
        audit_key_fingerprint(a->key, fp) < 0) {
        return -EINVAL;
    }
    pthread_mutex_lock(&a->lock);
    if (a->last_replica[0] && strcmp(a->last_replica, replica) != 0) {
        pthread_mutex_unlock(&a->lock);
        log_error("audit log %s belongs to replica \"%s\" (its last checkpoint names it), not "
                  "\"%s\": is this another replica's volume?",
                  a->path, a->last_replica, replica);
        return -EEXIST;
    }
    snprintf(a->replica, sizeof(a->replica), "%s", replica);
    memcpy(a->key_fp, fp, sizeof(fp));
    r = 0;
    if (strcmp(a->last_replica, replica) != 0) {
        /* The chain's start (or the point from which an old log names its
         * replica), signed at once by the checkpoint after it. */
        d = json_pack("{s:s,s:s}", "replica", replica, "key", fp);
        r = d ? append_locked(a, "replica", NULL, NULL, d) : -ENOMEM;
        json_decref(d);
        r = r == 0 ? checkpoint_locked(a) : r;
        if (r == 0) {
            memcpy(a->last_replica, a->replica, sizeof(a->replica));
        }
    }
    seq = a->seq;
    pthread_mutex_unlock(&a->lock);
    if (r == 0) {
        r = audit_sync(a, seq);
    }
    if (r < 0) {
        log_error("audit log %s: the replica record could not be written: %s", a->path,
                  strerror(-r));
    }
    return r;
}

const char *audit_log_replica(struct audit_log *a) {
    return a ? a->last_replica : "";
}

int audit_append(struct audit_log *a, const char *type, const char *node,
                 const struct audit_pod *pod, json_t *details, uint64_t *ret_seq) {
    int r;

    if (!a || !type) {
        return -EINVAL;
    }
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
    uint64_t seq;
    int r;

    pthread_mutex_lock(&a->lock);
    r = checkpoint_locked(a);
    seq = a->seq;
    pthread_mutex_unlock(&a->lock);
    return r == 0 ? audit_sync(a, seq) : r;
}

int audit_checkpoint_due(struct audit_log *a, int64_t now) {
    uint64_t seq;
    int r = 0;

    if (!a) {
        return -EINVAL;
    }
    pthread_mutex_lock(&a->lock);
    if (a->since_checkpoint > 0 &&
        (now < a->unsigned_since_ms || now - a->unsigned_since_ms >= a->checkpoint_ms)) {
        r = checkpoint_locked(a);
        r = r == 0 ? 1 : r;
    }
    seq = a->seq;
    pthread_mutex_unlock(&a->lock);
    if (r == 1) {
        int s = audit_sync(a, seq);
        r = s < 0 ? s : r;
    }
    if (r < 0) {
        log_error("audit log %s: timer checkpoint failed: %s", a->path, strerror(-r));
    }
    return r;
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

int audit_head(struct audit_log *a, struct audit_head *ret) {
    struct audit_head h = {0};
    char msg[AUDIT_MSG_MAX];
    int r;

    if (!a || !ret) {
        return -EINVAL;
    }
    pthread_mutex_lock(&a->lock);
    h.seq = a->seq;
    memcpy(h.hash, a->hash, 65);
    format_time(now_ms(a), h.time);
    r = sign_b64(a->key, msg, audit_head_message(h.seq, h.hash, h.time, msg), h.signature);
    pthread_mutex_unlock(&a->lock);
    /* A head vouches only for records that are on disk. */
    if (r == 0) {
        r = audit_sync(a, h.seq);
    }
    if (r < 0) {
        log_error("audit log %s: the head could not be signed: %s", a->path, strerror(-r));
        return r;
    }
    *ret = h;
    return 0;
}

json_t *audit_head_to_json(const struct audit_head *h) {
    return json_pack("{s:I,s:s,s:s,s:s}", "seq", (json_int_t)h->seq, "hash", h->hash, "time",
                     h->time, "signature", h->signature);
}

int audit_key_load_or_create(const char *path, EVP_PKEY **ret) {
    FILE *f = fopen(path, "r");
    EVP_PKEY *k;
    char pub[PATH_MAX];
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
