/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_COMMON_FILEIO_H
#define KIMA_COMMON_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Read all of `fd` (from its current position to EOF) into a new buffer.
 * Works on pipes and on files whose size stat() cannot tell (securityfs
 * reports 0). More than `max` bytes is -EFBIG. The buffer is NUL-terminated
 * (not counted in *ret_len) and the caller frees it with free(). Returns 0 or
 * a negative errno; the outputs are untouched on failure. */
int read_fd_capped(int fd, size_t max, uint8_t **ret_data, size_t *ret_len);

/* The same for a path ("-" means standard input). */
int read_file_capped(const char *path, size_t max, uint8_t **ret_data, size_t *ret_len);

/* read(2) that retries EINTR and short reads until `len` bytes or EOF.
 * Returns bytes read (less than `len` only at EOF) or a negative errno. */
long read_full(int fd, void *buf, size_t len);

/* write(2) that retries EINTR and short writes. 0 or a negative errno. */
int write_full(int fd, const void *buf, size_t len);

/* Replace `path` with `len` bytes, all or nothing: a temporary file
 * ".NAME.XXXXXX" beside it (same directory, so same file system), written,
 * given `mode`, fsynced, renamed over `path`, and the directory fsynced so
 * the rename lasts. On failure the temporary file is removed and `path` is
 * as it was. 0 or a negative errno (-ENAMETOOLONG for a path of 4,000 bytes
 * or more). */
int write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode);

#endif
