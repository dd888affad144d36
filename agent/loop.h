/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_AGENT_LOOP_H
#define KIMA_AGENT_LOOP_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent.h"

/* The agent's schedule: a round every --interval-ms, or as soon as the
 * measurement count grows but never within --min-interval-ms of the last;
 * registration first when the verifier does not know the node; failures
 * back off exponentially with jitter and never end the loop. */

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define POLL_MS        50

struct agent_loop {
    bool registered;     /* else the next step registers */
    uint64_t backoff_ms; /* the next failure's backoff */
    uint64_t last_count; /* the measurement count at the last round */
    int64_t last_round;  /* its start, in ms of CLOCK_MONOTONIC */
    /* Registrations again because the verifier did not know the node,
     * since the last round that went through: the first is at once, the
     * next ones back off (a verifier that registers the node and then
     * answers every challenge 404 must not be a hot loop). */
    unsigned reregistrations;
    /* Rounds answered 409 "node changed" (another verifier wrote the node
     * meanwhile) since the last round that went through: the first is
     * followed by a new round at once on the same verifier, the next ones
     * back off. */
    unsigned conflicts;
};

/* After a step (`round`: a round rather than a registration) that
 * returned r: whether the next step comes at once rather than after the
 * backoff. Only the first registration again after the verifier did not
 * know the node (-ENOENT), and the first new round after a round answered
 * "node changed" (-ESTALE: the round is then due at once), since the last
 * round that went through. */
bool agent_loop_again_now(struct agent_loop *l, bool round, int r);

/* A new loop; `registered` when the verifier knows the AK already. */
void agent_loop_init(struct agent_loop *l, bool registered);

/* Whether a round (or a registration) is due at `now` with `count`
 * measurements in the list. */
bool agent_loop_due(const struct agent_loop *l, const struct agent_config *cfg, int64_t now,
                    uint64_t count);

/* How long to wait after a failure: half the backoff plus up to the other
 * half, by `jitter`. */
uint64_t backoff_delay_ms(uint64_t backoff_ms, uint32_t jitter);
/* The backoff after another failure: doubled, at most BACKOFF_MAX_MS. */
uint64_t backoff_next_ms(uint64_t backoff_ms);

/* One due step at `now`: register when not registered (0 on success), else
 * one round (agent_round()'s result). A round answered -ENOENT makes the
 * next step register again from the list position 0. When the verifier in
 * use is unavailable (a->unavailable, verifiers.h), the step starts again
 * on the next URL of the list, and so on at most once around it; the
 * result is then the last try's. The backoff is not touched here. */
int agent_loop_step(struct agent *a, struct agent_loop *l, int64_t now, uint64_t count);

/* Close the connection to the verifier in use and move to the next URL of
 * the list (wrapping; none with one URL), logging why (a->unavailable), at
 * most 10 lines a minute (`now`, monotonic ms). */
void agent_next_verifier(struct agent *a, int64_t now);

/* Run until *stop is set (by a signal), or with cfg->once until the first
 * round with a verdict or the first failure. Touches the heartbeat file
 * every 5 s. Returns the last step's result (0 when none ran). */
int agent_run(struct agent *a, bool registered, volatile sig_atomic_t *stop);

#endif
