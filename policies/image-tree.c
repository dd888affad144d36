/* SPDX-License-Identifier: Apache-2.0 */
/* The image's file system, built the way containerd's applier unpacks
 * layers, but in memory: each entry's parent directories are resolved
 * through the symbolic links already in the tree, inside the root (an
 * absolute target starts at the image root; a target that climbs above it
 * is an error, never clamped), and the entry replaces what was at its path
 * (directory onto directory merges). Hard links share their file's content.
 *
 * Every node remembers the last apply that touched it or anything under it
 * (gen): a whiteout or an opaque marker removes what lower layers left and
 * keeps what its own layer wrote, in whatever order the tar lists them.
 * What must stay true: a node's children are sorted by name (binary
 * search), and no node's path is longer than TREE_PATH_MAX (which also
 * bounds the recursion over the tree).
 *
 * Untrusted layers choose the paths and the links, so two costs are capped
 * for the whole image: the components walked to resolve parents (each
 * link target of up to max_path bytes re-walked at every use, up to 40 in
 * a row) against limits.max_walk, and the nodes' memory (a 4 KiB path can
 * make 2,000 directories) against limits.max_meta_bytes. Tar entries come
 * mostly in directory order, so the resolved prefixes of the last path are
 * kept (struct walk_cache): an entry walks only the components after the
 * prefix it shares with the one before. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "image-internal.h"

/* A path the kernel logs has fewer than PATH_MAX (4096) bytes. */
#define TREE_PATH_MAX 4095
/* What a node costs beside its name and link target: the struct, its slot
 * in its directory, a file's content record, malloc's headers. */
#define TREE_NODE_COST 128

enum tnode_type { TNODE_DIR, TNODE_FILE, TNODE_SYMLINK };

/* A file's content, shared by its hard links. */
struct tcontent {
    unsigned refs;
    bool selected, measured;
    uint8_t len;
    uint8_t digest[HASH_ALG_DIGEST_MAX];
};

struct tnode {
    struct tnode *parent;
    char *name;
    uint8_t type;
    unsigned gen;
    size_t plen;         /* of its path, "/a/b" */
    struct tnode **kids; /* directories: sorted by name */
    size_t n_kids, a_kids;
    char *target;             /* symbolic links */
    struct tcontent *content; /* files */
};

/* The directory after each component of the path last resolved from the
 * root. A prefix resolves the same way as long as no node is removed (a
 * name, once found, keeps naming the same node; new names change no
 * lookup), so any removal empties the cache. */
struct walk_prefix {
    size_t end;         /* offset in path just past the component */
    int links;          /* symbolic links followed from the root to here */
    struct tnode *node; /* the directory reached */
};

struct walk_cache {
    char *path;
    size_t path_alloc;
    struct walk_prefix *v; /* v[0]: the root; n == 0: empty */
    size_t n, alloc;
};

struct img_tree {
    struct tnode *root;
    unsigned gen;
    uint64_t walked;     /* components walked, against limits.max_walk */
    uint64_t node_bytes; /* of the nodes in the tree, against limits.max_meta_bytes */
    struct walk_cache cache;
};

/* The state of one entry's application: for errors. */
struct apply {
    struct img_tree *t;
    const struct img_limits *lim;
    const struct img_entry *e;
    struct img_error *err;
    int links; /* symbolic links followed for this entry */
};

static void content_unref(struct tcontent *c) {
    if (c && --c->refs == 0) {
        free(c);
    }
}

static uint64_t node_cost(const struct tnode *n) {
    return TREE_NODE_COST + strlen(n->name) + (n->target ? strlen(n->target) : 0);
}

/* Free `n` and what is under it; `t`: they were in t (refund their cost). */
static void node_free(struct img_tree *t, struct tnode *n) {
    if (!n) {
        return;
    }
    if (t) {
        t->node_bytes -= node_cost(n);
    }
    for (size_t i = 0; i < n->n_kids; i++) {
        node_free(t, n->kids[i]);
    }
    free(n->kids);
    free(n->target);
    content_unref(n->content);
    free(n);
}

