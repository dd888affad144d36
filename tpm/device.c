/* SPDX-License-Identifier: Apache-2.0 */
#include "device.h"

#include <errno.h>
#include <stdlib.h>

#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "log.h"

int tpm_rc(TSS2_RC rc, const char *what) {
    TSS2_RC base;

    if (rc == TSS2_RC_SUCCESS) {
        return 0;
    }
    log_error("%s: %s (0x%x)", what, Tss2_RC_Decode(rc), rc);
    /* Format-one codes carry a handle/session/parameter number: strip it. */
    base = (rc & TPM2_RC_FMT1) ? (rc & (0xfff & ~TPM2_RC_N_MASK)) : (rc & 0xfff);
    if (base == TPM2_RC_HANDLE || base == TPM2_RC_REFERENCE_H0) {
        return -ENOENT;
    }
    if (base == TPM2_RC_AUTH_FAIL || base == TPM2_RC_BAD_AUTH || base == TPM2_RC_POLICY_FAIL) {
        return -EACCES;
    }
    return -EIO;
}

void tpm_flush(struct tpm *t, ESYS_TR handle) {
    if (!t || handle == ESYS_TR_NONE) {
        return;
    }
    (void)tpm_rc(Esys_FlushContext(t->esys, handle), "flushing a TPM handle");
}

int tpm_open(const char *tcti, struct tpm **ret_tpm) {
    struct tpm *t;
    TSS2_RC rc;
    int r;

    if (!ret_tpm) {
        return -EINVAL;
    }
    /* tpm2-tss prints its own warnings for every failed command, including
     * the expected ones (probing for a persistent EK). Each failure is
     * decoded and logged once here instead; TSS2_LOG set by the operator
     * still wins. */
    setenv("TSS2_LOG", "all+none", 0);
    t = calloc(1, sizeof(*t));
    if (!t) {
        return -ENOMEM;
    }
    r = tpm_rc(Tss2_TctiLdr_Initialize(tcti ? tcti : TPM_TCTI_DEFAULT, &t->tcti),
               "opening the TPM (TCTI)");
    if (r < 0) {
        free(t);
        return r == -ENOENT ? -ENODEV : r;
    }
    r = tpm_rc(Esys_Initialize(&t->esys, t->tcti, NULL), "initializing ESAPI");
    if (r < 0) {
        tpm_close(t);
        return r;
    }
    rc = Esys_Startup(t->esys, TPM2_SU_CLEAR);
    /* TPM2_RC_INITIALIZE: the TPM was started already (the firmware, the OS). */
    if (rc != TSS2_RC_SUCCESS && (rc & 0xfff) != TPM2_RC_INITIALIZE) {
        r = tpm_rc(rc, "TPM2_Startup");
        tpm_close(t);
        return r;
    }
    *ret_tpm = t;
    return 0;
}

void tpm_close(struct tpm *t) {
    if (!t) {
        return;
    }
    if (t->esys) {
        Esys_Finalize(&t->esys);
    }
    if (t->tcti) {
        Tss2_TctiLdr_Finalize(&t->tcti);
    }
    free(t);
}

int tpm_ek_policy_session(struct tpm *t, ESYS_TR *ret_session) {
    static const TPMT_SYM_DEF sym = {.algorithm = TPM2_ALG_NULL};
    ESYS_TR session = ESYS_TR_NONE;
    int r;

    r = tpm_rc(Esys_StartAuthSession(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                     ESYS_TR_NONE, ESYS_TR_NONE, NULL, TPM2_SE_POLICY, &sym,
                                     TPM2_ALG_SHA256, &session),
               "starting the EK policy session");
    if (r < 0) {
        return r;
    }
    r = tpm_rc(Esys_PolicySecret(t->esys, ESYS_TR_RH_ENDORSEMENT, session, ESYS_TR_PASSWORD,
                                 ESYS_TR_NONE, ESYS_TR_NONE, NULL, NULL, NULL, 0, NULL, NULL),
               "PolicySecret(endorsement) for the EK");
    if (r == 0) {
        /* One command only: the TPM closes it after a successful use. */
        r = tpm_rc(Esys_TRSess_SetAttributes(t->esys, session, 0, TPMA_SESSION_CONTINUESESSION),
                   "setting the EK session's attributes");
    }
    if (r < 0) {
        tpm_flush(t, session);
        return r;
    }
    *ret_session = session;
    return 0;
}
