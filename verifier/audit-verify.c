/* SPDX-License-Identifier: Apache-2.0 */
/* The audit log's reader: the chain and the checkpoint signatures. Nothing
 * here trusts the files. */
#include "audit.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit-internal.h"
#include "base64.h"
#include "fileio.h"
#include "macro.h"

__attribute__((format(printf, 5, 6))) static void bad(struct audit_verify_result *res,
                                                      const char *file, size_t line, uint64_t seq,
                                                      const char *fmt, ...) {
    char why[300];
    va_list ap;

    if (!res->intact) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    res->intact = false;
    snprintf(res->first_bad, sizeof(res->first_bad), "%s:%zu (seq %" PRIu64 "): %s", file, line,
             seq, why);
}

static bool check_signature(EVP_PKEY *pub, uint64_t seq, const char *prev, const char *b64) {
    char msg[200];
    uint8_t sig[64];
    EVP_MD_CTX *c;
    int n, ok;

    n = base64_decode(b64, strlen(b64), sig, sizeof(sig));
    if (n != 64) {
        return false;
    }
    snprintf(msg, sizeof(msg), "%s\n%" PRIu64 "\n%s", AUDIT_CHECKPOINT_CONTEXT, seq, prev);
    c = EVP_MD_CTX_new();
    ok = c && EVP_DigestVerifyInit(c, NULL, NULL, NULL, pub) > 0 &&
         EVP_DigestVerify(c, sig, 64, (const uint8_t *)msg, strlen(msg)) == 1;
    EVP_MD_CTX_free(c);
    return ok;
}

int audit_verify(const char *const *paths, size_t n, EVP_PKEY *pub,
                 struct audit_verify_result *res) {
    char prev[65], *body = malloc(AUDIT_LINE_MAX + 2);
    uint64_t seq = 0;

    if (!body) {
        return -ENOMEM;
    }
    memset(res, 0, sizeof(*res));
    res->intact = true;
    memset(prev, '0', 64);
    prev[64] = 0;
    for (size_t f = 0; f < n && res->intact; f++) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t len, off = 0, line = 0;
        int r = read_file_capped(paths[f], SIZE_MAX / 2, &data, &len);
        if (r < 0) {
            free(body);
            return r;
        }
        while (off < len && res->intact) {
            const char *l = (const char *)data + off;
            const char *nl = memchr(l, '\n', len - off);
            size_t llen = nl ? (size_t)(nl - l) : len - off;
            char hash[65], calc[65];
            json_auto_t *j = NULL;
            json_error_t jerr;
            const char *rprev, *type;
            uint64_t rseq;

            line++;
            off += llen + 1;
            if (!nl) {
                bad(res, paths[f], line, seq + 1, "torn last line");
                break;
            }
            if (llen > AUDIT_LINE_MAX ||
                audit_split_line(l, llen, body, AUDIT_LINE_MAX + 2, hash) < 0 ||
                !(j = json_loads(body, 0, &jerr)) || !json_is_object(j)) {
                bad(res, paths[f], line, seq + 1, "not a kima audit record");
                break;
            }
            audit_sha256_hex(body, strlen(body), calc);
            rseq = json_is_integer(json_object_get(j, "seq"))
                           ? (uint64_t)json_integer_value(json_object_get(j, "seq"))
                           : 0;
            rprev = json_string_value(json_object_get(j, "prev"));
            type = json_string_value(json_object_get(j, "type"));
            if (strcmp(calc, hash) != 0) {
                bad(res, paths[f], line, rseq, "hash does not match the record (edited)");
            } else if (rseq != seq + 1) {
                bad(res, paths[f], line, rseq,
                    "sequence jumps from %" PRIu64 " (deleted or "
                    "reordered records)",
                    seq);
            } else if (!rprev || strcmp(rprev, prev) != 0) {
                bad(res, paths[f], line, rseq, "prev is not the hash of the record before");
            } else if (!type) {
                bad(res, paths[f], line, rseq, "no type");
            } else if (strcmp(type, "checkpoint") == 0) {
                const char *sig = json_string_value(
                        json_object_get(json_object_get(j, "details"), "signature"));
                if (!sig || !check_signature(pub, rseq, prev, sig)) {
                    bad(res, paths[f], line, rseq, "checkpoint signature does not verify");
                } else {
                    res->checkpoints++;
                    res->unsigned_tail = 0;
                }
            } else {
                res->unsigned_tail++;
            }
            if (res->intact) {
                seq = rseq;
                memcpy(prev, hash, 65);
                res->records++;
            }
        }
    }
    free(body);
    return 0;
}
