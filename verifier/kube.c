/* SPDX-License-Identifier: Apache-2.0 */
#include "kube.h"
#include "kube-internal.h"
#include "kube-lease.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "buf.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "time-util.h"

static size_t on_data(char *p, size_t size, size_t n, void *ud) {
    return kbuf_append(ud, p, size * n) == 0 ? size * n : 0;
}

bool kube_stopping(struct kube *k) {
    return __atomic_load_n(&k->stop, __ATOMIC_RELAXED);
}

/* The Authorization header into auth: false when there is no token. The
 * token's file is read again every TOKEN_REREAD_MS, and at most every
 * TOKEN_RETRY_MS after the API answered 401: a projected service account
 * token expires (an hour by default) and the kubelet writes its successor
 * into the file before. A file that cannot be read keeps the token we have
 * (logged): the API says when that one no longer works. */
static bool bearer(struct kube *k, char *auth, size_t authsz) {
    int64_t now = time_mono_ms();
    bool have;

    pthread_mutex_lock(&k->token_lock);
    if (k->cfg.token_file && (now - k->token_read_ms >= TOKEN_REREAD_MS ||
                              (k->token_refused && now - k->token_read_ms >= TOKEN_RETRY_MS))) {
        int r = kube_config_reread_token(&k->cfg);
        if (r < 0) {
            log_warn("kubernetes: reading the token %s again: %s (the previous one is kept)",
                     k->cfg.token_file, strerror(-r));
        } else if (r > 0) {
            log_info("kubernetes: a new token read from %s", k->cfg.token_file);
        }
        k->token_read_ms = now;
        k->token_refused = false;
    }
    have = k->cfg.token != NULL;
    if (have) {
        snprintf(auth, authsz, "Authorization: Bearer %s", k->cfg.token);
    }
    pthread_mutex_unlock(&k->token_lock);
    return have;
}

void kube_token_refused(struct kube *k) {
    pthread_mutex_lock(&k->token_lock);
    k->token_refused = true;
    pthread_mutex_unlock(&k->token_lock);
}

/* A handle for one request to the API server, with its TLS and
 * authentication; the header list (*ret_h) is the caller's to free after
 * the transfer (curl_slist_free_all), the handle too (curl_easy_cleanup). */
CURL *kube_api_handle(struct kube *k, const char *method, const char *path, const char *ctype,
                      struct curl_slist **ret_h) {
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char auth[8192], ct[128];
    _cleanup_free_ char *url = NULL;

    *ret_h = NULL;
    if (!c || asprintf(&url, "%s%s", k->cfg.server, path) < 0) {
        url = NULL;
        curl_easy_cleanup(c);
        return NULL;
    }
    h = curl_slist_append(h, "Accept: application/json");
    if (ctype) {
        snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
        h = curl_slist_append(h, ct);
    }
    if (bearer(k, auth, sizeof(auth))) {
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, k->ua);
    if (k->cfg.ca_file) {
        curl_easy_setopt(c, CURLOPT_CAINFO, k->cfg.ca_file);
    }
    if (k->cfg.ca_data) {
        struct curl_blob b = {k->cfg.ca_data, k->cfg.ca_len, CURL_BLOB_NOCOPY};
        curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &b);
    }
    if (k->cfg.cert_file) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, k->cfg.cert_file);
        curl_easy_setopt(c, CURLOPT_SSLKEY, k->cfg.key_file);
    }
    if (k->cfg.cert_data) {
        struct curl_blob cb = {k->cfg.cert_data, k->cfg.cert_len, CURL_BLOB_NOCOPY};
        struct curl_blob kb = {k->cfg.key_data, k->cfg.key_len, CURL_BLOB_NOCOPY};
        curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &cb);
        curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &kb);
        curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
    }
    *ret_h = h;
    return c;
}

/* One request. Returns the HTTP status (the answer parsed into *ret when it
 * is JSON), or a negative errno when no answer came. */
int kube_request(struct kube *k, const char *method, const char *path, const char *ctype,
                 const json_t *body, long timeout_ms, json_t **ret) {
    return kube_request_capped(k, method, path, ctype, body, timeout_ms, KUBE_RESPONSE_MAX, ret);
}

