/* SPDX-License-Identifier: Apache-2.0 */
/* SOURCEs into one golden policy: each image resolved (index -> manifest ->
 * config), its layers read (each blob checked against its digest) and
 * applied in order, and the selected files of the resulting tree added to
 * the policy under the paths the kernel logs. */
#include "generate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "image-internal.h"
#include "image-sources.h"
#include "policy-doc.h"

struct gen {
    const struct gen_config *cfg;
    json_t *digests; /* path -> array of "alg:hex" */
    json_t *images;  /* "sha256:<hex>" */
    size_t ndigests, nsources;
    size_t nskipped; /* files whose path is not UTF-8 */
    char skipped[GEN_SKIPPED_SHOWN][IMG_QUOTE_MAX];
    char name[GEN_NAME_MAX + 1];
};

/* ---- SOURCE ---- */

/* The last component of a path, without trailing slashes and without
 * `suffix` (when it ends in it). */
static void base_name(const char *path, const char *suffix, char *out, size_t outsz) {
    size_t n = strlen(path), b, sl = suffix ? strlen(suffix) : 0;

    while (n > 1 && path[n - 1] == '/') {
        n--;
    }
    b = n;
    while (b > 0 && path[b - 1] != '/') {
        b--;
    }
    if (sl && n - b > sl && strncmp(path + n - sl, suffix, sl) == 0) {
        n -= sl;
    }
    snprintf(out, outsz, "%.*s", (int)(n - b), path + b);
}

static bool all_of(const char *s, size_t n, const char *set) {
    for (size_t i = 0; i < n; i++) {
        if (!s[i] || !strchr(set, s[i])) {
            return false;
        }
    }
    return true;
}

#define REPO_CHARS "abcdefghijklmnopqrstuvwxyz0123456789._-/"
#define TAG_CHARS  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
#define HOST_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-:[]"

/* docker://HOST[:PORT]/REPO[:TAG|@DIGEST]. A first component without a dot
 * or a port (and not localhost) is a Docker Hub repository, as docker and
 * skopeo read it. */
