/* SPDX-License-Identifier: Apache-2.0 */
/* An uncompressed tar, indexed: where each regular file's bytes start and
 * how many there are. libarchive reads the headers (ustar, pax, GNU long
 * names); the data offset is how far its format reader has consumed the
 * file once a header is read. */
#include "image-tar-index.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int member_cmp(const void *a, const void *b) {
    return strcmp(((const struct tar_member *)a)->name, ((const struct tar_member *)b)->name);
}

void tar_index_close(struct tar_index *t) {
    if (!t) {
        return;
    }
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].name);
        free(t->v[i].link);
    }
    free(t->v);
    if (t->fd >= 0) {
        close(t->fd);
    }
    *t = (struct tar_index){.fd = -1};
}

static int add_member(struct tar_index *t, size_t *alloc, const char *name, const char *link,
                      off_t offset, off_t size) {
    while (name[0] == '.' && name[1] == '/') {
        name += 2;
    }
    if (t->n == *alloc) {
        size_t na = *alloc ? 2 * *alloc : 64;
        struct tar_member *v = realloc(t->v, na * sizeof(*v));
        if (!v) {
            return -ENOMEM;
        }
        t->v = v;
        *alloc = na;
    }
    t->v[t->n] = (struct tar_member){.name = strdup(name), .offset = offset, .size = size};
    if (link && !(t->v[t->n].link = strdup(link))) {
        free(t->v[t->n].name);
        return -ENOMEM;
    }
    if (!t->v[t->n].name) {
        free(t->v[t->n].link);
        return -ENOMEM;
    }
    t->n++;
    return 0;
}

/* One header: a regular file is recorded, anything else passed over. */
static int index_entry(struct archive *a, struct archive_entry *e, struct tar_index *t,
                       size_t *alloc, const struct img_limits *l, struct img_error *err) {
    const char *name = archive_entry_pathname(e);
    int r;

    if (!name || strlen(name) > l->max_path) {
        return img_error_set(err, -EBADMSG, "a member name longer than %zu bytes (--max-path)",
                             l->max_path);
    }
    if (archive_entry_filetype(e) == AE_IFLNK) {
        const char *to = archive_entry_symlink(e);
        if (!to || strlen(to) > l->max_path) {
            return img_error_set(err, -EBADMSG, "member \"%.200s\": a bad link target", name);
        }
        if (t->n >= l->max_entries) {
            return img_error_set(err, -E2BIG, "more than %llu members (--max-entries)",
                                 (unsigned long long)l->max_entries);
        }
        r = add_member(t, alloc, name, to, 0, 0);
        return r < 0 ? img_error_set(err, r, "out of memory") : 0;
    }
    if (archive_entry_filetype(e) != AE_IFREG) {
        return 0;
    }
    if (archive_entry_sparse_count(e) > 0 || archive_entry_size(e) < 0) {
        return img_error_set(err, -EBADMSG, "member \"%.200s\": sparse, which an image is not",
                             name);
    }
    if (t->n >= l->max_entries) {
        return img_error_set(err, -E2BIG, "more than %llu members (--max-entries)",
                             (unsigned long long)l->max_entries);
    }
    r = add_member(t, alloc, name, NULL, (off_t)archive_filter_bytes(a, 0), archive_entry_size(e));
    return r < 0 ? img_error_set(err, r, "out of memory") : 0;
}

static int index_all(struct archive *a, struct tar_index *t, const struct img_limits *l,
                     struct img_error *err) {
    struct archive_entry *e;
    size_t alloc = 0;
    int r;

    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        if (archive_filter_code(a, 0) != ARCHIVE_FILTER_NONE) {
            return img_error_set(err, -EBADMSG,
                                 "compressed (%s); decompress it to a plain tar first",
                                 archive_filter_name(a, 0));
        }
        if ((r = index_entry(a, e, t, &alloc, l, err)) < 0) {
            return r;
        }
    }
    if (r != ARCHIVE_EOF) {
        return img_error_set(err, -EBADMSG, "not a readable tar: %s",
                             archive_error_string(a) ? archive_error_string(a) : "bad header");
    }
    qsort(t->v, t->n, sizeof(*t->v), member_cmp);
    for (size_t i = 1; i < t->n; i++) {
        if (strcmp(t->v[i - 1].name, t->v[i].name) == 0) {
            return img_error_set(err, -EBADMSG, "member \"%.200s\" is there twice", t->v[i].name);
        }
    }
    return 0;
}

