/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_KUBE_LEASE_H
#define KIMA_VERIFIER_KUBE_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Leader election over a coordination.k8s.io/v1 Lease (docs/kubernetes.md,
 * "Several replicas"), with client-go's semantics: one verifier, the Lease's
 * holder, writes labels and Events; the others judge. The holder renews
 * every KUBE_LEASE_RENEW_MS (retrying every KUBE_LEASE_RETRY_MS when that
 * fails) and stops writing KUBE_LEASE_DEADLINE_MS after the start of its
 * last successful renewal, well before the Lease could expire
 * (KUBE_LEASE_DURATION_S); a write in flight is cut off
 * KUBE_LEASE_MARGIN_MS before then. Another verifier takes the Lease when
 * it is absent (POST; 409 AlreadyExists: lost the race), released (no
 * holder), or expired (PUT with the resourceVersion read; 409 Conflict:
 * lost): expired means both that renewTime + leaseDurationSeconds is past
 * by this verifier's clock and that the object has not changed for
 * leaseDurationSeconds as this verifier saw it (its monotonic clock: a
 * clock skewed between replicas never makes it expire early). This file's
 * pure functions are below; the thread is in kube-lease.c. */

#define KUBE_LEASE_DURATION_S     15
#define KUBE_LEASE_RENEW_MS       5000
#define KUBE_LEASE_RETRY_MS       2000
#define KUBE_LEASE_DEADLINE_MS    10000
#define KUBE_LEASE_MARGIN_MS      2000
#define KUBE_LEASE_REQ_TIMEOUT_MS 4000
#define KUBE_LEASE_BACKOFF_MAX_MS 8000
#define KUBE_LEASE_DURATION_MAX_S 3600
#define KUBE_LEASE_HOLDER_MAX     253
#define KUBE_LEASE_RESPONSE_MAX   (64u << 10) /* a Lease is a few hundred bytes */
#define KUBE_LEASE_RV_MAX         128

/* What a Lease says. Times are wall-clock milliseconds since the epoch,
 * -1 when absent. */
struct kube_lease_record {
    char holder[KUBE_LEASE_HOLDER_MAX + 1]; /* "": released, anyone may take it */
    int64_t duration_s;                     /* 0 when absent (then holder is "") */
    int64_t acquire_ms, renew_ms;
    int64_t transitions;
    char rv[KUBE_LEASE_RV_MAX + 1];
};

/* A Lease object as the API answers it: kind and apiVersion (when given),
 * metadata.name `name`, a resourceVersion, and a spec whose fields are
 * checked (holderIdentity at most KUBE_LEASE_HOLDER_MAX printable
 * characters; leaseDurationSeconds 1..KUBE_LEASE_DURATION_MAX_S; renewTime
 * and acquireTime RFC 3339; leaseTransitions 0..2^31-1; a holder needs a
 * duration and a renewTime). -EBADMSG with the reason in err otherwise;
 * *ret untouched then. */
int kube_lease_parse(const json_t *j, const char *name, struct kube_lease_record *ret, char *err,
                     size_t errsz);

/* An RFC 3339 time as the API writes MicroTime ("2026-12-02T02:15:46.123456Z";
 * fractions of up to 9 digits, Z or a +hh:mm/-hh:mm offset) to
 * milliseconds since the epoch. -EINVAL when it is not one. */
int kube_lease_time_parse(const char *s, int64_t *ret_ms);
/* The reverse, with microseconds: outsz at least 32. */
void kube_lease_time_format(int64_t ms, char *out, size_t outsz);

/* May a verifier other than its holder take the Lease? `observed_mono_ms`:
 * when this verifier first saw the object as it is now (its
 * resourceVersion), on the monotonic clock. */
bool kube_lease_available(const struct kube_lease_record *l, int64_t now_wall_ms,
                          int64_t observed_mono_ms, int64_t now_mono_ms);

/* How long (ms) a label or Event write may still take for a holder whose
 * last successful renewal began at renewed_mono_ms: 0 from the deadline on,
 * else until KUBE_LEASE_MARGIN_MS before the Lease would expire, at most
 * cap_ms. */
int64_t kube_lease_write_budget_ms(int64_t renewed_mono_ms, int64_t now_mono_ms, int64_t cap_ms);

/* The Lease to POST (rv NULL) or PUT (rv the one read): holder, duration,
 * times as above. NULL when out of memory; the caller json_decrefs it. */
json_t *kube_lease_body(const char *ns, const char *name, const char *rv,
                        const struct kube_lease_record *spec);

#endif
