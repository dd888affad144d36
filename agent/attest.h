/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_AGENT_ATTEST_H
#define KIMA_AGENT_ATTEST_H

#include <stdbool.h>

#include "agent.h"

/* The agent's side of the protocol (docs/design.md section 3): the keys,
 * registration and activation, and one attestation round. Every request
 * goes through client_post(), the module boundary the unit tests stub. */

/* The longest node name: a Kubernetes node name (a DNS-1123 subdomain) has
 * at most 253 bytes, and the verifier takes no longer one. */
#define AGENT_NODE_NAME_MAX 253

/* Open the TPM at cfg->tcti, load the EK, load the AK from
 * state-dir/ak.blob or create one (cfg->ak_alg), connect the client and
 * take the saved list position of this boot. *ret_registered is set when
 * the AK was known already (the verifier has the node). `cfg` is borrowed
 * for the life of `a`. 0, or a negative errno (logged) with everything
 * released. Release with agent_close(). */
int agent_open(const struct agent_config *cfg, struct agent *a, bool *ret_registered);
/* Release the keys, the TPM, the client and the batch index. */
void agent_close(struct agent *a);

/* Registration (EK and AK public, the EK certificate when the TPM has one)
 * and activation (TPM2_ActivateCredential on the verifier's credential, an
 * HMAC proof over the node name and the AK name). 0, -EACCES when the
 * verifier refused, -EBADMSG for a malformed answer, -EIO when the TPM
 * failed, -ENAMETOOLONG for a node name over AGENT_NODE_NAME_MAX (nothing
 * sent), or the client's negative errno. */
int agent_register(struct agent *a);

/* One round: a challenge, a quote, the list from the verifier's next
 * index (from entry 0 when the list restarted), the evidence, and the
 * position the verifier answered. Returns 1 trusted, 0 not trusted, or
 * -ENOENT (the verifier does not know the node: register again), -ESTALE
 * (409 "node changed": another verifier wrote the node meanwhile and
 * nothing was recorded; start a new round), -EAGAIN (another refusal), -EBADMSG (a malformed
 * challenge) or another negative errno. */
int agent_round(struct agent *a);

#endif
