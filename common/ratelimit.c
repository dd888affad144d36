/* SPDX-License-Identifier: Apache-2.0 */
#include "ratelimit.h"

#include <stddef.h>

static bool window_over(const struct ratelimit *rl, int64_t now_ms) {
    return !rl->started || now_ms - rl->begin_ms >= rl->interval_ms || now_ms < rl->begin_ms;
}

bool ratelimit_allow(struct ratelimit *rl, int64_t now_ms, uint64_t *ret_suppressed) {
    uint64_t held = 0;

    if (window_over(rl, now_ms)) {
        held = rl->suppressed;
        rl->started = true;
        rl->begin_ms = now_ms;
        rl->shown = 0;
        rl->suppressed = 0;
    }
    if (ret_suppressed) {
        *ret_suppressed = held;
    }
    if (rl->shown < rl->burst) {
        rl->shown++;
        return true;
    }
    rl->suppressed++;
    return false;
}

uint64_t ratelimit_flush(struct ratelimit *rl, int64_t now_ms) {
    uint64_t held = rl->suppressed;

    if (held == 0 || !window_over(rl, now_ms)) {
        return 0;
    }
    /* The report line belongs to no window; the next event opens one. */
    rl->suppressed = 0;
    rl->started = false;
    return held;
}
