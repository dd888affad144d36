/* SPDX-License-Identifier: Apache-2.0 */
/* A directory read as one layer (rootfs:DIR): walked with openat and
 * fstatat relative to descriptors, never following a symbolic link (links
 * are recorded as links), never crossing into another file system (a mount
 * point is recorded as an empty directory), with the caps and the
 * selection of layers, and files hashed by the pool. The layer is then
 * applied on the tree like any other. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image-internal.h"

/* Descriptors held at once: one per level. */
#define DIR_DEPTH_MAX 256

struct walk {
    struct img_run run;
    struct img_layer *l;
    dev_t dev;
    char *path; /* limits.max_path + 2 bytes: the relative path being walked */
    struct img_error *err;
};

static int walk_error(struct walk *w, int rc, const char *what) {
    char q[IMG_QUOTE_MAX];

    return img_error_set(w->err, rc, "entry \"%s\": %s", img_quote(w->path, q, sizeof(q)), what);
}

/* Read an open regular file's first `size` bytes into the pool. */
static int hash_fd(struct walk *w, int fd, struct img_entry *e, uint64_t size, bool selected) {
    struct img_hash_pool *pool = w->run.pool;
    struct img_hash_job *job = NULL;
    uint64_t done = 0;
    int rc = 0;

    while (rc == 0) {
        uint64_t left = size - done;
        size_t want = left > IMG_CHUNK_MAX ? IMG_CHUNK_MAX : left ? (size_t)left : 1;
        struct img_chunk *c;
        if ((rc = img_chunk_get(pool, want, &c)) < 0) {
            break;
        }
        while (c->len < c->size && done + c->len < size) {
            ssize_t k = pread(fd, c->data + c->len, c->size - c->len, (off_t)(done + c->len));
            if (k < 0 && errno == EINTR) {
                continue;
            }
            if (k <= 0) {
                rc = k < 0 ? -errno : 0;
                break;
            }
            c->len += (size_t)k;
        }
        if (rc == 0 && !job) {
            e->measured = (e->mode & 0111) != 0 || (c->len >= 4 && !memcmp(c->data, "\177ELF", 4));
        }
        if (rc < 0 || (!job && !selected && !e->measured)) {
            img_chunk_put(pool, c);
            break;
        }
        if (!job && (rc = img_hash_begin(pool, w->run.o->hash, e, &job)) < 0) {
            img_chunk_put(pool, c);
            break;
        }
        e->selected = true;
        done += c->len;
        if (c->len == 0) {
            img_chunk_put(pool, c);
            break;
        }
        img_hash_add(pool, job, c);
        if (done >= size || c->len < want) {
            break;
        }
    }
    if (job) {
        img_hash_end(pool, job);
    }
    return rc < 0 ? walk_error(w, rc, strerror(-rc)) : 0;
}

static int add_file(struct walk *w, int dfd, const char *name, const struct stat *st) {
    struct img_entry *e;
    struct stat st2;
    int fd, rc;
    bool selected = w->run.o->select == IMG_SELECT_ALL || (st->st_mode & 0111) != 0;

    if ((rc = img_layer_add(w->l, IMG_ENTRY_FILE, w->path, NULL, st->st_mode & 07777, &e)) < 0) {
        return img_error_set(w->err, rc, "out of memory");
    }
    fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        return walk_error(w, -errno, strerror(errno));
    }
    /* The same file as the one stat'ed: not swapped for a FIFO meanwhile. */
    if (fstat(fd, &st2) < 0 || !S_ISREG(st2.st_mode) || st2.st_ino != st->st_ino) {
        close(fd);
        return walk_error(w, -EAGAIN, "changed while the directory was read");
    }
    rc = hash_fd(w, fd, e, (uint64_t)st->st_size, selected);
    close(fd);
    return rc;
}

static int add_symlink(struct walk *w, int dfd, const char *name) {
    size_t max = w->run.o->limits.max_path;
    _cleanup_free_ char *target = malloc(max + 2);
    ssize_t k;
    int rc;

    if (!target) {
        return img_error_set(w->err, -ENOMEM, "out of memory");
    }
    k = readlinkat(dfd, name, target, max + 1);
    if (k < 0) {
        return walk_error(w, -errno, strerror(errno));
    }
    if ((size_t)k > max) {
        return walk_error(w, -E2BIG,
                          "link target longer than the path cap (raise the cap with --max-path)");
    }
    target[k] = 0;
    if ((rc = img_layer_add(w->l, IMG_ENTRY_SYMLINK, w->path, target, 0777, NULL)) < 0) {
        return img_error_set(w->err, rc, "out of memory");
    }
    return 0;
}

static int walk_dir(struct walk *w, int dfd, size_t plen, unsigned depth);

