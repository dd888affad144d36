/* SPDX-License-Identifier: Apache-2.0 */
#include "pcr.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "hash-alg.h"
#include "parse.h"

bool tpm_pcr_selected(const TPMS_PCR_SELECTION *s, unsigned pcr) {
    return pcr / 8 < s->sizeofSelect && (s->pcrSelect[pcr / 8] & (1u << (pcr % 8)));
}

static uint32_t bank_mask(const TPMS_PCR_SELECTION *s) {
    uint32_t m = 0;

    for (unsigned i = 0; i < s->sizeofSelect && i < sizeof(s->pcrSelect); i++) {
        m |= (uint32_t)s->pcrSelect[i] << (8 * i);
    }
    return m;
}

int tpm_pcr_selection_check(const TPML_PCR_SELECTION *sel, const char **ret_why) {
    const char *why = NULL;

    if (sel->count > TPM2_NUM_PCR_BANKS) {
        why = "more PCR banks than a TPM has";
    }
    for (uint32_t i = 0; !why && i < sel->count; i++) {
        const TPMS_PCR_SELECTION *s = &sel->pcrSelections[i];
        enum hash_alg alg;
        if (hash_alg_from_tpm_id(s->hash, &alg) < 0) {
            why = "PCR bank of an unsupported hash";
        } else if (s->sizeofSelect < 1 || s->sizeofSelect > sizeof(s->pcrSelect)) {
            why = "PCR bitmap size is not 1-4 bytes";
        } else if (bank_mask(s) >> TPM_PCR_COUNT) {
            why = "PCR index above 23 selected";
        }
        for (uint32_t k = 0; !why && k < i; k++) {
            if (sel->pcrSelections[k].hash == s->hash) {
                why = "a PCR bank is listed twice";
            }
        }
    }
    if (why) {
        if (ret_why) {
            *ret_why = why;
        }
        return -EBADMSG;
    }
    return 0;
}

/* Mask of a bank in a selection, 0 when absent. */
static uint32_t mask_of(const TPML_PCR_SELECTION *sel, uint16_t hash) {
    for (uint32_t i = 0; i < sel->count && i < TPM2_NUM_PCR_BANKS; i++) {
        if (sel->pcrSelections[i].hash == hash) {
            return bank_mask(&sel->pcrSelections[i]);
        }
    }
    return 0;
}

bool tpm_pcr_selection_equal(const TPML_PCR_SELECTION *a, const TPML_PCR_SELECTION *b) {
    if (tpm_pcr_selection_check(a, NULL) < 0 || tpm_pcr_selection_check(b, NULL) < 0) {
        return false;
    }
    for (uint32_t i = 0; i < a->count; i++) {
        if (mask_of(b, a->pcrSelections[i].hash) != bank_mask(&a->pcrSelections[i])) {
            return false;
        }
    }
    for (uint32_t i = 0; i < b->count; i++) {
        if (mask_of(a, b->pcrSelections[i].hash) != bank_mask(&b->pcrSelections[i])) {
            return false;
        }
    }
    return true;
}

size_t tpm_pcr_selection_count(const TPML_PCR_SELECTION *sel) {
    size_t n = 0;

    for (uint32_t i = 0; i < sel->count && i < TPM2_NUM_PCR_BANKS; i++) {
        n += (size_t)__builtin_popcount(bank_mask(&sel->pcrSelections[i]));
    }
    return n;
}