int kube_request_capped(struct kube *k, const char *method, const char *path, const char *ctype,
                        const json_t *body, long timeout_ms, size_t max_bytes, json_t **ret) {
    struct curl_slist *h = NULL;
    CURL *c = kube_api_handle(k, method, path, ctype, &h);
    struct kbuf resp;
    char err[CURL_ERROR_SIZE] = "", perr[200];
    _cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    long status = 0;
    CURLcode rc;

    *ret = NULL;
    if (!c) {
        return -ENOMEM;
    }
    kbuf_init(&resp, max_bytes);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (text) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
    }
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (status == 401) {
            kube_token_refused(k);
        }
        if (resp.len && json_parse_bounded((const char *)resp.data, resp.len, 64, KUBE_VALUES_MAX,
                                           ret, perr, sizeof(perr)) < 0) {
            *ret = NULL;
        }
    } else {
        log_warn("kubernetes: %s %s: %s", method, path, err[0] ? err : curl_easy_strerror(rc));
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    kbuf_free(&resp);
    return rc == CURLE_OK ? (int)status : -EIO;
}

int64_t kube_write_budget_ms(struct kube *k) {
    int64_t b;

    if (!k->lease[0]) {
        return KUBE_TIMEOUT_MS;
    }
    pthread_mutex_lock(&k->lock);
    b = k->leader && !k->resigned
                ? kube_lease_write_budget_ms(k->renewed_ms, time_mono_ms(), KUBE_TIMEOUT_MS)
                : 0;
    pthread_mutex_unlock(&k->lock);
    return b;
}

int kube_write(struct kube *k, const char *method, const char *path, const char *ctype,
               const json_t *body, json_t **ret) {
    int64_t budget;
    int status;

    *ret = NULL;
    /* Under wlock: the release waits for this write before it gives the
     * Lease up, and a write after the release sees resigned. */
    pthread_mutex_lock(&k->wlock);
    budget = kube_write_budget_ms(k);
    status = budget > 0 ? kube_request(k, method, path, ctype, body, (long)budget, ret) : -EPERM;
    pthread_mutex_unlock(&k->wlock);
    return status;
}

const char *kube_api_reason(const json_t *j) {
    const char *m = json_string_value(json_object_get(j, "message"));
    return m ? m : "";
}

const char *kube_str_or_empty(const json_t *v) {
    return json_is_string(v) ? json_string_value(v) : "";
}

/* The applied map's key of a pod: its identity (see inventory.h) on its
 * node. */
void kube_applied_key(const char *id, const char *node, char *out, size_t outsz) {
    snprintf(out, outsz, "%s@%s", id, node);
}

const char *kube_meta_str(const json_t *item, const char *a, const char *b) {
    return json_string_value(
            json_object_get(json_object_get(json_object_get(item, "metadata"), a), b));
}

/* A namespace or pod name as the API server allows them (DNS subdomain
 * characters, at most 253): safe to put in a request path unescaped. */
bool kube_k8s_name(const char *s) {
    size_t n = s ? strlen(s) : 0;
    return n > 0 && n <= 253 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789.-") == n;
}

void kube_iso_time(int64_t wall_ms, char *out, size_t outsz) {
    time_t s = (time_t)(wall_ms / 1000);
    struct tm tm;

    gmtime_r(&s, &tm);
    strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

bool kube_writer_locked(struct kube *k) {
    return !k->lease[0] || (k->leader && !k->resigned);
}

int kube_post_event(struct kube *k, const char *uid, const char *ns, const char *name,
                    const char *reason, const char *message) {
    char path[600], t[32], gen[300];
    json_t *ev, *resp = NULL;
    int status;

    kube_iso_time((int64_t)time(NULL) * 1000, t, sizeof(t));
    snprintf(gen, sizeof(gen), "%.240s.kima-", name);
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/events", ns);
    ev = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s,s:s,s:s,s:s,s:s},s:s,s:s,s:s,s:{s:s},s:s,s:s,"
                   "s:i,s:s,s:s}",
                   "apiVersion", "v1", "kind", "Event", "metadata", "generateName", gen,
                   "namespace", ns, "involvedObject", "apiVersion", "v1", "kind", "Pod", "name",
                   name, "namespace", ns, "uid", uid, "reason", reason, "message", message, "type",
                   "Warning", "source", "component", "kima-verifier", "firstTimestamp", t,
                   "lastTimestamp", t, "count", 1, "reportingComponent", "kima-verifier",
                   "reportingInstance", k->host);
    status = kube_write(k, "POST", path, "application/json", ev, &resp);
    json_decref(ev);
    if (status == -EPERM) {
        return -EPERM; /* not the Lease's holder (any more) */
    }
    if (status != 201 && status != 200) {
        log_warn("kubernetes: event on %s/%s: %d %s", ns, name, status, kube_api_reason(resp));
        json_decref(resp);
        return -EIO;
    }
    json_decref(resp);
    return 0;
}

