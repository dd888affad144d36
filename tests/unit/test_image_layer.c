/* SPDX-License-Identifier: Apache-2.0 */
/* Layers read and applied (policies/image-layer.c, image-tree.c,
 * image-hash.c, image-dir.c, image-deb.c). Every layer is a tar written
 * here with libarchive's writer into the test's folder and read back
 * through img_stream_fd + img_stream_verified, the way the image sources
 * hand layers over; digests are checked against OpenSSL's. */
#include "test-util.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "buf.h"
#include "hex.h"
#include "image-internal.h"

static char dir[256];

#define ELF "\177ELF\002\001\001"

/* One tar entry: f file, d dir, l symlink, h hard link, c char device, p FIFO. */
struct tent {
    const char *path;
    char type;
    const char *data; /* content, or link target */
    unsigned mode;
    size_t size; /* > 0: that many bytes of a pattern instead of data */
};

static int setup(void **state) {
    (void)state;
    return test_tmpdir_new("image-layer", dir, sizeof(dir));
}

static int teardown(void **state) {
    (void)state;
    return test_tmpdir_free(dir);
}

static uint8_t *pattern(size_t size) {
    uint8_t *p = malloc(size);

    assert_non_null(p);
    for (size_t i = 0; i < size; i++) {
        p[i] = (uint8_t)(i * 7 + i / 251);
    }
    return p;
}

static void write_entries(struct archive *a, const struct tent *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *ae = archive_entry_new();
        const struct tent *t = &v[i];
        _cleanup_free_ uint8_t *big = t->size ? pattern(t->size) : NULL;

        if (big && t->data) {
            memcpy(big, t->data, strlen(t->data)); /* a prefix over the pattern */
        }
        const void *data = big ? (const void *)big : t->data;
        size_t len = big ? t->size : t->type == 'f' && t->data ? strlen(t->data) : 0;

        archive_entry_set_pathname(ae, t->path);
        archive_entry_set_perm(ae, t->mode ? t->mode : 0644);
        archive_entry_set_mtime(ae, 1700000000, 0);
        switch (t->type) {
        case 'f':
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_size(ae, (la_int64_t)len);
            break;
        case 'd':
            archive_entry_set_filetype(ae, AE_IFDIR);
            break;
        case 'l':
            archive_entry_set_filetype(ae, AE_IFLNK);
            archive_entry_set_symlink(ae, t->data);
            break;
        case 'h':
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_hardlink(ae, t->data);
            break;
        case 'c':
            archive_entry_set_filetype(ae, AE_IFCHR);
            archive_entry_set_rdev(ae, 0x0103);
            break;
        case 'p':
            archive_entry_set_filetype(ae, AE_IFIFO);
            break;
        default:
            fail();
        }
        assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
        if (len > 0) {
            assert_int_equal(archive_write_data(a, data, len), (la_ssize_t)len);
        }
        archive_entry_free(ae);
    }
}

static struct archive *writer(int filter) {
    struct archive *a = archive_write_new();

    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    assert_int_equal(archive_write_add_filter(a, filter), ARCHIVE_OK);
    return a;
}

/* A tar layer in a new file of the test's folder; caller frees the path. */
static char *make_tar(int filter, const struct tent *v, size_t n) {
    static unsigned count;
    struct archive *a = writer(filter);
    char *path;

    assert_true(asprintf(&path, "%s/layer-%u.tar", dir, count++) > 0);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    write_entries(a, v, n);
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    return path;
}

static void sha256_hex(const void *data, size_t len, char *hex) {
    uint8_t md[32];

    assert_int_equal(EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL), 1);
    hex_encode(md, sizeof(md), hex);
}

static void file_digest(const char *path, char *out /* "sha256:" + 64 + 1 */) {
    uint8_t *data = NULL;
    size_t len = 0;

    assert_int_equal(read_file_capped(path, 256u << 20, &data, &len), 0);
    memcpy(out, "sha256:", 7);
    sha256_hex(data, len, out + 7);
    free(data);
}

/* ---- reading layers through the open callback ---- */

struct layers {
    char *paths[8];
    char digests[8][80]; /* what the "manifest" says: the file's own, unless changed */
    int fds[8];
    size_t n;
};

static int open_layer(void *ctx, size_t i, struct img_stream **ret, struct img_error *err) {
    struct layers *ls = ctx;
    struct img_stream *s = NULL;
    int rc;

    ls->fds[i] = open(ls->paths[i], O_RDONLY | O_CLOEXEC);
    if (ls->fds[i] < 0) {
        return img_error_set(err, -errno, "cannot open");
    }
    if ((rc = img_stream_fd(ls->fds[i], 0, -1, &s)) < 0) {
        return rc;
    }
    return img_stream_verified(s, ls->digests[i], -1, ret);
}

static void layers_add(struct layers *ls, char *path) {
    ls->paths[ls->n] = path;
    file_digest(path, ls->digests[ls->n]);
    ls->fds[ls->n] = -1;
    ls->n++;
}

static void layers_done(struct layers *ls) {
    for (size_t i = 0; i < ls->n; i++) {
        if (ls->fds[i] >= 0) {
            close(ls->fds[i]);
        }
        free(ls->paths[i]);
    }
    ls->n = 0;
}

static int read_layers(struct layers *ls, const struct img_options *o, struct img_layer **ret,
                       struct img_error *err) {
    const char *labels[8];
    char names[8][32];

    for (size_t i = 0; i < ls->n; i++) {
        snprintf(names[i], sizeof(names[i]), "layer %zu/%zu", i + 1, ls->n);
        labels[i] = names[i];
    }
    memset(err, 0, sizeof(*err));
    return img_layers_read(ls->n, open_layer, ls, labels, o, ret, err);
}

/* The files the default selection would not take, "path;" each, from the
 * last listings (reset by the test that reads it). */
static struct kbuf unmeasured = KBUF_INIT(1 << 20);

static int add_line(void *ctx, const char *path, const char *hex, bool measured) {
    if (!measured && kbuf_printf(&unmeasured, "%s;", path) < 0) {
        return -ENOMEM;
    }
    return kbuf_printf(ctx, "%s %s\n", path, hex);
}

/* Read the layers, apply them in order and list "path hex\n" lines into
 * `out`. Returns the first error (its sentence in err). */
static int image_files(struct layers *ls, const struct img_options *o, struct kbuf *out,
                       struct img_error *err) {
    struct img_layer *l[8] = {0};
    struct img_tree *t = NULL;
    int rc = read_layers(ls, o, l, err);

    if (rc == 0) {
        assert_int_equal(img_tree_new(&t), 0);
        for (size_t i = 0; i < ls->n && rc == 0; i++) {
            rc = img_tree_apply(t, l[i], o, err);
        }
        if (rc == 0) {
            kbuf_reset(out);
            assert_int_equal(img_tree_files(t, add_line, out), 0);
        }
    }
    for (size_t i = 0; i < ls->n; i++) {
        img_layer_free(l[i]);
    }
    img_tree_free(t);
    layers_done(ls);
    return rc;
}

