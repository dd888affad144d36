/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_POLICIES_POLICY_H
#define KIMA_POLICIES_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "buf.h"

/* Golden policies (docs/design.md section 6), one JSON file each in a directory:
 *
 *   {"apiVersion": "kima.dev/v1", "kind": "PodPolicy" | "NodePolicy",
 *    "name": "...", "match": {"namespace": "...", "podLabels": {...}},
 *    "digests": {"/path": ["sha256:<hex>", ...], "*": [...]},
 *    "excludes": ["<POSIX extended regex>", ...]}
 *
 * A Keylime runtime policy ({"digests": {path: [hex...]}, "excludes": [...]})
 * is read as a NodePolicy named after its file. A measurement passes when its
 * path matches an exclude, or its digest is listed for its path or for "*".
 * An all-zero digest (the file could not be hashed) never passes.
 *
 * Excludes, in both formats, match from the start of the path as Keylime's
 * re.match does: "/tmp" excludes /tmp/x and /tmpfoo, never /opt/evil/tmp/x.
 * A binary run from an excluded path is not judged at all. An exclude that
 * matches every path (".*", "^/") fails validation unless allowed; one that
 * matches a place where code can be written and run (/tmp, /dev/shm, /run,
 * home directories) loads with a warning. */

#define POLICY_FILE_MAX     (16u << 20)
#define POLICY_DIGESTS_MAX  1000000
#define POLICY_EXCLUDES_MAX 1024
/* The shape of one exclude (regcomp's memory and regexec's time follow it). */
#define POLICY_EXCLUDE_LEN_MAX    512
#define POLICY_EXCLUDE_DEPTH_MAX  16
#define POLICY_EXCLUDE_REPEAT_MAX 100
#define POLICY_EXCLUDE_WEIGHT_MAX 4096
/* What regcomp may take in all (about 1 KiB an atom with glibc): the atoms
 * of one file's excludes, and of every loaded file's together. */
#define POLICY_FILE_EXCLUDE_WEIGHT_MAX 65536
#define POLICY_SET_EXCLUDE_WEIGHT_MAX  262144
#define POLICY_LABELS_MAX              64
#define POLICY_IMAGES_MAX              64
/* JSON values in one file: every digest and path, with room for the rest. */
#define POLICY_VALUES_MAX (2 * POLICY_DIGESTS_MAX + 65536)

enum policy_kind {
    POLICY_POD,
    POLICY_NODE,
};

struct policy;
struct policy_set;

struct policy_load_options {
    /* Load a policy with an exclude that matches every path, with a warning,
     * instead of refusing the file. */
    bool allow_match_all_excludes;
};

/* Parse one policy file's bytes (`len` of them; no NUL needed). `file` is
 * its path: policy_file() returns it, and its last component names a Keylime
 * policy. On success *ret is a new policy (free with policy_free()), and an
 * exclude that matches a writable place (or, when allowed, every path) adds
 * a line "<file>: warning: ..." to `warnings` (may be NULL). On failure
 * returns -EBADMSG (-E2BIG over POLICY_FILE_MAX or the JSON caps) or
 * -ENOMEM with a reason naming the field in err (not prefixed with the
 * file), or -EINVAL for bad arguments; *ret and `warnings` are left
 * untouched. `opts` may be NULL (all options off). Pure: no file, lock or
 * log. */
int policy_parse(const char *buf, size_t len, const char *file,
                 const struct policy_load_options *opts, struct policy **ret, struct kbuf *warnings,
                 char *err, size_t errsz);
/* The canonical form of a policy file's bytes (docs/formats.md, "Canonical
 * policy content"): compact JSON, keys sorted, digests normalised, sorted
 * and de-duplicated per path, excludes and images sorted and
 * de-duplicated. Its SHA-256 is policy_content_digest(). The file is
 * parsed and checked as policy_parse() does (same errors, same err); on
 * success *ret is a NUL-terminated string the caller frees with free(). */
int policy_canonical(const char *buf, size_t len, const char *file,
                     const struct policy_load_options *opts, char **ret, char *err, size_t errsz);
