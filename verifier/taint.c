/* SPDX-License-Identifier: Apache-2.0 */
#include "taint.h"

#include <errno.h>
#include <string.h>

static const char *field(const json_t *t, const char *name) {
    return json_string_value(json_object_get(t, name));
}

/* Every entry an object whose key and effect are bounded strings. */
static int check_list(const json_t *taints) {
    const json_t *t;
    size_t i;

    if (!taints) {
        return 0;
    }
    if (!json_is_array(taints)) {
        return -EBADMSG;
    }
    if (json_array_size(taints) > TAINT_LIST_MAX) {
        return -E2BIG;
    }
    json_array_foreach(taints, i, t) {
        const char *k = field(t, "key"), *eff = field(t, "effect");
        if (!json_is_object(t) || !k || !eff || strlen(k) > TAINT_FIELD_MAX ||
            strlen(eff) > TAINT_FIELD_MAX) {
            return -EBADMSG;
        }
    }
    return 0;
}

bool taint_present(const json_t *taints, const char *key) {
    const json_t *t;
    size_t i;

    json_array_foreach(taints, i, t) {
        const char *k = field(t, "key");
        if (k && strcmp(k, key) == 0) {
            return true;
        }
    }
    return false;
}

int taint_plan(const json_t *taints, const char *key, enum taint_want want, bool noexecute,
               const char *now_rfc3339, json_t **ret_taints) {
    bool has_ns = false, has_ne = false, changed = false;
    json_t *out, *t;
    size_t i;
    int r;

    *ret_taints = NULL;
    if (!key || !key[0] || (want == TAINT_ADD && noexecute && !now_rfc3339)) {
        return -EINVAL;
    }
    r = check_list(taints);
    if (r < 0) {
        return r;
    }
    out = json_array();
    if (!out) {
        return -ENOMEM;
    }
    json_array_foreach(taints, i, t) {
        const char *eff = field(t, "effect");
        bool keep = true;
        if (strcmp(field(t, "key"), key) == 0) {
            /* Ours: kept only once per wanted effect. */
            bool ns = strcmp(eff, "NoSchedule") == 0, ne = strcmp(eff, "NoExecute") == 0;
            keep = want == TAINT_ADD && ((ns && !has_ns) || (ne && noexecute && !has_ne));
            has_ns |= keep && ns;
            has_ne |= keep && ne;
        }
        if (keep && json_array_append(out, t) < 0) {
            json_decref(out);
            return -ENOMEM;
        }
        changed |= !keep;
    }
    if (want == TAINT_ADD && !has_ns) {
        changed = true;
        if (json_array_append_new(out, json_pack("{s:s,s:s}", "key", key, "effect", "NoSchedule")) <
            0) {
            json_decref(out);
            return -ENOMEM;
        }
    }
    if (want == TAINT_ADD && noexecute && !has_ne) {
        changed = true;
        if (json_array_append_new(out, json_pack("{s:s,s:s,s:s}", "key", key, "effect", "NoExecute",
                                                 "timeAdded", now_rfc3339)) < 0) {
            json_decref(out);
            return -ENOMEM;
        }
    }
    if (!changed) {
        json_decref(out);
        return 0;
    }
    *ret_taints = out;
    return 1;
}