static void options(struct img_options *o, unsigned threads) {
    img_options_default(o);
    o->threads = threads;
}

static void expect_line(const struct kbuf *b, const char *path, const void *data, size_t len) {
    char hex[65], line[4200];

    sha256_hex(data, len, hex);
    snprintf(line, sizeof(line), "%s %s\n", path, hex);
    if (!strstr((const char *)b->data, line)) {
        fail_msg("missing \"%s\" in:\n%s", line, b->data ? (const char *)b->data : "");
    }
}

static size_t count_lines(const struct kbuf *b) {
    size_t n = 0;

    for (size_t i = 0; i < b->len; i++) {
        n += b->data[i] == '\n';
    }
    return n;
}

static void expect_error(int rc, const struct img_error *err, const char *a, const char *b) {
    assert_true(rc < 0);
    if (!strstr(err->msg, a) || (b && !strstr(err->msg, b))) {
        fail_msg("error \"%s\" lacks \"%s\"%s%s", err->msg, a, b ? " or " : "", b ? b : "");
    }
}

/* ---- digests and selection, every filter, one and several threads ---- */

static const struct tent sel_entries[] = {
        {"usr/", 'd', NULL, 0755, 0},
        {"usr/lib/", 'd', NULL, 0755, 0},
        {"usr/lib/libfoo.so.1", 'f', ELF "library", 0644, 0},
        {"./usr/bin//script", 'f', "#!/bin/sh\necho hi\n", 0755, 0},
        {"usr/bin/empty", 'f', "", 0700, 0},
        {"usr/bin/big", 'f', NULL, 0755, 3u << 20},
        {"usr/lib/libbig.so", 'f', ELF, 0644, 200000},
        {"etc/conf", 'f', "key=value\n", 0644, 0},
        {"etc/big-data", 'f', NULL, 0644, (1u << 20) + 5},
};

static void check_selection(int filter, unsigned threads) {
    struct kbuf out = KBUF_INIT(1 << 20);
    struct layers ls = {0};
    struct img_options o;
    struct img_error err;
    _cleanup_free_ uint8_t *big = pattern(3u << 20), *big2 = pattern((1u << 20) + 5),
                           *lib = pattern(200000);

    memcpy(lib, ELF, strlen(ELF));

    options(&o, threads);
    layers_add(&ls, make_tar(filter, sel_entries, ARRAY_SIZE(sel_entries)));
    assert_int_equal(image_files(&ls, &o, &out, &err), 0);
    expect_line(&out, "/usr/lib/libfoo.so.1", ELF "library", strlen(ELF "library"));
    expect_line(&out, "/usr/bin/script", "#!/bin/sh\necho hi\n", 18);
    expect_line(&out, "/usr/bin/empty", "", 0);
    expect_line(&out, "/usr/bin/big", big, 3u << 20);
    expect_line(&out, "/usr/lib/libbig.so", lib, 200000);
    assert_int_equal(count_lines(&out), 5);
    /* Sorted bytewise. */
    assert_true(strstr((char *)out.data, "/usr/bin/big") < strstr((char *)out.data, "/usr/bin/e"));

    o.select = IMG_SELECT_ALL;
    layers_add(&ls, make_tar(filter, sel_entries, ARRAY_SIZE(sel_entries)));
    kbuf_reset(&unmeasured);
    assert_int_equal(image_files(&ls, &o, &out, &err), 0);
    expect_line(&out, "/etc/conf", "key=value\n", 10);
    expect_line(&out, "/etc/big-data", big2, (1u << 20) + 5);
    assert_int_equal(count_lines(&out), 7);
    /* Read with every file selected, the listing still tells which ones
     * the default selection takes (--include reads an image once). */
    assert_int_equal(kbuf_putc(&unmeasured, 0), 0);
    assert_string_equal((char *)unmeasured.data, "/etc/big-data;/etc/conf;");
    kbuf_free(&unmeasured);
    kbuf_free(&out);
}

static void test_selection_and_digests(void **state) {
    static const int filters[] = {ARCHIVE_FILTER_NONE, ARCHIVE_FILTER_GZIP, ARCHIVE_FILTER_ZSTD,
                                  ARCHIVE_FILTER_XZ};
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(filters); i++) {
        check_selection(filters[i], 1);
        check_selection(filters[i], 4);
    }
}

static void test_sha512(void **state) {
    static const struct tent v[] = {{"bin/x", 'f', "abc", 0755, 0}};
    struct kbuf out = KBUF_INIT(1 << 16);
    struct layers ls = {0};
    struct img_options o;
    struct img_error err;
    (void)state;

    options(&o, 2);
    o.hash = HASH_ALG_SHA512;
    layers_add(&ls, make_tar(ARCHIVE_FILTER_GZIP, v, 1));
    assert_int_equal(image_files(&ls, &o, &out, &err), 0);
    assert_string_equal(
            (char *)out.data,
            "/bin/x ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192"
            "992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f\n");
    kbuf_free(&out);
}

/* ---- the layer's own record ---- */

static void test_layer_record(void **state) {
    static const struct tent v[] = {
            {"a/", 'd', NULL, 0755, 0},           {"a/.wh.gone", 'f', "", 0644, 0},
            {"a/.wh..wh..opq", 'f', "", 0644, 0}, {"a/l", 'l', "../x", 0777, 0},
            {"a/h", 'h', "./a/l", 0644, 0},       {"dev/null", 'c', NULL, 0666, 0},
            {"fifo", 'p', NULL, 0644, 0},         {".wh..wh.plnk", 'd', NULL, 0700, 0},
    };
    struct layers ls = {0};
    struct img_layer *l = NULL;
    struct img_options o;
    struct img_error err;
    (void)state;

    options(&o, 1);
    layers_add(&ls, make_tar(ARCHIVE_FILTER_NONE, v, ARRAY_SIZE(v)));
    assert_int_equal(read_layers(&ls, &o, &l, &err), 0);
    assert_int_equal(l->n_entries, 5);
    assert_int_equal(l->skipped, 2);
    assert_int_equal(l->entries[0]->type, IMG_ENTRY_DIR);
    assert_string_equal(l->entries[1]->path, "a/gone");
    assert_int_equal(l->entries[1]->type, IMG_ENTRY_WHITEOUT);
    assert_string_equal(l->entries[2]->path, "a");
    assert_int_equal(l->entries[2]->type, IMG_ENTRY_OPAQUE);
    assert_int_equal(l->entries[3]->type, IMG_ENTRY_SYMLINK);
    assert_string_equal(l->entries[3]->link, "../x");
    assert_int_equal(l->entries[4]->type, IMG_ENTRY_HARDLINK);
    assert_string_equal(l->entries[4]->link, "a/l");
    assert_string_equal(l->label, "layer 1/1");
    img_layer_free(l);
    layers_done(&ls);
}