static struct tnode *node_new(const char *name, size_t len, enum tnode_type type) {
    struct tnode *n = calloc(1, sizeof(*n) + len + 1);

    if (!n) {
        return NULL;
    }
    n->name = (char *)(n + 1);
    memcpy(n->name, name, len);
    n->type = (uint8_t)type;
    return n;
}

int img_tree_new(struct img_tree **ret) {
    struct img_tree *t = calloc(1, sizeof(*t));

    if (!t || !(t->root = node_new("", 0, TNODE_DIR))) {
        free(t);
        return -ENOMEM;
    }
    *ret = t;
    return 0;
}

void img_tree_free(struct img_tree *t) {
    if (t) {
        node_free(NULL, t->root);
        free(t->cache.path);
        free(t->cache.v);
        free(t);
    }
}

/* The index of `name` among dir's children, or where it would go. */
static bool dir_find(const struct tnode *dir, const char *name, size_t len, size_t *ret_idx) {
    size_t lo = 0, hi = dir->n_kids;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *k = dir->kids[mid]->name;
        int c = strncmp(k, name, len);
        if (c == 0) {
            c = k[len] == 0 ? 0 : 1;
        }
        if (c == 0) {
            *ret_idx = mid;
            return true;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *ret_idx = lo;
    return false;
}

static struct tnode *dir_get(const struct tnode *dir, const char *name, size_t len) {
    size_t i;

    return dir_find(dir, name, len, &i) ? dir->kids[i] : NULL;
}

static void touch(struct tnode *n, unsigned gen) {
    for (; n; n = n->parent) {
        n->gen = gen;
    }
}

static int entry_error(struct apply *ap, int rc, const char *fmt, ...) _printf_(3, 4);
static int entry_error(struct apply *ap, int rc, const char *fmt, ...) {
    char q[IMG_QUOTE_MAX], what[IMG_ERROR_MAX];
    va_list va;

    va_start(va, fmt);
    vsnprintf(what, sizeof(what), fmt, va);
    va_end(va);
    return img_error_set(ap->err, rc, "entry \"%s\": %s", img_quote(ap->e->path, q, sizeof(q)),
                         what);
}

/* Put `n` (not yet in the tree) under `dir` at index i (from dir_find);
 * frees n on error. */
static int dir_insert(struct apply *ap, struct tnode *dir, size_t i, struct tnode *n) {
    size_t plen = dir->plen + 1 + strlen(n->name);
    uint64_t cost = node_cost(n);

    if (plen > TREE_PATH_MAX) {
        node_free(NULL, n);
        return entry_error(ap, -ENAMETOOLONG, "its path in the image is longer than %d bytes",
                           TREE_PATH_MAX);
    }
    if (cost > ap->lim->max_meta_bytes || ap->t->node_bytes > ap->lim->max_meta_bytes - cost) {
        node_free(NULL, n);
        return entry_error(ap, -E2BIG,
                           "the file tree takes more than %llu bytes of memory (raise the cap "
                           "with --max-meta-bytes)",
                           (unsigned long long)ap->lim->max_meta_bytes);
    }
    if (dir->n_kids == dir->a_kids) {
        size_t na = dir->a_kids ? 2 * dir->a_kids : 4;
        struct tnode **nk = realloc(dir->kids, na * sizeof(*nk));
        if (!nk) {
            node_free(NULL, n);
            return img_error_set(ap->err, -ENOMEM, "out of memory");
        }
        dir->kids = nk;
        dir->a_kids = na;
    }
    memmove(dir->kids + i + 1, dir->kids + i, (dir->n_kids - i) * sizeof(*dir->kids));
    dir->kids[i] = n;
    dir->n_kids++;
    n->parent = dir;
    n->plen = plen;
    ap->t->node_bytes += cost;
    touch(n, ap->t->gen);
    return 0;
}

static void dir_remove(struct img_tree *t, struct tnode *dir, size_t i) {
    t->cache.n = 0; /* a cached prefix may run through what goes */
    node_free(t, dir->kids[i]);
    memmove(dir->kids + i, dir->kids + i + 1, (dir->n_kids - i - 1) * sizeof(*dir->kids));
    dir->n_kids--;
}

/* "/a/b/c" for a node, into buf; "/" for the root. */
static const char *node_path(const struct tnode *n, char *buf, size_t size) {
    size_t pos = size - 1;

    buf[pos] = 0;
    if (!n->parent) {
        return "/";
    }
    for (; n->parent; n = n->parent) {
        size_t len = strlen(n->name);
        if (len + 1 > pos) {
            return "...";
        }
        pos -= len;
        memcpy(buf + pos, n->name, len);
        buf[--pos] = '/';
    }
    return buf + pos;
}

static int link_error(struct apply *ap, const struct tnode *link, const char *what) {
    char p[4096], q1[IMG_QUOTE_MAX], q2[IMG_QUOTE_MAX];

    return entry_error(ap, -ELOOP, "symlink \"%s\" -> \"%s\" %s",
                       img_quote(node_path(link, p, sizeof(p)), q1, sizeof(q1)),
                       img_quote(link->target, q2, sizeof(q2)), what);
}

static int resolve_dir(struct apply *ap, struct tnode *cur, const char *path, size_t plen,
                       bool create, const struct tnode *via, struct tnode **ret);

/* Step from directory `cur` into component `name`, following a symbolic
 * link; a missing directory is made when `create`, else *ret is NULL. */
static int step(struct apply *ap, struct tnode *cur, const char *name, size_t len, bool create,
                const struct tnode *via, struct tnode **ret) {
    struct tnode *n;
    size_t i;

    if (len == 2 && name[0] == '.' && name[1] == '.') {
        if (!cur->parent) {
            return via ? link_error(ap, via, "leaves the image root")
                       : entry_error(ap, -EBADMSG, "\"..\" leaves the image root");
        }
        *ret = cur->parent;
        return 0;
    }
    if (!dir_find(cur, name, len, &i)) {
        if (!create) {
            *ret = NULL;
            return 0;
        }
        if (!(n = node_new(name, len, TNODE_DIR))) {
            return img_error_set(ap->err, -ENOMEM, "out of memory");
        }
        *ret = n;
        return dir_insert(ap, cur, i, n);
    }
    n = cur->kids[i];
    if (n->type == TNODE_DIR) {
        *ret = n;
        return 0;
    }
    if (n->type == TNODE_FILE) {
        char p[4096], q[IMG_QUOTE_MAX];
        return entry_error(ap, -ENOTDIR, "\"%s\" is a file, not a directory",
                           img_quote(node_path(n, p, sizeof(p)), q, sizeof(q)));
    }
    if (++ap->links > IMG_SYMLINKS_MAX) {
        return link_error(ap, n, "is one of more than 40 links in a row (a loop)");
    }
    return resolve_dir(ap, n->target[0] == '/' ? ap->t->root : cur, n->target, strlen(n->target),
                       create, n, ret);
}

/* One component walked (of a path or a link target, "." and "" too)
 * against the image's budget. */
static int walk_charge(struct apply *ap) {
    if (++ap->t->walked > ap->lim->max_walk) {
        return entry_error(ap, -E2BIG,
                           "more than %llu path components walked in the image to resolve "
                           "parent directories and symbolic links (raise the cap with "
                           "--max-walk)",
                           (unsigned long long)ap->lim->max_walk);
    }
    return 0;
}

/* Walk the component of `len` bytes at `p` from `cur` (NULL stays NULL). */
static int walk_one(struct apply *ap, struct tnode *cur, const char *p, size_t len, bool create,
                    const struct tnode *via, struct tnode **ret) {
    int rc = walk_charge(ap);

    if (rc < 0) {
        return rc;
    }
    if (len > 0 && !(len == 1 && p[0] == '.')) {
        return step(ap, cur, p, len, create, via, ret);
    }
    *ret = cur;
    return 0;
}

/* Resolve `path` as a directory from `cur`, following every link; *ret is
 * NULL when a component is missing and !create. */
static int resolve_dir(struct apply *ap, struct tnode *cur, const char *path, size_t plen,
                       bool create, const struct tnode *via, struct tnode **ret) {
    const char *p = path, *end = path + plen;
    int rc;

    while (p < end && cur) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        size_t len = slash ? (size_t)(slash - p) : (size_t)(end - p);

        if ((rc = walk_one(ap, cur, p, len, create, via, &cur)) < 0) {
            return rc;
        }
        p += len + (slash ? 1 : 0);
    }
    *ret = cur;
    return 0;
}