static void backoff(struct kube *k) {
    k->backoff_ms = k->backoff_ms ? k->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (k->backoff_ms > BACKOFF_MAX_MS) {
        k->backoff_ms = BACKOFF_MAX_MS;
    }
    /* jitter: 75-125% */
    k->backoff_until_ms = time_mono_ms() + k->backoff_ms * (75 + rand() % 51) / 100;
}

/* Bring the labels in line with the verdicts. Returns 0, or -EAGAIN when
 * the API asked us to back off. */
/* Pods the API shows with a kima label other than unknown that the verifier
 * does not track (their node was deleted, or they were never attested)
 * must not keep saying trusted or untrusted: they are added to `pods` as
 * unknown. */
static void add_untracked(struct kube *k, json_t *pods) {
    json_t *tracked = json_object(), *p, *a;
    const char *uid;
    size_t i;

    json_array_foreach(pods, i, p) {
        const char *u = json_string_value(json_object_get(p, "uid"));
        char key[64 + 260];
        if (u) {
            kube_applied_key(u, kube_str_or_empty(json_object_get(p, "node")), key, sizeof(key));
            json_object_set(tracked, key, json_true());
        }
    }
    pthread_mutex_lock(&k->lock);
    json_object_foreach(k->applied, uid, a) {
        const char *have = json_string_value(json_object_get(a, "trust"));
        if (have && have[0] && strcmp(have, "unknown") != 0 && !json_object_get(tracked, uid)) {
            json_array_append_new(pods, json_pack("{s:O,s:O,s:s,s:s,s:I}", "uid",
                                                  json_object_get(a, "id"), "node",
                                                  json_object_get(a, "node"), "state", "unknown",
                                                  "reason", UNTRACKED_REASON, "since_ms",
                                                  (json_int_t)time_wall_ms()));
        }
    }
    pthread_mutex_unlock(&k->lock);
    json_decref(tracked);
}

/* The merge patch of a pod's label and annotations: the HTTP status (the
 * answer in *ret), a negative errno, or -EPERM when this verifier may not
 * write. */
static int patch_labels(struct kube *k, const char *ns, const char *name, const char *api_uid,
                        const char *state, const char *reason, json_int_t since, json_t **ret) {
    char path[700], at[32], key[160], rkey[160], akey[160];
    json_t *patch;
    int status;

    snprintf(key, sizeof(key), "%s/trust", k->prefix);
    snprintf(rkey, sizeof(rkey), "%s/reason", k->prefix);
    snprintf(akey, sizeof(akey), "%s/attested-at", k->prefix);
    kube_iso_time((int64_t)since, at, sizeof(at));
    /* The API UID makes the patch apply to this pod only, not to a
     * successor under the same name (the API refuses a patch whose UID
     * differs). */
    patch = json_pack("{s:{s:s,s:{s:s},s:{s:s,s:s}}}", "metadata", "uid", api_uid, "labels", key,
                      state, "annotations", rkey, reason, akey, at);
    if (!patch) {
        *ret = NULL;
        return -ENOMEM;
    }
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", ns, name);
    status = kube_write(k, "PATCH", path, "application/merge-patch+json", patch, ret);
    json_decref(patch);
    return status;
}

bool kube_patch_backs_off(int status) {
    return status < 0 || status == 429 || status >= 500 || status == 401 || status == 403;
}

/* What the label thread knows of a pod from the applied map: a copy, read
 * under k->lock. */
struct pod_view {
    char pkey[64 + 260], ns[256], name[256], api_uid[64], have[16];
    char have_reason[REASON_MAX + 1];
    bool event_pending;
};