/* ---- whiteouts and opaque directories ---- */

static void test_whiteouts(void **state) {
    static const struct tent low[] = {
            {"a/x", 'f', ELF "x", 0755, 0},         {"a/y", 'f', ELF "y", 0755, 0},
            {"b/z", 'f', ELF "z", 0755, 0},         {"d/old1", 'f', ELF "o1", 0755, 0},
            {"d/sub/old2", 'f', ELF "o2", 0755, 0}, {"e/old3", 'f', ELF "o3", 0755, 0},
            {"x/inner", 'f', ELF "in", 0755, 0},
    };
    /* The same layer's entries stay whether they come before or after the marker. */
    static const struct tent up[] = {
            {"a/.wh.x", 'f', "", 0644, 0},
            {".wh.b", 'f', "", 0644, 0},
            {"d/new1", 'f', ELF "n1", 0755, 0},
            {"d/.wh..wh..opq", 'f', "", 0644, 0},
            {"d/new2", 'f', ELF "n2", 0755, 0},
            {"d/sub/", 'd', NULL, 0755, 0},
            {"d/sub/new3", 'f', ELF "n3", 0755, 0},
            {"e/new4", 'f', ELF "n4", 0755, 0},
            {".wh.e", 'f', "", 0644, 0},
            {".wh.nothing", 'f', "", 0644, 0},
            {"x", 'f', ELF "file", 0755, 0},
    };
    struct kbuf out = KBUF_INIT(1 << 16);
    struct layers ls = {0};
    struct img_options o;
    struct img_error err;
    (void)state;

    options(&o, 3);
    layers_add(&ls, make_tar(ARCHIVE_FILTER_GZIP, low, ARRAY_SIZE(low)));
    layers_add(&ls, make_tar(ARCHIVE_FILTER_ZSTD, up, ARRAY_SIZE(up)));
    assert_int_equal(image_files(&ls, &o, &out, &err), 0);
    expect_line(&out, "/a/y", ELF "y", strlen(ELF "y"));
    expect_line(&out, "/d/new1", ELF "n1", strlen(ELF "n1"));
    expect_line(&out, "/d/new2", ELF "n2", strlen(ELF "n2"));
    expect_line(&out, "/d/sub/new3", ELF "n3", strlen(ELF "n3"));
    expect_line(&out, "/e/new4", ELF "n4", strlen(ELF "n4"));
    /* A file replaces a directory and what it held. */
    expect_line(&out, "/x", ELF "file", strlen(ELF "file"));
    assert_int_equal(count_lines(&out), 6);
    kbuf_free(&out);
}

/* ---- hard links ---- */

static void test_hardlinks(void **state) {
    static const struct tent low[] = {{"usr/bin/a", 'f', ELF "a", 0755, 0},
                                      {"usr/share/doc", 'f', "text", 0644, 0}};
    static const struct tent up[] = {
            {"usr/bin/b", 'h', "usr/bin/a", 0755, 0},
            {"usr/bin/c", 'f', "#!/bin/sh\n", 0755, 0},
            {"usr/bin/d", 'h', "usr/bin/c", 0755, 0},
            {"usr/bin/doc", 'h', "usr/share/doc", 0644, 0},
    };
    static const struct tent missing[] = {{"usr/bin/e", 'h', "usr/bin/nope", 0755, 0}};
    struct kbuf out = KBUF_INIT(1 << 16);
    struct layers ls = {0};
    struct img_options o;
    struct img_error err;
    (void)state;

    options(&o, 2);
    layers_add(&ls, make_tar(ARCHIVE_FILTER_NONE, low, ARRAY_SIZE(low)));
    layers_add(&ls, make_tar(ARCHIVE_FILTER_XZ, up, ARRAY_SIZE(up)));
    assert_int_equal(image_files(&ls, &o, &out, &err), 0);
    expect_line(&out, "/usr/bin/a", ELF "a", strlen(ELF "a"));
    expect_line(&out, "/usr/bin/b", ELF "a", strlen(ELF "a"));
    expect_line(&out, "/usr/bin/c", "#!/bin/sh\n", 10);
    expect_line(&out, "/usr/bin/d", "#!/bin/sh\n", 10);
    /* A hard link is what it names: a text file stays unselected. */
    assert_int_equal(count_lines(&out), 4);

    layers_add(&ls, make_tar(ARCHIVE_FILTER_NONE, low, ARRAY_SIZE(low)));
    layers_add(&ls, make_tar(ARCHIVE_FILTER_NONE, missing, ARRAY_SIZE(missing)));
    expect_error(image_files(&ls, &o, &out, &err), &err,
                 "layer 2/2: entry \"usr/bin/e\": hard link to \"usr/bin/nope\"",
                 "not in the image");
    kbuf_free(&out);
}

/* ---- symbolic links ---- */

static void test_usrmerge(void **state) {
    static const struct tent base[] = {
            {"bin", 'l', "usr/bin", 0777, 0},   {"lib", 'l', "/usr/lib", 0777, 0},
            {"usr/bin/", 'd', NULL, 0755, 0},   {"usr/lib/", 'd', NULL, 0755, 0},
            {"sbin", 'l', "usr/sbin", 0777, 0}, {"lib64", 'l', "./usr/../usr/lib", 0777, 0},
    };
    static const struct tent up[] = {
            {"bin/bash", 'f', ELF "bash", 0755, 0},      {"bin/sh", 'l', "bash", 0777, 0},
            {"lib/libc.so.6", 'f', ELF "libc", 0644, 0}, {"lib64/ld.so", 'f', ELF "ld", 0755, 0},
            {"sbin/init", 'f', ELF "init", 0755, 0},
    };
    struct kbuf out = KBUF_INIT(1 << 16);
    struct layers ls = {0};
    struct img_options o;
    struct img_error err;
    (void)state;

    options(&o, 1);
    layers_add(&ls, make_tar(ARCHIVE_FILTER_GZIP, base, ARRAY_SIZE(base)));
    layers_add(&ls, make_tar(ARCHIVE_FILTER_GZIP, up, ARRAY_SIZE(up)));
    assert_int_equal(image_files(&ls, &o, &out, &err), 0);
    expect_line(&out, "/usr/bin/bash", ELF "bash", strlen(ELF "bash"));
    expect_line(&out, "/usr/lib/libc.so.6", ELF "libc", strlen(ELF "libc"));
    expect_line(&out, "/usr/lib/ld.so", ELF "ld", strlen(ELF "ld"));
    /* The link's target directory did not exist: it is made, as containerd would. */
    expect_line(&out, "/usr/sbin/init", ELF "init", strlen(ELF "init"));
    assert_int_equal(count_lines(&out), 4);
    kbuf_free(&out);
}

