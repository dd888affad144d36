/* SPDX-License-Identifier: Apache-2.0 */
#include "quote-verify.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/ecdsa.h>
#include <openssl/rsa.h>
#include <tss2/tss2_mu.h>

#include "hash-alg.h"

const char *tpm_quote_check_name(enum tpm_quote_check c) {
    static const char *const names[] = {
            [TPM_QUOTE_OK] = "ok",
            [TPM_QUOTE_MALFORMED] = "malformed",
            [TPM_QUOTE_MAGIC] = "magic",
            [TPM_QUOTE_TYPE] = "type",
            [TPM_QUOTE_SIG_SCHEME] = "signature-scheme",
            [TPM_QUOTE_SIGNATURE] = "signature",
            [TPM_QUOTE_NONCE] = "nonce",
            [TPM_QUOTE_SELECTION] = "pcr-selection",
            [TPM_QUOTE_PCR_VALUES] = "pcr-values",
            [TPM_QUOTE_PCR_DIGEST] = "pcr-digest",
            [TPM_QUOTE_RESET_BACK] = "reset-count",
            [TPM_QUOTE_RESTART_BACK] = "restart-count",
            [TPM_QUOTE_CLOCK_BACK] = "clock",
    };
    return (unsigned)c < sizeof(names) / sizeof(names[0]) ? names[c] : "?";
}

__attribute__((format(printf, 3, 4))) static int
fail(struct tpm_quote_result *r, enum tpm_quote_check c, const char *fmt, ...) {
    va_list ap;

    r->failed = c;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof(r->why), fmt, ap);
    va_end(ap);
    return 0;
}

enum tpm_quote_check tpm_attest_decode(const uint8_t *buf, size_t len, TPMS_ATTEST *ret,
                                       const char **ret_why) {
    uint32_t magic;
    uint16_t type;
    size_t off = 0;

    /* The header first, so a wrong magic or type is named as such. */
    if (!buf || len < 6) {
        *ret_why = "attestation data shorter than its header";
        return TPM_QUOTE_MALFORMED;
    }
    magic = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
    type = (uint16_t)(buf[4] << 8 | buf[5]);
    if (magic != TPM2_GENERATED_VALUE) {
        *ret_why = "magic is not TPM_GENERATED_VALUE: not made by a TPM";
        return TPM_QUOTE_MAGIC;
    }
    if (type != TPM2_ST_ATTEST_QUOTE) {
        *ret_why = "attestation type is not TPM_ST_ATTEST_QUOTE";
        return TPM_QUOTE_TYPE;
    }
    memset(ret, 0, sizeof(*ret));
    if (Tss2_MU_TPMS_ATTEST_Unmarshal(buf, len, &off, ret) != TSS2_RC_SUCCESS || off != len) {
        *ret_why = "attestation data is not a well-formed TPMS_ATTEST";
        return TPM_QUOTE_MALFORMED;
    }
    return TPM_QUOTE_OK;
}

/* DER ECDSA-Sig-Value from the TPM's raw r and s. */
static int ecdsa_der(const TPMS_SIGNATURE_ECDSA *e, uint8_t *out, size_t outsz, size_t *ret_len) {
    ECDSA_SIG *s = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(e->signatureR.buffer, e->signatureR.size, NULL);
    BIGNUM *sv = BN_bin2bn(e->signatureS.buffer, e->signatureS.size, NULL);
    int n = -1;

    if (s && r && sv && ECDSA_SIG_set0(s, r, sv)) {
        r = sv = NULL; /* owned by s */
        if (i2d_ECDSA_SIG(s, NULL) <= (int)outsz) {
            uint8_t *p = out;
            n = i2d_ECDSA_SIG(s, &p);
        }
    }
    BN_free(r);
    BN_free(sv);
    ECDSA_SIG_free(s);
    if (n <= 0) {
        return -ENOMEM;
    }
    *ret_len = (size_t)n;
    return 0;
}

/* A signature as EVP_PKEY_verify takes it. `bytes` may point into `der`. */
struct sig_input {
    TPMI_ALG_HASH hash;
    const uint8_t *bytes;
    size_t len;
    uint8_t der[256]; /* ECDSA's r and s as a DER ECDSA-Sig-Value */
};

/* The signature's hash and bytes, when its algorithm is one the AK's key
 * makes. */