/* false when the pod is not (or no longer) in the cluster. */
static bool pod_view_read(struct kube *k, struct pod_view *v) {
    json_t *a;

    pthread_mutex_lock(&k->lock);
    a = json_object_get(k->applied, v->pkey);
    if (a) {
        snprintf(v->ns, sizeof(v->ns), "%s", json_string_value(json_object_get(a, "ns")));
        snprintf(v->name, sizeof(v->name), "%s", json_string_value(json_object_get(a, "name")));
        snprintf(v->api_uid, sizeof(v->api_uid), "%s",
                 json_string_value(json_object_get(a, "uid")));
        snprintf(v->have, sizeof(v->have), "%s", json_string_value(json_object_get(a, "trust")));
        snprintf(v->have_reason, sizeof(v->have_reason), "%s",
                 json_string_value(json_object_get(a, "reason")));
        v->event_pending = json_is_true(json_object_get(a, "event"));
    }
    pthread_mutex_unlock(&k->lock);
    return a != NULL;
}

/* Write the pod's label and annotations: 0, -EPERM (not the writer),
 * -EAGAIN (back off). */
static int label_pod(struct kube *k, struct pod_view *v, const char *state, const char *reason,
                     json_int_t since) {
    json_t *a, *before, *presp = NULL;
    bool want_event = strcmp(state, "untrusted") == 0 && strcmp(v->have, "untrusted") != 0;
    int status, r = 0;

    /* What is being written: the watch's echo of it is not a tamper. The
     * entry is held, so that an entry the watch replaced meanwhile is told
     * from it (the watch's is newer than the answer). */
    pthread_mutex_lock(&k->lock);
    before = json_incref(json_object_get(k->applied, v->pkey));
    if (before) {
        json_object_set_new(kube_own(before), "writing", json_string(state));
    }
    pthread_mutex_unlock(&k->lock);
    status = patch_labels(k, v->ns, v->name, v->api_uid, state, reason, since, &presp);
    pthread_mutex_lock(&k->lock);
    a = json_object_get(k->applied, v->pkey);
    if (before) {
        json_object_del(kube_own(before), "writing");
    }
    if (status == -EPERM) {
        r = -EPERM; /* not the Lease's holder (any more) */
    } else if (status == 200) {
        k->stats.patches++;
        if (a) {
            if (a == before) {
                json_object_set_new(a, "trust", json_string(state));
                json_object_set_new(a, "reason", json_string(reason));
            }
            kube_tamper_vouch_locked(k, a, state);
            if (want_event) {
                json_object_set_new(a, "event", json_true());
                v->event_pending = true;
            }
        }
        k->backoff_ms = 0;
    } else if (status == 404) {
        json_object_del(k->applied, v->pkey); /* the pod is gone */
    } else {
        k->stats.patch_errors++;
        log_warn("kubernetes: labelling %s/%s %s: %d %s", v->ns, v->name, state, status,
                 kube_api_reason(presp));
        if (kube_patch_backs_off(status)) {
            backoff(k);
            r = -EAGAIN;
        }
    }
    pthread_mutex_unlock(&k->lock);
    json_decref(before);
    json_decref(presp);
    return r;
}

/* One pod of engine_pods: its label, its Event, its eviction. 0, -EPERM or
 * -EAGAIN (stop this pass). */
static int reconcile_pod(struct kube *k, const json_t *p, int *evictions) {
    const char *uid = json_string_value(json_object_get(p, "uid"));
    const char *state = json_string_value(json_object_get(p, "state"));
    const char *reason = json_string_value(json_object_get(p, "reason"));
    json_int_t since = json_integer_value(json_object_get(p, "since_ms"));
    char reason_c[REASON_MAX + 1];
    struct pod_view v = {0};
    json_t *a, *tamper;
    int r;

    if (!uid || !state || !reason) {
        return 0;
    }
    kube_applied_key(uid, kube_str_or_empty(json_object_get(p, "node")), v.pkey, sizeof(v.pkey));
    snprintf(reason_c, sizeof(reason_c), "%s", reason);
    tamper = kube_tamper_take(k, v.pkey, state);
    if (!pod_view_read(k, &v)) {
        json_decref(tamper);
        return 0; /* not (or no longer) in the cluster */
    }
    if (strcmp(v.have, state) != 0 || strcmp(v.have_reason, reason_c) != 0) {
        /* Restored first, reported after (the audit's sync, the Event). */
        r = label_pod(k, &v, state, reason_c, since);
        if (tamper) {
            kube_tamper_report(k, v.pkey, tamper, state);
            json_decref(tamper);
        }
        if (r < 0) {
            return r;
        }
    } else {
        if (tamper) { /* undone meanwhile, by its author: still one */
            kube_tamper_report(k, v.pkey, tamper, state);
            json_decref(tamper);
        }
        pthread_mutex_lock(&k->lock);
        a = json_object_get(k->applied, v.pkey);
        if (a) {
            kube_tamper_vouch_locked(k, a, state);
        }
        pthread_mutex_unlock(&k->lock);
    }
    if (v.event_pending &&
        kube_post_event(k, v.api_uid, v.ns, v.name, "IntegrityViolation", reason_c) == 0) {
        pthread_mutex_lock(&k->lock);
        k->stats.events++;
        a = json_object_get(k->applied, v.pkey);
        if (a) {
            json_object_del(a, "event");
        }
        pthread_mutex_unlock(&k->lock);
    }
    /* Never an unknown pod: unknown is also what an outage of the agent
     * or of the verifier's judgement reads as. */
    if (k->evict && strcmp(state, "untrusted") == 0 && *evictions < EVICT_PER_PASS) {
        *evictions += kube_evict(k, v.pkey) > 0;
    }
    return 0;
}

