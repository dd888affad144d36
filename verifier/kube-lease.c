/* SPDX-License-Identifier: Apache-2.0 */
/* Leader election over a Lease (kube-lease.h): the record's checks and
 * arithmetic, and the thread that acquires, renews and releases it. */
#include "kube-lease.h"
#include "kube-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "time-util.h"

static int bad(char *err, size_t errsz, const char *fmt, ...) {
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
    return -EBADMSG;
}

static int digits(const char *s, int n, int *ret) {
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -EINVAL;
        }
        v = v * 10 + (s[i] - '0');
    }
    *ret = v;
    return 0;
}

int kube_lease_time_parse(const char *s, int64_t *ret_ms) {
    int y, mo, d, h, mi, sec, ms = 0, oh = 0, om = 0, sign = 0, nfrac = 0;
    struct tm tm = {0};
    const char *p;
    int64_t t;

    if (!s || strlen(s) < 20 || strlen(s) > 40 || digits(s, 4, &y) < 0 || s[4] != '-' ||
        digits(s + 5, 2, &mo) < 0 || s[7] != '-' || digits(s + 8, 2, &d) < 0 ||
        (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &h) < 0 || s[13] != ':' ||
        digits(s + 14, 2, &mi) < 0 || s[16] != ':' || digits(s + 17, 2, &sec) < 0) {
        return -EINVAL;
    }
    p = s + 19;
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, nfrac++) {
            if (nfrac < 3) {
                ms = ms * 10 + (*p - '0');
            }
        }
        if (nfrac == 0 || nfrac > 9) {
            return -EINVAL;
        }
        for (int i = nfrac; i < 3; i++) {
            ms *= 10;
        }
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == 0) {
        sign = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && digits(p + 1, 2, &oh) == 0 &&
               p[3] == ':' && digits(p + 4, 2, &om) == 0 && oh < 24 && om < 60) {
        sign = *p == '+' ? 1 : -1;
    } else {
        return -EINVAL;
    }
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
        return -EINVAL;
    }
    tm = (struct tm){.tm_year = y - 1900,
                     .tm_mon = mo - 1,
                     .tm_mday = d,
                     .tm_hour = h,
                     .tm_min = mi,
                     .tm_sec = sec};
    t = (int64_t)timegm(&tm);
    if (t < 0) {
        return -EINVAL;
    }
    *ret_ms = (t - sign * (oh * 3600 + om * 60)) * 1000 + ms;
    return 0;
}

void kube_lease_time_format(int64_t ms, char *out, size_t outsz) {
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    char base[24];

    gmtime_r(&s, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outsz, "%s.%06dZ", base, (int)(ms % 1000) * 1000);
}

static bool printable(const char *s) {
    for (; *s; s++) {
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e) {
            return false;
        }
    }
    return true;
}

/* An optional integer field of spec in [min, max]; *ret untouched when
 * absent. */
static int spec_int(const json_t *spec, const char *key, int64_t min, int64_t max, int64_t *ret,
                    char *err, size_t errsz) {
    const json_t *v = json_object_get(spec, key);

    if (!v || json_is_null(v)) {
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        return bad(err, errsz, "spec.%s is not an integer in %" PRId64 "..%" PRId64, key, min, max);
    }
    *ret = json_integer_value(v);
    return 0;
}

static int spec_time(const json_t *spec, const char *key, int64_t *ret, char *err, size_t errsz) {
    const json_t *v = json_object_get(spec, key);

    if (!v || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v) || kube_lease_time_parse(json_string_value(v), ret) < 0) {
        return bad(err, errsz, "spec.%s is not an RFC 3339 time", key);
    }
    return 0;
}