int tar_index_open(const char *path, const char *what, const struct img_limits *l,
                   struct tar_index *ret, struct img_error *err) {
    struct tar_index t = {.fd = -1};
    struct archive *a = NULL;
    struct stat st;
    int r, fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        r = fd < 0 ? -errno : S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
        if (fd >= 0) {
            close(fd);
        }
        return img_error_set(err, r, "%s: cannot open it: %s", what,
                             r == -EINVAL ? "not a regular file" : strerror(-r));
    }
    t.fd = fd;
    if (!(a = archive_read_new()) || archive_read_support_format_tar(a) != ARCHIVE_OK ||
        archive_read_support_filter_all(a) != ARCHIVE_OK) {
        r = img_error_set(err, -ENOMEM, "out of memory");
    } else if (archive_read_open_fd(a, fd, 65536) != ARCHIVE_OK) {
        r = img_error_set(err, -EBADMSG, "%s: not a readable tar: %s", what,
                          archive_error_string(a) ? archive_error_string(a) : "unknown format");
    } else if ((r = index_all(a, &t, l, err)) < 0) {
        img_error_prefix(err, "%s", what);
    }
    archive_read_free(a);
    if (r < 0) {
        tar_index_close(&t);
        return r;
    }
    *ret = t;
    return 0;
}

static const struct tar_member *lookup(const struct tar_index *t, const char *name) {
    struct tar_member key = {.name = (char *)name};

    while (name[0] == '.' && name[1] == '/') {
        key.name = (char *)(name += 2);
    }
    return t->n ? bsearch(&key, t->v, t->n, sizeof(*t->v), member_cmp) : NULL;
}

/* A link's target as a member name: relative to the link's directory,
 * "." and ".." resolved, never above the root. -EBADMSG when it climbs. */
static int link_target(const char *name, const char *link, char *out, size_t outsz) {
    char buf[8192];
    size_t n = 0;
    const char *slash = strrchr(name, '/');

    if (link[0] == '/') {
        snprintf(buf, sizeof(buf), "%s", link + 1);
    } else {
        snprintf(buf, sizeof(buf), "%.*s%s", slash ? (int)(slash - name + 1) : 0, name, link);
    }
    out[0] = 0;
    for (char *save = NULL, *c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0) {
            continue;
        }
        if (strcmp(c, "..") == 0) {
            char *up = n ? memrchr(out, '/', n) : NULL;
            if (n == 0) {
                return -EBADMSG;
            }
            n = up ? (size_t)(up - out) : 0;
            out[n] = 0;
            continue;
        }
        if (n + strlen(c) + 2 > outsz) {
            return -EBADMSG;
        }
        n += (size_t)snprintf(out + n, outsz - n, "%s%s", n ? "/" : "", c);
    }
    return 0;
}

const struct tar_member *tar_index_find(const struct tar_index *t, const char *name) {
    char cur[4200], next[4200];
    const struct tar_member *m;

    snprintf(cur, sizeof(cur), "%s", name);
    for (int hops = 0; (m = lookup(t, cur)) && m->link; hops++) {
        if (hops == 8 || link_target(m->name, m->link, next, sizeof(next)) < 0) {
            return NULL;
        }
        memcpy(cur, next, sizeof(cur));
    }
    return m;
}

int tar_index_slurp(const struct tar_index *t, const char *name, size_t max, struct kbuf *out,
                    struct img_error *err) {
    const struct tar_member *m = tar_index_find(t, name);
    struct img_stream *s = NULL;
    int r;

    if (!m) {
        return img_error_set(err, -ENOENT, "no member \"%.200s\"", name);
    }
    if ((uint64_t)m->size > max) {
        return img_error_set(err, -E2BIG, "member \"%.200s\": %lld bytes, more than %zu", name,
                             (long long)m->size, max);
    }
    if ((r = img_stream_fd(t->fd, m->offset, m->size, &s)) < 0) {
        return img_error_set(err, r, "out of memory");
    }
    r = img_stream_slurp(s, max, out, err);
    if (r < 0) {
        img_error_prefix(err, "member \"%.200s\"", name);
    }
    return r;
}
