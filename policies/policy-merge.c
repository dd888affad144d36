/* SPDX-License-Identifier: Apache-2.0 */
/* Policy documents: read and checked, written canonically, merged for a
 * rollout (old and new images side by side). */
#include "policy-doc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "json-util.h"

#define POLICY_DOC_DEPTH  8
#define POLICY_DOC_VALUES (2 * POLICY_DOC_DIGESTS + 65536)

static const char *const top_keys[] = {"apiVersion", "kind",    "name",
                                       "match",      "digests", "excludes"};
static const char *const match_keys[] = {"namespace", "podLabels", "images"};

static bool known(const char *key, const char *const *keys, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (strcmp(key, keys[i]) == 0) {
            return true;
        }
    }
    return false;
}

static bool strings_only(const json_t *arr) {
    size_t i;
    json_t *v;

    json_array_foreach(arr, i, v) {
        if (!json_is_string(v)) {
            return false;
        }
    }
    return json_is_array(arr);
}

static int check_match(const json_t *doc, bool node, const char *what, struct img_error *err) {
    json_t *match = json_object_get(doc, "match"), *labels, *v;
    const char *key;

    if (node || !match) {
        return node && match
                       ? img_error_set(err, -EBADMSG, "%s: a NodePolicy has no \"match\"", what)
               : node ? 0
                      : img_error_set(err, -EBADMSG, "%s: no \"match\"", what);
    }
    if (!json_is_object(match)) {
        return img_error_set(err, -EBADMSG, "%s: \"match\" is not an object", what);
    }
    json_object_foreach(match, key, v) {
        if (!known(key, match_keys, ARRAY_SIZE(match_keys))) {
            return img_error_set(err, -EBADMSG, "%s: \"match.%.64s\" is not a field kima knows",
                                 what, key);
        }
    }
    labels = json_object_get(match, "podLabels");
    if ((json_object_get(match, "namespace") &&
         !json_is_string(json_object_get(match, "namespace"))) ||
        (labels && !json_is_object(labels)) ||
        (json_object_get(match, "images") && !strings_only(json_object_get(match, "images")))) {
        return img_error_set(err, -EBADMSG, "%s: \"match\" holds a field of the wrong type", what);
    }
    json_object_foreach(labels, key, v) {
        if (!json_is_string(v)) {
            return img_error_set(err, -EBADMSG, "%s: \"match.podLabels.%.64s\" is not a string",
                                 what, key);
        }
    }
    return 0;
}

static int check_digests(const json_t *doc, const char *what, struct img_error *err) {
    json_t *digests = json_object_get(doc, "digests"), *v;
    const char *key;
    size_t total = 0;

    if (!json_is_object(digests)) {
        return img_error_set(err, -EBADMSG, "%s: \"digests\" is missing or not an object", what);
    }
    json_object_foreach(digests, key, v) {
        if (!strings_only(v)) {
            return img_error_set(err, -EBADMSG,
                                 "%s: \"digests.%.200s\" is not an array of "
                                 "strings",
                                 what, key);
        }
        total += json_array_size(v);
    }
    if (total > POLICY_DOC_DIGESTS) {
        return img_error_set(err, -E2BIG, "%s: more than %d digests", what, POLICY_DOC_DIGESTS);
    }
    return 0;
}

int policy_doc_check(const json_t *doc, const char *what, struct img_error *err) {
    const char *api, *kind, *name, *key;
    json_t *v;

    if (!json_is_object(doc)) {
        return img_error_set(err, -EBADMSG, "%s: not a JSON object", what);
    }
    json_object_foreach((json_t *)doc, key, v) {
        if (!known(key, top_keys, ARRAY_SIZE(top_keys))) {
            return img_error_set(err, -EBADMSG,
                                 "%s: \"%.64s\" is not a field of a kima.dev/v1 "
                                 "policy",
                                 what, key);
        }
    }
    api = json_string_value(json_object_get(doc, "apiVersion"));
    kind = json_string_value(json_object_get(doc, "kind"));
    name = json_string_value(json_object_get(doc, "name"));
    if (!api || strcmp(api, "kima.dev/v1") != 0) {
        return img_error_set(err, -EBADMSG, "%s: \"apiVersion\" is not kima.dev/v1", what);
    }
    if (!kind || (strcmp(kind, "PodPolicy") != 0 && strcmp(kind, "NodePolicy") != 0)) {
        return img_error_set(err, -EBADMSG, "%s: \"kind\" is neither PodPolicy nor NodePolicy",
                             what);
    }
    if (!name || !name[0] || strlen(name) > 253) {
        return img_error_set(err, -EBADMSG, "%s: \"name\" is not a string of 1 to 253 bytes", what);
    }
    if (json_object_get(doc, "excludes") && !strings_only(json_object_get(doc, "excludes"))) {
        return img_error_set(err, -EBADMSG, "%s: \"excludes\" is not an array of strings", what);
    }
    int r = check_match(doc, strcmp(kind, "NodePolicy") == 0, what, err);
    return r < 0 ? r : check_digests(doc, what, err);
}