static void test_symlink_out_and_loop(void **state) {
    static const struct tent evil[] = {{"evil", 'l', "../../etc", 0777, 0},
                                       {"a", 'l', "b", 0777, 0},
                                       {"b", 'l', "/a", 0777, 0},
                                       {"c", 'l', "/", 0777, 0}};
    static const struct tent out1[] = {{"evil/passwd", 'f', "x", 0755, 0}};
    static const struct tent loop[] = {{"a/x", 'f', "x", 0755, 0}};
    static const struct tent root[] = {{"c/etc/ok", 'f', "x", 0755, 0}};
    struct kbuf out = KBUF_INIT(1 << 16);
    struct layers ls = {0};
    struct img_options o;
    struct img_error err;
    (void)state;

    options(&o, 2);
    layers_add(&ls, make_tar(ARCHIVE_FILTER_NONE, evil, ARRAY_SIZE(evil)));
    layers_add(&ls, make_tar(ARCHIVE_FILTER_NONE, out1, ARRAY_SIZE(out1)));
    expect_error(image_files(&ls, &o, &out, &err), &err,
                 "layer 2/2: entry \"evil/passwd\": symlink \"/evil\" -> \"../../etc\" leaves "
                 "the image root",
                 NULL);

    layers_add(&ls, make_tar(ARCHIVE_FILTER_NONE, evil, ARRAY_SIZE(evil)));
    layers_add(&ls, make_tar(ARCHIVE_FILTER_NONE, loop, ARRAY_SIZE(loop)));
    expect_error(image_files(&ls, &o, &out, &err), &err, "layer 2/2: entry \"a/x\": symlink",
                 "more than 40 links in a row (a loop)");

    /* Links that are never followed out are fine, and "/" is the image root. */
    layers_add(&ls, make_tar(ARCHIVE_FILTER_NONE, evil, ARRAY_SIZE(evil)));
    layers_add(&ls, make_tar(ARCHIVE_FILTER_NONE, root, ARRAY_SIZE(root)));
    assert_int_equal(image_files(&ls, &o, &out, &err), 0);
    assert_string_equal(
            (char *)out.data,
            "/etc/ok 2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881\n");
    kbuf_free(&out);
}

/* ---- hostile entries ---- */

static void expect_bad_entry(const struct tent *t, const char *msg) {
    struct kbuf out = KBUF_INIT(1 << 16);
    struct layers ls = {0};
    struct img_options o;
    struct img_error err;

    options(&o, 1);
    layers_add(&ls, make_tar(ARCHIVE_FILTER_GZIP, t, 1));
    expect_error(image_files(&ls, &o, &out, &err), &err, "layer 1/1: entry \"", msg);
    kbuf_free(&out);
}

static void test_bad_paths(void **state) {
    static const struct tent dotdot = {"a/../../etc/x", 'f', "x", 0755, 0};
    static const struct tent abs = {"/etc/x", 'f', "x", 0755, 0};
    static const struct tent link_dotdot = {"x", 'h', "../etc/passwd", 0644, 0};
    static const struct tent link_abs = {"x", 'h', "/etc/passwd", 0644, 0};
    static const struct tent wh = {"a/.wh...", 'f', "", 0644, 0};
    (void)state;

    expect_bad_entry(&dotdot, "a/../../etc/x\": \"..\" in the path");
    expect_bad_entry(&abs, "/etc/x\": absolute path");
    expect_bad_entry(&link_dotdot, "x\": hard link with \"..\" in its target");
    expect_bad_entry(&link_abs, "x\": hard link to an absolute path");
    expect_bad_entry(&wh, "a whiteout that names no file");
}

static void test_devices_skipped(void **state) {
    static const struct tent v[] = {
            {"dev/", 'd', NULL, 0755, 0},
            {"dev/null", 'c', NULL, 0666, 0},
            {"run/fifo", 'p', NULL, 0755, 0},
            {"bin/true", 'f', ELF "true", 0755, 0},
    };
    struct kbuf out = KBUF_INIT(1 << 16);
    struct layers ls = {0};
    struct img_options o;
    struct img_error err;
    (void)state;

    options(&o, 1);
    layers_add(&ls, make_tar(ARCHIVE_FILTER_NONE, v, ARRAY_SIZE(v)));
    assert_int_equal(image_files(&ls, &o, &out, &err), 0);
    expect_line(&out, "/bin/true", ELF "true", strlen(ELF "true"));
    assert_int_equal(count_lines(&out), 1);
    kbuf_free(&out);
}

/* ---- caps ---- */

static void test_caps(void **state) {
    struct tent many[20];
    static const struct tent bomb[] = {{"zeros", 'f', NULL, 0644, 4u << 20}};
    char names[20][16], longname[300];
    struct tent deep = {longname, 'f', "x", 0755, 0};
    struct kbuf out = KBUF_INIT(1 << 16);
    struct layers ls = {0};
    struct img_options o;
    struct img_error err;
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(many); i++) {
        snprintf(names[i], sizeof(names[i]), "f%zu", i);
        many[i] = (struct tent){names[i], 'f', "x", 0644, 0};
    }
    /* Entries of all layers count together. */
    options(&o, 2);
    o.limits.max_entries = 30;
    layers_add(&ls, make_tar(ARCHIVE_FILTER_GZIP, many, 20));
    layers_add(&ls, make_tar(ARCHIVE_FILTER_GZIP, many, 20));
    expect_error(image_files(&ls, &o, &out, &err), &err, "more than 30 entries",
                 "raise the cap with --max-entries");

    options(&o, 1);
    o.limits.max_bytes = 1u << 20;
    layers_add(&ls, make_tar(ARCHIVE_FILTER_XZ, bomb, 1));
    expect_error(image_files(&ls, &o, &out, &err), &err,
                 "entry \"zeros\": more than 1048576 uncompressed bytes",
                 "raise the cap with --max-bytes");

    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    options(&o, 1);
    o.limits.max_path = 200;
    layers_add(&ls, make_tar(ARCHIVE_FILTER_ZSTD, &deep, 1));
    expect_error(image_files(&ls, &o, &out, &err), &err, "path longer than 200 bytes",
                 "raise the cap with --max-path");
    kbuf_free(&out);
}

/* ---- entry metadata in memory (--max-meta-bytes) ---- */

/* n entries: file `prefix`NNNN (a path of `plen` bytes), or, with `link`,
 * a symbolic link "lNNNN" to a target of `plen` bytes. Caller frees v[i].path
 * and v[i].data with free_tents(). */
static struct tent *long_tents(size_t n, size_t plen, bool link) {
    struct tent *v = calloc(n, sizeof(*v));

