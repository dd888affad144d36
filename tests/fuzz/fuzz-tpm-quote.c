/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the verifier's TPM parsers. The first byte picks one:
 * 0 TPMS_ATTEST, 1 TPM2B_PUBLIC (to an OpenSSL key, name, AK rules),
 * 2 a whole quote check (attest and signature split by the second byte),
 * 3 a PCR selection string. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pcr.h"
#include "pubkey.h"
#include "quote-verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static struct tpm_verify_key key;
    static TPML_PCR_SELECTION sel;
    static struct tpm_pcr_values vals;

    if (size < 2) {
        return 0;
    }
    if (!key.pkey) {
        setenv("TSS2_LOG", "all+none", 0);
        /* A fixed RSA key for the signature path; its checks must fail
         * cleanly, whatever the input. */
        key.pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
        tpm_pcr_selection_parse("sha256:10", &sel);
        tpm_pcr_values_set(&vals, TPM2_ALG_SHA256, 10, (const uint8_t[32]){0}, 32);
    }
    switch (data[0] % 4) {
    case 0: {
        TPMS_ATTEST a;
        const char *why;
        tpm_attest_decode(data + 1, size - 1, &a, &why);
        break;
    }
    case 1: {
        TPM2B_PUBLIC pub;
        if (tpm_public_unmarshal(data + 1, size - 1, &pub) == 0) {
            EVP_PKEY *k = NULL;
            TPM2B_NAME name;
            const char *why;
            tpm_public_to_pkey(&pub.publicArea, &k);
            EVP_PKEY_free(k);
            tpm_public_name(&pub.publicArea, &name);
            tpm_ak_public_check(&pub.publicArea, &why);
        }
        break;
    }
    case 2: {
        size_t split = 1 + (size_t)data[1] * (size - 2) / 255;
        struct tpm_quote_result res;
        struct tpm_clock_state prev = {.clock = 1, .reset_count = 1, .restart_count = 1};
        struct tpm_quote_expect e = {.nonce = (const uint8_t *)"nonce",
                                     .nonce_len = 5,
                                     .selection = &sel,
                                     .pcrs = &vals,
                                     .previous = &prev};
        if (split > size) {
            split = size;
        }
        tpm_quote_verify(&key, data + 2, split - 1 < size - 2 ? split - 1 : size - 2,
                         data + 1 + split, size - 1 - split, &e, &res);
        if (res.failed == TPM_QUOTE_OK) {
            abort(); /* nothing random may pass as signed by this key */
        }
        break;
    }
    case 3: {
        char s[256];
        TPML_PCR_SELECTION p;
        size_t n = size - 1 < sizeof(s) - 1 ? size - 1 : sizeof(s) - 1;
        memcpy(s, data + 1, n);
        s[n] = 0;
        if (tpm_pcr_selection_parse(s, &p) == 0 && tpm_pcr_selection_check(&p, NULL) < 0) {
            abort(); /* a parsed selection is always valid */
        }
        break;
    }
    }
    return 0;
}