/* The longest cached prefix of path[0..plen) that ends at a component's
 * end; the cache starts with the root when it is empty. */
static int cache_match(struct walk_cache *c, struct tnode *root, const char *path, size_t plen,
                       size_t *ret_k) {
    size_t m = 0, k;

    if (c->n == 0) {
        if (!c->v && !(c->v = calloc(c->alloc = 16, sizeof(*c->v)))) {
            return -ENOMEM;
        }
        c->v[0] = (struct walk_prefix){.node = root};
        c->n = 1;
    }
    while (m < plen && m < c->v[c->n - 1].end && path[m] == c->path[m]) {
        m++;
    }
    for (k = c->n - 1; k > 0; k--) {
        if (c->v[k].end <= m && (c->v[k].end == plen || path[c->v[k].end] == '/')) {
            break;
        }
    }
    *ret_k = k;
    return 0;
}

/* Remember that path[0..end) leads to `node` (path[0..end) is already in
 * c->path). */
static int cache_push(struct walk_cache *c, size_t end, int links, struct tnode *node) {
    if (c->n == c->alloc) {
        struct walk_prefix *nv = realloc(c->v, 2 * c->alloc * sizeof(*nv));
        if (!nv) {
            return -ENOMEM;
        }
        c->v = nv;
        c->alloc *= 2;
    }
    c->v[c->n++] = (struct walk_prefix){.end = end, .links = links, .node = node};
    return 0;
}

