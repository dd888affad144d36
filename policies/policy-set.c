/* SPDX-License-Identifier: Apache-2.0 */
/* A directory of policy files loaded as a set (a file that stops
 * validating keeps its last good version), and the choice of the policy
 * that judges a pod or the node. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "policy-internal.h"

/* Read one file of the directory and parse it. */
static int load_file(const char *path, const struct policy_load_options *opts, struct policy **ret,
                     struct kbuf *warnings, char *err, size_t errsz) {
    _cleanup_free_ uint8_t *data = NULL;
    size_t len;
    int r;

    r = read_file_capped(path, POLICY_FILE_MAX, &data, &len);
    if (r < 0) {
        snprintf(err, errsz, "cannot read: %s", strerror(-r));
        return r;
    }
    return policy_parse((const char *)data, len, path, opts, ret, warnings, err, errsz);
}

static bool is_policy_file_name(const char *n) {
    size_t len = strlen(n);

    return n[0] != '.' && len > 5 && strcmp(n + len - 5, ".json") == 0;
}

/* Load the directory entry `n` into `s` (which has room for it), or report
 * why it failed and keep the version of it that `previous` holds. */
static void load_entry(struct policy_set *s, const char *dir, const char *n,
                       const struct policy_set *previous, const struct policy_load_options *opts,
                       struct kbuf *errors) {
    char path[PATH_MAX], err[512];
    struct policy *p = NULL;

    if (!is_policy_file_name(n) ||
        (size_t)snprintf(path, sizeof(path), "%s/%s", dir, n) >= sizeof(path)) {
        return;
    }
    if (load_file(path, opts, &p, errors, err, sizeof(err)) == 0 &&
        s->exclude_weight + p->exclude_weight <= POLICY_SET_EXCLUDE_WEIGHT_MAX) {
        s->exclude_weight += p->exclude_weight;
        s->v[s->n++] = p;
        return;
    }
    if (p) {
        snprintf(err, sizeof(err),
                 "with the files before it, the excludes expand to more than %d atoms in all",
                 POLICY_SET_EXCLUDE_WEIGHT_MAX);
        policy_free(p);
    }
    if (errors) {
        kbuf_printf(errors, "%s: %s\n", path, err);
    }
    for (size_t k = 0; previous && k < previous->n; k++) {
        if (strcmp(previous->v[k]->file, path) == 0 &&
            s->exclude_weight + previous->v[k]->exclude_weight <= POLICY_SET_EXCLUDE_WEIGHT_MAX) {
            s->exclude_weight += previous->v[k]->exclude_weight;
            previous->v[k]->refs++;
            s->v[s->n++] = previous->v[k];
            if (errors) {
                kbuf_printf(errors, "%s: the previous version stays in force\n", path);
            }
        }
    }
}

static int name_cmp(const void *a, const void *b) {
    return strcmp((*(struct policy *const *)a)->file, (*(struct policy *const *)b)->file);
}

int policy_set_load(const char *dir, const struct policy_set *previous,
                    const struct policy_load_options *opts, struct policy_set **ret,
                    struct kbuf *errors) {
    struct policy_set *s;
    struct dirent **names = NULL;
    int count;

    count = scandir(dir, &names, NULL, alphasort);
    if (count < 0) {
        return -errno;
    }
    s = calloc(1, sizeof(*s));
    if (s) {
        s->v = calloc((size_t)count + 1, sizeof(*s->v));
    }
    for (int i = 0; i < count; i++) {
        if (s && s->v) {
            load_entry(s, dir, names[i]->d_name, previous, opts, errors);
        }
        free(names[i]);
    }
    free(names);
    if (!s || !s->v) {
        policy_set_free(s);
        return -ENOMEM;
    }
    qsort(s->v, s->n, sizeof(*s->v), name_cmp);
    *ret = s;
    return 0;
}

void policy_set_free(struct policy_set *s) {
    if (!s) {
        return;
    }
    for (size_t i = 0; i < s->n; i++) {
        policy_free(s->v[i]);
    }
    free(s->v);
    free(s);
}

size_t policy_set_count(const struct policy_set *s) {
    return s ? s->n : 0;
}

const struct policy *policy_set_get(const struct policy_set *s, size_t i) {
    return s && i < s->n ? s->v[i] : NULL;
}

/* Does one of the pod's image IDs ("repo@sha256:...", a bare "sha256:..."
 * digest, or CRI-O's bare 64-hex image ID) name one of the policy's
 * digests? */
static bool images_match(const struct policy *p, const json_t *images) {
    size_t i;
    json_t *im;

    if (p->nimages == 0) {
        return true;
    }
    json_array_foreach(images, i, im) {
        const char *id = json_string_value(im), *at;
        if (!id) {
            continue;
        }
        at = strrchr(id, '@');
        at = at ? at + 1 : id;
        for (size_t k = 0; k < p->nimages; k++) {
            /* CRI-O has reported the bare image ID (the config digest's
             * 64 hex digits, no "sha256:"): it names the same image. */
            if (strcmp(at, p->images[k]) == 0 ||
                (strlen(at) == 64 && strcmp(at, p->images[k] + strlen("sha256:")) == 0)) {
                return true;
            }
        }
    }
    return false;
}

bool policy_matches_pod(const struct policy *p, const char *ns, const json_t *labels,
                        const json_t *images) {
    bool ok = p->kind == POLICY_POD && (!p->ns || (ns && strcmp(p->ns, ns) == 0));

    for (size_t k = 0; ok && k < p->nlabels; k++) {
        json_t *v = json_object_get(labels, p->labels[k].key);
        ok = json_is_string(v) && strcmp(json_string_value(v), p->labels[k].value) == 0;
    }
    return ok && images_match(p, images);
}

const struct policy *policy_set_match_pod(const struct policy_set *s, const char *ns,
                                          const json_t *labels, const json_t *images) {
    for (size_t i = 0; s && i < s->n; i++) {
        if (policy_matches_pod(s->v[i], ns, labels, images)) {
            return s->v[i];
        }
    }
    return NULL;
}

const struct policy *policy_set_find(const struct policy_set *s, const char *id) {
    for (size_t i = 0; s && id && i < s->n; i++) {
        if (strcmp(s->v[i]->id, id) == 0) {
            return s->v[i];
        }
    }
    return NULL;
}

const struct policy *policy_set_node(const struct policy_set *s) {
    for (size_t i = 0; s && i < s->n; i++) {
        if (s->v[i]->kind == POLICY_NODE) {
            return s->v[i];
        }
    }
    return NULL;
}
