/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the verifier's CRL reader (verifier/crl.c), PEM with
 * several CRLs or one DER, up to the signature check, which fails here (no
 * trusted CA). The seeds in corpus/crl were made with kimactl:
 *   kimactl certs init --out p --node a --node b
 *   kimactl certs revoke --out p                 (an empty CRL)
 *   kimactl certs revoke --out p --node a --node b
 *   openssl crl -in p/crl.pem -outform DER       (the same in DER)
 * and the PEM of two such PKIs' CRLs concatenated. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "crl-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct crl_snapshot *snap = NULL;
    char why[512];
    int r = crl_snapshot_parse(data, size, NULL, 0, &snap, why, sizeof(why));

    /* Without a CA nothing may be accepted, and every refusal says why. */
    if (r == 0 || snap || !why[0] ||
        (r != -EBADMSG && r != -E2BIG && r != -EKEYREJECTED && r != -ENOMEM)) {
        abort();
    }
    return 0;
}
