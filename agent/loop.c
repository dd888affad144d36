/* SPDX-License-Identifier: Apache-2.0 */
#include "loop.h"

#include <errno.h>
#include <time.h>

#include <openssl/rand.h>

#include "attest.h"
#include "health.h"
#include "log.h"
#include "time-util.h"

static void sleep_ms(uint64_t ms, volatile sig_atomic_t *stop) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    while (!*stop && nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

void agent_loop_init(struct agent_loop *l, bool registered) {
    *l = (struct agent_loop){.registered = registered, .backoff_ms = BACKOFF_MIN_MS};
}

bool agent_loop_due(const struct agent_loop *l, const struct agent_config *cfg, int64_t now,
                    uint64_t count) {
    return now - l->last_round >= (int64_t)cfg->interval_ms ||
           (count != l->last_count && now - l->last_round >= (int64_t)cfg->min_interval_ms);
}

uint64_t backoff_delay_ms(uint64_t backoff_ms, uint32_t jitter) {
    return backoff_ms / 2 + jitter % (backoff_ms / 2 + 1);
}

uint64_t backoff_next_ms(uint64_t backoff_ms) {
    return backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff_ms * 2;
}

/* Register, or one round, on the verifier in use. */
static int step_once(struct agent *a, struct agent_loop *l, int64_t now, uint64_t count) {
    int r;

    if (!l->registered) {
        r = agent_register(a);
        l->registered = r == 0;
        return r;
    }
    l->last_count = count;
    l->last_round = now;
    r = agent_round(a);
    if (r == -ENOENT) {
        log_warn("the verifier does not know node %s: registering again", a->cfg->node);
        l->registered = false;
        a->pos.known_index = a->pos.known_offset = 0;
    }
    return r;
}

void agent_next_verifier(struct agent *a, int64_t now) {
    size_t from = a->current;
    uint64_t suppressed = 0;

    /* A draining verifier waits for its open connections: leave it none.
     * With one URL too: behind a Service, the next connection may reach
     * another replica, where a kept-alive one would not. */
    client_disconnect(a->client);
    if (a->n_clients < 2) {
        return;
    }
    a->current = (from + 1) % a->n_clients;
    a->client = a->clients[a->current];
    if (ratelimit_allow(&a->switch_log, now, &suppressed)) {
        if (suppressed > 0) {
            log_warn("%llu more switches of verifier URL not logged",
                     (unsigned long long)suppressed);
        }
        log_warn("verifier URL %s after %s failed: %s", a->urls.url[a->current], a->urls.url[from],
                 a->unavailable);
    }
}

int agent_loop_step(struct agent *a, struct agent_loop *l, int64_t now, uint64_t count) {
    size_t tries = a->n_clients > 1 ? a->n_clients : 1;
    int r = 0;

    /* A step stays on one verifier: a challenge is answered where it was
     * issued. An unavailable verifier sends the step to the next URL, from
     * its start, at most once around the list. */
    for (size_t i = 0; i < tries; i++) {
        a->unavailable[0] = 0;
        r = step_once(a, l, now, count);
        if (!a->unavailable[0]) {
            break;
        }
        agent_next_verifier(a, time_mono_ms());
    }
    return r;
}

bool agent_loop_again_now(struct agent_loop *l, bool round, int r) {
    if (round && r >= 0) {
        l->reregistrations = 0;
        l->conflicts = 0;
        return false;
    }
    if (round && r == -ESTALE && l->conflicts++ == 0) {
        l->last_round = INT64_MIN / 2; /* due now, whatever the interval */
        return true;
    }
    return round && r == -ENOENT && l->reregistrations++ == 0;
}

int agent_run(struct agent *a, bool registered, volatile sig_atomic_t *stop) {
    struct agent_loop l;
    int64_t last_heartbeat = INT64_MIN / 2;
    int r = 0;

    agent_loop_init(&l, registered);
    while (!*stop) {
        int64_t t = time_mono_ms();
        uint64_t count = position_read_count(&a->pos);
        bool round;

        if (t - last_heartbeat >= 5000) {
            agent_heartbeat(a->cfg->state_dir);
            last_heartbeat = t;
        }
        if (!agent_loop_due(&l, a->cfg, t, count)) {
            sleep_ms(POLL_MS, stop);
            continue;
        }
        round = l.registered;
        r = agent_loop_step(a, &l, t, count);
        if (agent_loop_again_now(&l, round, r)) {
            continue;
        }
        if (round && a->cfg->once && r >= 0) {
            break;
        }
        if (r < 0) {
            /* Exponential backoff with jitter, capped; never exit on it. */
            uint32_t jitter = 0;
            RAND_bytes((uint8_t *)&jitter, sizeof(jitter));
            if (a->cfg->once) {
                break;
            }
            sleep_ms(backoff_delay_ms(l.backoff_ms, jitter), stop);
            l.backoff_ms = backoff_next_ms(l.backoff_ms);
        } else {
            l.backoff_ms = BACKOFF_MIN_MS;
        }
    }
    return r;
}
