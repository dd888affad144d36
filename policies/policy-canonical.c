/* SPDX-License-Identifier: Apache-2.0 */
/* The canonical form of a policy: what it means, without how it is
 * written. Two files that judge every measurement and match every pod the
 * same way (whitespace, key order, digest case and order, repeated
 * entries aside) have the same canonical form, so the SHA-256 of that form
 * names a policy version in verdicts and audit records whatever the editor
 * or generator did to the file. docs/formats.md defines it byte for byte. */
#include "policy-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int str_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A sorted, de-duplicated JSON array of the strings in v (n of them,
 * borrowed). NULL when out of memory. */
static json_t *sorted_set(const char **v, size_t n) {
    json_t *arr = json_array();

    if (!arr) {
        return NULL;
    }
    qsort(v, n, sizeof(*v), str_cmp);
    for (size_t i = 0; i < n; i++) {
        if ((i == 0 || strcmp(v[i], v[i - 1]) != 0) &&
            json_array_append_new(arr, json_string(v[i])) < 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

/* An array of strings as a sorted set (non-strings were refused by the
 * parser and are skipped here). *ret is NULL for an absent or empty one. */
static int string_set(const json_t *a, json_t **ret) {
    size_t n = json_array_size(a), k = 0, i;
    const char **v;
    json_t *x;

    *ret = NULL;
    if (n == 0) {
        return 0;
    }
    v = calloc(n, sizeof(*v));
    if (!v) {
        return -ENOMEM;
    }
    json_array_foreach(a, i, x) {
        if (json_is_string(x)) {
            v[k++] = json_string_value(x);
        }
    }
    *ret = k ? sorted_set(v, k) : NULL;
    free(v);
    return k && !*ret ? -ENOMEM : 0;
}

static int json_str_cmp(const void *a, const void *b) {
    return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

/* One path's digests, normalised ("algo:lowercase hex"), sorted and
 * de-duplicated: each normalised string is made once, then sorted by
 * pointer (no copy of the list's text beyond jansson's strings). */
static int digest_set(const json_t *list, bool keylime, json_t **ret) {
    size_t n = json_array_size(list), i, k = 0;
    json_t **v = calloc(n + 1, sizeof(*v)), *arr = NULL, *d;
    int r = -ENOMEM;

    json_array_foreach(list, i, d) {
        char norm[160];
        if (!v) {
            break;
        }
        if (!json_is_string(d) ||
            policy_normalize_digest(json_string_value(d), keylime, norm, sizeof(norm)) < 0) {
            r = -EBADMSG;
            break;
        }
        if (!(v[k] = json_string(norm))) {
            break;
        }
        k++;
    }
    if (v && k == n && (arr = json_array())) {
        qsort(v, n, sizeof(*v), json_str_cmp);
        r = 0;
        for (i = 0; i < n && r == 0; i++) {
            if (i > 0 && json_equal(v[i], v[i - 1])) {
                continue;
            }
            r = json_array_append(arr, v[i]) < 0 ? -ENOMEM : 0;
        }
    }
    for (i = 0; i < k; i++) {
        json_decref(v[i]);
    }
    free(v);
    if (r < 0) {
        json_decref(arr);
        return r;
    }
    *ret = arr;
    return 0;
}

/* "digests": every key with at least one digest. */
static int canonical_digests(const json_t *digests, bool keylime, json_t *out) {
    const char *key;
    json_t *list, *set;
    int r;

    json_object_foreach((json_t *)digests, key, list) {
        if (json_array_size(list) == 0) {
            continue; /* lists nothing: means nothing */
        }
        if ((r = digest_set(list, keylime, &set)) < 0) {
            return r;
        }
        if (json_object_set_new(out, key, set) < 0) {
            return -ENOMEM;
        }
    }
    return 0;
}

/* A PodPolicy's "match": namespace, podLabels and images, each only when
 * it says something. */
static int canonical_match(const json_t *match, json_t *out) {
    json_t *ns = json_object_get(match, "namespace"), *labels = json_object_get(match, "podLabels");
    json_t *images = NULL;
    int r = string_set(json_object_get(match, "images"), &images);

    if (r < 0) {
        return r;
    }
    if ((images && json_object_set_new(out, "images", images) < 0) ||
        (json_is_string(ns) && json_object_set(out, "namespace", ns) < 0) ||
        (json_object_size(labels) > 0 &&
         json_object_set_new(out, "podLabels", json_deep_copy(labels)) < 0)) {
        return -ENOMEM;
    }
    return 0;
}

int policy_canonical_build(const json_t *j, bool keylime, enum policy_kind kind, const char *name,
                           json_t **ret) {
    json_t *c = json_pack("{s:s,s:s,s:s,s:{}}", "apiVersion", "kima.dev/v1", "kind",
                          kind == POLICY_POD ? "PodPolicy" : "NodePolicy", "name", name, "digests");
    json_t *excludes = NULL, *match;
    int r;

    if (!c) {
        return -ENOMEM;
    }
    r = canonical_digests(json_object_get(j, "digests"), keylime, json_object_get(c, "digests"));
    if (r == 0) {
        r = string_set(json_object_get(j, "excludes"), &excludes);
    }
    if (r == 0 && excludes && json_object_set_new(c, "excludes", excludes) < 0) {
        r = -ENOMEM;
    }
    if (r == 0 && kind == POLICY_POD) {
        match = json_object();
        if (!match || json_object_set_new(c, "match", match) < 0) {
            r = -ENOMEM;
        } else {
            r = canonical_match(json_object_get(j, "match"), match);
        }
    }
    if (r < 0) {
        json_decref(c);
        return r;
    }
    *ret = c;
    return 0;
}