int policy_doc_load(const char *path, json_t **ret, struct img_error *err) {
    _cleanup_free_ uint8_t *data = NULL;
    json_t *doc = NULL;
    size_t len = 0;
    char why[256];
    int r = read_file_capped(path, POLICY_DOC_MAX, &data, &len);

    if (r < 0) {
        return r == -EFBIG ? img_error_set(err, -E2BIG, "%s: larger than %u bytes", path,
                                           POLICY_DOC_MAX)
                           : img_error_set(err, r, "%s: cannot read it: %s", path, strerror(-r));
    }
    r = json_parse_bounded((const char *)data, len, POLICY_DOC_DEPTH, POLICY_DOC_VALUES, &doc, why,
                           sizeof(why));
    if (r < 0) {
        return img_error_set(err, r, "%s: %s", path, why);
    }
    if ((r = policy_doc_check(doc, path, err)) < 0) {
        json_decref(doc);
        return r;
    }
    *ret = doc;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *policy_doc_sorted(const json_t *arr) {
    size_t n = json_array_size(arr), i;
    const char **v = calloc(n + 1, sizeof(*v));
    json_t *out = json_array(), *x;

    if (!v || !out) {
        free(v);
        json_decref(out);
        return NULL;
    }
    json_array_foreach(arr, i, x) {
        v[i] = json_string_value(x) ? json_string_value(x) : "";
    }
    qsort(v, n, sizeof(*v), cmp_str);
    for (i = 0; i < n; i++) {
        if ((i == 0 || strcmp(v[i], v[i - 1]) != 0) &&
            json_array_append_new(out, json_string(v[i])) < 0) {
            json_decref(out);
            out = NULL;
            break;
        }
    }
    free(v);
    return out;
}

/* obj[key] := sorted(obj[key]), when it is there. */
static int sort_member(json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);

    if (!json_is_array(v)) {
        return 0;
    }
    return json_object_set_new(obj, key, policy_doc_sorted(v)) < 0 ? -ENOMEM : 0;
}

int policy_doc_text(const json_t *doc, char **ret) {
    _cleanup_(json_decrefp) json_t *c = json_deep_copy(doc);
    json_t *digests, *v;
    const char *key;
    char *text;
    size_t n;
    int r = c ? 0 : -ENOMEM;

    digests = json_object_get(c, "digests");
    json_object_foreach(digests, key, v) {
        if (r == 0) {
            r = sort_member(digests, key);
        }
    }
    if (r < 0 || sort_member(c, "excludes") < 0 ||
        sort_member(json_object_get(c, "match"), "images") < 0) {
        return -ENOMEM;
    }
    text = json_dumps(c, JSON_SORT_KEYS | JSON_INDENT(2));
    if (!text || !(*ret = realloc(text, (n = strlen(text)) + 2))) {
        free(text);
        return -ENOMEM;
    }
    memcpy(*ret + n, "\n", 2);
    return 0;
}

/* ---- merge ---- */

/* Union of the strings of `from` into the array `into`. */
static int unite(json_t *into, const json_t *from) {
    size_t i, k;
    json_t *v, *w;

    json_array_foreach(from, i, v) {
        bool have = false;
        json_array_foreach(into, k, w) {
            have = have || json_equal(v, w);
        }
        if (!have && json_array_append(into, v) < 0) {
            return -ENOMEM;
        }
    }
    return 0;
}

static const char *match_string(const json_t *doc, const char *key) {
    return json_string_value(json_object_get(json_object_get(doc, "match"), key));
}