static int add_one(struct walk *w, int dfd, const char *name, size_t plen, unsigned depth) {
    size_t max = w->run.o->limits.max_path, len = strlen(name);
    uint64_t meta;
    struct stat st;
    int fd, rc;

    if (plen + (plen > 0) + len > max) {
        return img_error_set(w->err, -E2BIG,
                             "entry \"%.200s/%.200s\": path longer than %zu bytes (raise the cap "
                             "with --max-path)",
                             w->path, name, max);
    }
    if (plen > 0) {
        w->path[plen++] = '/';
    }
    memcpy(w->path + plen, name, len + 1);
    plen += len;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        return walk_error(w, -errno, strerror(errno));
    }
    /* A link's size is its target's length; readlinkat caps what is read. */
    meta = plen + (S_ISLNK(st.st_mode) && st.st_size > 0
                           ? (uint64_t)st.st_size > max ? max + 1 : (uint64_t)st.st_size
                           : 0);
    if ((rc = img_run_charge(&w->run, w->path, S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0, meta,
                             w->err)) < 0) {
        return rc;
    }
    if (S_ISREG(st.st_mode)) {
        return add_file(w, dfd, name, &st);
    }
    if (S_ISLNK(st.st_mode)) {
        return add_symlink(w, dfd, name);
    }
    if (!S_ISDIR(st.st_mode)) {
        w->l->skipped++;
        return 0;
    }
    if ((rc = img_layer_add(w->l, IMG_ENTRY_DIR, w->path, NULL, st.st_mode & 07777, NULL)) < 0) {
        return img_error_set(w->err, rc, "out of memory");
    }
    if (st.st_dev != w->dev) {
        return 0;
    }
    if (depth >= DIR_DEPTH_MAX) {
        return walk_error(w, -E2BIG, "more than 256 directories deep");
    }
    fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return walk_error(w, -errno, strerror(errno));
    }
    rc = walk_dir(w, fd, plen, depth + 1);
    close(fd);
    return rc;
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in a directory, sorted (so that errors and caps are the same
 * on every run); the directory stream is closed before descending. */
static int list_names(struct walk *w, int dfd, char ***ret, size_t *ret_n) {
    int fd = dup(dfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    char **v = NULL;
    size_t n = 0, a = 0;
    struct dirent *de;
    int rc = 0;

    if (!d) {
        rc = -errno;
        if (fd >= 0) {
            close(fd);
        }
        return walk_error(w, rc, strerror(-rc));
    }
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) {
            continue;
        }
        if (n == a) {
            char **nv = realloc(v, (a = a ? 2 * a : 32) * sizeof(*v));
            if (!nv) {
                rc = -ENOMEM;
                break;
            }
            v = nv;
        }
        if (!(v[n] = strdup(de->d_name))) {
            rc = -ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (n > 0) {
        qsort(v, n, sizeof(*v), name_cmp);
    }
    *ret = v;
    *ret_n = n;
    return rc < 0 ? img_error_set(w->err, rc, "out of memory") : 0;
}

static int walk_dir(struct walk *w, int dfd, size_t plen, unsigned depth) {
    char **names = NULL;
    size_t n = 0;
    int rc = list_names(w, dfd, &names, &n);

    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            rc = add_one(w, dfd, names[i], plen, depth);
            w->path[plen] = 0;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static int read_dir_layer(struct walk *w, const char *dir) {
    struct stat st;
    int fd, rc;

    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        rc = -errno;
        if (fd >= 0) {
            close(fd);
        }
        return img_error_set(w->err, rc, "cannot open the directory: %s", strerror(-rc));
    }
    w->dev = st.st_dev;
    rc = img_hash_pool_new(img_threads(w->run.o) > 1 ? img_threads(w->run.o) : 0, IMG_HASH_BUDGET,
                           &w->run.pool);
    if (rc < 0) {
        close(fd);
        return img_error_set(w->err, rc, "cannot start the hashing threads");
    }
    rc = walk_dir(w, fd, 0, 0);
    close(fd);
    if (img_hash_pool_wait(w->run.pool) < 0 && rc == 0) {
        rc = img_error_set(w->err, -EIO, "hashing failed");
    }
    img_hash_pool_free(w->run.pool);
    return rc;
}

int img_tree_add_dir(struct img_tree *t, const char *dir, const struct img_options *o,
                     struct img_error *err) {
    struct walk w = {.err = err};
    char q[IMG_QUOTE_MAX];
    int rc;

    if (!t || !dir || !o || !hash_alg_evp_md(o->hash)) {
        return img_error_set(err, -EINVAL, "invalid arguments");
    }
    w.run.o = o;
    if ((rc = img_layer_new(img_quote(dir, q, sizeof(q)), o->hash, &w.l)) < 0 ||
        !(w.path = calloc(1, o->limits.max_path + 2))) {
        img_layer_free(w.l);
        return img_error_set(err, -ENOMEM, "out of memory");
    }
    rc = read_dir_layer(&w, dir);
    if (rc < 0) {
        img_error_prefix(err, "%s", w.l->label);
    } else {
        rc = img_tree_apply(t, w.l, o, err);
    }
    img_layer_free(w.l);
    free(w.path);
    return rc;
}
