/* SPDX-License-Identifier: Apache-2.0 */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"

long read_full(int fd, void *buf, size_t len) {
    uint8_t *p = buf;
    size_t got = 0;

    while (got < len) {
        ssize_t n = read(fd, p + got, len - got);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            break;
        }
        got += (size_t)n;
    }
    return (long)got;
}

int write_full(int fd, const void *buf, size_t len) {
    const uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int read_fd_capped(int fd, size_t max, uint8_t **ret_data, size_t *ret_len) {
    _cleanup_kbuf_ struct kbuf b = KBUF_INIT(max);
    struct stat st;
    size_t chunk = 64 * 1024;
    int r;

    if (fd < 0 || !ret_data || !ret_len) {
        return -EINVAL;
    }
    /* A regular file's size is a hint only: it can grow while we read. */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        if ((uint64_t)st.st_size > max) {
            return -EFBIG;
        }
        chunk = (size_t)st.st_size + 1;
    }
    for (;;) {
        size_t want = chunk;
        if (want > b.max - b.len) {
            want = b.max - b.len;
        }
        if (want == 0) {
            /* At the cap: one more byte means the file is too large. */
            uint8_t probe;
            long n = read_full(fd, &probe, 1);
            if (n < 0) {
                return (int)n;
            }
            if (n > 0) {
                return -EFBIG;
            }
            break;
        }
        r = kbuf_reserve(&b, want);
        if (r < 0) {
            return r;
        }
        long n = read_full(fd, b.data + b.len, want);
        if (n < 0) {
            return (int)n;
        }
        b.len += (size_t)n;
        b.data[b.len] = 0;
        if ((size_t)n < want) {
            break;
        }
        chunk = chunk < 1024 * 1024 ? chunk * 2 : chunk;
    }
    if (!b.data) {
        r = kbuf_reserve(&b, 0);
        if (r < 0) {
            return r;
        }
        b.data[0] = 0;
    }
    *ret_data = kbuf_steal(&b, ret_len);
    return 0;
}

int read_file_capped(const char *path, size_t max, uint8_t **ret_data, size_t *ret_len) {
    int fd, r;

    if (!path) {
        return -EINVAL;
    }
    if (strcmp(path, "-") == 0) {
        return read_fd_capped(STDIN_FILENO, max, ret_data, ret_len);
    }
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        return -errno;
    }
    r = read_fd_capped(fd, max, ret_data, ret_len);
    close(fd);
    return r;
}

/* The folder part of `path` ("." when it has none) and its last component. */
static void split_path(const char *path, char *dir, size_t dirsz, const char **ret_base) {
    const char *slash = strrchr(path, '/');

    if (!slash) {
        snprintf(dir, dirsz, ".");
        *ret_base = path;
    } else {
        snprintf(dir, dirsz, "%.*s", slash == path ? 1 : (int)(slash - path), path);
        *ret_base = slash + 1;
    }
}

static int write_temp(int fd, const void *buf, size_t len, mode_t mode) {
    int r = write_full(fd, buf, len);

    if (r == 0 && fchmod(fd, mode) < 0) {
        r = -errno;
    }
    if (r == 0 && fsync(fd) < 0) {
        r = -errno;
    }
    if (close(fd) < 0 && r == 0) {
        r = -errno;
    }
    return r;
}

int write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode) {
    char dir[4096], tmp[4400];
    const char *base;
    int fd, dfd, r;

    if (!path || !*path || path[strlen(path) - 1] == '/') {
        return -EINVAL;
    }
    if (strlen(path) >= 4000) {
        return -ENAMETOOLONG;
    }
    split_path(path, dir, sizeof(dir), &base);
    snprintf(tmp, sizeof(tmp), "%s/.%.200s.XXXXXX", dir, base);
    if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
        return -errno;
    }
    r = write_temp(fd, buf, len, mode);
    if (r == 0 && rename(tmp, path) < 0) {
        r = -errno;
    }
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}
