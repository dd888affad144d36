/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_AGENT_HEALTH_H
#define KIMA_AGENT_HEALTH_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* For Kubernetes probes (kima-agent --healthcheck live|ready): the loop
 * touches state-dir/heartbeat while it runs, and state-dir/position changes
 * whenever the verifier accepted evidence. */

/* Touch state-dir/heartbeat (created mode 0600); a failure is ignored. */
void agent_heartbeat(const char *state_dir);

enum agent_probe {
    AGENT_PROBE_LIVE,  /* the loop turned within 60 s */
    AGENT_PROBE_READY, /* evidence accepted within 3 intervals and 10 s */
};

/* "live" or "ready"; -EINVAL for anything else. */
int agent_probe_from_string(const char *s, enum agent_probe *ret);

/* Whether the probe holds at `now` (seconds since the epoch): 0, or
 * -ESTALE when the file is older, or the negative errno of stat(). The
 * file looked at is written to `path` (pathsz bytes) either way. */
int agent_health_check(const char *state_dir, enum agent_probe probe, uint64_t interval_ms,
                       time_t now, char *path, size_t pathsz);

#endif