int kube_lease_parse(const json_t *j, const char *name, struct kube_lease_record *ret, char *err,
                     size_t errsz) {
    struct kube_lease_record l = {.acquire_ms = -1, .renew_ms = -1};
    const json_t *md = json_object_get(j, "metadata"), *spec = json_object_get(j, "spec"), *v;
    const char *s;
    int r;

    if (!json_is_object(j) || !json_is_object(md)) {
        return bad(err, errsz, "not an object with metadata");
    }
    if (((v = json_object_get(j, "kind")) &&
         (!json_is_string(v) || strcmp(json_string_value(v), "Lease") != 0)) ||
        ((v = json_object_get(j, "apiVersion")) &&
         (!json_is_string(v) || strcmp(json_string_value(v), "coordination.k8s.io/v1") != 0))) {
        return bad(err, errsz, "not a coordination.k8s.io/v1 Lease");
    }
    s = json_string_value(json_object_get(md, "name"));
    if (!s || strcmp(s, name) != 0) {
        return bad(err, errsz, "metadata.name is not \"%s\"", name);
    }
    s = json_string_value(json_object_get(md, "resourceVersion"));
    if (!s || !*s || strlen(s) > KUBE_LEASE_RV_MAX || !printable(s)) {
        return bad(err, errsz, "no usable metadata.resourceVersion");
    }
    snprintf(l.rv, sizeof(l.rv), "%s", s);
    if (spec && !json_is_null(spec) && !json_is_object(spec)) {
        return bad(err, errsz, "spec is not an object");
    }
    v = json_object_get(spec, "holderIdentity");
    if (v && !json_is_null(v)) {
        s = json_string_value(v);
        if (!s || strlen(s) > KUBE_LEASE_HOLDER_MAX || !printable(s)) {
            return bad(err, errsz,
                       "spec.holderIdentity is not a string of at most %d printable characters",
                       KUBE_LEASE_HOLDER_MAX);
        }
        snprintf(l.holder, sizeof(l.holder), "%s", s);
    }
    if ((r = spec_int(spec, "leaseDurationSeconds", 1, KUBE_LEASE_DURATION_MAX_S, &l.duration_s,
                      err, errsz)) < 0 ||
        (r = spec_int(spec, "leaseTransitions", 0, INT32_MAX, &l.transitions, err, errsz)) < 0 ||
        (r = spec_time(spec, "renewTime", &l.renew_ms, err, errsz)) < 0 ||
        (r = spec_time(spec, "acquireTime", &l.acquire_ms, err, errsz)) < 0) {
        return r;
    }
    if (l.holder[0] && (l.duration_s == 0 || l.renew_ms < 0)) {
        return bad(err, errsz, "held by \"%s\" without leaseDurationSeconds or renewTime",
                   l.holder);
    }
    *ret = l;
    return 0;
}

bool kube_lease_available(const struct kube_lease_record *l, int64_t now_wall_ms,
                          int64_t observed_mono_ms, int64_t now_mono_ms) {
    int64_t d = l->duration_s * 1000;

    if (!l->holder[0]) {
        return true;
    }
    return l->renew_ms + d < now_wall_ms && now_mono_ms - observed_mono_ms >= d;
}

int64_t kube_lease_write_budget_ms(int64_t renewed_mono_ms, int64_t now_mono_ms, int64_t cap_ms) {
    int64_t left =
            renewed_mono_ms + KUBE_LEASE_DURATION_S * 1000 - KUBE_LEASE_MARGIN_MS - now_mono_ms;

    if (now_mono_ms >= renewed_mono_ms + KUBE_LEASE_DEADLINE_MS || left <= 0) {
        return 0;
    }
    return left < cap_ms ? left : cap_ms;
}