/* Drop a reference to a policy from policy_parse(); accepts NULL. */
void policy_free(struct policy *p);

/* Load every *.json file of `dir`, each through policy_parse(). Files that
 * do not validate are reported in `errors` (one line each, naming the file
 * and field) and left out; when `previous` is given, a file that fails keeps
 * the version of it that `previous` holds. Files that load with a doubtful
 * exclude add lines "<file>: warning: ..." to `errors`. `opts` may be NULL
 * (all options off). Never fails for a bad file: returns 0 with the set, or
 * a negative errno when the directory cannot be read. Free with
 * policy_set_free(). */
int policy_set_load(const char *dir, const struct policy_set *previous,
                    const struct policy_load_options *opts, struct policy_set **ret,
                    struct kbuf *errors);
void policy_set_free(struct policy_set *s);

size_t policy_set_count(const struct policy_set *s);
const struct policy *policy_set_get(const struct policy_set *s, size_t i);

/* The pod policy whose match fits (namespace, labels: a JSON object of
 * strings, images: the pod's container image IDs, an array of strings such
 * as "registry/repo@sha256:<hex>"; a policy with match.images needs one of
 * them), the first in file-name order; NULL if none. */
const struct policy *policy_set_match_pod(const struct policy_set *s, const char *ns,
                                          const json_t *labels, const json_t *images);
/* The policy whose policy_id() is `id`, or NULL. */
const struct policy *policy_set_find(const struct policy_set *s, const char *id);
/* Does this pod policy's match fit the pod (as policy_set_match_pod()
 * asks of each)? A NodePolicy matches no pod. */
bool policy_matches_pod(const struct policy *p, const char *ns, const json_t *labels,
                        const json_t *images);
/* The node policy (the first in file-name order), or NULL. */
const struct policy *policy_set_node(const struct policy_set *s);

const char *policy_name(const struct policy *p);
const char *policy_file(const struct policy *p);
/* "<name>@sha256:<hex>": the name and the SHA-256 of the policy's
 * canonical form (policy_canonical(); docs/formats.md, "Canonical policy
 * content"), so a verdict can say which version of the policy reached it,
 * whatever whitespace or key order its file has. */
const char *policy_id(const struct policy *p);
/* "sha256:<hex>": the SHA-256 of the canonical form alone. */
const char *policy_content_digest(const struct policy *p);
enum policy_kind policy_kind(const struct policy *p);
size_t policy_digest_count(const struct policy *p);

/* Does the measurement (path, digest as "algo:hex", lowercase) pass? The
 * digests key "boot_aggregate" names the kernel's first entry. */
bool policy_allows(const struct policy *p, const char *path, size_t path_len, const char *digest);
/* A policy's word on one measurement (the verifier's judge and kimactl's
 * dry run both ask this). */
enum policy_result {
    POLICY_RESULT_PASS,       /* its digest is listed for its path or "*" */
    POLICY_RESULT_EXCLUDED,   /* its path is excluded: not judged (a violation there: ignored) */
    POLICY_RESULT_NOT_LISTED, /* fails: its digest is not listed (an all-zero one never is) */
    POLICY_RESULT_NO_DIGEST,  /* fails: the entry carries no file digest */
    POLICY_RESULT_VIOLATION,  /* fails: an IMA violation (ToMToU, open-writers) not excluded */
};

/* Judge one measurement: path (path_len bytes), digest "algo:hex"
 * lowercase (NULL or "": none), violation the kernel's violation record. */
enum policy_result policy_judge(const struct policy *p, const char *path, size_t path_len,
                                const char *digest, bool violation);
/* "pass", "excluded", "fail" (not listed), "no-digest", "violation". */
const char *policy_result_name(enum policy_result r);

/* Is the path excluded (an "excludes" pattern matches from its start)? A
 * path of 4096 bytes or more, or with a NUL byte, never is. Violations on
 * excluded paths are ignored, as their measurements are. */
bool policy_excludes(const struct policy *p, const char *path, size_t path_len);

#endif
