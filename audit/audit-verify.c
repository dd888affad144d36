/* SPDX-License-Identifier: Apache-2.0 */
/* The audit log's reader: the chain, the checkpoint signatures, the unsigned
 * tail, and the comparison with the verifier's signed head. Nothing here
 * trusts the files: each line is capped, each field checked. */
#include "audit.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit-internal.h"
#include "base64.h"
#include "fileio.h"
#include "json-util.h"
#include "macro.h"

/* Keep printable ASCII of an untrusted string (a record's time) for output. */
static void printable(char out[40], const char *s) {
    size_t i = 0;

    for (; s && s[i] && i < 39; i++) {
        out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    }
    out[i] = 0;
}

static bool signature_ok(EVP_PKEY *pub, const char *msg, size_t len, const char *b64) {
    uint8_t sig[64];
    EVP_MD_CTX *c;
    int ok;

    if (!b64 || base64_decode(b64, strlen(b64), sig, sizeof(sig)) != 64) {
        return false;
    }
    c = EVP_MD_CTX_new();
    ok = c && EVP_DigestVerifyInit(c, NULL, NULL, NULL, pub) > 0 &&
         EVP_DigestVerify(c, sig, 64, (const uint8_t *)msg, len) == 1;
    EVP_MD_CTX_free(c);
    return ok;
}

bool audit_head_signature_ok(const struct audit_head *h, EVP_PKEY *pub) {
    char msg[AUDIT_MSG_MAX];

    if (!h || !pub) {
        return false;
    }
    return signature_ok(pub, msg, audit_head_message(h->seq, h->hash, h->time, msg), h->signature);
}

int audit_head_from_json(const json_t *j, struct audit_head *ret, char *err, size_t errsz) {
    struct audit_head h = {0};
    const char *hash, *time, *sig;

    if (!json_is_object(j)) {
        snprintf(err, errsz, "the head is not a JSON object");
        return -EBADMSG;
    }
    if (json_get_u64(j, "seq", INT64_MAX, &h.seq, err, errsz) < 0 ||
        json_get_string(j, "hash", 64, &hash, err, errsz) < 0 ||
        json_get_string(j, "time", sizeof(h.time) - 1, &time, err, errsz) < 0 ||
        json_get_string(j, "signature", sizeof(h.signature) - 1, &sig, err, errsz) < 0) {
        return -EBADMSG;
    }
    if (strlen(hash) != 64 || strspn(hash, "0123456789abcdef") != 64) {
        snprintf(err, errsz, "\"hash\" is not 64 lowercase hex digits");
        return -EBADMSG;
    }
    for (const char *p = time; *p; p++) {
        if (*p < 0x20 || *p >= 0x7f) {
            snprintf(err, errsz, "\"time\" holds a character that is not printable ASCII");
            return -EBADMSG;
        }
    }
    memcpy(h.hash, hash, 65);
    snprintf(h.time, sizeof(h.time), "%s", time);
    snprintf(h.signature, sizeof(h.signature), "%s", sig);
    *ret = h;
    return 0;
}

/* The walk over the files in chain order. */
struct walk {
    struct audit_verify_result *res;
    EVP_PKEY *pub;
    const struct audit_head *head; /* or NULL */
    char *line;                    /* AUDIT_LINE_MAX + 1 bytes */
    char *body;                    /* AUDIT_LINE_MAX + 2 bytes */
    uint64_t seq;                  /* the last record read */
    char prev[65];                 /* its stated hash */
    bool resync;                   /* the line before was no record */
    bool replica_named;            /* a record or checkpoint named res->replica */
};

/* A break: the first one is also first_bad; the walk goes on. */
_printf_(5, 6) static void bad(struct audit_verify_result *res, const char *file, size_t line,
                               uint64_t seq, const char *fmt, ...) {
    char why[300], *out;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (res->ngaps < AUDIT_GAPS_MAX) {
        out = res->gaps[res->ngaps];
        snprintf(out, sizeof(res->gaps[0]), "%s:%zu (seq %" PRIu64 "): %s", file, line, seq, why);
        if (res->ngaps == 0) {
            memcpy(res->first_bad, out, sizeof(res->first_bad));
        }
    }
    if (res->ngaps < UINT_MAX) {
        res->ngaps++;
    }
    res->intact = false;
}

/* The tail: a checkpoint signs what came before it, and the head signs the
 * records up to its seq; whatever follows both is unsigned. */