    assert_non_null(v);
    for (size_t i = 0; i < n; i++) {
        char *long_part = malloc(plen + 1), *name;
        assert_non_null(long_part);
        memset(long_part, 'p', plen);
        char num[24];
        snprintf(num, sizeof(num), "%04zu", i % 10000);
        memcpy(long_part + plen - 4, num, 5);
        if (link) {
            assert_true(asprintf(&name, "l%04zu", i) > 0);
            v[i] = (struct tent){name, 'l', long_part, 0777, 0};
        } else {
            v[i] = (struct tent){long_part, 'f', NULL, 0644, 0};
        }
    }
    return v;
}

static void free_tents(struct tent *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free((char *)v[i].path);
        if (v[i].type == 'l') {
            free((char *)v[i].data);
        }
    }
    free(v);
}

static void test_meta_cap(void **state) {
    /* 40 entries of 1,000-byte paths: 40 x 1,064 = 42,560 bytes a layer. */
    struct tent *paths = long_tents(40, 1000, false), *links = long_tents(40, 1000, true);
    struct kbuf out = KBUF_INIT(1 << 16);
    struct layers ls = {0};
    struct img_options o;
    struct img_error err;
    (void)state;

    options(&o, 2);
    o.limits.max_meta_bytes = 64 << 10;
    layers_add(&ls, make_tar(ARCHIVE_FILTER_GZIP, paths, 40));
    assert_int_equal(image_files(&ls, &o, &out, &err), 0);

    /* Two such layers pass it together, whatever --max-bytes says. */
    layers_add(&ls, make_tar(ARCHIVE_FILTER_GZIP, paths, 40));
    layers_add(&ls, make_tar(ARCHIVE_FILTER_ZSTD, paths, 40));
    expect_error(image_files(&ls, &o, &out, &err), &err,
                 "more than 65536 bytes of entry paths and link targets in memory",
                 "(raise the cap with --max-meta-bytes), reached at entry \"pppp");
    assert_int_equal(strncmp(err.msg, "layer ", 6), 0);

    /* Link targets count: short names, long targets. */
    options(&o, 1);
    o.limits.max_meta_bytes = 32 << 10;
    layers_add(&ls, make_tar(ARCHIVE_FILTER_NONE, links, 40));
    expect_error(image_files(&ls, &o, &out, &err), &err, "--max-meta-bytes", "entry \"l00");

    /* The default cap takes both layers. */
    options(&o, 2);
    layers_add(&ls, make_tar(ARCHIVE_FILTER_GZIP, paths, 40));
    layers_add(&ls, make_tar(ARCHIVE_FILTER_GZIP, links, 40));
    assert_int_equal(image_files(&ls, &o, &out, &err), 0);
    free_tents(paths, 40);
    free_tents(links, 40);
    kbuf_free(&out);
}

/* The tree's nodes count on their own: one entry of 500 one-byte
 * directories is 1,064 bytes in its layer and 500 nodes in the tree. */
static void test_tree_meta_cap(void **state) {
    char deep[1100];
    struct tent one = {deep, 'f', ELF, 0755, 0};
    struct tent files[150];
    char names[50][8];
    struct kbuf out = KBUF_INIT(1 << 16);
    struct layers ls = {0};
    struct img_options o;
    struct img_error err;
    (void)state;

    for (size_t i = 0; i < 500; i++) {
        memcpy(deep + 2 * i, "x/", 2);
    }
    memcpy(deep + 1000, "f", 2);
    options(&o, 1);
    o.limits.max_meta_bytes = 32 << 10;
    layers_add(&ls, make_tar(ARCHIVE_FILTER_NONE, &one, 1));
    expect_error(image_files(&ls, &o, &out, &err), &err,
                 "the file tree takes more than 32768 bytes of memory",
                 "raise the cap with --max-meta-bytes");
    o.limits.max_meta_bytes = 128 << 10;
    layers_add(&ls, make_tar(ARCHIVE_FILTER_NONE, &one, 1));
    assert_int_equal(image_files(&ls, &o, &out, &err), 0);
    assert_int_equal(count_lines(&out), 1);

    /* What a later layer replaces is given back: three layers of the same
     * 50 files (about 6.6 KB of nodes at any time, 20 KB ever made). */
    for (size_t i = 0; i < 150; i++) {
        snprintf(names[i % 50], sizeof(names[0]), "f%02zu", i % 50);
        files[i] = (struct tent){names[i % 50], 'f', ELF, 0755, 0};
    }
    o.limits.max_meta_bytes = 12 << 10;
    for (size_t k = 0; k < 3; k++) {
        layers_add(&ls, make_tar(ARCHIVE_FILTER_NONE, files + 50 * k, 50));
    }
    assert_int_equal(image_files(&ls, &o, &out, &err), 0);
    assert_int_equal(count_lines(&out), 50);
    kbuf_free(&out);
}

/* ---- components walked (--max-walk) ---- */

/* Entries alternating between two parents through links whose targets
 * climb up and down 200 times ("a/../a/../...a"): 402 components an
 * entry, whatever is cached. */
static void test_walk_budget(void **state) {
    enum { N = 100, REPEAT = 200 };
    char target[REPEAT * 5 + 2], names[N][16];
    struct tent v[N + 3];
    struct kbuf out = KBUF_INIT(1 << 16);
    struct layers ls = {0};
    struct img_options o;
    struct img_error err;
    (void)state;

    for (size_t i = 0; i < REPEAT; i++) {
        memcpy(target + 5 * i, "a/../", 5);
    }
    memcpy(target + 5 * REPEAT, "a", 2);
    v[0] = (struct tent){"a", 'd', NULL, 0755, 0};
    v[1] = (struct tent){"l", 'l', target, 0777, 0};
    v[2] = (struct tent){"m", 'l', target, 0777, 0};
    for (size_t i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "%c/f%03zu", i % 2 ? 'l' : 'm', i);
        v[3 + i] = (struct tent){names[i], 'f', ELF, 0755, 0};
    }
    /* 64 components an entry: far too few for these. */
    options(&o, 1);
    o.limits.max_walk = 64 * (N + 3);
    layers_add(&ls, make_tar(ARCHIVE_FILTER_GZIP, v, N + 3));
    expect_error(image_files(&ls, &o, &out, &err), &err,
                 "more than 6592 path components walked in the image",
                 "raise the cap with --max-walk");
    assert_non_null(strstr(err.msg, "layer 1/1: entry \""));

    /* The count is exact: none for the first three (their parent is the
     * root), then the link's name and its target's 401 components. */
    o.limits.max_walk = N * 402;
    layers_add(&ls, make_tar(ARCHIVE_FILTER_GZIP, v, N + 3));
    assert_int_equal(image_files(&ls, &o, &out, &err), 0);
    assert_int_equal(count_lines(&out), N);
    expect_line(&out, "/a/f000", ELF, strlen(ELF));
    o.limits.max_walk--;
    layers_add(&ls, make_tar(ARCHIVE_FILTER_GZIP, v, N + 3));
    expect_error(image_files(&ls, &o, &out, &err), &err, "--max-walk", NULL);
    kbuf_free(&out);
}

