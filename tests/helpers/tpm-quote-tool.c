/* SPDX-License-Identifier: Apache-2.0 */
/* Test helper: make a quote with kima's agent-side code and write it in the
 * file formats tpm2-tools reads, so tpm2_checkquote can judge it.
 *
 *   tpm-quote-tool TCTI rsa|ecc NONCE_HEX SELECTION OUTDIR
 *
 * OUTDIR gets ak.pub (TPM2B_PUBLIC), ak.pem, attest (TPMS_ATTEST), sig
 * (TPMT_SIGNATURE), pcrs.bin (values concatenated in selection order, as
 * tpm2_pcrread -o writes) and pcrs.args (one --pcr BANK:INDEX=HEX a line). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <tss2/tss2_mu.h>

#include "hash-alg.h"
#include "hex.h"
#include "keys.h"
#include "pubkey.h"
#include "quote.h"

static int write_file(const char *dir, const char *name, const void *data, size_t len) {
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    struct tpm *t = NULL;
    struct tpm_key ek = TPM_KEY_INIT, ak = TPM_KEY_INIT;
    struct tpm_quote q;
    TPML_PCR_SELECTION sel;
    uint8_t nonce[64], pub[sizeof(TPM2B_PUBLIC)], cat[96 * 64];
    size_t off = 0, n = 0;
    char path[4096], line[256];
    EVP_PKEY *pkey = NULL;
    FILE *f;
    int nlen;

    if (argc != 6) {
        fprintf(stderr, "usage: tpm-quote-tool TCTI rsa|ecc NONCE_HEX SELECTION OUTDIR\n");
        return 64;
    }
    nlen = hex_decode(argv[3], strlen(argv[3]), nonce, sizeof(nonce));
    if (nlen < 0 || tpm_pcr_selection_parse(argv[4], &sel) < 0) {
        fprintf(stderr, "bad nonce or selection\n");
        return 64;
    }
    if (tpm_open(argv[1], &t) < 0 || tpm_ek_load(t, TPM_KEY_RSA, &ek) < 0 ||
        tpm_ak_create(t, &ek, strcmp(argv[2], "ecc") == 0 ? TPM_KEY_ECC : TPM_KEY_RSA, NULL, &ak) <
                0 ||
        tpm_quote(t, &ak, nonce, (size_t)nlen, &sel, &q) < 0) {
        return 1;
    }
    if (Tss2_MU_TPM2B_PUBLIC_Marshal(&ak.public, pub, sizeof(pub), &off) != TSS2_RC_SUCCESS ||
        tpm_public_to_pkey(&ak.public.publicArea, &pkey) < 0) {
        return 1;
    }
    snprintf(path, sizeof(path), "%s/ak.pem", argv[5]);
    f = fopen(path, "w");
    if (!f || !PEM_write_PUBKEY(f, pkey) || fclose(f) != 0) {
        return 1;
    }
    snprintf(path, sizeof(path), "%s/pcrs.args", argv[5]);
    f = fopen(path, "w");
    if (!f) {
        return 1;
    }
    for (uint32_t b = 0; b < sel.count; b++) {
        for (unsigned pcr = 0; pcr < TPM_PCR_COUNT; pcr++) {
            const struct tpm_pcr_value *v;
            enum hash_alg alg;
            char hex[129];
            if (!tpm_pcr_selected(&sel.pcrSelections[b], pcr)) {
                continue;
            }
            v = tpm_pcr_values_find(&q.pcrs, sel.pcrSelections[b].hash, pcr);
            hash_alg_from_tpm_id(v->alg, &alg);
            memcpy(cat + n, v->digest, v->size);
            n += v->size;
            snprintf(line, sizeof(line), "--pcr %s:%u=%s\n", hash_alg_name(alg), pcr,
                     hex_encode(v->digest, v->size, hex));
            fputs(line, f);
        }
    }
    fclose(f);
    if (write_file(argv[5], "ak.pub", pub, off) < 0 ||
        write_file(argv[5], "attest", q.attest, q.attest_len) < 0 ||
        write_file(argv[5], "sig", q.sig, q.sig_len) < 0 ||
        write_file(argv[5], "pcrs.bin", cat, n) < 0) {
        return 1;
    }
    EVP_PKEY_free(pkey);
    tpm_key_release(t, &ak);
    tpm_key_release(t, &ek);
    tpm_close(t);
    return 0;
}
