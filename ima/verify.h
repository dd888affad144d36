/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_IMA_VERIFY_H
#define KIMA_IMA_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "hash.h"
#include "list.h"

/* Template digests (docs/formats.md section 3): H over the template data, or for the
 * `ima` template H(d || name zero-padded to 256 bytes). The PCR index and the
 * template name are not covered. */

/* The bytes the template digest covers. For `ima` they are built in
 * `scratch`; otherwise *ret_data points into the entry. */
void ima_entry_hashed_data(const struct ima_entry *e, uint8_t scratch[IMA_LEGACY_HASHED_LEN],
                           const uint8_t **ret_data, size_t *ret_len);

/* out = H_alg(hashed data). */
void ima_entry_template_hash(const struct ima_entry *e, enum ima_hash_alg alg, uint8_t *out);

/* Check the recorded template digest with the list's own algorithm (its
 * width). Returns 0 when it matches or the entry is a violation (nothing to
 * check), -EBADMSG when it does not match. */
int ima_entry_verify_digest(const struct ima_entry *e);

#endif
