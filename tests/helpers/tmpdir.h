/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_TESTS_TMPDIR_H
#define KIMA_TESTS_TMPDIR_H

#include <stddef.h>

/* The tests' one private scratch folder: "$TMPDIR/kima-WHAT-XXXXXX" (TMPDIR
 * unset: /tmp), made with mkdtemp, and removed with everything under it. */

/* Make the folder; its path goes into buf (bufsz bytes). 0, or a negative
 * errno (-ENAMETOOLONG when the path does not fit) with buf "". */
int test_tmpdir_new(const char *what, char *buf, size_t bufsz);

/* Remove `dir` and everything under it, without following symbolic links
 * or crossing into other file systems. Only a folder test_tmpdir_new()
 * made, or one inside it (a path with a "/kima-" part), is removed; NULL
 * or "" is nothing to do. 0, or a negative errno. */
int test_tmpdir_free(const char *dir);

#endif
