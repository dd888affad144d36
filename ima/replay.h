/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_IMA_REPLAY_H
#define KIMA_IMA_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"
#include "list.h"

/* PCR replay (docs/formats.md section 3, kernel >= 5.8): for every bank B and the
 * entry's PCR, PCR_B = H_B(PCR_B || H_B(hashed template data)); a violation
 * extends 0xFF x |B| instead. One list can mix PCR indexes, so every index has
 * its own register. */

struct ima_pcr_value {
    enum ima_hash_alg alg;
    uint32_t pcr;
    uint8_t digest[IMA_DIGEST_MAX];
};

struct ima_replay {
    unsigned banks;   /* IMA_BANK() mask */
    uint32_t touched; /* bit p: PCR p was extended */
    uint64_t entries; /* entries replayed */
    uint8_t pcr[IMA_HASH_COUNT][IMA_PCR_COUNT][IMA_DIGEST_MAX];
};

/* Start from all-zero PCRs in the given banks (non-empty mask). 0 or -EINVAL. */
int ima_replay_init(struct ima_replay *r, unsigned banks);

/* Check the entry's template digest against its list's algorithm and extend
 * every bank. A mismatch returns -EBADMSG and extends nothing. */
int ima_replay_entry(struct ima_replay *r, const struct ima_entry *e);

/* The current value of a PCR, or NULL if the bank is not replayed or the
 * index is out of range. */
const uint8_t *ima_replay_get(const struct ima_replay *r, enum ima_hash_alg alg, uint32_t pcr);

/* Whether every wanted value equals the replayed one (false if a wanted bank
 * is not replayed). */
bool ima_replay_matches(const struct ima_replay *r, const struct ima_pcr_value *want, size_t n);

struct ima_replay_result {
    bool matched;     /* a prefix replayed to every wanted value */
    bool incomplete;  /* buf ends inside an entry (p->err has the details) */
    uint64_t entries; /* entries consumed */
    size_t bytes;     /* bytes consumed */
};

/* Parse and replay buf (which starts at the parser's position). Without
 * wanted values, replay everything. With them, stop at the first prefix
 * (possibly empty) at which all of them match: what follows is left for the
 * next call, since a quote may lag the list. A trailing partial entry stops
 * the loop with incomplete set; it is not an error here, the caller decides.
 * Returns 0, or the parser's negative errno with p->err set (a template digest
 * mismatch is -EBADMSG). The result is filled in either case. */
int ima_replay_list(struct ima_replay *r, struct ima_parser *p, const uint8_t *buf, size_t len,
                    const struct ima_pcr_value *want, size_t nwant,
                    struct ima_replay_result *ret_result);

#endif