/* kind, name, namespace and labels must agree between the result and a
 * document to merge. */
static int check_agree(const json_t *out, const json_t *doc, const char *f0, const char *fi,
                       bool name_given, struct img_error *err) {
    static const char *const fields[] = {"kind", "name"};
    const char *a, *b;
    json_t *la, *lb;

    for (size_t k = 0; k < ARRAY_SIZE(fields); k++) {
        a = json_string_value(json_object_get(out, fields[k]));
        b = json_string_value(json_object_get(doc, fields[k]));
        if (strcmp(a, b) != 0 && !(k == 1 && name_given)) {
            return img_error_set(err, -EBADMSG,
                                 "\"%s\" differs: %.200s says \"%.100s\", %.200s "
                                 "says \"%.100s\"%s",
                                 fields[k], f0, a, fi, b, k == 1 ? " (--name sets one)" : "");
        }
    }
    a = match_string(out, "namespace");
    b = match_string(doc, "namespace");
    if ((a || b) && (!a || !b || strcmp(a, b) != 0)) {
        return img_error_set(err, -EBADMSG,
                             "\"match.namespace\" differs: %.200s says %.100s, "
                             "%.200s says %.100s",
                             f0, a ? a : "none", fi, b ? b : "none");
    }
    la = json_object_get(json_object_get(out, "match"), "podLabels");
    lb = json_object_get(json_object_get(doc, "match"), "podLabels");
    if (json_object_size(la) + json_object_size(lb) > 0 && !json_equal(la, lb)) {
        return img_error_set(err, -EBADMSG,
                             "\"match.podLabels\" differs between %.200s and "
                             "%.200s",
                             f0, fi);
    }
    return 0;
}

static int unite_member(json_t *out, const json_t *doc, const char *key) {
    json_t *from = json_object_get(doc, key), *into = json_object_get(out, key);

    if (!from) {
        return 0;
    }
    if (!into) {
        return json_object_set_new(out, key, json_deep_copy(from)) < 0 ? -ENOMEM : 0;
    }
    return unite(into, from);
}

/* Digests per path, excludes, images: united. A document that does not pin
 * images matches any: so does the merge. */
static int unite_doc(json_t *out, const json_t *doc) {
    json_t *digests = json_object_get(out, "digests"), *v;
    json_t *match = json_object_get(out, "match");
    const char *key;
    int r;

    json_object_foreach(json_object_get(doc, "digests"), key, v) {
        if (!json_object_get(digests, key) && json_object_set_new(digests, key, json_array()) < 0) {
            return -ENOMEM;
        }
        if ((r = unite(json_object_get(digests, key), v)) < 0) {
            return r;
        }
    }
    if ((r = unite_member(out, doc, "excludes")) < 0) {
        return r;
    }
    if (match && !json_object_get(json_object_get(doc, "match"), "images")) {
        json_object_del(match, "images");
        return 0;
    }
    return json_object_get(match, "images")
                   ? unite(json_object_get(match, "images"),
                           json_object_get(json_object_get(doc, "match"), "images"))
                   : 0;
}

int policy_doc_merge(json_t *const *docs, const char *const *files, size_t n, const char *name,
                     json_t **ret, struct img_error *err) {
    _cleanup_(json_decrefp) json_t *out = n ? json_deep_copy(docs[0]) : NULL;
    int r;

    if (!out) {
        return img_error_set(err, n ? -ENOMEM : -EINVAL, "nothing to merge");
    }
    for (size_t i = 1; i < n; i++) {
        if ((r = check_agree(out, docs[i], files[0], files[i], name != NULL, err)) < 0) {
            return r;
        }
        if ((r = unite_doc(out, docs[i])) < 0) {
            return img_error_set(err, r, "out of memory");
        }
    }
    if (name && json_object_set_new(out, "name", json_string(name)) < 0) {
        return img_error_set(err, -EINVAL, "--name is not UTF-8");
    }
    if (json_array_size(json_object_get(json_object_get(out, "match"), "images")) > 64) {
        return img_error_set(err, -E2BIG, "the merge pins more than 64 image digests");
    }
    if ((r = policy_doc_check(out, "the merge", err)) < 0) {
        return r;
    }
    *ret = TAKE_PTR(out);
    return 0;
}
