/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_TPM_DEVICE_H
#define KIMA_TPM_DEVICE_H

#include <stdbool.h>

#include <tss2/tss2_esys.h>

#include "macro.h"

/* The agent's connection to its TPM, through the TCTI loader. Every Esys
 * call goes through this module's wrappers, which convert a TSS2_RC once:
 * the decoded reason is logged and a negative errno returned. */

#define TPM_TCTI_DEFAULT "device:/dev/tpmrm0"

struct tpm {
    ESYS_CONTEXT *esys;
    TSS2_TCTI_CONTEXT *tcti;
};

/* Open the TPM named by a TCTI string ("device:/dev/tpmrm0",
 * "swtpm:host=127.0.0.1,port=2321", "swtpm:path=/run/swtpm.sock"; NULL means
 * the default) and send Startup(CLEAR), which is fine when already done.
 * The caller frees with tpm_close(). 0 or a negative errno. */
int tpm_open(const char *tcti, struct tpm **ret_tpm);
void tpm_close(struct tpm *t);
DEFINE_CLEANUP_FUNC(struct tpm, tpm_close)

/* Convert a TSS2_RC: 0 for success; otherwise log "<what>: <decoded rc>" at
 * error level and return -ENOENT for a handle or NV index that does not
 * exist, -EACCES for an authorization failure, -EIO for anything else. */
int tpm_rc(TSS2_RC rc, const char *what);

/* Flush a transient object or session handle; ESYS_TR_NONE is fine. Logs a
 * failure but returns nothing: teardown goes on. */
void tpm_flush(struct tpm *t, ESYS_TR handle);

/* Start a policy session satisfying the TCG EK's authorization policy
 * (PolicySecret on the endorsement hierarchy, empty auth). The session ends
 * with the command that uses it; on a failure before that, flush it. */
int tpm_ek_policy_session(struct tpm *t, ESYS_TR *ret_session);

#endif
