/* SPDX-License-Identifier: Apache-2.0 */
#include "replay.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "verify.h"

int ima_replay_init(struct ima_replay *r, unsigned banks) {
    if (!r || banks == 0 || (banks & ~IMA_BANKS_ALL)) {
        return -EINVAL;
    }
    memset(r, 0, sizeof(*r));
    r->banks = banks;
    return 0;
}

int ima_replay_entry(struct ima_replay *r, const struct ima_entry *e) {
    uint8_t x[IMA_HASH_COUNT][IMA_DIGEST_MAX];
    uint8_t scratch[IMA_LEGACY_HASHED_LEN];
    enum ima_hash_alg list_alg;
    const uint8_t *data;
    size_t len;

    if (e->pcr >= IMA_PCR_COUNT || ima_hash_from_size(e->digest_len, &list_alg) < 0) {
        return -EINVAL;
    }
    if (e->violation) {
        memset(x, 0xff, sizeof(x));
    } else {
        ima_entry_hashed_data(e, scratch, &data, &len);
        /* The list's own digest is checked first and reused for its bank. */
        ima_hash(list_alg, data, len, x[list_alg]);
        if (memcmp(x[list_alg], e->digest, e->digest_len) != 0) {
            return -EBADMSG;
        }
        for (int b = 0; b < IMA_HASH_COUNT; b++) {
            if ((r->banks & IMA_BANK(b)) && b != (int)list_alg) {
                ima_hash((enum ima_hash_alg)b, data, len, x[b]);
            }
        }
    }
    for (int b = 0; b < IMA_HASH_COUNT; b++) {
        if (r->banks & IMA_BANK(b)) {
            size_t sz = ima_hash_size((enum ima_hash_alg)b);
            uint8_t *pcr = r->pcr[b][e->pcr];
            ima_hash2((enum ima_hash_alg)b, pcr, sz, x[b], sz, pcr);
        }
    }
    r->touched |= UINT32_C(1) << e->pcr;
    r->entries++;
    return 0;
}

const uint8_t *ima_replay_get(const struct ima_replay *r, enum ima_hash_alg alg, uint32_t pcr) {
    if ((unsigned)alg >= IMA_HASH_COUNT || !(r->banks & IMA_BANK(alg)) || pcr >= IMA_PCR_COUNT) {
        return NULL;
    }
    return r->pcr[alg][pcr];
}

bool ima_replay_matches(const struct ima_replay *r, const struct ima_pcr_value *want, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const uint8_t *v = ima_replay_get(r, want[i].alg, want[i].pcr);
        if (!v || memcmp(v, want[i].digest, ima_hash_size(want[i].alg)) != 0) {
            return false;
        }
    }
    return true;
}

int ima_replay_list(struct ima_replay *r, struct ima_parser *p, const uint8_t *buf, size_t len,
                    const struct ima_pcr_value *want, size_t nwant,
                    struct ima_replay_result *ret_result) {
    struct ima_replay_result res = {0};
    uint32_t want_pcrs = 0;
    struct ima_entry e;
    int r2 = 0;

    for (size_t i = 0; i < nwant; i++) {
        if (!ima_replay_get(r, want[i].alg, want[i].pcr)) {
            return -EINVAL;
        }
        want_pcrs |= UINT32_C(1) << want[i].pcr;
    }
    if (nwant && ima_replay_matches(r, want, nwant)) {
        res.matched = true;
        goto out;
    }
    while (res.bytes < len) {
        int n = ima_parser_next(p, buf + res.bytes, len - res.bytes, &e);
        if (n == -EAGAIN) {
            res.incomplete = true;
            break;
        }
        if (n < 0) {
            r2 = n;
            break;
        }
        r2 = ima_replay_entry(r, &e);
        if (r2 < 0) {
            /* Undo the parser's step: the bad entry was not consumed. */
            ima_parser_seek(p, e.index, e.offset);
            p->err.code = r2;
            p->err.index = e.index;
            p->err.offset = e.offset;
            snprintf(p->err.msg, sizeof(p->err.msg),
                     "template digest does not match the template data");
            break;
        }
        res.bytes += (size_t)n;
        res.entries++;
        if (nwant && (want_pcrs & (UINT32_C(1) << e.pcr)) && ima_replay_matches(r, want, nwant)) {
            res.matched = true;
            break;
        }
    }
out:
    if (ret_result) {
        *ret_result = res;
    }
    return r2;
}
