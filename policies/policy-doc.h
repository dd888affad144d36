/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_POLICIES_POLICY_DOC_H
#define KIMA_POLICIES_POLICY_DOC_H

/* Policy files as documents (kima.dev/v1 PodPolicy or NodePolicy JSON, the
 * format verifier/policy.h describes), for the tools that write, merge and
 * compare them: `kimactl policy generate|merge|diff`. The verifier's parser
 * is the judge of what loads; these read them as JSON, check the fields
 * they touch, and write them in one canonical form. */

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "buf.h"
#include "image.h"

/* The verifier's caps: a policy file's bytes, its digests. */
#define POLICY_DOC_MAX     (16u << 20)
#define POLICY_DOC_DIGESTS 1000000

/* Read and check a policy file: a JSON object with apiVersion kima.dev/v1,
 * kind PodPolicy or NodePolicy, a name, a match (objects and strings where
 * the format says), "digests" an object of arrays of strings, "excludes" an
 * array of strings, and no other field. -ENOENT/-EACCES/...: not readable;
 * -EBADMSG/-E2BIG: not such a policy (err names the file and the field). */
int policy_doc_load(const char *path, json_t **ret, struct img_error *err);

/* The same checks on a document in memory; `what` names it in errors. */
int policy_doc_check(const json_t *doc, const char *what, struct img_error *err);

/* A new array of the strings of `arr`, sorted bytewise, each once; NULL
 * when out of memory. */
json_t *policy_doc_sorted(const json_t *arr);

/* The canonical text: keys sorted, two-space indent, every array of
 * "digests", match.images and "excludes" sorted and without duplicates, a
 * final newline. *ret is the caller's (free()). 0 or -ENOMEM. */
int policy_doc_text(const json_t *doc, char **ret);

/* Merge `n` >= 1 checked documents: digests and match.images united per
 * path, excludes united; kind, name, match.namespace and match.podLabels
 * must agree (-EBADMSG naming the field and the two files), except the
 * name when `name` overrides it. `files` name the documents in errors.
 * *ret is a new document. */
int policy_doc_merge(json_t *const *docs, const char *const *files, size_t n, const char *name,
                     json_t **ret, struct img_error *err);

/* The differences from `a` to `b` as lines into `out`: "- PATH DIGEST"
 * and "+ PATH DIGEST" (paths escaped: control bytes and non-ASCII as \xNN),
 * sorted by path; "- match.images DIGEST", "+ excludes REGEX", and
 * "~ kind: A -> B" for a changed kind, name, match.namespace or label.
 * *ret_same is whether there is none. 0 or -ENOMEM. */
int policy_doc_diff(const json_t *a, const json_t *b, struct kbuf *out, bool *ret_same);

#endif
