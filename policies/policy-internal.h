/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_POLICIES_POLICY_INTERNAL_H
#define KIMA_POLICIES_POLICY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "policy.h"

/* Shared by policy.c (the parser) and policy-canonical.c (the canonical
 * form): not part of the library's interface. */

/* "sha256:<hex>" (or bare hex in a Keylime policy, the algorithm implied by
 * its length) to lowercase "algo:hex" in out. 0, or -EINVAL when it is not
 * a digest of a known algorithm. */
int policy_normalize_digest(const char *in, bool keylime, char *out, size_t outsz);

/* The canonical form (docs/formats.md, "Canonical policy content") of a
 * policy document that policy_parse() accepted: `j` is its JSON, `keylime`
 * whether it is read as a Keylime runtime policy, `kind` and `name` what
 * the parser made of it. On success *ret is a new JSON object (caller
 * json_decref()s it); -ENOMEM or -EBADMSG (a digest that does not
 * normalise: the parser would have refused it). */
int policy_canonical_build(const json_t *j, bool keylime, enum policy_kind kind, const char *name,
                           json_t **ret);

/* The flags json_dumps() writes the canonical form with. */
#define POLICY_CANONICAL_DUMP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS)

#endif
