/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <sys/stat.h>

#include <dirent.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"

static char dir[64];

/* A new file of `size` bytes in the test's folder; caller frees the path. */
static char *make_file(size_t size) {
    static unsigned count;
    char *path = NULL;
    uint8_t block[4096];
    int fd;

    assert_true(asprintf(&path, "%s/file-%u", dir, count++) > 0);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    for (size_t i = 0; i < sizeof(block); i++) {
        block[i] = (uint8_t)i;
    }
    for (size_t done = 0; done < size;) {
        size_t n = size - done < sizeof(block) ? size - done : sizeof(block);
        assert_int_equal(write_full(fd, block, n), 0);
        done += n;
    }
    close(fd);
    return path;
}

static void test_read_exact_and_cap(void **state) {
    _cleanup_free_ char *path = make_file(100000);
    uint8_t *data = NULL;
    size_t len = 0;
    (void)state;

    assert_int_equal(read_file_capped(path, 100000, &data, &len), 0);
    assert_int_equal(len, 100000);
    assert_int_equal(data[4097], 1);
    assert_int_equal(data[len], 0); /* NUL-terminated */
    free(data);
    data = NULL;
    assert_int_equal(read_file_capped(path, 99999, &data, &len), -EFBIG);
    assert_null(data);
    unlink(path);
}

static void test_empty_and_missing(void **state) {
    _cleanup_free_ char *path = make_file(0);
    uint8_t *data = NULL;
    size_t len = 1;
    (void)state;

    assert_int_equal(read_file_capped(path, 10, &data, &len), 0);
    assert_int_equal(len, 0);
    assert_non_null(data);
    free(data);
    unlink(path);
    assert_int_equal(read_file_capped("/nonexistent/kima", 10, &data, &len), -ENOENT);
}

static void test_pipe_over_cap(void **state) {
    int p[2];
    uint8_t buf[3000] = {0}, *data = NULL;
    size_t len;
    (void)state;

    /* A pipe has no size to stat: the cap must still hold. */
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write_full(p[1], buf, sizeof(buf)), 0);
    close(p[1]);
    assert_int_equal(read_fd_capped(p[0], 2999, &data, &len), -EFBIG);
    close(p[0]);

    assert_int_equal(pipe(p), 0);
    assert_int_equal(write_full(p[1], buf, sizeof(buf)), 0);
    close(p[1]);
    assert_int_equal(read_fd_capped(p[0], 3000, &data, &len), 0);
    assert_int_equal(len, 3000);
    free(data);
    close(p[0]);
}

/* Files in `d` other than `keep`. */
static int others_in(const char *d, const char *keep) {
    DIR *dh = opendir(d);
    struct dirent *e;
    int n = 0;

    assert_non_null(dh);
    while ((e = readdir(dh))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, keep)) {
            n++;
        }
    }
    closedir(dh);
    return n;
}

/* write_file_atomic: the new bytes and mode, no temporary file left; a
 * failed write leaves the old file and no temporary file either. */
static void test_write_atomic(void **state) {
    char sub[128], path[200], bad[200];
    uint8_t *data;
    size_t len;
    struct stat st;
    (void)state;

    snprintf(sub, sizeof(sub), "%s/atomic", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(path, sizeof(path), "%s/f", sub);
    assert_int_equal(write_file_atomic(path, "old", 3, 0600), 0);
    assert_int_equal(write_file_atomic(path, "new bytes", 9, 0640), 0);
    assert_int_equal(read_file_capped(path, 100, &data, &len), 0);
    assert_int_equal(len, 9);
    assert_memory_equal(data, "new bytes", 9);
    free(data);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(others_in(sub, "f"), 0);
    /* A directory in the way: rename fails, the temporary file goes. */
    snprintf(bad, sizeof(bad), "%s/d", sub);
    assert_int_equal(mkdir(bad, 0700), 0);
    assert_true(write_file_atomic(bad, "x", 1, 0600) < 0);
    assert_int_equal(others_in(sub, "f"), 1); /* only d */
    /* No folder: nothing made. */
    snprintf(bad, sizeof(bad), "%s/none/f", sub);
    assert_int_equal(write_file_atomic(bad, "x", 1, 0600), -ENOENT);
    assert_int_equal(write_file_atomic("", "x", 1, 0600), -EINVAL);
    assert_int_equal(write_file_atomic("dir/", "x", 1, 0600), -EINVAL);
}

static int setup(void **state) {
    (void)state;
    return test_tmpdir_new("fileio", dir, sizeof(dir));
}

static int teardown(void **state) {
    (void)state;
    return test_tmpdir_free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_read_exact_and_cap),
            cmocka_unit_test(test_empty_and_missing),
            cmocka_unit_test(test_pipe_over_cap),
            cmocka_unit_test(test_write_atomic),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
