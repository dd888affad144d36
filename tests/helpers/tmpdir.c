/* SPDX-License-Identifier: Apache-2.0 */
#include "tmpdir.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int test_tmpdir_new(const char *what, char *buf, size_t bufsz) {
    const char *tmp = getenv("TMPDIR");
    int n;

    if (!tmp || !tmp[0]) {
        tmp = "/tmp";
    }
    n = snprintf(buf, bufsz, "%s/kima-%s-XXXXXX", tmp, what);
    if (n < 0 || (size_t)n >= bufsz) {
        if (bufsz) {
            buf[0] = 0;
        }
        return -ENAMETOOLONG;
    }
    if (!mkdtemp(buf)) {
        int r = -errno;
        buf[0] = 0;
        return r;
    }
    return 0;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 ? -errno : 0;
}

int test_tmpdir_free(const char *dir) {
    int r;

    if (!dir || !dir[0]) {
        return 0;
    }
    if (!strstr(dir, "/kima-")) {
        fprintf(stderr, "test_tmpdir_free: %s is not a test folder; left in place\n", dir);
        return -EINVAL;
    }
    /* nftw returns remove_one's -errno, or -1 with errno set itself. */
    r = nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    return r == -1 ? -errno : r;
}