static void count_signed(struct walk *w, const json_t *j, uint64_t rseq, bool checkpoint) {
    struct audit_verify_result *res = w->res;
    const char *time = json_string_value(json_object_get(j, "time"));

    if (checkpoint) {
        res->checkpoints++;
        res->last_checkpoint_seq = rseq;
        printable(res->last_checkpoint_time, time);
        res->unsigned_tail = 0;
        res->first_unsigned_time[0] = 0;
    } else if (res->unsigned_tail++ == 0) {
        printable(res->first_unsigned_time, time);
    }
    if (w->head && rseq == w->head->seq) {
        res->head_matched = true;
        res->unsigned_tail = 0;
        res->first_unsigned_time[0] = 0;
    }
}

/* The replica a "replica" record or a checkpoint names: a label, the key it
 * was verified with, and the chain's one name. NULL when it is fine (or
 * names none), else why not. */
static const char *replica_problem(struct walk *w, const json_t *details, bool *ret_named) {
    const json_t *jr = json_object_get(details, "replica"), *jk = json_object_get(details, "key");
    const char *rep = json_string_value(jr), *fp = json_string_value(jk);
    char err[160];

    *ret_named = false;
    if (!jr && !jk) {
        return w->replica_named ? "names no replica, but the chain named one before" : NULL;
    }
    if (!rep || audit_replica_check(rep, err, sizeof(err)) < 0) {
        return "its \"replica\" is not a replica name";
    }
    if (!fp || strcmp(fp, w->res->key_fp) != 0) {
        return "its \"key\" is not the fingerprint of the key the chain is verified with";
    }
    if (w->replica_named && strcmp(rep, w->res->replica) != 0) {
        return "it names another replica than the chain did before";
    }
    *ret_named = true;
    snprintf(w->res->replica, sizeof(w->res->replica), "%s", rep);
    w->replica_named = true;
    return NULL;
}

/* The checkpoint's signature: v2 over its replica and key when it names
 * them, else v1. */
static bool checkpoint_ok(struct walk *w, uint64_t rseq, const char *rprev, const json_t *details,
                          bool named) {
    const char *sig = json_string_value(json_object_get(details, "signature"));
    char msg[AUDIT_MSG_MAX];
    size_t n;

    if (!rprev) {
        return false;
    }
    n = named ? audit_checkpoint_message_v2(rseq, rprev, w->res->replica, w->res->key_fp, msg)
              : audit_checkpoint_message(rseq, rprev, msg);
    return signature_ok(w->pub, msg, n, sig);
}

/* Sequence and chain against the record before; false when broken (the
 * break is reported, and the walk resumes from this record). */
static bool check_link(struct walk *w, const char *file, size_t line, uint64_t rseq,
                       const char *rprev) {
    struct audit_verify_result *res = w->res;

    if (w->resync) {
        return true; /* the line before was reported already */
    }
    if (rseq > w->seq + 1 && line == 1 && w->seq > 0) {
        bad(res, file, line, rseq,
            "sequence jumps from %" PRIu64
            ": a rotated file is missing before this one, seq %" PRIu64 "-%" PRIu64 " (%" PRIu64
            " records) are in no file",
            w->seq, w->seq + 1, rseq - 1, rseq - 1 - w->seq);
    } else if (rseq > w->seq + 1) {
        bad(res, file, line, rseq,
            "sequence jumps from %" PRIu64 ": seq %" PRIu64 "-%" PRIu64 " missing (%" PRIu64
            " records deleted or reordered)",
            w->seq, w->seq + 1, rseq - 1, rseq - 1 - w->seq);
    } else if (rseq != w->seq + 1) {
        bad(res, file, line, rseq,
            "sequence goes back from %" PRIu64 " (records deleted or reordered, or repeated)",
            w->seq);
    } else if (!rprev || strcmp(rprev, w->prev) != 0) {
        bad(res, file, line, rseq,
            "prev is not the hash of the record before (a prev-hash break: records replaced)");
    } else {
        return true;
    }
    return false;
}

/* One line (without its newline): format, hash, sequence, chain, type,
 * replica, checkpoint signature, the head's hash. */