json_t *kube_lease_body(const char *ns, const char *name, const char *rv,
                        const struct kube_lease_record *spec) {
    char at[40], rt[40];
    json_t *j, *s;

    kube_lease_time_format(spec->acquire_ms, at, sizeof(at));
    kube_lease_time_format(spec->renew_ms, rt, sizeof(rt));
    s = json_pack("{s:s,s:I,s:s,s:s,s:I}", "holderIdentity", spec->holder, "leaseDurationSeconds",
                  (json_int_t)spec->duration_s, "acquireTime", at, "renewTime", rt,
                  "leaseTransitions", (json_int_t)spec->transitions);
    j = json_pack("{s:s,s:s,s:{s:s,s:s},s:o}", "apiVersion", "coordination.k8s.io/v1", "kind",
                  "Lease", "metadata", "name", name, "namespace", ns, "spec", s);
    if (j && rv &&
        json_object_set_new(json_object_get(j, "metadata"), "resourceVersion", json_string(rv)) <
                0) {
        json_decref(j);
        return NULL;
    }
    return j;
}

int kube_lease_setup(struct kube *k, const char *lease) {
    const char *ns = getenv("POD_NAMESPACE");
    const char *holder = k->cfg.holder;

    if (!lease || !*lease) {
        return 0;
    }
    if (!kube_k8s_name(lease)) {
        log_error("--lease \"%.300s\" is not a Lease name (lower-case letters, digits, '-' "
                  "and '.', at most 253)",
                  lease);
        return -EINVAL;
    }
    if (!holder || !*holder || strlen(holder) > KUBE_LEASE_HOLDER_MAX || !printable(holder)) {
        log_error("--lease: this verifier's identity (POD_NAME or the host name) is not %d "
                  "printable characters or fewer",
                  KUBE_LEASE_HOLDER_MAX);
        return -EINVAL;
    }
    ns = ns && *ns ? ns : k->cfg.namespace && *k->cfg.namespace ? k->cfg.namespace : "default";
    if (!kube_k8s_name(ns)) {
        log_error("--lease: the namespace \"%.300s\" (POD_NAMESPACE, or the kubeconfig's or "
                  "service account's) is not a namespace name",
                  ns);
        return -EINVAL;
    }
    snprintf(k->lease_ns, sizeof(k->lease_ns), "%s", ns);
    snprintf(k->leases_path, sizeof(k->leases_path),
             "/apis/coordination.k8s.io/v1/namespaces/%s/leases", ns);
    snprintf(k->lease_path, sizeof(k->lease_path), "%.399s/%.253s", k->leases_path, lease);
    snprintf(k->lease, sizeof(k->lease), "%s", lease);
    k->renewed_ms = INT64_MIN / 2;
    engine_leader_change(k->e, false, lease, holder, NULL);
    log_info("leader election: Lease %s/%s as \"%s\": labels and Events only while it is "
             "held",
             ns, lease, holder);
    return 0;
}

/* A Lease error, logged when it is new or once a minute: a broken or
 * hostile Lease, or an API that refuses, is retried quietly. */
static void complain(struct kube *k, const char *fmt, ...) {
    char msg[sizeof(k->complaint)];
    int64_t now = time_mono_ms();
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (strcmp(msg, k->complaint) != 0 || now - k->complained_ms >= 60000) {
        log_warn("leader election: Lease %s/%s: %s", k->lease_ns, k->lease, msg);
        snprintf(k->complaint, sizeof(k->complaint), "%s", msg);
        k->complained_ms = now;
    }
}

/* The Lease now: 1 with *ret, 0 when there is none (404), or a negative
 * errno (complained about). Notes when its resourceVersion changed. */
static int lease_get(struct kube *k, struct kube_lease_record *ret) {
    json_t *resp = NULL;
    char err[200];
    int status = kube_request_capped(k, "GET", k->lease_path, NULL, NULL, KUBE_LEASE_REQ_TIMEOUT_MS,
                                     KUBE_LEASE_RESPONSE_MAX, &resp);
    int r;

    if (status == 404) {
        json_decref(resp);
        return 0;
    }
    if (status != 200) {
        complain(k, "reading it: %d %.200s", status, kube_api_reason(resp));
        json_decref(resp);
        return -EIO;
    }
    r = kube_lease_parse(resp, k->lease, ret, err, sizeof(err));
    json_decref(resp);
    if (r < 0) {
        complain(k, "unreadable (%s): never taken over; fix or delete it", err);
        return r;
    }
    if (strcmp(ret->rv, k->lease_rv) != 0) {
        snprintf(k->lease_rv, sizeof(k->lease_rv), "%s", ret->rv);
        k->lease_seen_ms = time_mono_ms();
    }
    return 1;
}

