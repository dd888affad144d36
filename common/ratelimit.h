/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_COMMON_RATELIMIT_H
#define KIMA_COMMON_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* A rate limit for log lines a peer can provoke: at most `burst` events in a
 * window of `interval_ms`, the rest counted so that one line can say how many
 * were left out. Time comes from the caller (monotonic milliseconds), so the
 * logic is testable; not thread-safe: the caller serializes. */
struct ratelimit {
    int64_t interval_ms;
    unsigned burst;
    bool started;
    int64_t begin_ms;    /* the current window's start */
    unsigned shown;      /* events let through in it */
    uint64_t suppressed; /* events held back since the last report */
};

#define RATELIMIT_INIT(interval, n) \
    { .interval_ms = (interval), .burst = (n) }

/* Whether an event at now_ms may be shown. When it opens a new window after
 * events were held back, *ret_suppressed gets their count (else 0) for the
 * caller to report once, before the event itself. */
bool ratelimit_allow(struct ratelimit *rl, int64_t now_ms, uint64_t *ret_suppressed);

/* For a periodic tick: the count held back, once the window they fell in
 * has ended (else 0); the count is then reset. */
uint64_t ratelimit_flush(struct ratelimit *rl, int64_t now_ms);

#endif