static void signature_input(const struct tpm_verify_key *ak, const TPMT_SIGNATURE *sig,
                            struct sig_input *ret, struct tpm_quote_result *res) {
    int base = EVP_PKEY_get_base_id(ak->pkey);

    switch (sig->sigAlg) {
    case TPM2_ALG_RSASSA:
    case TPM2_ALG_RSAPSS:
        if (base != EVP_PKEY_RSA) {
            fail(res, TPM_QUOTE_SIG_SCHEME, "RSA signature but the AK is not an RSA key");
            return;
        }
        ret->hash = sig->signature.rsassa.hash;
        ret->bytes = sig->signature.rsassa.sig.buffer;
        ret->len = sig->signature.rsassa.sig.size;
        if (ret->len != (size_t)EVP_PKEY_get_size(ak->pkey)) {
            fail(res, TPM_QUOTE_SIGNATURE, "RSA signature of %zu bytes for a %d-byte key", ret->len,
                 EVP_PKEY_get_size(ak->pkey));
        }
        return;
    case TPM2_ALG_ECDSA:
        if (base != EVP_PKEY_EC) {
            fail(res, TPM_QUOTE_SIG_SCHEME, "ECDSA signature but the AK is not an ECC key");
            return;
        }
        ret->hash = sig->signature.ecdsa.hash;
        if (ecdsa_der(&sig->signature.ecdsa, ret->der, sizeof(ret->der), &ret->len) < 0) {
            fail(res, TPM_QUOTE_SIGNATURE, "ECDSA signature values are not usable");
            return;
        }
        ret->bytes = ret->der;
        return;
    default:
        fail(res, TPM_QUOTE_SIG_SCHEME, "signature algorithm 0x%04x is not RSASSA, RSAPSS or ECDSA",
             sig->sigAlg);
    }
}

/* A restricted AK signs with its own scheme only. */
static void check_ak_scheme(const struct tpm_verify_key *ak, const TPMT_SIGNATURE *sig,
                            TPMI_ALG_HASH hash, struct tpm_quote_result *res) {
    const TPMT_PUBLIC *p = &ak->pub;
    TPMI_ALG_SIG_SCHEME want;
    TPMI_ALG_HASH want_hash;

    if (!ak->has_public) {
        return;
    }
    want = p->type == TPM2_ALG_RSA ? p->parameters.rsaDetail.scheme.scheme
                                   : p->parameters.eccDetail.scheme.scheme;
    want_hash = p->type == TPM2_ALG_RSA ? p->parameters.rsaDetail.scheme.details.anySig.hashAlg
                                        : p->parameters.eccDetail.scheme.details.anySig.hashAlg;
    if (want != TPM2_ALG_NULL && (sig->sigAlg != want || hash != want_hash)) {
        fail(res, TPM_QUOTE_SIG_SCHEME,
             "signature scheme 0x%04x/0x%04x is not the AK's 0x%04x/0x%04x", sig->sigAlg, hash,
             want, want_hash);
    }
}

/* Whether `in` signs attest's digest under pkey, with the padding of the
 * algorithm for RSA keys. */
static bool signature_verifies(EVP_PKEY *pkey, TPMI_ALG_SIG_SCHEME sig_alg, const EVP_MD *md,
                               const uint8_t *attest, size_t len, const struct sig_input *in) {
    uint8_t digest[EVP_MAX_MD_SIZE];
    size_t dlen = (size_t)EVP_MD_get_size(md);
    EVP_PKEY_CTX *ctx;
    bool ok;

    EVP_Digest(attest, len, digest, NULL, md, NULL);
    ctx = EVP_PKEY_CTX_new(pkey, NULL);
    ok = ctx && EVP_PKEY_verify_init(ctx) > 0 && EVP_PKEY_CTX_set_signature_md(ctx, md) > 0;
    if (ok && sig_alg == TPM2_ALG_RSASSA) {
        ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0;
    } else if (ok && sig_alg == TPM2_ALG_RSAPSS) {
        /* TPMs use salt = hash length (swtpm) or the maximum (some
         * hardware); PSS stays sound with either, so accept both. */
        ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) > 0 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_AUTO) > 0;
    }
    ok = ok && EVP_PKEY_verify(ctx, in->bytes, in->len, digest, dlen) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

static void check_signature(const struct tpm_verify_key *ak, const uint8_t *attest, size_t len,
                            const TPMT_SIGNATURE *sig, struct tpm_quote_result *res) {
    struct sig_input in;
    enum hash_alg alg;
    const EVP_MD *md;

    signature_input(ak, sig, &in, res);
    if (res->failed) {
        return;
    }
    check_ak_scheme(ak, sig, in.hash, res);
    if (res->failed) {
        return;
    }
    md = hash_alg_from_tpm_id(in.hash, &alg) == 0 ? hash_alg_evp_md(alg) : NULL;
    if (!md) {
        fail(res, TPM_QUOTE_SIG_SCHEME, "signature hash 0x%04x is not supported", in.hash);
        return;
    }
    if (!signature_verifies(ak->pkey, sig->sigAlg, md, attest, len, &in)) {
        fail(res, TPM_QUOTE_SIGNATURE, "signature does not verify with the AK");
    }
}