/* POST (rv NULL) or PUT the Lease: 1 written, 0 lost to another (409, or
 * 404 for a PUT), or a negative errno (complained about). */
static int lease_write(struct kube *k, const char *rv, const struct kube_lease_record *spec) {
    json_t *body = kube_lease_body(k->lease_ns, k->lease, rv, spec), *resp = NULL;
    int status;

    if (!body) {
        return -ENOMEM;
    }
    status = kube_request_capped(k, rv ? "PUT" : "POST", rv ? k->lease_path : k->leases_path,
                                 "application/json", body, KUBE_LEASE_REQ_TIMEOUT_MS,
                                 KUBE_LEASE_RESPONSE_MAX, &resp);
    json_decref(body);
    if (status != 200 && status != 201 && status != 409 && !(rv && status == 404)) {
        complain(k, "%s: %d %.200s", rv ? "updating it" : "creating it", status,
                 kube_api_reason(resp));
    }
    json_decref(resp);
    return status == 200 || status == 201 ? 1 : status == 409 || status == 404 ? 0 : -EIO;
}

/* client-go's tryAcquireOrRenew: 1 this verifier holds the Lease (taken or
 * renewed), 0 another does (or won the race), or a negative errno. */
static int try_lease(struct kube *k) {
    struct kube_lease_record cur, want = {.duration_s = KUBE_LEASE_DURATION_S};
    int64_t now = time_wall_ms();
    int r = lease_get(k, &cur);

    if (r < 0) {
        return r;
    }
    want.acquire_ms = want.renew_ms = now;
    snprintf(want.holder, sizeof(want.holder), "%s", k->cfg.holder);
    if (r == 0) {
        return lease_write(k, NULL, &want);
    }
    if (strcmp(cur.holder, k->cfg.holder) == 0) {
        want.acquire_ms = cur.acquire_ms >= 0 ? cur.acquire_ms : now;
        want.transitions = cur.transitions;
    } else if (!kube_lease_available(&cur, now, k->lease_seen_ms, time_mono_ms())) {
        return 0;
    } else {
        want.transitions = cur.transitions < INT32_MAX ? cur.transitions + 1 : INT32_MAX;
    }
    return lease_write(k, cur.rv, &want);
}

static void became(struct kube *k, bool leader, const char *why) {
    if (leader) {
        log_info("leader election: this verifier (%s) holds Lease %s/%s: it writes labels "
                 "and Events",
                 k->cfg.holder, k->lease_ns, k->lease);
    } else if (strcmp(why, "released") == 0) {
        log_info("leader election: this verifier (%s) gave Lease %s/%s up: it writes no "
                 "labels or Events",
                 k->cfg.holder, k->lease_ns, k->lease);
    } else {
        log_warn("leader election: this verifier (%s) lost Lease %s/%s (%s): it writes no "
                 "labels or Events",
                 k->cfg.holder, k->lease_ns, k->lease, why);
    }
    if (engine_leader_change(k->e, leader, k->lease, k->cfg.holder, why) < 0) {
        log_error("leader election: the audit record could not be written");
    }
    if (leader) {
        kube_kick(k, false); /* the labels the verdicts want, now */
    }
}