int tpm_pcr_selection_parse(const char *s, TPML_PCR_SELECTION *ret) {
    TPML_PCR_SELECTION sel = {0};
    const char *p = s;

    if (!s || !*s) {
        return -EINVAL;
    }
    while (*p) {
        const char *colon = strchr(p, ':'), *end = strchr(p, '+');
        TPMS_PCR_SELECTION *b;
        enum hash_alg alg;

        if (!end) {
            end = p + strlen(p);
        }
        if (!colon || colon > end || sel.count == TPM2_NUM_PCR_BANKS ||
            hash_alg_from_name(p, (size_t)(colon - p), &alg) < 0 || !hash_alg_is_bank(alg)) {
            return -EINVAL;
        }
        b = &sel.pcrSelections[sel.count++];
        b->hash = hash_alg_tpm_id(alg);
        b->sizeofSelect = 3;
        for (const char *q = colon + 1; q < end;) {
            const char *comma = memchr(q, ',', (size_t)(end - q)), *dash;
            const char *item_end = comma ? comma : end;
            uint64_t lo, hi;
            dash = memchr(q, '-', (size_t)(item_end - q));
            if (parse_u64_n(q, (size_t)((dash ? dash : item_end) - q), &lo) < 0) {
                return -EINVAL;
            }
            hi = lo;
            if (dash && parse_u64_n(dash + 1, (size_t)(item_end - dash - 1), &hi) < 0) {
                return -EINVAL;
            }
            if (lo > hi || hi >= TPM_PCR_COUNT) {
                return -EINVAL;
            }
            for (uint64_t i = lo; i <= hi; i++) {
                b->pcrSelect[i / 8] |= (uint8_t)(1u << (i % 8));
            }
            q = comma ? comma + 1 : end;
            if (comma && q == end) {
                return -EINVAL;
            }
        }
        if (bank_mask(b) == 0) {
            return -EINVAL;
        }
        p = *end ? end + 1 : end;
        if (*end && !*p) {
            return -EINVAL;
        }
    }
    if (tpm_pcr_selection_check(&sel, NULL) < 0) {
        return -EINVAL;
    }
    *ret = sel;
    return 0;
}

char *tpm_pcr_selection_format(const TPML_PCR_SELECTION *sel, char *out, size_t outsz) {
    size_t o = 0;

    out[0] = 0;
    for (uint32_t i = 0; i < sel->count && i < TPM2_NUM_PCR_BANKS && o < outsz; i++) {
        const TPMS_PCR_SELECTION *s = &sel->pcrSelections[i];
        enum hash_alg alg;
        bool first = true;
        const char *name =
                hash_alg_from_tpm_id(s->hash, &alg) == 0 ? hash_alg_name(alg) : "unknown";
        o += (size_t)snprintf(out + o, outsz - o, "%s%s:", i ? "+" : "", name);
        for (unsigned pcr = 0; pcr < 32 && o < outsz; pcr++) {
            if (tpm_pcr_selected(s, pcr)) {
                o += (size_t)snprintf(out + o, outsz - o, "%s%u", first ? "" : ",", pcr);
                first = false;
            }
        }
    }
    return out;
}

const struct tpm_pcr_value *tpm_pcr_values_find(const struct tpm_pcr_values *vals, uint16_t alg,
                                                unsigned pcr) {
    for (size_t i = 0; i < vals->n; i++) {
        if (vals->v[i].alg == alg && vals->v[i].pcr == pcr) {
            return &vals->v[i];
        }
    }
    return NULL;
}

int tpm_pcr_values_set(struct tpm_pcr_values *vals, uint16_t alg, unsigned pcr,
                       const uint8_t *digest, size_t size) {
    struct tpm_pcr_value *v = (struct tpm_pcr_value *)tpm_pcr_values_find(vals, alg, pcr);
    enum hash_alg h;

    if (hash_alg_from_tpm_id(alg, &h) < 0 || size != hash_alg_size(h) || pcr >= TPM_PCR_COUNT) {
        return -EINVAL;
    }
    if (!v) {
        if (vals->n == TPM_PCR_VALUES_MAX) {
            return -E2BIG;
        }
        v = &vals->v[vals->n++];
    }
    v->alg = alg;
    v->pcr = (uint8_t)pcr;
    v->size = (uint8_t)size;
    memcpy(v->digest, digest, size);
    return 0;
}

int tpm_pcr_digest(const TPML_PCR_SELECTION *sel, const struct tpm_pcr_values *vals,
                   uint16_t hash_alg, uint8_t *out, size_t *ret_len) {
    uint8_t cat[TPM_PCR_VALUES_MAX * 64];
    enum hash_alg h;
    size_t n = 0;

    if (hash_alg_from_tpm_id(hash_alg, &h) < 0 || tpm_pcr_selection_check(sel, NULL) < 0) {
        return -EINVAL;
    }
    for (uint32_t i = 0; i < sel->count; i++) {
        const TPMS_PCR_SELECTION *s = &sel->pcrSelections[i];
        for (unsigned pcr = 0; pcr < TPM_PCR_COUNT; pcr++) {
            const struct tpm_pcr_value *v;
            if (!tpm_pcr_selected(s, pcr)) {
                continue;
            }
            v = tpm_pcr_values_find(vals, s->hash, pcr);
            if (!v) {
                return -ENOENT;
            }
            memcpy(cat + n, v->digest, v->size);
            n += v->size;
        }
    }
    hash_alg_digest(h, cat, n, out);
    *ret_len = hash_alg_size(h);
    return 0;
}