/* resolve_dir() from the root, starting after the longest prefix shared
 * with the path resolved before: the same result, the same links counted,
 * without walking the prefix again. */
static int resolve_root(struct apply *ap, const char *path, size_t plen, bool create,
                        struct tnode **ret) {
    struct walk_cache *c = &ap->t->cache;
    int links0 = ap->links, rc;
    struct tnode *cur;
    const char *p;
    size_t k;

    if (plen >= c->path_alloc) {
        char *np = realloc(c->path, plen + 1);
        if (!np) {
            c->n = 0;
            return img_error_set(ap->err, -ENOMEM, "out of memory");
        }
        c->path = np;
        c->path_alloc = plen + 1;
    }
    if (cache_match(c, ap->t->root, path, plen, &k) < 0) {
        return img_error_set(ap->err, -ENOMEM, "out of memory");
    }
    memcpy(c->path, path, plen);
    c->n = k + 1;
    cur = c->v[k].node;
    ap->links += c->v[k].links;
    for (p = path + c->v[k].end + (c->v[k].end < plen && k > 0); p < path + plen && cur;) {
        const char *slash = memchr(p, '/', (size_t)(path + plen - p));
        size_t len = slash ? (size_t)(slash - p) : (size_t)(path + plen - p);

        if ((rc = walk_one(ap, cur, p, len, create, NULL, &cur)) < 0) {
            c->n = 0;
            return rc;
        }
        if (cur && cache_push(c, (size_t)(p - path) + len, ap->links - links0, cur) < 0) {
            c->n = 0;
            return img_error_set(ap->err, -ENOMEM, "out of memory");
        }
        p += len + (slash ? 1 : 0);
    }
    *ret = cur;
    return 0;
}

/* The directory that holds `path` and the last component's name. */
static int resolve_parent(struct apply *ap, const char *path, bool create, struct tnode **ret,
                          const char **ret_name) {
    const char *slash = strrchr(path, '/');

    *ret_name = slash ? slash + 1 : path;
    return resolve_root(ap, path, slash ? (size_t)(slash - path) : 0, create, ret);
}