/* One attempt; returns when the next is due (monotonic). */
static int64_t lease_step(struct kube *k, int64_t *backoff_ms) {
    int64_t t0 = time_mono_ms(), next;
    bool was, now;
    int r = -EAGAIN;

    pthread_mutex_lock(&k->lease_op);
    pthread_mutex_lock(&k->lock);
    was = k->leader;
    if (k->resigned || k->stop) {
        pthread_mutex_unlock(&k->lock);
        pthread_mutex_unlock(&k->lease_op);
        return t0;
    }
    pthread_mutex_unlock(&k->lock);
    r = try_lease(k);
    pthread_mutex_lock(&k->lock);
    if (r == 1) {
        k->renewed_ms = t0;
        k->leader = true;
    } else if (was && (r == 0 || time_mono_ms() >= k->renewed_ms + KUBE_LEASE_DEADLINE_MS)) {
        k->leader = false;
    }
    now = k->leader;
    next = now && r == 1 ? t0 + KUBE_LEASE_RENEW_MS : 0;
    if (now && r != 1) { /* retry, and notice the deadline when it comes */
        next = time_mono_ms() + KUBE_LEASE_RETRY_MS;
        next = next < k->renewed_ms + KUBE_LEASE_DEADLINE_MS
                       ? next
                       : k->renewed_ms + KUBE_LEASE_DEADLINE_MS;
    }
    pthread_mutex_unlock(&k->lock);
    pthread_mutex_unlock(&k->lease_op);
    if (now != was) {
        became(k, now, now ? "acquired" : r == 0 ? "another holds it" : "not renewed in time");
    }
    if (r >= 0) {
        *backoff_ms = 0;
    } else {
        *backoff_ms = *backoff_ms ? *backoff_ms * 2 : KUBE_LEASE_RETRY_MS;
        *backoff_ms =
                *backoff_ms < KUBE_LEASE_BACKOFF_MAX_MS ? *backoff_ms : KUBE_LEASE_BACKOFF_MAX_MS;
    }
    if (!next) { /* not the holder: try again, with jitter (90-110%) */
        int64_t base = *backoff_ms ? *backoff_ms : KUBE_LEASE_RETRY_MS;
        next = time_mono_ms() + base * (90 + rand() % 21) / 100;
    }
    return next;
}

void *kube_lease_run(void *ud) {
    struct kube *k = ud;
    int64_t next = 0, backoff_ms = 0;

    pthread_mutex_lock(&k->lock);
    while (!k->stop && !k->resigned) {
        int64_t t = time_mono_ms();
        if (t < next) {
            kube_wait_locked(k, next - t);
            continue;
        }
        pthread_mutex_unlock(&k->lock);
        next = lease_step(k, &backoff_ms);
        pthread_mutex_lock(&k->lock);
    }
    pthread_mutex_unlock(&k->lock);
    return NULL;
}

/* Give the Lease up when this verifier holds it (as client-go releases:
 * no holder, a 1 s duration, renewTime now): another takes it at once. */
void kube_lease_release(struct kube *k) {
    struct kube_lease_record cur, want = {.duration_s = 1};
    int r = lease_get(k, &cur);

    if (r <= 0 || strcmp(cur.holder, k->cfg.holder) != 0) {
        return;
    }
    want.acquire_ms = want.renew_ms = time_wall_ms();
    want.transitions = cur.transitions;
    if (lease_write(k, cur.rv, &want) == 1) {
        log_info("leader election: Lease %s/%s released", k->lease_ns, k->lease);
    }
}

void kube_resign(struct kube *k) {
    bool was, already;

    if (!k || !k->lease[0] || !k->leaser_started) {
        return;
    }
    pthread_mutex_lock(&k->lease_op);
    pthread_mutex_lock(&k->lock);
    already = k->resigned;
    was = k->leader;
    k->resigned = true;
    k->leader = false;
    pthread_cond_broadcast(&k->cond);
    pthread_mutex_unlock(&k->lock);
    if (!already) {
        /* A write in flight ends (or times out) before the Lease goes. */
        pthread_mutex_lock(&k->wlock);
        pthread_mutex_unlock(&k->wlock);
        kube_lease_release(k);
    }
    pthread_mutex_unlock(&k->lease_op);
    if (was) {
        became(k, false, "released");
    }
}