/* A tree 1,000 directories deep, listed depth first with a file in each:
 * from the root every time that is 1,000,000 components; a few an entry
 * from the last parent. */
static void test_walk_deep_tree(void **state) {
    enum { DEPTH = 1000 };
    struct tent *v = calloc(2 * DEPTH, sizeof(*v));
    char *paths = calloc(2 * DEPTH, 2 * DEPTH + 8);
    struct kbuf out = KBUF_INIT(4 << 20);
    struct layers ls = {0};
    struct img_options o;
    struct img_error err;
    (void)state;

    assert_non_null(v);
    assert_non_null(paths);
    for (size_t i = 0; i < DEPTH; i++) {
        char *d = paths + 2 * i * (2 * DEPTH + 8), *f = d + 2 * DEPTH + 8;
        for (size_t k = 0; k <= i; k++) {
            memcpy(d + 2 * k, "d/", 2);
        }
        memcpy(f, d, 2 * (i + 1));
        memcpy(f + 2 * (i + 1), "f", 2);
        d[2 * i + 1] = 0;
        v[2 * i] = (struct tent){d, 'd', NULL, 0755, 0};
        v[2 * i + 1] = (struct tent){f, 'f', ELF, 0755, 0};
    }
    options(&o, 1);
    o.limits.max_walk = 2 * 2 * DEPTH;
    layers_add(&ls, make_tar(ARCHIVE_FILTER_ZSTD, v, 2 * DEPTH));
    assert_int_equal(image_files(&ls, &o, &out, &err), 0);
    assert_int_equal(count_lines(&out), DEPTH);
    free(v);
    free(paths);
    kbuf_free(&out);
}

/* Resuming from a cached prefix counts the links it took: 30 links in the
 * prefix, 15 more after it, is more than 40 in a row. */
static void test_walk_cache_links(void **state) {
    char p30[128], p45[128];
    struct tent v[] = {
            {"s", 'l', ".", 0777, 0}, {p30, 'f', ELF, 0755, 0}, {p45, 'f', ELF, 0755, 0}};
    struct kbuf out = KBUF_INIT(1 << 16);
    struct layers ls = {0};
    struct img_options o;
    struct img_error err;
    (void)state;

    for (size_t i = 0; i < 45; i++) {
        memcpy(p45 + 2 * i, "s/", 2);
    }
    memcpy(p30, p45, 60);
    memcpy(p30 + 60, "x", 2);
    memcpy(p45 + 90, "y", 2);
    options(&o, 1);
    layers_add(&ls, make_tar(ARCHIVE_FILTER_NONE, v, 2));
    assert_int_equal(image_files(&ls, &o, &out, &err), 0);
    expect_line(&out, "/x", ELF, strlen(ELF));
    layers_add(&ls, make_tar(ARCHIVE_FILTER_NONE, v, 3));
    expect_error(image_files(&ls, &o, &out, &err), &err, "more than 40 links in a row", NULL);
    kbuf_free(&out);
}

/* A cached parent goes when a node on its way is replaced. Across
 * layers: "a" becomes a link to "c" after "a/b/x" was resolved. In one
 * layer: "d/up/d" (up -> "..") replaces "d", the first directory of the
 * path just resolved, with a link to "e"; "d/y" then lands in "e". */
static void test_walk_cache_replaced(void **state) {
    static const struct tent v[] = {
            {"a/b/x", 'f', ELF "x", 0755, 0}, {"c/b/", 'd', NULL, 0755, 0},
            {"a", 'l', "c", 0777, 0},         {"a/b/y", 'f', ELF "y", 0755, 0},
            {"c/b/z", 'f', ELF "z", 0755, 0}, {"a/b/w", 'f', ELF "w", 0755, 0},
    };
    static const struct tent up[] = {
            {"d/", 'd', NULL, 0755, 0},     {"e/", 'd', NULL, 0755, 0},
            {"d/up", 'l', "..", 0777, 0},   {"d/up/d", 'l', "e", 0777, 0},
            {"d/y", 'f', ELF "y", 0755, 0},
    };
    struct kbuf out = KBUF_INIT(1 << 16);
    struct layers ls = {0};
    struct img_options o;
    struct img_error err;
    (void)state;

    options(&o, 1);
    layers_add(&ls, make_tar(ARCHIVE_FILTER_NONE, v, 2));
    layers_add(&ls, make_tar(ARCHIVE_FILTER_NONE, v + 2, ARRAY_SIZE(v) - 2));
    assert_int_equal(image_files(&ls, &o, &out, &err), 0);
    expect_line(&out, "/c/b/y", ELF "y", strlen(ELF "y"));
    expect_line(&out, "/c/b/z", ELF "z", strlen(ELF "z"));
    expect_line(&out, "/c/b/w", ELF "w", strlen(ELF "w"));
    assert_int_equal(count_lines(&out), 3);

    layers_add(&ls, make_tar(ARCHIVE_FILTER_NONE, up, ARRAY_SIZE(up)));
    assert_int_equal(image_files(&ls, &o, &out, &err), 0);
    expect_line(&out, "/e/y", ELF "y", strlen(ELF "y"));
    assert_int_equal(count_lines(&out), 1);
    kbuf_free(&out);
}

/* ---- broken streams ---- */

static void truncate_half(const char *path) {
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size / 2), 0);
}

static void test_truncated(void **state) {
    static const int filters[] = {ARCHIVE_FILTER_GZIP, ARCHIVE_FILTER_ZSTD, ARCHIVE_FILTER_XZ,
                                  ARCHIVE_FILTER_NONE};
    static const struct tent v[] = {{"bin/big", 'f', NULL, 0755, 2u << 20},
                                    {"bin/after", 'f', ELF, 0755, 0}};
    struct kbuf out = KBUF_INIT(1 << 16);
    struct img_options o;
    struct img_error err;
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(filters); i++) {
        struct layers ls = {0};
        char *path = make_tar(filters[i], v, ARRAY_SIZE(v));
        truncate_half(path);
        layers_add(&ls, path); /* the digest is the truncated file's: only the format fails */
        options(&o, 2);
        expect_error(image_files(&ls, &o, &out, &err), &err, "layer 1/1: ", NULL);
        assert_null(strstr(err.msg, "digest"));
    }
    kbuf_free(&out);
}

static void test_digest_mismatch(void **state) {
    static const struct tent v[] = {{"bin/x", 'f', ELF, 0755, 0}};
    struct kbuf out = KBUF_INIT(1 << 16);
    struct layers ls = {0};
    struct img_options o;
    struct img_error err;
    char want[160];
    (void)state;

    options(&o, 2);
    layers_add(&ls, make_tar(ARCHIVE_FILTER_GZIP, v, 1));
    layers_add(&ls, make_tar(ARCHIVE_FILTER_GZIP, v, 1));
    /* The second layer's "manifest" names the first one's digest, changed. */
    ls.digests[1][7] = ls.digests[1][7] == 'a' ? 'b' : 'a';
    snprintf(want, sizeof(want), "content does not match its digest %s", ls.digests[1]);
    expect_error(image_files(&ls, &o, &out, &err), &err, "layer 2/2: ", want);
    kbuf_free(&out);
}