static int reconcile(struct kube *k) {
    json_t *resp = NULL, *p;
    int r = 0, evictions = 0;
    size_t i;

    engine_pods(k->e, NULL, &resp);
    add_untracked(k, json_object_get(resp, "pods"));
    json_array_foreach(json_object_get(resp, "pods"), i, p) {
        r = reconcile_pod(k, p, &evictions);
        if (r < 0) {
            break;
        }
    }
    json_decref(resp);
    return r;
}

void kube_wait_locked(struct kube *k, int64_t ms) {
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    ts.tv_sec += ms / 1000 + ts.tv_nsec / 1000000000;
    ts.tv_nsec %= 1000000000;
    pthread_cond_timedwait(&k->cond, &k->lock, &ts);
}

bool kube_labels_due(bool kicked, int64_t now_ms, int64_t last_ms, int64_t tick_ms,
                     int64_t *ret_wait_ms) {
    int64_t since = now_ms - last_ms, wait = tick_ms - since;

    if (since >= tick_ms || (kicked && since >= KUBE_KICK_GAP_MS)) {
        return true;
    }
    if (kicked && KUBE_KICK_GAP_MS - since < wait) {
        wait = KUBE_KICK_GAP_MS - since;
    }
    *ret_wait_ms = wait;
    return false;
}

/* The label thread: measurements that waited for pods the syncer brought
 * are judged (at most every RESOLVE_GAP_MS), and labels are reconciled
 * when a verdict changed (a kick, at most every KUBE_KICK_GAP_MS) and
 * every tick_ms. */
static void *run(void *ud) {
    struct kube *k = ud;

    pthread_mutex_lock(&k->lock);
    while (!k->stop) {
        int64_t t = time_mono_ms(), wait_ms = 0;
        bool resolve = k->resolve && t - k->last_resolve_ms >= RESOLVE_GAP_MS;
        bool labels = kube_labels_due(k->kicked, t, k->last_reconcile_ms, k->tick_ms, &wait_ms);

        if (resolve) {
            k->resolve = false;
            k->last_resolve_ms = t;
        }
        if (labels) {
            k->kicked = false;
            k->last_reconcile_ms = t;
        }
        pthread_mutex_unlock(&k->lock);
        if (resolve) {
            engine_resolve_waiting(k->e);
        }
        /* A verifier that does not hold the Lease writes nothing: it
         * does not even read the verdicts. */
        if (labels && time_mono_ms() >= k->backoff_until_ms && kube_write_budget_ms(k) > 0 &&
            reconcile(k) == 0 && k->taint) {
            kube_taint_pass(k);
        }
        pthread_mutex_lock(&k->lock);
        t = time_mono_ms();
        if (kube_labels_due(k->kicked, t, k->last_reconcile_ms, k->tick_ms, &wait_ms)) {
            continue; /* due now */
        }
        if (k->resolve && k->last_resolve_ms + RESOLVE_GAP_MS - t < wait_ms) {
            wait_ms = k->last_resolve_ms + RESOLVE_GAP_MS - t;
        }
        if (!k->stop && wait_ms > 0) {
            kube_wait_locked(k, wait_ms);
        }
    }
    pthread_mutex_unlock(&k->lock);
    return NULL;
}

