/* SPDX-License-Identifier: Apache-2.0 */
#include "quote.h"

#include <errno.h>
#include <string.h>

#include <tss2/tss2_mu.h>

#include "log.h"
#include "quote-verify.h"

#define QUOTE_TRIES 5

int tpm_pcr_read(struct tpm *t, const TPML_PCR_SELECTION *sel, struct tpm_pcr_values *ret) {
    TPML_PCR_SELECTION left = *sel;
    struct tpm_pcr_values vals = {0};

    if (tpm_pcr_selection_check(sel, NULL) < 0) {
        return -EINVAL;
    }
    while (tpm_pcr_selection_count(&left) > 0) {
        TPML_PCR_SELECTION *out_sel = NULL;
        TPML_DIGEST *digests = NULL;
        size_t k = 0;
        int r;

        r = tpm_rc(Esys_PCR_Read(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &left, NULL,
                                 &out_sel, &digests),
                   "TPM2_PCR_Read");
        if (r < 0) {
            return r;
        }
        /* The digests come in the order of the returned selection; take
         * them off what is left to read. */
        for (uint32_t b = 0; b < out_sel->count && r == 0; b++) {
            TPMS_PCR_SELECTION *s = &out_sel->pcrSelections[b];
            for (unsigned pcr = 0; pcr < TPM_PCR_COUNT && r == 0; pcr++) {
                if (!tpm_pcr_selected(s, pcr)) {
                    continue;
                }
                if (k >= digests->count) {
                    r = -EIO;
                    break;
                }
                r = tpm_pcr_values_set(&vals, s->hash, pcr, digests->digests[k].buffer,
                                       digests->digests[k].size);
                k++;
                for (uint32_t i = 0; i < left.count; i++) {
                    if (left.pcrSelections[i].hash == s->hash) {
                        left.pcrSelections[i].pcrSelect[pcr / 8] &= (uint8_t) ~(1u << (pcr % 8));
                    }
                }
            }
        }
        Esys_Free(out_sel);
        Esys_Free(digests);
        if (r < 0) {
            return r;
        }
        if (k == 0) {
            /* The TPM returned nothing: a bank it does not have. */
            log_error("the TPM does not return the selected PCRs (bank not active?)");
            return -ENOENT;
        }
    }
    *ret = vals;
    return 0;
}

int tpm_quote(struct tpm *t, const struct tpm_key *ak, const uint8_t *nonce, size_t nonce_len,
              const TPML_PCR_SELECTION *sel, struct tpm_quote *ret) {
    static const TPMT_SIG_SCHEME key_scheme = {.scheme = TPM2_ALG_NULL};
    TPM2B_DATA qualifying = {0};

    if (!t || !ak || !sel || !ret || nonce_len > sizeof(qualifying.buffer)) {
        return -EINVAL;
    }
    qualifying.size = (UINT16)nonce_len;
    memcpy(qualifying.buffer, nonce, nonce_len);

    for (int attempt = 0; attempt < QUOTE_TRIES; attempt++) {
        TPM2B_ATTEST *quoted = NULL;
        TPMT_SIGNATURE *sig = NULL;
        TPMS_ATTEST attest;
        const char *why;
        uint8_t digest[64];
        size_t dlen, off = 0;
        int r;

        r = tpm_rc(Esys_Quote(t->esys, ak->handle, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                              &qualifying, &key_scheme, sel, &quoted, &sig),
                   "TPM2_Quote");
        if (r < 0) {
            return r;
        }
        memcpy(ret->attest, quoted->attestationData, quoted->size);
        ret->attest_len = quoted->size;
        if (Tss2_MU_TPMT_SIGNATURE_Marshal(sig, ret->sig, sizeof(ret->sig), &off) !=
            TSS2_RC_SUCCESS) {
            r = -EIO;
        }
        ret->sig_len = off;
        if (r == 0 &&
            tpm_attest_decode(ret->attest, ret->attest_len, &attest, &why) != TPM_QUOTE_OK) {
            log_error("the TPM's quote does not decode: %s", why);
            r = -EIO;
        }
        if (r == 0) {
            r = tpm_pcr_read(t, sel, &ret->pcrs);
        }
        if (r == 0) {
            r = tpm_pcr_digest(&attest.attested.quote.pcrSelect, &ret->pcrs,
                               sig->signature.any.hashAlg, digest, &dlen);
        }
        Esys_Free(quoted);
        Esys_Free(sig);
        if (r < 0) {
            return r;
        }
        if (attest.attested.quote.pcrDigest.size == dlen &&
            memcmp(attest.attested.quote.pcrDigest.buffer, digest, dlen) == 0) {
            return 0;
        }
        log_debug("PCRs changed between the quote and the read; quoting again");
    }
    log_error("PCRs kept changing while quoting (%d tries)", QUOTE_TRIES);
    return -EAGAIN;
}

int tpm_pcr_banks(struct tpm *t, unsigned pcr, uint16_t *algs, size_t max) {
    TPMS_CAPABILITY_DATA *cap = NULL;
    size_t n = 0;
    int r;

    if (!t || pcr >= TPM_PCR_COUNT || !algs) {
        return -EINVAL;
    }
    r = tpm_rc(Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_PCRS,
                                  0, 1, NULL, &cap),
               "TPM2_GetCapability(PCRS)");
    if (r < 0) {
        return r;
    }
    for (UINT32 i = 0; i < cap->data.assignedPCR.count && i < TPM2_NUM_PCR_BANKS; i++) {
        const TPMS_PCR_SELECTION *s = &cap->data.assignedPCR.pcrSelections[i];
        if (tpm_pcr_selected(s, pcr) && n < max) {
            algs[n++] = s->hash;
        }
    }
    Esys_Free(cap);
    return (int)n;
}

int tpm_pcr_extend(struct tpm *t, unsigned pcr, const struct tpm_pcr_values *digests) {
    TPML_DIGEST_VALUES v = {0};

    if (!t || pcr >= TPM_PCR_COUNT || !digests || digests->n == 0 ||
        digests->n > TPM2_NUM_PCR_BANKS) {
        return -EINVAL;
    }
    for (size_t i = 0; i < digests->n; i++) {
        v.digests[i].hashAlg = digests->v[i].alg;
        memcpy(&v.digests[i].digest, digests->v[i].digest, digests->v[i].size);
    }
    v.count = (UINT32)digests->n;
    return tpm_rc(Esys_PCR_Extend(t->esys, ESYS_TR_PCR0 + pcr, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                  ESYS_TR_NONE, &v),
                  "TPM2_PCR_Extend");
}
