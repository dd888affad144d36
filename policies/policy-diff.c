/* SPDX-License-Identifier: Apache-2.0 */
/* What changes from one policy to the next: the lines a reviewer reads
 * before a rollout, in a stable order. */
#include "policy-doc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Paths are up to 4096 bytes, each byte up to 4 once escaped. */
#define ESC_MAX (4 * 4096 + 16)

static int put_line(struct kbuf *out, char sign, const char *what, const char *value) {
    char esc[ESC_MAX], wesc[ESC_MAX];

    log_escape(what, strlen(what), wesc, sizeof(wesc));
    if (!value) {
        return kbuf_printf(out, "%c %s\n", sign, wesc);
    }
    log_escape(value, strlen(value), esc, sizeof(esc));
    return kbuf_printf(out, "%c %s %s\n", sign, wesc, esc);
}

/* Strings of `a` not in `b` as "sign what string" lines, in sorted order. */
static int one_side(struct kbuf *out, char sign, const char *what, const json_t *a, const json_t *b,
                    bool *same) {
    json_t *sa = policy_doc_sorted(a ? a : json_null()),
           *sb = policy_doc_sorted(b ? b : json_null());
    size_t i, k = 0;
    json_t *v;
    int r = sa && sb ? 0 : -ENOMEM;

    json_array_foreach(sa, i, v) {
        const char *s = json_string_value(v);
        while (k < json_array_size(sb) && strcmp(json_string_value(json_array_get(sb, k)), s) < 0) {
            k++;
        }
        if (r == 0 && (k == json_array_size(sb) ||
                       strcmp(json_string_value(json_array_get(sb, k)), s) != 0)) {
            *same = false;
            r = put_line(out, sign, what, s);
        }
    }
    json_decref(sa);
    json_decref(sb);
    return r;
}

static int both_sides(struct kbuf *out, const char *what, const json_t *a, const json_t *b,
                      bool *same) {
    int r = one_side(out, '-', what, a, b, same);

    return r < 0 ? r : one_side(out, '+', what, b, a, same);
}

static int changed(struct kbuf *out, const char *what, const char *a, const char *b, bool *same) {
    char ea[600], eb[600];

    if ((!a && !b) || (a && b && strcmp(a, b) == 0)) {
        return 0;
    }
    *same = false;
    log_escape(a ? a : "(none)", strlen(a ? a : "(none)"), ea, sizeof(ea));
    log_escape(b ? b : "(none)", strlen(b ? b : "(none)"), eb, sizeof(eb));
    return kbuf_printf(out, "~ %s: %s -> %s\n", what, ea, eb);
}

/* "key=value" strings of a label object, for a set comparison. */
static json_t *label_strings(const json_t *labels) {
    json_t *arr = json_array(), *v;
    const char *key;
    char line[1200];

    json_object_foreach((json_t *)labels, key, v) {
        snprintf(line, sizeof(line), "%.500s=%.500s", key, json_string_value(v));
        if (!arr || json_array_append_new(arr, json_string(line)) < 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static int diff_header(const json_t *a, const json_t *b, struct kbuf *out, bool *same) {
    static const char *const fields[] = {"kind", "name"};
    json_t *ma = json_object_get(a, "match"), *mb = json_object_get(b, "match");
    json_t *la = label_strings(json_object_get(ma, "podLabels"));
    json_t *lb = label_strings(json_object_get(mb, "podLabels"));
    int r = la && lb ? 0 : -ENOMEM;

    for (size_t i = 0; r == 0 && i < ARRAY_SIZE(fields); i++) {
        r = changed(out, fields[i], json_string_value(json_object_get(a, fields[i])),
                    json_string_value(json_object_get(b, fields[i])), same);
    }
    if (r == 0) {
        r = changed(out, "match.namespace", json_string_value(json_object_get(ma, "namespace")),
                    json_string_value(json_object_get(mb, "namespace")), same);
    }
    if (r == 0) {
        r = both_sides(out, "match.podLabels", la, lb, same);
    }
    if (r == 0) {
        r = both_sides(out, "match.images", json_object_get(ma, "images"),
                       json_object_get(mb, "images"), same);
    }
    if (r == 0) {
        r = both_sides(out, "excludes", json_object_get(a, "excludes"),
                       json_object_get(b, "excludes"), same);
    }
    json_decref(la);
    json_decref(lb);
    return r;
}

/* The keys of both objects, sorted, each once. */
static json_t *all_paths(const json_t *a, const json_t *b) {
    json_t *keys = json_array(), *sorted, *v;
    const char *key;

    json_object_foreach((json_t *)a, key, v) {
        json_array_append_new(keys, json_string(key));
    }
    json_object_foreach((json_t *)b, key, v) {
        json_array_append_new(keys, json_string(key));
    }
    sorted = keys ? policy_doc_sorted(keys) : NULL;
    json_decref(keys);
    return sorted;
}

int policy_doc_diff(const json_t *a, const json_t *b, struct kbuf *out, bool *ret_same) {
    json_t *da = json_object_get(a, "digests"), *db = json_object_get(b, "digests");
    json_t *paths = all_paths(da, db), *p;
    bool same = true;
    size_t i;
    int r = paths ? diff_header(a, b, out, &same) : -ENOMEM;

    json_array_foreach(paths, i, p) {
        const char *path = json_string_value(p);
        if (r == 0) {
            r = both_sides(out, path, json_object_get(da, path), json_object_get(db, path), &same);
        }
    }
    json_decref(paths);
    if (r == 0) {
        *ret_same = same;
    }
    return r < 0 ? -ENOMEM : 0;
}