static int parse_registry(const char *s, struct gen_spec *sp, char *err, size_t errsz) {
    const char *slash = strchr(s, '/'), *at = strchr(s, '@'), *name_end, *colon;
    size_t hl = slash ? (size_t)(slash - s) : 0;
    bool hub = !slash || (!memchr(s, '.', hl) && !memchr(s, ':', hl) &&
                          !(hl == 9 && strncmp(s, "localhost", 9) == 0));
    const char *repo = hub ? s : slash + 1;

    if (at) {
        if (!img_digest_valid(at + 1) || strncmp(at + 1, "sha256:", 7) != 0) {
            snprintf(err, errsz, "\"@%.80s\" is not @sha256:<64 hex>", at + 1);
            return -EINVAL;
        }
        snprintf(sp->ref, sizeof(sp->ref), "%s", at + 1);
    }
    name_end = at ? at : s + strlen(s);
    colon = memrchr(repo, ':', (size_t)(name_end - repo));
    if (colon && !memchr(colon, '/', (size_t)(name_end - colon))) {
        size_t tl = (size_t)(name_end - colon - 1);
        if (tl == 0 || tl > 128 || !all_of(colon + 1, tl, TAG_CHARS) || colon[1] == '.' ||
            colon[1] == '-') {
            snprintf(err, errsz, "the tag is not [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
            return -EINVAL;
        }
        if (!at) {
            snprintf(sp->ref, sizeof(sp->ref), "%.*s", (int)tl, colon + 1);
        }
        name_end = colon;
    }
    if (!sp->ref[0]) {
        snprintf(sp->ref, sizeof(sp->ref), "latest");
    }
    if (name_end <= repo || (size_t)(name_end - repo) >= sizeof(sp->repo) ||
        !all_of(repo, (size_t)(name_end - repo), REPO_CHARS) || repo[0] == '/' ||
        name_end[-1] == '/' ||
        (!hub && (hl == 0 || hl >= sizeof(sp->host) || !all_of(s, hl, HOST_CHARS)))) {
        snprintf(err, errsz, "not HOST[:PORT]/REPO[:TAG|@DIGEST] with a lowercase repository");
        return -EINVAL;
    }
    snprintf(sp->host, sizeof(sp->host), "%.*s", hub ? 9 : (int)hl, hub ? "docker.io" : s);
    snprintf(sp->repo, sizeof(sp->repo), "%.*s", (int)(name_end - repo), repo);
    base_name(sp->repo, NULL, sp->name, sizeof(sp->name));
    return 0;
}

static const struct {
    const char *prefix;
    enum gen_kind kind;
} spec_kinds[] = {
        {"oci:", GEN_OCI},
        {"oci-archive:", GEN_OCI_ARCHIVE},
        {"docker-archive:", GEN_DOCKER_ARCHIVE},
        {"docker://", GEN_REGISTRY},
        {"rootfs:", GEN_ROOTFS},
        {"deb:", GEN_DEB},
};

/* DIR or FILE, then ":REF" for the kinds that take one (the path must not
 * hold a colon then, as with skopeo). */
static int parse_path(const char *s, struct gen_spec *sp, char *err, size_t errsz) {
    bool has_ref =
            sp->kind == GEN_OCI || sp->kind == GEN_OCI_ARCHIVE || sp->kind == GEN_DOCKER_ARCHIVE;
    const char *colon = has_ref ? strchr(s, ':') : NULL;
    size_t pl = colon ? (size_t)(colon - s) : strlen(s);

    if (pl == 0 || pl >= sizeof(sp->path) ||
        (colon && (!colon[1] || strlen(colon + 1) >= sizeof(sp->ref)))) {
        snprintf(err, errsz, "no path, or a path or reference too long");
        return -EINVAL;
    }
    snprintf(sp->path, sizeof(sp->path), "%.*s", (int)pl, s);
    snprintf(sp->ref, sizeof(sp->ref), "%s", colon ? colon + 1 : "");
    base_name(sp->path,
              sp->kind == GEN_DEB                             ? ".deb"
              : sp->kind == GEN_ROOTFS || sp->kind == GEN_OCI ? NULL
                                                              : ".tar",
              sp->name, sizeof(sp->name));
    if (sp->kind == GEN_DEB) {
        sp->name[strcspn(sp->name, "_")] = 0; /* name_version_arch.deb */
    }
    return 0;
}

int gen_spec_parse(const char *text, struct gen_spec *ret, char *err, size_t errsz) {
    struct gen_spec sp = {0};
    int r = -EINVAL;

    if (strlen(text) >= sizeof(sp.text)) {
        snprintf(err, errsz, "SOURCE is longer than %zu bytes", sizeof(sp.text) - 1);
        return -EINVAL;
    }
    snprintf(sp.text, sizeof(sp.text), "%s", text);
    for (size_t i = 0; i < ARRAY_SIZE(spec_kinds); i++) {
        size_t pl = strlen(spec_kinds[i].prefix);
        if (strncmp(text, spec_kinds[i].prefix, pl) == 0) {
            sp.kind = spec_kinds[i].kind;
            r = sp.kind == GEN_REGISTRY ? parse_registry(text + pl, &sp, err, errsz)
                                        : parse_path(text + pl, &sp, err, errsz);
            break;
        }
        if (i + 1 == ARRAY_SIZE(spec_kinds)) {
            snprintf(err, errsz,
                     "a SOURCE starts with oci:, oci-archive:, docker-archive:, "
                     "docker://, rootfs: or deb:");
        }
    }
    if (r < 0) {
        return r;
    }
    if (!sp.name[0]) {
        snprintf(sp.name, sizeof(sp.name), "policy");
    }
    *ret = sp;
    return 0;
}

/* ---- the generator ---- */

int gen_new(const struct gen_config *cfg, struct gen **ret) {
    struct gen *g = calloc(1, sizeof(*g));

    if (!g || !(g->digests = json_object()) || !(g->images = json_array())) {
        gen_free(g);
        return -ENOMEM;
    }
    g->cfg = cfg;
    *ret = g;
    return 0;
}

void gen_free(struct gen *g) {
    if (g) {
        json_decref(g->digests);
        json_decref(g->images);
        free(g);
    }
}

size_t gen_skipped_count(const struct gen *g) {
    return g->nskipped;
}

const char *gen_skipped_path(const struct gen *g, size_t i) {
    return i < g->nskipped && i < GEN_SKIPPED_SHOWN ? g->skipped[i] : NULL;
}

size_t gen_file_count(const struct gen *g) {
    return json_object_size(g->digests);
}

static bool has_string(const json_t *arr, const char *s) {
    size_t i;
    json_t *v;

    json_array_foreach(arr, i, v) {
        if (strcmp(json_string_value(v), s) == 0) {
            return true;
        }
    }
    return false;
}

static int add_image_digest(struct gen *g, const char *digest, struct img_error *err) {
    /* The kubelet's imageIDs are sha256 (the verifier takes only those). */
    if (!digest[0] || strncmp(digest, "sha256:", 7) != 0 || has_string(g->images, digest)) {
        return 0;
    }
    if (json_array_size(g->images) >= GEN_IMAGES_MAX) {
        return img_error_set(err, -E2BIG, "more than %d image digests for one policy",
                             GEN_IMAGES_MAX);
    }
    return json_array_append_new(g->images, json_string(digest)) < 0
                   ? img_error_set(err, -ENOMEM, "out of memory")
                   : 0;
}

struct walk {
    struct gen *g;
    /* Every file was read (--include without --all): keep those the
     * default selection takes and those an include matches. */
    bool filter_measured;
    const char *alg;
    struct img_error *err;
};

static bool matches_any(const regex_t *v, size_t n, const char *path) {
    for (size_t i = 0; i < n; i++) {
        if (regexec(&v[i], path, 0, NULL, 0) == 0) {
            return true;
        }
    }
    return false;
}

static int add_file(void *ctx, const char *path, const char *hex, bool measured) {
    struct walk *w = ctx;
    struct gen *g = w->g;
    const struct gen_config *c = g->cfg;
    char digest[HASH_ALG_DIGEST_MAX * 2 + 16];
    json_t *list;

    if (matches_any(c->excludes, c->nexcludes, path) ||
        (w->filter_measured && !measured && !matches_any(c->includes, c->nincludes, path))) {
        return 0;
    }
    snprintf(digest, sizeof(digest), "%s:%s", w->alg, hex);
    list = json_object_get(g->digests, path);
    if (list && has_string(list, digest)) {
        return 0;
    }
    if (g->ndigests >= POLICY_DOC_DIGESTS) {
        return img_error_set(w->err, -E2BIG, "more than %d digests for one policy",
                             POLICY_DOC_DIGESTS);
    }
    if (!list) {
        /* A JSON key must be UTF-8: a path that is not cannot be in a
         * policy. It is left out (and counted): a measurement of it will
         * not pass, so the pod fails closed if that file runs. */
        if (json_object_set_new(g->digests, path, list = json_array()) < 0) {
            if (g->nskipped < GEN_SKIPPED_SHOWN) {
                img_quote(path, g->skipped[g->nskipped], sizeof(g->skipped[0]));
            }
            g->nskipped++;
            return 0;
        }
    }
    if (json_array_append_new(list, json_string(digest)) < 0) {
        return img_error_set(w->err, -ENOMEM, "out of memory");
    }
    g->ndigests++;
    return 0;
}

/* An image source opened and resolved. */
struct image {
    struct img_source *src;
    struct img_image *img;
    char name[GEN_NAME_MAX + 1]; /* a docker-archive's repository, or "" */
};

static int open_layer(void *ctx, size_t i, struct img_stream **ret, struct img_error *err) {
    const struct image *im = ctx;
    const struct img_blob_ref *b = &im->img->layers[i];
    struct img_stream *raw = NULL;
    int r = im->src->ops->blob(im->src, b->digest, b->size, &raw, err);

    if (r < 0) {
        return r;
    }
    r = img_stream_verified(raw, b->digest, b->size, ret);
    return r < 0 ? img_error_set(err, r, "blob %s cannot be checked", b->digest) : 0;
}

static int open_image(const struct gen *g, const struct gen_spec *sp, struct image *im,
                      struct img_error *err) {
    const struct img_source_config *sc = &g->cfg->source;
    const char *ref = sp->ref[0] ? sp->ref : NULL;
    int r;

    switch (sp->kind) {
    case GEN_OCI:
        r = img_oci_open(sp->path, sp->text, sc, &im->src, err);
        break;
    case GEN_OCI_ARCHIVE:
        r = img_oci_archive_open(sp->path, sp->text, sc, &im->src, err);
        break;
    case GEN_DOCKER_ARCHIVE:
        return img_docker_archive_open(sp->path, ref, sp->text, sc, &im->src, &im->img, im->name,
                                       sizeof(im->name), err);
    default:
        r = img_registry_open(sp->host, sp->repo, sc, &im->src, err);
        break;
    }
    if (r < 0) {
        return r;
    }
    r = img_resolve(im->src, ref, sc->platform, &sc->limits, &im->img, err);
    if (r < 0) {
        img_error_prefix(err, "%s", sp->text);
    }
    return r;
}

/* The layers of an image into `tree`, lowest first. */
static int read_layers(const struct image *im, const struct img_options *o, struct img_tree *tree,
                       struct img_error *err) {
    size_t n = im->img->nlayers;
    struct img_layer **layers = calloc(n + 1, sizeof(*layers));
    char(*labels)[96] = calloc(n + 1, sizeof(*labels));
    const char **lp = calloc(n + 1, sizeof(*lp));
    bool loaded = false;
    int r = 0;

    if (!layers || !labels || !lp) {
        r = img_error_set(err, -ENOMEM, "out of memory");
    }
    for (size_t i = 0; r == 0 && i < n; i++) {
        snprintf(labels[i], sizeof(labels[i]), "layer %zu/%zu %.19s", i + 1, n,
                 im->img->layers[i].digest);
        lp[i] = labels[i];
    }
    if (r == 0 && n > 0) {
        r = img_layers_read(n, open_layer, (void *)im, lp, o, layers, err);
        loaded = r == 0;
    }
    for (size_t i = 0; r == 0 && i < n; i++) {
        if ((r = img_tree_apply(tree, layers[i], o, err)) < 0) {
            img_error_prefix(err, "%s", labels[i]);
        }
    }
    for (size_t i = 0; loaded && i < n; i++) {
        img_layer_free(layers[i]);
    }
    free(layers);
    free(labels);
    free(lp);
    return r;
}

static int read_deb(const char *path, const struct img_options *o, struct img_tree *tree,
                    struct img_error *err) {
    struct img_layer *layer = NULL;
    int r = img_deb_read(path, o, &layer, err);

    if (r == 0) {
        r = img_tree_apply(tree, layer, o, err);
        img_layer_free(layer);
    }
    return r;
}

/* One read of the source with `select`, its files into the policy. */
/* Read the source once into a tree and add its files. With includes and
 * without --all every file is hashed and the walk keeps the default
 * selection's files plus the included ones. */
static int add_files(struct gen *g, const struct gen_spec *sp, const struct image *im,
                     struct img_error *err) {
    const struct gen_config *c = g->cfg;
    struct img_options o = c->img;
    struct walk w = {.g = g, .err = err};
    struct img_tree *tree = NULL;
    int r;

    if (c->nincludes > 0 && o.select != IMG_SELECT_ALL) {
        o.select = IMG_SELECT_ALL;
        w.filter_measured = true;
    }
    w.alg = hash_alg_name(o.hash);
    if ((r = img_tree_new(&tree)) < 0) {
        return img_error_set(err, r, "cannot make a file tree: %s", strerror(-r));
    }
    if (sp->kind == GEN_ROOTFS) {
        r = img_tree_add_dir(tree, sp->path, &o, err);
    } else if (sp->kind == GEN_DEB) {
        r = read_deb(sp->path, &o, tree, err);
    } else {
        r = read_layers(im, &o, tree, err);
    }
    if (r == 0 && (r = img_tree_files(tree, add_file, &w)) < 0) {
        img_error_set(err, r, "listing the files failed");
    }
    img_tree_free(tree);
    return r;
}

int gen_add(struct gen *g, const struct gen_spec *sp, struct img_error *err) {
    struct image im = {0};
    bool image = sp->kind != GEN_ROOTFS && sp->kind != GEN_DEB;
    int r = 0;

    if (image && (r = open_image(g, sp, &im, err)) == 0) {
        if ((r = add_image_digest(g, im.img->index_digest, err)) == 0 &&
            (r = add_image_digest(g, im.img->manifest_digest, err)) == 0) {
            r = add_image_digest(g, im.img->config.digest, err);
        }
    }
    if (r == 0) {
        r = add_files(g, sp, &im, err);
        if (r < 0) {
            img_error_prefix(err, "%s", sp->text);
        }
    }
    img_image_free(im.img);
    img_source_free(im.src);
    if (r == 0 && g->nsources++ == 0) {
        snprintf(g->name, sizeof(g->name), "%s", im.name[0] ? im.name : sp->name);
    }
    return r;
}

/* ---- output ---- */

static int build_match(const struct gen *g, const struct gen_meta *m, json_t *root,
                       struct img_error *err) {
    json_t *match = json_object();

    if (!match || json_object_set_new(root, "match", match) < 0) {
        return img_error_set(err, -ENOMEM, "out of memory");
    }
    if (!m->ns && json_object_size(m->labels) == 0) {
        return img_error_set(err, -EINVAL,
                             "a PodPolicy needs --namespace or --label (or make a "
                             "NodePolicy with --node)");
    }
    if ((m->ns && json_object_set_new(match, "namespace", json_string(m->ns)) < 0) ||
        (json_object_size(m->labels) > 0 &&
         json_object_set_new(match, "podLabels", json_deep_copy(m->labels)) < 0) ||
        (json_array_size(g->images) > 0 &&
         json_object_set_new(match, "images", json_copy(g->images)) < 0)) {
        return img_error_set(err, -ENOMEM, "out of memory");
    }
    return 0;
}

int gen_policy_text(const struct gen *g, const struct gen_meta *m, char **ret,
                    struct img_error *err) {
    _cleanup_(json_decrefp) json_t *root = json_object();
    const char *name = m->name ? m->name : g->name;
    int r;

    if (!root) {
        return img_error_set(err, -ENOMEM, "out of memory");
    }
    if (strlen(name) == 0 || strlen(name) > GEN_NAME_MAX) {
        return img_error_set(err, -EINVAL, "the name must have 1 to %d bytes", GEN_NAME_MAX);
    }
    if (json_object_set_new(root, "apiVersion", json_string("kima.dev/v1")) < 0 ||
        json_object_set_new(root, "kind", json_string(m->node ? "NodePolicy" : "PodPolicy")) < 0 ||
        json_object_set_new(root, "name", json_string(name)) < 0 ||
        json_object_set_new(root, "digests", json_copy(g->digests)) < 0) {
        return img_error_set(err, -ENOMEM, "out of memory (or a name that is not UTF-8)");
    }
    if (!m->node && (r = build_match(g, m, root, err)) < 0) {
        return r;
    }
    r = policy_doc_text(root, ret);
    return r < 0 ? img_error_set(err, r, "out of memory") : 0;
}

/* ---- writing ---- */

int gen_write_atomic(const char *path, const void *buf, size_t len, struct img_error *err) {
    int r = write_file_atomic(path, buf, len, 0644);

    if (r < 0) {
        return img_error_set(err, r, "%s: cannot write it: %s", path, strerror(-r));
    }
    return 0;
}