static void check_pcrs(const TPMS_QUOTE_INFO *q, const struct tpm_quote_expect *x,
                       TPMI_ALG_HASH hash, struct tpm_quote_result *res) {
    uint8_t digest[64];
    size_t dlen;
    const char *why = "";
    char want[128], got[128];

    if (tpm_pcr_selection_check(&q->pcrSelect, &why) < 0) {
        fail(res, TPM_QUOTE_SELECTION, "quoted PCR selection is malformed: %s", why);
        return;
    }
    if (tpm_pcr_selection_count(&q->pcrSelect) == 0) {
        fail(res, TPM_QUOTE_SELECTION, "quoted PCR selection is empty");
        return;
    }
    if (!tpm_pcr_selection_equal(&q->pcrSelect, x->selection)) {
        fail(res, TPM_QUOTE_SELECTION, "quoted PCRs %s are not the requested %s",
             tpm_pcr_selection_format(&q->pcrSelect, got, sizeof(got)),
             tpm_pcr_selection_format(x->selection, want, sizeof(want)));
        return;
    }
    /* Every reported value must be covered by the quote, and vice versa. */
    if (!x->pcrs || x->pcrs->n != tpm_pcr_selection_count(&q->pcrSelect)) {
        fail(res, TPM_QUOTE_PCR_VALUES, "%zu PCR values reported for %zu quoted PCRs",
             x->pcrs ? x->pcrs->n : 0, tpm_pcr_selection_count(&q->pcrSelect));
        return;
    }
    if (tpm_pcr_digest(&q->pcrSelect, x->pcrs, hash, digest, &dlen) < 0) {
        fail(res, TPM_QUOTE_PCR_VALUES, "a quoted PCR has no reported value");
        return;
    }
    if (q->pcrDigest.size != dlen || memcmp(q->pcrDigest.buffer, digest, dlen) != 0) {
        fail(res, TPM_QUOTE_PCR_DIGEST, "pcrDigest does not match the reported PCR values");
    }
}

static void check_clock(const TPMS_CLOCK_INFO *c, const struct tpm_clock_state *prev,
                        struct tpm_quote_result *res) {
    /* safe == NO after a power loss without TPM2_Shutdown: Clock restarts
     * from its last NV copy, so a larger value may have been reported
     * before. That matters only across the reset it comes with, which the
     * resetCount shows; within one reset Clock still only advances. Failing
     * it would turn every node that lost power untrusted. */
    res->unsafe = c->safe != TPM2_YES;
    if (!prev) {
        return;
    }
    if (c->resetCount < prev->reset_count) {
        fail(res, TPM_QUOTE_RESET_BACK, "resetCount went back from %" PRIu32 " to %" PRIu32,
             prev->reset_count, c->resetCount);
        return;
    }
    if (c->resetCount > prev->reset_count) {
        /* A new reset epoch: Clock may be below the last quote's (restored
         * from NV). The nonce, not the clock, makes the quote fresh. */
        res->reset = true;
        return;
    }
    if (c->restartCount < prev->restart_count) {
        fail(res, TPM_QUOTE_RESTART_BACK, "restartCount went back from %" PRIu32 " to %" PRIu32,
             prev->restart_count, c->restartCount);
        return;
    } else if (c->restartCount > prev->restart_count) {
        res->restart = true;
    }
    /* Within one reset Clock only advances: an old or replayed quote cannot
     * show a later time than the last one accepted. */
    if (c->clock <= prev->clock) {
        fail(res, TPM_QUOTE_CLOCK_BACK,
             "clock %" PRIu64 " ms is not after the previous quote's %" PRIu64 " ms (replayed?)",
             c->clock, prev->clock);
    }
}

int tpm_quote_verify(const struct tpm_verify_key *ak, const uint8_t *attest, size_t attest_len,
                     const uint8_t *sig, size_t sig_len, const struct tpm_quote_expect *x,
                     struct tpm_quote_result *res) {
    TPMT_SIGNATURE s;
    const char *why = "";
    size_t off = 0;
    enum tpm_quote_check c;
    TPMI_ALG_HASH hash;

    if (!ak || !ak->pkey || !x || !res || (!x->nonce && x->nonce_len)) {
        return -EINVAL;
    }
    memset(res, 0, sizeof(*res));
    c = tpm_attest_decode(attest, attest_len, &res->attest, &why);
    if (c != TPM_QUOTE_OK) {
        return fail(res, c, "%s", why);
    }
    res->decoded = true;
    res->clock.clock = res->attest.clockInfo.clock;
    res->clock.reset_count = res->attest.clockInfo.resetCount;
    res->clock.restart_count = res->attest.clockInfo.restartCount;
    memset(&s, 0, sizeof(s));
    if (!sig || Tss2_MU_TPMT_SIGNATURE_Unmarshal(sig, sig_len, &off, &s) != TSS2_RC_SUCCESS ||
        off != sig_len) {
        return fail(res, TPM_QUOTE_MALFORMED, "signature is not a well-formed TPMT_SIGNATURE");
    }
    check_signature(ak, attest, attest_len, &s, res);
    if (res->failed) {
        return 0;
    }
    if (res->attest.extraData.size != x->nonce_len ||
        memcmp(res->attest.extraData.buffer, x->nonce, x->nonce_len) != 0) {
        return fail(res, TPM_QUOTE_NONCE, "extraData (%u bytes) is not the nonce (%zu bytes)",
                    res->attest.extraData.size, x->nonce_len);
    }
    /* pcrDigest is made with the signing scheme's hash (tpm2-tools does the same). */
    hash = s.signature.any.hashAlg;
    if (x->selection) {
        check_pcrs(&res->attest.attested.quote, x, hash, res);
        if (res->failed) {
            return 0;
        }
    }
    check_clock(&res->attest.clockInfo, x->previous, res);
    return 0;
}