/* Remove what lower layers left under `dir`, keep what this layer wrote. */
static void hide_lower(struct img_tree *t, struct tnode *dir) {
    for (size_t i = dir->n_kids; i-- > 0;) {
        struct tnode *k = dir->kids[i];
        if (k->gen != t->gen) {
            dir_remove(t, dir, i);
        } else if (k->type == TNODE_DIR) {
            hide_lower(t, k);
        }
    }
}

static int apply_whiteout(struct apply *ap) {
    struct tnode *dir, *n;
    const char *name;
    size_t i;
    int rc;

    if (ap->e->type == IMG_ENTRY_OPAQUE) {
        rc = resolve_root(ap, ap->e->path, strlen(ap->e->path), false, &dir);
        if (rc == 0 && dir) {
            hide_lower(ap->t, dir);
        }
        return rc;
    }
    if ((rc = resolve_parent(ap, ap->e->path, false, &dir, &name)) < 0 || !dir ||
        !dir_find(dir, name, strlen(name), &i)) {
        return rc;
    }
    n = dir->kids[i];
    if (n->gen != ap->t->gen) {
        dir_remove(ap->t, dir, i);
    } else if (n->type == TNODE_DIR) {
        hide_lower(ap->t, n);
    }
    return 0;
}

/* The node a hard link names: a file or a symbolic link already in the tree. */
static int hardlink_source(struct apply *ap, struct tnode **ret) {
    char q[IMG_QUOTE_MAX];
    struct tnode *dir, *n = NULL;
    const char *name;
    int rc;

    if ((rc = resolve_parent(ap, ap->e->link, false, &dir, &name)) < 0) {
        return rc;
    }
    if (dir) {
        n = dir_get(dir, name, strlen(name));
    }
    if (!n) {
        return entry_error(ap, -ENOENT, "hard link to \"%s\", which is not in the image",
                           img_quote(ap->e->link, q, sizeof(q)));
    }
    if (n->type == TNODE_DIR) {
        return entry_error(ap, -EBADMSG, "hard link to the directory \"%s\"",
                           img_quote(ap->e->link, q, sizeof(q)));
    }
    *ret = n;
    return 0;
}

/* The node an entry puts in place, not yet in the tree. */
static int make_node(struct apply *ap, const char *name, struct tnode **ret) {
    const struct img_entry *e = ap->e;
    struct tnode *src = NULL, *n;
    enum tnode_type type = e->type == IMG_ENTRY_DIR       ? TNODE_DIR
                           : e->type == IMG_ENTRY_SYMLINK ? TNODE_SYMLINK
                                                          : TNODE_FILE;
    int rc;

    if (e->type == IMG_ENTRY_HARDLINK) {
        if ((rc = hardlink_source(ap, &src)) < 0) {
            return rc;
        }
        type = src->type;
    }
    if (!(n = node_new(name, strlen(name), type))) {
        return img_error_set(ap->err, -ENOMEM, "out of memory");
    }
    if (src && src->content) {
        n->content = src->content;
        n->content->refs++;
    } else if (type == TNODE_FILE) {
        n->content = calloc(1, sizeof(*n->content));
        if (n->content) {
            n->content->refs = 1;
            n->content->selected = e->selected;
            n->content->measured = e->measured;
            n->content->len = e->digest_len;
            memcpy(n->content->digest, e->digest, sizeof(e->digest));
        }
    } else if (type == TNODE_SYMLINK) {
        n->target = strdup(src ? src->target : e->link);
    }
    if ((type == TNODE_FILE && !n->content) || (type == TNODE_SYMLINK && !n->target)) {
        node_free(NULL, n);
        return img_error_set(ap->err, -ENOMEM, "out of memory");
    }
    *ret = n;
    return 0;
}

