/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_EVIDENCE_H
#define KIMA_VERIFIER_EVIDENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "engine-internal.h"
#include "pcr.h"
#include "quote-verify.h"
#include "replay.h"
#include "store.h"

/* The pure steps of an evidence round (engine_evidence in evidence.c runs
 * them in order: parse, admit, quote check, position, replay, judge,
 * settle, commit); the others need the engine's lock and are static there.
 * Unit test: test_evidence. */

#define EVIDENCE_PCR 10 /* the IMA PCR */

/* An evidence request, decoded: nothing in it is trusted yet. */
struct evidence {
    uint8_t *nonce, *attest, *sig, *ima;
    size_t nonce_len, attest_len, sig_len, ima_len;
    struct tpm_pcr_values pcrs; /* as the agent reports them */
    uint64_t from;              /* the index of the first entry in ima */
    uint32_t digest_size;       /* of the list's template digests: 20, 32, 48, 64 */
    char boot_id[65];
};

/* Parse (before any lock): nonce, quote {attest, signature}, pcrs, ima
 * {from, entries, digest_size (20 when absent)}, boot_id (optional).
 * 0; -E2BIG when entries are over ima_max bytes; -EBADMSG otherwise, with
 * what was wrong in err. *ev is to be freed with evidence_free either way. */
int evidence_parse(const json_t *req, size_t ima_max, struct evidence *ev, char *err, size_t errsz);
void evidence_free(struct evidence *ev);

/* Whether a verified quote shows a reboot since the node's last round: the
 * TPM's reset count moved (PCRs start from zero, and so does the list).
 * The agent's boot id is its word, not the TPM's: alone it restarts
 * nothing (a kexec that carries the list over keeps the TPM too), and a
 * TPM restart without a reset (PCRs back to zero, the list not) then fails
 * the replay, as it must: else a node could hide what it ran before. */
bool evidence_is_reboot(const struct tpm_quote_result *qr);

/* Whether an entry's template is one this verifier reads: a built-in
 * template, or a custom format listed in `custom` (comma-separated; NULL:
 * none) whose fields are all known. The template name is not in the
 * template digest, so whoever sends the list can rename an entry; an
 * unknown or unlisted name would let it move a pod's measurement out of
 * its pod. */
bool evidence_template_accepted(const struct ima_entry *ent, const char *custom);

/* What the incremental replay covered. */
struct evidence_replay {
    struct ima_replay_result res;                  /* entries and bytes the quote covers */
    unsigned banks;                                /* IMA_BANK() mask of the quoted banks */
    uint8_t pcr10[IMA_HASH_COUNT][IMA_DIGEST_MAX]; /* PCR 10 after them */
};

/* Replay the evidence's entries from the node's stored PCR 10 (and list
 * position) to the PCR 10 values it reports (checked against the quote
 * before): the first prefix that reaches them is covered. 0, or -EBADMSG
 * with the node failure's reason (no PCR 10 reported, a malformed entry, a
 * template digest that does not match, no prefix that reaches the quote),
 * or -ENOMEM. */
int evidence_replay(const struct evidence *ev, const struct node_record *n,
                    struct evidence_replay *ret, char *reason, size_t reasonsz);

#endif