static void test_garbage(void **state) {
    struct kbuf out = KBUF_INIT(1 << 16);
    struct layers ls = {0};
    struct img_options o;
    struct img_error err;
    char *path;
    FILE *f;
    (void)state;

    assert_true(asprintf(&path, "%s/garbage", dir) > 0);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("this is not a tar archive, not even close to one\n", f);
    fclose(f);
    options(&o, 1);
    layers_add(&ls, path);
    expect_error(image_files(&ls, &o, &out, &err), &err, "layer 1/1: ", NULL);
    kbuf_free(&out);
}

/* ---- Debian packages ---- */

/* A tar in memory; caller frees. */
static uint8_t *tar_in_memory(int filter, const struct tent *v, size_t n, size_t *ret_len) {
    size_t cap = 1u << 20;
    uint8_t *buf = malloc(cap);
    struct archive *a = writer(filter);

    assert_non_null(buf);
    assert_int_equal(archive_write_open_memory(a, buf, cap, ret_len), ARCHIVE_OK);
    write_entries(a, v, n);
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    return buf;
}

static void ar_member(struct archive *a, const char *name, const void *data, size_t len) {
    struct archive_entry *ae = archive_entry_new();

    archive_entry_set_pathname(ae, name);
    archive_entry_set_filetype(ae, AE_IFREG);
    archive_entry_set_perm(ae, 0644);
    archive_entry_set_size(ae, (la_int64_t)len);
    assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
    assert_int_equal(archive_write_data(a, data, len), (la_ssize_t)len);
    archive_entry_free(ae);
}

/* debian-binary, control.tar.xz and data.tar.* (or a first member `first`). */
static char *make_deb(const char *first, int data_filter, const char *data_name,
                      const struct tent *v, size_t n) {
    static const struct tent control[] = {{"./control", 'f', "Package: test\n", 0644, 0}};
    size_t clen, dlen;
    _cleanup_free_ uint8_t *ctl = tar_in_memory(ARCHIVE_FILTER_XZ, control, 1, &clen);
    _cleanup_free_ uint8_t *data = tar_in_memory(data_filter, v, n, &dlen);
    struct archive *a = archive_write_new();
    char *path;

    assert_true(asprintf(&path, "%s/pkg-%s.deb", dir, data_name) > 0);
    assert_int_equal(archive_write_set_format_ar_svr4(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    ar_member(a, first, "2.0\n", 4);
    ar_member(a, "control.tar.xz", ctl, clen);
    ar_member(a, data_name, data, dlen);
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    return path;
}

static int deb_files(const char *path, const struct img_options *o, struct kbuf *out,
                     struct img_error *err) {
    struct img_layer *l = NULL;
    struct img_tree *t = NULL;
    int rc;

    memset(err, 0, sizeof(*err));
    if ((rc = img_deb_read(path, o, &l, err)) < 0) {
        return rc;
    }
    assert_int_equal(img_tree_new(&t), 0);
    rc = img_tree_apply(t, l, o, err);
    kbuf_reset(out);
    if (rc == 0) {
        assert_int_equal(img_tree_files(t, add_line, out), 0);
    }
    img_tree_free(t);
    img_layer_free(l);
    return rc;
}

static void test_deb(void **state) {
    static const struct tent v[] = {
            {"./", 'd', NULL, 0755, 0},
            {"./usr/bin/", 'd', NULL, 0755, 0},
            {"./usr/bin/tool", 'f', ELF "tool", 0755, 0},
            {"./usr/lib/libt.so.1", 'f', ELF "lib", 0644, 0},
            {"./usr/share/doc/t/copyright", 'f', "text", 0644, 0},
    };
    static const struct tent evil[] = {{"../../etc/passwd", 'f', "x", 0755, 0}};
    static const struct {
        int filter;
        const char *name;
    } kinds[] = {{ARCHIVE_FILTER_XZ, "data.tar.xz"},
                 {ARCHIVE_FILTER_GZIP, "data.tar.gz"},
                 {ARCHIVE_FILTER_ZSTD, "data.tar.zst"},
                 {ARCHIVE_FILTER_NONE, "data.tar"}};
    struct kbuf out = KBUF_INIT(1 << 16);
    struct img_options o;
    struct img_error err;
    (void)state;

    options(&o, 2);
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
        _cleanup_free_ char *path =
                make_deb("debian-binary", kinds[i].filter, kinds[i].name, v, ARRAY_SIZE(v));
        assert_int_equal(deb_files(path, &o, &out, &err), 0);
        expect_line(&out, "/usr/bin/tool", ELF "tool", strlen(ELF "tool"));
        expect_line(&out, "/usr/lib/libt.so.1", ELF "lib", strlen(ELF "lib"));
        assert_int_equal(count_lines(&out), 2);
    }
    {
        _cleanup_free_ char *path =
                make_deb("debian-binary", ARCHIVE_FILTER_XZ, "data.tar.xz", evil, 1);
        expect_error(deb_files(path, &o, &out, &err), &err,
                     "pkg-data.tar.xz.deb: data.tar.xz: entry \"../../etc/passwd\"",
                     "\"..\" in the path");
    }
    {
        _cleanup_free_ char *path = make_deb("evil", ARCHIVE_FILTER_XZ, "data.tar.xz", v, 1);
        expect_error(deb_files(path, &o, &out, &err), &err, "first member is \"evil\"", NULL);
    }
    {
        _cleanup_free_ char *path = make_deb("debian-binary", ARCHIVE_FILTER_XZ, "other", v, 1);
        expect_error(deb_files(path, &o, &out, &err), &err, "no data.tar member", NULL);
    }
    kbuf_free(&out);
}

/* The first chosen file of a package's listing, unpacked by dpkg-deb and
 * tar and hashed by sha256sum: the same digest. */
static void compare_with_dpkg(const char *deb, const struct kbuf *listing) {
    const char *line = (const char *)listing->data, *sp = strchr(line, ' ');
    char cmd[8192], got[128] = "";
    FILE *p;

    if (!sp || strpbrk(deb, "'\\") || memchr(line, '\'', (size_t)(sp - line)) ||
        access("/usr/bin/dpkg-deb", X_OK) != 0) {
        return;
    }
    snprintf(cmd, sizeof(cmd), "dpkg-deb --fsys-tarfile '%s' | tar -xOf - '.%.*s' | sha256sum", deb,
             (int)(sp - line), line);
    p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(got, sizeof(got), p));
    assert_int_equal(pclose(p), 0);
    assert_memory_equal(got, sp + 1, 64);
}

