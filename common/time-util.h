/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_COMMON_TIME_UTIL_H
#define KIMA_COMMON_TIME_UTIL_H

#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC: for intervals, deadlines and backoff,
 * which a step of the wall clock must not stretch or cut. */
int64_t time_mono_ms(void);

/* Milliseconds since the epoch (CLOCK_REALTIME): for times that are shown,
 * stored or compared with other hosts' times. It can step back. */
int64_t time_wall_ms(void);

#endif