static void check_line(struct walk *w, const char *file, size_t line, const char *l, size_t llen) {
    struct audit_verify_result *res = w->res;
    char hash[65], calc[65];
    json_auto_t *j = NULL;
    json_error_t jerr;
    const json_t *details;
    const char *rprev, *type, *why;
    uint64_t rseq;
    bool checkpoint, named = false, sig_ok = false;

    if (llen > AUDIT_LINE_MAX || audit_split_line(l, llen, w->body, AUDIT_LINE_MAX + 2, hash) < 0 ||
        !(j = json_loads(w->body, 0, &jerr)) || !json_is_object(j) ||
        !json_is_integer(json_object_get(j, "seq")) ||
        json_integer_value(json_object_get(j, "seq")) < 1) {
        bad(res, file, line, w->seq + 1, "not a kima audit record");
        w->resync = true;
        return;
    }
    audit_sha256_hex(w->body, strlen(w->body), calc);
    rseq = (uint64_t)json_integer_value(json_object_get(j, "seq"));
    rprev = json_string_value(json_object_get(j, "prev"));
    type = json_string_value(json_object_get(j, "type"));
    details = json_object_get(j, "details");
    checkpoint = type && strcmp(type, "checkpoint") == 0;
    why = checkpoint || (type && strcmp(type, "replica") == 0) ? replica_problem(w, details, &named)
                                                               : NULL;
    if (strcmp(calc, hash) != 0) {
        bad(res, file, line, rseq, "hash does not match the record (edited)");
    } else if (!check_link(w, file, line, rseq, rprev)) {
        /* reported */
    } else if (!type) {
        bad(res, file, line, rseq, "no type");
    } else if (why) {
        bad(res, file, line, rseq, "%s record: %s", type, why);
    } else if (checkpoint && !(sig_ok = checkpoint_ok(w, rseq, rprev, details, named))) {
        bad(res, file, line, rseq, "checkpoint signature does not verify");
    } else if (w->head && rseq == w->head->seq && strcmp(hash, w->head->hash) != 0) {
        bad(res, file, line, rseq,
            "the verifier's signed head says seq %" PRIu64 " has hash %.16s..., the file "
            "has %.16s... (rewritten)",
            rseq, w->head->hash, hash);
    }
    if (sig_ok && named) {
        res->replica_signed = true;
    }
    count_signed(w, j, rseq, sig_ok);
    w->resync = false;
    w->seq = rseq;
    memcpy(w->prev, hash, 65);
    if (res->records++ == 0) {
        res->first_seq = rseq;
    }
    res->last_seq = rseq;
}

/* Read the file line by line; a line longer than AUDIT_LINE_MAX is
 * reported and skipped, not held. */
static int check_file(struct walk *w, const char *path) {
    FILE *f = fopen(path, "re");
    size_t line = 0, n = 0;
    bool longer = false;
    int c;

    if (!f) {
        return -errno;
    }
    for (;;) {
        c = getc_unlocked(f);
        if (c != EOF && c != '\n') {
            if (n < AUDIT_LINE_MAX + 1) {
                w->line[n++] = (char)c;
            } else {
                longer = true;
            }
            continue;
        }
        if (c == EOF && n == 0 && !longer) {
            break;
        }
        line++;
        if (c == EOF) {
            bad(w->res, path, line, w->seq + 1, "torn last line (no newline)");
        } else if (longer) {
            bad(w->res, path, line, w->seq + 1, "a line longer than %u bytes", AUDIT_LINE_MAX);
            w->resync = true;
        } else {
            check_line(w, path, line, w->line, n);
        }
        n = 0;
        longer = false;
        if (c == EOF) {
            break;
        }
    }
    c = ferror(f) ? -EIO : 0;
    fclose(f);
    return c;
}

int audit_verify_head(const char *const *paths, size_t n, EVP_PKEY *pub,
                      const struct audit_head *head, struct audit_verify_result *res) {
    struct walk w = {.res = res, .pub = pub, .head = head};
    int r = 0;

    if ((!paths && n) || !pub || !res) {
        return -EINVAL;
    }
    memset(res, 0, sizeof(*res));
    if (audit_key_fingerprint(pub, res->key_fp) < 0) {
        return -EINVAL;
    }
    w.body = malloc(AUDIT_LINE_MAX + 2);
    w.line = malloc(AUDIT_LINE_MAX + 1);
    if (!w.body || !w.line) {
        free(w.body);
        free(w.line);
        return -ENOMEM;
    }
    res->intact = true;
    memset(w.prev, '0', 64);
    w.prev[64] = 0;
    for (size_t f = 0; f < n && r == 0; f++) {
        r = check_file(&w, paths[f]);
    }
    free(w.body);
    free(w.line);
    if (r < 0) {
        return r;
    }
    if (head && head->seq == 0 && res->intact) {
        /* The head of an empty log vouches for nothing. */
        res->head_matched = strspn(head->hash, "0") == 64;
        if (!res->head_matched) {
            bad(res, "head", 0, 0, "the verifier's head is seq 0 with a hash that is not zero");
        }
    } else if (head && res->last_seq < head->seq) {
        res->truncated = true;
    }
    return 0;
}

int audit_verify(const char *const *paths, size_t n, EVP_PKEY *pub,
                 struct audit_verify_result *res) {
    return audit_verify_head(paths, n, pub, NULL, res);
}

enum audit_verdict audit_verify_verdict(const struct audit_verify_result *res) {
    if (!res->intact) {
        return AUDIT_TAMPERED;
    }
    if (res->truncated) {
        return AUDIT_TRUNCATED;
    }
    return res->unsigned_tail ? AUDIT_UNSIGNED_TAIL : AUDIT_INTACT;
}