/* The first three packages of the apt cache under 2 MB, read without error
 * and, for one with a chosen file, a digest compared with dpkg-deb's
 * unpacking. Skipped when the cache is empty. */
static void test_real_debs(void **state) {
    const char *cache = "/var/cache/apt/archives";
    struct kbuf out = KBUF_INIT(16 << 20);
    struct dirent **names = NULL;
    struct img_options o;
    struct img_error err;
    unsigned done = 0;
    bool compared = false;
    int n = scandir(cache, &names, NULL, alphasort);
    (void)state;

    options(&o, 2);
    for (int i = 0; i < n; i++) {
        char path[4200];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", cache, names[i]->d_name);
        if ((done < 3 || !compared) && done < 40 && strstr(names[i]->d_name, ".deb") &&
            stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < (2 << 20)) {
            int rc = deb_files(path, &o, &out, &err);
            if (rc < 0) {
                fail_msg("%s: %s", path, err.msg);
            }
            if (out.len > 0 && !compared) {
                compare_with_dpkg(path, &out);
                compared = true;
            }
            done++;
        }
        free(names[i]);
    }
    free(names);
    kbuf_free(&out);
    if (done == 0) {
        skip();
    }
}

/* ---- a root file system directory ---- */

static void put_file(const char *root, const char *rel, const char *data, mode_t mode) {
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", root, rel);
    f = fopen(path, "w");
    assert_non_null(f);
    fwrite(data, 1, strlen(data), f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static void in_root(const char *root, const char *rel, char *path, size_t size) {
    snprintf(path, size, "%s/%s", root, rel);
}

static void test_rootfs(void **state) {
    static const char *const dirs[] = {"usr", "usr/bin", "usr/lib", "etc", "deep"};
    struct kbuf out = KBUF_INIT(1 << 16);
    struct img_tree *t = NULL;
    struct img_options o;
    struct img_error err = {{0}};
    char root[512], path[4096];
    (void)state;

    snprintf(root, sizeof(root), "%s/rootfs", dir);
    assert_int_equal(mkdir(root, 0755), 0);
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        in_root(root, dirs[i], path, sizeof(path));
        assert_int_equal(mkdir(path, 0755), 0);
    }
    put_file(root, "usr/bin/tool", "#!/bin/sh\n", 0755);
    put_file(root, "usr/lib/libx.so", ELF "x", 0644);
    put_file(root, "etc/conf", "a=b\n", 0644);
    in_root(root, "bin", path, sizeof(path));
    assert_int_equal(symlink("usr/bin", path), 0);
    in_root(root, "loop1", path, sizeof(path));
    assert_int_equal(symlink("loop2", path), 0);
    in_root(root, "loop2", path, sizeof(path));
    assert_int_equal(symlink("loop1", path), 0);
    in_root(root, "out", path, sizeof(path));
    assert_int_equal(symlink("/etc", path), 0);
    in_root(root, "deep/up", path, sizeof(path));
    assert_int_equal(symlink("../../../../..", path), 0);
    in_root(root, "fifo", path, sizeof(path));
    assert_int_equal(mkfifo(path, 0755), 0);

    options(&o, 2);
    assert_int_equal(img_tree_new(&t), 0);
    assert_int_equal(img_tree_add_dir(t, root, &o, &err), 0);
    assert_int_equal(img_tree_files(t, add_line, &out), 0);
    expect_line(&out, "/usr/bin/tool", "#!/bin/sh\n", 10);
    expect_line(&out, "/usr/lib/libx.so", ELF "x", strlen(ELF "x"));
    assert_int_equal(count_lines(&out), 2);
    img_tree_free(t);

    o.select = IMG_SELECT_ALL;
    o.limits.max_entries = 5;
    assert_int_equal(img_tree_new(&t), 0);
    expect_error(img_tree_add_dir(t, root, &o, &err), &err, "more than 5 entries", NULL);
    img_tree_free(t);
    kbuf_free(&out);
}

/* ---- many files, many threads ---- */

static void test_many_files(void **state) {
    enum { N = 5000, LAYERS = 3 };
    struct tent *v = calloc(N, sizeof(*v));
    char(*names)[32] = calloc(N, sizeof(*names));
    char(*data)[48] = calloc(N, sizeof(*data));
    struct kbuf out = KBUF_INIT(4 << 20), want = KBUF_INIT(4 << 20);
    struct layers ls = {0};
    struct img_options o;
    struct img_error err;
    char hex[65];
    (void)state;

    assert_non_null(v);
    assert_non_null(names);
    assert_non_null(data);
    for (size_t i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "d%zu/f%05zu", i % 7, i);
        snprintf(data[i], sizeof(data[i]), ELF "content of %zu", i);
        v[i] = (struct tent){names[i], 'f', data[i], i % 2 ? 0755 : 0644, 0};
    }
    for (size_t k = 0; k < LAYERS; k++) {
        size_t from = k * N / LAYERS, to = (k + 1) * N / LAYERS;
        layers_add(&ls, make_tar(k == 1 ? ARCHIVE_FILTER_GZIP : ARCHIVE_FILTER_ZSTD, v + from,
                                 to - from));
    }
    /* The expected listing: sorted by path, which is file order within a folder. */
    for (size_t d = 0; d < 7; d++) {
        for (size_t i = d; i < N; i += 7) {
            sha256_hex(data[i], strlen(data[i]), hex);
            assert_int_equal(kbuf_printf(&want, "/%s %s\n", names[i], hex), 0);
        }
    }
    options(&o, 4);
    assert_int_equal(image_files(&ls, &o, &out, &err), 0);
    assert_int_equal(out.len, want.len);
    assert_memory_equal(out.data, want.data, want.len);
    kbuf_free(&out);
    kbuf_free(&want);
    free(v);
    free(names);
    free(data);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_selection_and_digests),
            cmocka_unit_test(test_sha512),
            cmocka_unit_test(test_layer_record),
            cmocka_unit_test(test_whiteouts),
            cmocka_unit_test(test_hardlinks),
            cmocka_unit_test(test_usrmerge),
            cmocka_unit_test(test_symlink_out_and_loop),
            cmocka_unit_test(test_bad_paths),
            cmocka_unit_test(test_devices_skipped),
            cmocka_unit_test(test_caps),
            cmocka_unit_test(test_meta_cap),
            cmocka_unit_test(test_tree_meta_cap),
            cmocka_unit_test(test_walk_budget),
            cmocka_unit_test(test_walk_deep_tree),
            cmocka_unit_test(test_walk_cache_links),
            cmocka_unit_test(test_walk_cache_replaced),
            cmocka_unit_test(test_truncated),
            cmocka_unit_test(test_digest_mismatch),
            cmocka_unit_test(test_garbage),
            cmocka_unit_test(test_deb),
            cmocka_unit_test(test_real_debs),
            cmocka_unit_test(test_rootfs),
            cmocka_unit_test(test_many_files),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
