/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_POLICIES_POLICY_INTERNAL_H
#define KIMA_POLICIES_POLICY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <regex.h>

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

/* The parsed policy and a loaded set (policy.c parses, policy-set.c
 * loads and matches). */
struct label {
    char *key, *value;
};

struct policy {
    unsigned refs; /* a reload can keep a policy of the previous set */
    char *name, *file;
    char id[320];    /* "<name>@sha256:<hex of the canonical form>" */
    char digest[72]; /* "sha256:<hex of the canonical form>" */
    enum policy_kind kind;
    char *ns; /* NULL: any namespace */
    size_t nlabels;
    struct label *labels;
    size_t nimages;
    char **images; /* "sha256:<hex>": the pod must run one of these images */
    /* Open-addressing set of "path\x1fdigest" (or "*\x1fdigest"). */
    char **slots;
    size_t nslots, ndigests;
    size_t nexcludes;
    regex_t *excludes;
    uint64_t exclude_weight; /* atoms of all its excludes (exclude_shape) */
};

struct policy_set {
    size_t n;
    struct policy **v;
    uint64_t exclude_weight;
};

/* policy-excludes.c: does `re` match at the start of `pathz` (re.match)? */
bool policy_exclude_matches(const regex_t *re, const char *pathz);
/* It matches every probe path: the policy would judge nothing. */
bool policy_exclude_matches_every_path(const regex_t *re);
/* The writable probe path it matches, or NULL. */
const char *policy_exclude_writable_match(const regex_t *re);
/* The writable directory the pattern's literal start lies below, or NULL. */
const char *policy_exclude_writable_prefix(const char *re);
/* Bound a pattern's shape before regcomp: its weight in atoms into
 * *ret_weight; -E2BIG/-EBADMSG with a reason in `why`. */
int policy_exclude_shape(const char *re, uint64_t *ret_weight, char *why, size_t whysz);

/* The flags json_dumps() writes the canonical form with. */
#define POLICY_CANONICAL_DUMP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS)

#endif
