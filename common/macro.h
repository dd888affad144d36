/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_COMMON_MACRO_H
#define KIMA_COMMON_MACRO_H

#include <errno.h>
#include <unistd.h>

#include <stdlib.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _unused_       __attribute__((unused))
#define _warn_unused_  __attribute__((warn_unused_result))
#define likely(x)      __builtin_expect(!!(x), 1)
#define unlikely(x)    __builtin_expect(!!(x), 0)

/* Hand a pointer over to a new owner: returns it and clears the variable so that
 * the cleanup attribute on the old owner does nothing. */
#define TAKE_PTR(p)                \
    ({                             \
        __typeof__(p) _ptr_ = (p); \
        (p) = NULL;                \
        _ptr_;                     \
    })

static inline void freep(void *p) {
    free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

/* Close a file descriptor that is >= 0 (keeps errno). */
static inline void closep(int *fd) {
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}
#define _cleanup_close_ _cleanup_(closep)

/* Define a cleanup helper `name##p` that calls `func` on a non-NULL pointer. */
#define DEFINE_CLEANUP_FUNC(type, func)    \
    static inline void func##p(type **p) { \
        if (*p) {                          \
            func(*p);                      \
        }                                  \
    }

#endif