static int apply_entry(struct apply *ap) {
    struct tnode *dir, *n = NULL, *old;
    const char *name;
    size_t i;
    int rc;

    if (ap->e->type == IMG_ENTRY_WHITEOUT || ap->e->type == IMG_ENTRY_OPAQUE) {
        return apply_whiteout(ap);
    }
    if ((rc = resolve_parent(ap, ap->e->path, true, &dir, &name)) < 0) {
        return rc;
    }
    old = dir_find(dir, name, strlen(name), &i) ? dir->kids[i] : NULL;
    if (old && old->type == TNODE_DIR && ap->e->type == IMG_ENTRY_DIR) {
        touch(old, ap->t->gen);
        return 0;
    }
    /* The new node first: a hard link may name the node it replaces. */
    if ((rc = make_node(ap, name, &n)) < 0) {
        return rc;
    }
    if (old) {
        dir_remove(ap->t, dir, i);
    }
    return dir_insert(ap, dir, i, n);
}

int img_tree_apply(struct img_tree *t, const struct img_layer *l, const struct img_options *o,
                   struct img_error *err) {
    struct img_limits def;
    struct apply ap = {.t = t, .err = err, .lim = o ? &o->limits : &def};
    int rc;

    if (!t || !l) {
        return img_error_set(err, -EINVAL, "invalid arguments");
    }
    if (!o) {
        img_limits_default(&def);
    }
    t->gen++;
    for (size_t i = 0; i < l->n_entries; i++) {
        ap.e = l->entries[i];
        ap.links = 0;
        if ((rc = apply_entry(&ap)) < 0) {
            img_error_prefix(err, "%s", l->label);
            return rc;
        }
    }
    return 0;
}

/* ---- listing ---- */

struct listed {
    char *path;
    const struct tcontent *content;
};

struct listing {
    struct listed *v;
    size_t n, alloc;
    char path[TREE_PATH_MAX + 2];
};

static int collect(struct listing *ls, const struct tnode *dir, size_t plen) {
    for (size_t i = 0; i < dir->n_kids; i++) {
        const struct tnode *k = dir->kids[i];
        size_t len = strlen(k->name);
        int rc;

        if (k->type == TNODE_SYMLINK || (k->type == TNODE_FILE && !k->content->selected)) {
            continue;
        }
        if (plen + 1 + len + 1 > sizeof(ls->path)) {
            return -ENAMETOOLONG;
        }
        ls->path[plen] = '/';
        memcpy(ls->path + plen + 1, k->name, len + 1);
        if (k->type == TNODE_DIR) {
            if ((rc = collect(ls, k, plen + 1 + len)) < 0) {
                return rc;
            }
            continue;
        }
        if (ls->n == ls->alloc) {
            size_t na = ls->alloc ? 2 * ls->alloc : 256;
            struct listed *nv = realloc(ls->v, na * sizeof(*nv));
            if (!nv) {
                return -ENOMEM;
            }
            ls->v = nv;
            ls->alloc = na;
        }
        if (!(ls->v[ls->n].path = strdup(ls->path))) {
            return -ENOMEM;
        }
        ls->v[ls->n++].content = k->content;
    }
    return 0;
}

static int listed_cmp(const void *a, const void *b) {
    return strcmp(((const struct listed *)a)->path, ((const struct listed *)b)->path);
}

int img_tree_files(const struct img_tree *t, img_file_fn fn, void *ctx) {
    struct listing *ls;
    char hex[2 * HASH_ALG_DIGEST_MAX + 1];
    int rc;

    if (!t || !fn) {
        return -EINVAL;
    }
    if (!(ls = calloc(1, sizeof(*ls)))) {
        return -ENOMEM;
    }
    rc = collect(ls, t->root, 0);
    if (rc == 0 && ls->n > 0) {
        qsort(ls->v, ls->n, sizeof(*ls->v), listed_cmp);
    }
    for (size_t i = 0; i < ls->n && rc == 0; i++) {
        hex_encode(ls->v[i].content->digest, ls->v[i].content->len, hex);
        rc = fn(ctx, ls->v[i].path, hex, ls->v[i].content->measured);
    }
    for (size_t i = 0; i < ls->n; i++) {
        free(ls->v[i].path);
    }
    free(ls->v);
    free(ls);
    return rc;
}