int kube_new(const struct kube_config *cfg, const struct kube_options *opt, struct engine *e,
             struct inventory *inv, struct kube **ret) {
    struct kube *k = calloc(1, sizeof(*k));

    if (!k) {
        return -ENOMEM;
    }
    k->cfg = *cfg; /* takes ownership */
    snprintf(k->prefix, sizeof(k->prefix), "%s",
             opt && opt->label_prefix ? opt->label_prefix : "kima.dev");
    k->refresh_ms = opt && opt->refresh_ms > 0 ? opt->refresh_ms : KUBE_RESYNC_MS_DEFAULT;
    k->tick_ms = opt && opt->tick_ms > 0 ? opt->tick_ms : 1000;
    k->e = e;
    k->inv = inv;
    k->applied = json_object();
    k->evict = opt && opt->evict_untrusted;
    k->taint = opt && opt->taint_nodes;
    k->taint_noexecute = opt && opt->taint_noexecute;
    k->taints = json_object();
    k->last_list_ms = INT64_MIN / 2;
    pthread_mutex_init(&k->lock, NULL);
    pthread_cond_init(&k->cond, NULL);
    pthread_mutex_init(&k->lease_op, NULL);
    pthread_mutex_init(&k->wlock, NULL);
    pthread_mutex_init(&k->token_lock, NULL);
    k->token_read_ms = time_mono_ms();
    if (gethostname(k->host, sizeof(k->host)) < 0) {
        snprintf(k->host, sizeof(k->host), "kima-verifier");
    }
    snprintf(k->ua, sizeof(k->ua), "kima-verifier%s%.253s", k->cfg.holder ? "/" : "",
             k->cfg.holder ? k->cfg.holder : "");
    if (kube_lease_setup(k, opt ? opt->lease : NULL) < 0) {
        memset(&k->cfg, 0, sizeof(k->cfg)); /* the caller's still */
        kube_free(k);
        return -EINVAL;
    }
    *ret = k;
    return 0;
}

int kube_start(struct kube *k) {
    int r;

    /* The first list before any evidence is judged (when the API answers;
     * else the syncer tries again, and measurements wait for their pods). */
    kube_list_pods(k);
    r = pthread_create(&k->syncer, NULL, kube_sync_run, k);
    if (r != 0) {
        return -r;
    }
    k->syncer_started = true;
    r = pthread_create(&k->thread, NULL, run, k);
    if (r != 0) {
        return -r;
    }
    k->started = true;
    if (k->lease[0]) {
        r = pthread_create(&k->leaser, NULL, kube_lease_run, k);
        if (r != 0) {
            return -r;
        }
        k->leaser_started = true;
    }
    return 0;
}

void kube_kick(struct kube *k, bool relist) {
    (void)relist; /* the watch brings new pods: nothing to list */
    if (!k) {
        return;
    }
    pthread_mutex_lock(&k->lock);
    k->kicked = true;
    pthread_cond_broadcast(&k->cond);
    pthread_mutex_unlock(&k->lock);
}

void kube_stats(struct kube *k, struct kube_stats *ret) {
    pthread_mutex_lock(&k->lock);
    *ret = k->stats;
    pthread_mutex_unlock(&k->lock);
}

void kube_free(struct kube *k) {
    if (!k) {
        return;
    }
    pthread_mutex_lock(&k->lock);
    __atomic_store_n(&k->stop, true, __ATOMIC_RELAXED);
    pthread_cond_broadcast(&k->cond);
    pthread_mutex_unlock(&k->lock);
    if (k->syncer_started) {
        pthread_join(k->syncer, NULL);
    }
    if (k->started) {
        pthread_join(k->thread, NULL);
    }
    if (k->leaser_started) {
        pthread_join(k->leaser, NULL);
    }
    kube_resign(k); /* no write is left: the Lease goes to another at once */
    json_decref(k->applied);
    json_decref(k->taints);
    kube_config_free(&k->cfg);
    pthread_mutex_destroy(&k->lock);
    pthread_cond_destroy(&k->cond);
    pthread_mutex_destroy(&k->lease_op);
    pthread_mutex_destroy(&k->wlock);
    pthread_mutex_destroy(&k->token_lock);
    free(k);
}
