/* SPDX-License-Identifier: Apache-2.0 */
/* A Debian package read as one layer: the package is an ar archive
 * (debian-binary, control.tar.*, data.tar[.gz|.xz|.zst]); its data.tar is
 * read by a second libarchive reader fed from the first one's entry data,
 * so nothing is unpacked and the package is read once. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image-internal.h"

/* The outer archive's current entry as a stream. */
struct member_stream {
    struct img_stream s;
    struct archive *outer;
};

static ssize_t member_read(struct img_stream *s, void *buf, size_t n) {
    struct member_stream *m = (struct member_stream *)s;
    la_ssize_t k = archive_read_data(m->outer, buf, n);

    if (k < 0) {
        snprintf(s->err, sizeof(s->err), "%s",
                 archive_error_string(m->outer) ? archive_error_string(m->outer) : "unreadable");
        return -EBADMSG;
    }
    return k;
}

static void member_close(struct img_stream *s) {
    (void)s;
}

static bool is_data_member(const char *name) {
    static const char *const names[] = {"data.tar", "data.tar.gz", "data.tar.xz", "data.tar.zst"};

    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (strcmp(name, names[i]) == 0) {
            return true;
        }
    }
    return false;
}

static int open_outer(int fd, struct archive **ret, struct img_error *err) {
    struct archive *a = archive_read_new();

    if (!a) {
        return img_error_set(err, -ENOMEM, "out of memory");
    }
    if (archive_read_support_format_ar(a) != ARCHIVE_OK ||
        archive_read_support_filter_none(a) != ARCHIVE_OK) {
        archive_read_free(a);
        return img_error_set(err, -ENOTSUP, "libarchive lacks ar support");
    }
    if (archive_read_open_fd(a, fd, 64 << 10) != ARCHIVE_OK) {
        img_error_set(err, -EBADMSG, "not a Debian package: %s",
                      archive_error_string(a) ? archive_error_string(a) : "unreadable");
        archive_read_free(a);
        return -EBADMSG;
    }
    *ret = a;
    return 0;
}

/* Walk the members: debian-binary first, then data.tar.* read as the layer. */
static int read_members(struct img_run *run, struct archive *a, struct img_layer *l,
                        struct img_error *err) {
    struct member_stream m = {.s = {.read = member_read, .close = member_close}, .outer = a};
    struct archive_entry *ae;
    bool first = true, found = false;
    char q[IMG_QUOTE_MAX];
    int rc;

    while ((rc = archive_read_next_header(a, &ae)) != ARCHIVE_EOF) {
        const char *name = archive_entry_pathname(ae);
        if (rc < ARCHIVE_WARN || !name) {
            return img_error_set(err, -EBADMSG, "not a Debian package: %s",
                                 archive_error_string(a) ? archive_error_string(a) : "unreadable");
        }
        if (first && strcmp(name, "debian-binary") != 0) {
            return img_error_set(err, -EBADMSG,
                                 "not a Debian package: its first member is \"%s\", not "
                                 "debian-binary",
                                 img_quote(name, q, sizeof(q)));
        }
        first = false;
        if (!is_data_member(name)) {
            continue;
        }
        if (found) {
            return img_error_set(err, -EBADMSG, "two data.tar members");
        }
        found = true;
        if ((rc = img_layer_read_stream(run, &m.s, l, err)) < 0) {
            img_error_prefix(err, "%s", name);
            return rc;
        }
    }
    if (!found) {
        return img_error_set(err, -EBADMSG, "no data.tar member: not a Debian binary package");
    }
    return 0;
}

static int deb_read_fd(int fd, const struct img_options *o, struct img_layer *l,
                       struct img_error *err) {
    struct img_run run = {.o = o};
    struct archive *a = NULL;
    int rc, rc_hash;

    if ((rc = open_outer(fd, &a, err)) < 0) {
        return rc;
    }
    rc = img_hash_pool_new(img_threads(o) > 1 ? img_threads(o) : 0, IMG_HASH_BUDGET, &run.pool);
    if (rc < 0) {
        archive_read_free(a);
        return img_error_set(err, rc, "cannot start the hashing threads");
    }
    rc = read_members(&run, a, l, err);
    rc_hash = img_hash_pool_wait(run.pool);
    img_hash_pool_free(run.pool);
    archive_read_free(a);
    if (rc == 0 && rc_hash < 0) {
        rc = img_error_set(err, rc_hash, "hashing failed");
    }
    return rc;
}

int img_deb_read(const char *path, const struct img_options *o, struct img_layer **ret,
                 struct img_error *err) {
    struct img_layer *l = NULL;
    char q[IMG_QUOTE_MAX];
    int fd, rc;

    if (!path || !o || !ret || !hash_alg_evp_md(o->hash)) {
        return img_error_set(err, -EINVAL, "invalid arguments");
    }
    img_quote(path, q, sizeof(q));
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        rc = -errno;
        return img_error_set(err, rc, "%s: %s", q, strerror(-rc));
    }
    rc = img_layer_new(q, o->hash, &l);
    if (rc < 0) {
        close(fd);
        return img_error_set(err, rc, "out of memory");
    }
    rc = deb_read_fd(fd, o, l, err);
    close(fd);
    if (rc < 0) {
        img_error_prefix(err, "%s", q);
        img_layer_free(l);
        return rc;
    }
    *ret = l;
    return 0;
}
