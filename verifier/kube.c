/* SPDX-License-Identifier: Apache-2.0 */
#include "kube.h"

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

#define KUBE_RESPONSE_MAX (256u << 20) /* a PodList of a big cluster */
#define KUBE_VALUES_MAX   (1u << 25)   /* as many as INVENTORY_VALUES_MAX */
#define KUBE_TIMEOUT_MS   10000
#define KUBE_PAGE_LIMIT   500         /* pods a LIST page, as client-go's informers ask */
#define KUBE_CONTINUE_MAX 8192        /* a continue token's length */
#define KUBE_RV_MAX       128         /* a resourceVersion's length */
#define KUBE_EVENT_MAX    (4u << 20)  /* one watch event line */
#define KUBE_STATUS_MAX   (64u << 10) /* a refused watch's answer */
#define LIST_RESTARTS_MAX 3           /* lists restarted for an expired continue token */
#define WATCH_TIMEOUT_S   300         /* a watch's timeoutSeconds, at most */
#define RESOLVE_GAP_MS    200         /* waiting measurements judged after events, this often */
#define BACKOFF_MIN_MS    500
#define BACKOFF_MAX_MS    30000
#define REASON_MAX        1000
#define UNTRACKED_REASON \
    "the verifier does not track this pod (its node was deleted or never attested)"

struct kube {
    struct kube_config cfg;
    char prefix[128];
    int64_t refresh_ms, tick_ms;
    struct engine *e;
    struct inventory *inv;

    pthread_t thread, syncer;
    bool started, syncer_started;
    bool stop; /* written under lock with __atomic stores; read anywhere */
    /* The syncer's own (no lock): the resourceVersion the inventory is
     * complete as of, and when the last full LIST was (monotonic). */
    char rv[KUBE_RV_MAX + 1];
    int64_t last_list_ms, sync_backoff_ms;
    pthread_mutex_t lock; /* the fields below */
    pthread_cond_t cond;
    bool kicked, resolve; /* resolve: the inventory changed, judge what waits */
    int64_t last_resolve_ms, last_reconcile_ms;
    /* identity (UID, or a static pod's config hash) -> {"ns","name","uid","trust",
     * "reason","event"}: what the API shows */
    json_t *applied;
    int64_t backoff_until_ms, backoff_ms;
    struct kube_stats stats;
    char host[256];
};

static size_t on_data(char *p, size_t size, size_t n, void *ud) {
    return kbuf_append(ud, p, size * n) == 0 ? size * n : 0;
}

static bool stopping(struct kube *k) {
    return __atomic_load_n(&k->stop, __ATOMIC_RELAXED);
}

/* A handle for one request to the API server, with its TLS and
 * authentication; the header list (*ret_h) is the caller's to free after
 * the transfer (curl_slist_free_all), the handle too (curl_easy_cleanup). */
static CURL *api_handle(struct kube *k, const char *method, const char *path, const char *ctype,
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
    if (k->cfg.token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", k->cfg.token);
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
    curl_easy_setopt(c, CURLOPT_USERAGENT, "kima-verifier");
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
static int request(struct kube *k, const char *method, const char *path, const char *ctype,
                   const json_t *body, long timeout_ms, json_t **ret) {
    struct curl_slist *h = NULL;
    CURL *c = api_handle(k, method, path, ctype, &h);
    struct kbuf resp;
    char err[CURL_ERROR_SIZE] = "", perr[200];
    _cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    long status = 0;
    CURLcode rc;

    *ret = NULL;
    if (!c) {
        return -ENOMEM;
    }
    kbuf_init(&resp, KUBE_RESPONSE_MAX);
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

static const char *api_reason(const json_t *j) {
    const char *m = json_string_value(json_object_get(j, "message"));
    return m ? m : "";
}

static const char *str_or_empty(const json_t *v) {
    return json_is_string(v) ? json_string_value(v) : "";
}

/* The applied map's key of a pod: its identity (see inventory.h) on its
 * node. */
static void applied_key(const char *id, const char *node, char *out, size_t outsz) {
    snprintf(out, outsz, "%s@%s", id, node);
}

static const char *meta_str(const json_t *item, const char *a, const char *b) {
    return json_string_value(
            json_object_get(json_object_get(json_object_get(item, "metadata"), a), b));
}

/* A namespace or pod name as the API server allows them (DNS subdomain
 * characters, at most 253): safe to put in a request path unescaped. */
static bool k8s_name(const char *s) {
    size_t n = s ? strlen(s) : 0;
    return n > 0 && n <= 253 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789.-") == n;
}

/* The applied map's entry for a pod item (with its key), or NULL when the
 * item cannot be labelled: the namespace and name go into request paths,
 * so only what the API allows. */
static json_t *applied_entry(struct kube *k, const json_t *it, char *key, size_t keysz) {
    const json_t *md = json_object_get(it, "metadata");
    const char *uid = json_string_value(json_object_get(md, "uid"));
    char tkey[160], rkey[160], id[64];
    const char *trust, *reason, *node;

    if (!uid || !k8s_name(json_string_value(json_object_get(md, "namespace"))) ||
        !k8s_name(json_string_value(json_object_get(md, "name")))) {
        return NULL;
    }
    snprintf(tkey, sizeof(tkey), "%s/trust", k->prefix);
    snprintf(rkey, sizeof(rkey), "%s/reason", k->prefix);
    trust = meta_str(it, "labels", tkey);
    reason = meta_str(it, "annotations", rkey);
    node = str_or_empty(json_object_get(json_object_get(it, "spec"), "nodeName"));
    /* Keyed as the engine names pods (a static pod by its hash) and by
     * node (two nodes' mirror pods may claim one hash); the API UID is
     * what patches and events refer to. */
    inventory_item_identity(k->inv, it, id, sizeof(id));
    applied_key(id, node, key, keysz);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "ns",
                     json_string_value(json_object_get(md, "namespace")), "name",
                     json_string_value(json_object_get(md, "name")), "uid", uid, "id", id, "node",
                     node, "trust", trust ? trust : "", "reason", reason ? reason : "");
}

/* A resourceVersion as the API sends it (opaque; bounded, and escaped
 * before it goes into a URL). */
static bool rv_valid(const char *rv) {
    size_t n = rv ? strlen(rv) : 0;

    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)rv[i] <= ' ' || (unsigned char)rv[i] >= 0x7f) {
            return false;
        }
    }
    return n > 0 && n <= KUBE_RV_MAX;
}

/* Ask the label thread to judge the measurements that wait for pods (the
 * inventory changed). */
static void want_resolve(struct kube *k) {
    pthread_mutex_lock(&k->lock);
    k->resolve = true;
    pthread_cond_broadcast(&k->cond);
    pthread_mutex_unlock(&k->lock);
}

/* One page of the list. 0 with the page's items appended to `items`, its
 * continue token in cont ("" on the last page) and, for the first page,
 * its resourceVersion in rv; -ESTALE for 410 Gone; another negative errno
 * (logged). */
static int list_page(struct kube *k, json_t *items, char *cont, char *rv) {
    _cleanup_free_ char *path = NULL;
    char *esc = cont[0] ? curl_easy_escape(NULL, cont, 0) : NULL;
    json_t *resp = NULL, *page, *md;
    const char *next, *prv;
    int status, r = 0;

    if (asprintf(&path, "/api/v1/pods?limit=%d%s%s", KUBE_PAGE_LIMIT, esc ? "&continue=" : "",
                 esc ? esc : "") < 0) {
        path = NULL;
        curl_free(esc);
        return -ENOMEM;
    }
    curl_free(esc);
    status = request(k, "GET", path, NULL, NULL, KUBE_TIMEOUT_MS, &resp);
    page = json_object_get(resp, "items");
    md = json_object_get(resp, "metadata");
    next = json_string_value(json_object_get(md, "continue"));
    prv = json_string_value(json_object_get(md, "resourceVersion"));
    if (status == 410) {
        log_warn("kubernetes: listing pods: 410 %s; listing again from the start",
                 api_reason(resp));
        r = -ESTALE;
    } else if (status != 200 || !json_is_array(page) ||
               json_array_size(items) + json_array_size(page) > INVENTORY_PODS_MAX ||
               (next && strlen(next) > KUBE_CONTINUE_MAX) || (!cont[0] && !rv_valid(prv))) {
        if (status >= 0) {
            log_warn("kubernetes: listing pods: %d %s", status,
                     status != 200 ? api_reason(resp)
                                   : "not a PodList (no items, too many pods, or no "
                                     "resourceVersion)");
        }
        r = status < 0 ? status : -EIO;
    } else {
        if (!cont[0]) {
            snprintf(rv, KUBE_RV_MAX + 1, "%s", prv);
        }
        snprintf(cont, KUBE_CONTINUE_MAX + 1, "%s", next ? next : "");
        r = json_array_extend(items, page) < 0 ? -ENOMEM : 0;
    }
    json_decref(resp);
    return r;
}

/* Every pod, page by page (limit and continue, as client-go's informers
 * list); a continue token that expired (410) starts the list again. The
 * items are handed to the inventory, which is complete as of the list's
 * resourceVersion (kept in k->rv for the watch), and what the API shows of
 * kima's labels is refreshed. Called from the syncer, without k->lock. */
static int list_pods(struct kube *k) {
    json_t *items = json_array(), *applied = json_object(), *it, *old;
    char cont[KUBE_CONTINUE_MAX + 1] = "", rv[KUBE_RV_MAX + 1] = "", key[64 + 260];
    int64_t listed_ms = time_wall_ms();
    int restarts = 0, r;
    const char *akey;
    size_t i;

    do {
        r = items && applied ? list_page(k, items, cont, rv) : -ENOMEM;
        if (r == -ESTALE && restarts++ < LIST_RESTARTS_MAX) {
            json_array_clear(items);
            cont[0] = 0;
            listed_ms = time_wall_ms();
            r = 0;
            continue;
        }
    } while (r == 0 && cont[0] && !stopping(k));
    k->last_list_ms = time_mono_ms();
    pthread_mutex_lock(&k->lock);
    k->stats.lists += r == 0;
    k->stats.list_errors += r < 0;
    pthread_mutex_unlock(&k->lock);
    if (r < 0 || stopping(k)) {
        json_decref(items);
        json_decref(applied);
        return r < 0 ? r : -ECANCELED;
    }
    inventory_replace_items(k->inv, items, listed_ms);
    snprintf(k->rv, sizeof(k->rv), "%s", rv);
    json_array_foreach(items, i, it) {
        json_t *a = applied_entry(k, it, key, sizeof(key));
        if (a) {
            json_object_set_new(applied, key, a);
        }
    }
    pthread_mutex_lock(&k->lock);
    /* Keep a pending event across lists. */
    json_object_foreach(k->applied, akey, old) {
        json_t *n = json_object_get(applied, akey);
        if (n && json_is_true(json_object_get(old, "event"))) {
            json_object_set_new(n, "event", json_true());
        }
    }
    json_decref(k->applied);
    k->applied = applied;
    pthread_mutex_unlock(&k->lock);
    json_decref(items);
    want_resolve(k);
    return 0;
}

/* One watch, read as it streams. */
struct watch {
    struct kube *k;
    CURL *c;
    long status;      /* HTTP status, 0 until known */
    struct kbuf line; /* the event line being received */
    struct kbuf body; /* a refused watch's answer */
    int result;       /* 0; else why the stream was ended here */
    char why[300];    /* and the reason, for the log */
    bool changed;     /* the inventory changed in this piece */
    bool too_many;    /* a pod past INVENTORY_PODS_MAX was logged */
};

static int watch_fail(struct watch *w, int r, const char *fmt, ...) _printf_(3, 4);
static int watch_fail(struct watch *w, int r, const char *fmt, ...) {
    va_list ap;

    w->result = r;
    va_start(ap, fmt);
    vsnprintf(w->why, sizeof(w->why), fmt, ap);
    va_end(ap);
    return r;
}

/* The applied map follows an event's pod (under k->lock): its labels as
 * the API shows them now, a pending Event kept; a deleted pod leaves. */
static void applied_follow(struct kube *k, const json_t *obj, bool deleted) {
    char key[64 + 260];
    json_t *a = applied_entry(k, obj, key, sizeof(key)), *old;

    if (!a) {
        return;
    }
    pthread_mutex_lock(&k->lock);
    old = json_object_get(k->applied, key);
    if (deleted) {
        json_object_del(k->applied, key);
        json_decref(a);
    } else {
        if (old && json_is_true(json_object_get(old, "event"))) {
            json_object_set_new(a, "event", json_true());
        }
        json_object_set_new(k->applied, key, a);
    }
    pthread_mutex_unlock(&k->lock);
}

/* One ADDED, MODIFIED or DELETED event's pod. */
static int watch_pod(struct watch *w, const char *type, const json_t *obj) {
    struct kube *k = w->k;
    bool deleted = strcmp(type, "DELETED") == 0;
    int r = deleted ? inventory_delete_item(k->inv, obj, time_wall_ms())
                    : inventory_upsert_item(k->inv, obj, time_wall_ms());

    if (r == -EBADMSG) {
        return watch_fail(w, r, "malformed %s event: no pod UID", type);
    }
    if (r == -E2BIG) {
        if (!w->too_many) {
            log_warn("kubernetes: more than %d pods: the newest are not watched",
                     INVENTORY_PODS_MAX);
        }
        w->too_many = true;
        return 0;
    }
    if (r < 0) {
        return watch_fail(w, r, "an event could not be applied (%s)", strerror(-r));
    }
    w->changed = true;
    applied_follow(k, obj, deleted);
    return 0;
}

/* One event line: applied, then its resourceVersion becomes the last good
 * one. 0, or a negative errno that ends the watch (w->why says why). */
static int watch_line(struct watch *w, const char *line, size_t len) {
    json_t *ev = NULL, *obj;
    const char *type, *rv;
    char perr[200];
    int r = 0;

    if (strspn(line, " \t\r") == len) {
        return 0;
    }
    if (json_parse_bounded(line, len, 64, KUBE_VALUES_MAX, &ev, perr, sizeof(perr)) < 0) {
        return watch_fail(w, -EBADMSG, "malformed event (not JSON: %s)", perr);
    }
    type = json_string_value(json_object_get(ev, "type"));
    obj = json_object_get(ev, "object");
    rv = json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
    if (!type || !json_is_object(obj)) {
        r = watch_fail(w, -EBADMSG, "malformed event (no type or no object)");
    } else if (strcmp(type, "ERROR") == 0) {
        json_int_t code = json_integer_value(json_object_get(obj, "code"));
        r = watch_fail(w, code == 410 ? -ESTALE : -EIO, "ERROR event: %s", api_reason(obj));
        if (code == 410) {
            snprintf(w->why, sizeof(w->why), "410 %s", api_reason(obj));
        }
    } else if (!rv_valid(rv)) {
        r = watch_fail(w, -EBADMSG, "malformed %s event (no resourceVersion)", type);
    } else if (strcmp(type, "BOOKMARK") == 0) {
        inventory_mark_synced(w->k->inv, time_wall_ms());
    } else if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0 ||
               strcmp(type, "DELETED") == 0) {
        r = watch_pod(w, type, obj);
    } else {
        r = watch_fail(w, -EBADMSG, "malformed event (unknown type \"%.40s\")", type);
    }
    if (r == 0) {
        snprintf(w->k->rv, sizeof(w->k->rv), "%s", rv);
        pthread_mutex_lock(&w->k->lock);
        w->k->stats.watch_events++;
        pthread_mutex_unlock(&w->k->lock);
    }
    json_decref(ev);
    return r;
}

/* The stream, piece by piece: complete lines are events; a line longer
 * than KUBE_EVENT_MAX, or any event that does not make sense, ends it. */
static size_t on_watch_data(char *p, size_t size, size_t n, void *ud) {
    struct watch *w = ud;
    size_t len = size * n, at = 0;

    if (!w->status) {
        curl_easy_getinfo(w->c, CURLINFO_RESPONSE_CODE, &w->status);
    }
    if (w->status != 200) {
        kbuf_append(&w->body, p, len); /* past the cap: cut, enough for the log */
        return len;
    }
    w->changed = false;
    while (at < len) {
        const char *nl = memchr(p + at, '\n', len - at);
        size_t piece = nl ? (size_t)(nl - (p + at)) : len - at;
        if (kbuf_append(&w->line, p + at, piece) < 0) {
            watch_fail(w, -EBADMSG, "malformed event (a line longer than %u bytes)",
                       KUBE_EVENT_MAX);
            return 0;
        }
        at += piece;
        if (nl) {
            at++;
            if (kbuf_putc(&w->line, 0) < 0 ||
                watch_line(w, (const char *)w->line.data, w->line.len - 1) < 0) {
                return 0;
            }
            kbuf_reset(&w->line);
        }
    }
    if (w->changed) {
        want_resolve(w->k);
    }
    return len;
}

static int on_watch_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    (void)dt, (void)dn, (void)ut, (void)un;
    return stopping(ud) ? 1 : 0;
}

/* Seconds a watch may last: until the next full resync is due. */
static long watch_seconds(struct kube *k) {
    int64_t left = (k->last_list_ms + k->refresh_ms - time_mono_ms()) / 1000;

    return left < 1 ? 1 : left > WATCH_TIMEOUT_S ? WATCH_TIMEOUT_S : (long)left;
}

/* Read a watch's end: 0 (ended: resume from k->rv), -ESTALE (410: list
 * again), or another negative errno (back off, then resume). */
static int watch_end(struct watch *w, CURLcode rc, const char *err) {
    if (stopping(w->k)) {
        return 0;
    }
    if (w->result == -ESTALE) {
        log_warn("kubernetes: watch from resourceVersion %s: %s: listing again", w->k->rv, w->why);
        return w->result;
    }
    if (w->result < 0) {
        log_warn("kubernetes: watch: %s; watching again from resourceVersion %s", w->why, w->k->rv);
        return w->result;
    }
    if (rc != CURLE_OK && rc != CURLE_OPERATION_TIMEDOUT) {
        log_warn("kubernetes: watch: %s", err[0] ? err : curl_easy_strerror(rc));
        return -EIO;
    }
    if (w->status != 200 && w->status != 0) {
        json_t *st = NULL;
        char perr[100];
        json_parse_bounded((const char *)w->body.data, w->body.len, 16, 10000, &st, perr,
                           sizeof(perr));
        log_warn("kubernetes: watch: %ld %s%s", w->status, api_reason(st),
                 w->status == 410 ? ": listing again" : "");
        json_decref(st);
        return w->status == 410 ? -ESTALE : -EIO;
    }
    if (w->line.len) {
        log_warn("kubernetes: watch: malformed event (cut short at the end of the stream)");
        return -EBADMSG;
    }
    return 0;
}

/* One watch from k->rv until it ends. */
static int watch_pods(struct kube *k) {
    struct watch w = {.k = k};
    struct curl_slist *h = NULL;
    _cleanup_free_ char *path = NULL;
    char *esc = curl_easy_escape(NULL, k->rv, 0);
    char err[CURL_ERROR_SIZE] = "";
    long secs = watch_seconds(k);
    CURLcode rc;
    int r;

    if (!esc || asprintf(&path,
                         "/api/v1/pods?watch=1&resourceVersion=%s&allowWatchBookmarks=true"
                         "&timeoutSeconds=%ld",
                         esc, secs) < 0) {
        curl_free(esc);
        return -ENOMEM;
    }
    curl_free(esc);
    w.c = api_handle(k, "GET", path, NULL, &h);
    if (!w.c) {
        return -ENOMEM;
    }
    kbuf_init(&w.line, KUBE_EVENT_MAX);
    kbuf_init(&w.body, KUBE_STATUS_MAX);
    curl_easy_setopt(w.c, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(w.c, CURLOPT_WRITEFUNCTION, on_watch_data);
    curl_easy_setopt(w.c, CURLOPT_WRITEDATA, &w);
    curl_easy_setopt(w.c, CURLOPT_XFERINFOFUNCTION, on_watch_progress);
    curl_easy_setopt(w.c, CURLOPT_XFERINFODATA, k);
    curl_easy_setopt(w.c, CURLOPT_NOPROGRESS, 0L);
    /* The server ends it after `secs`; this bounds a server that does not. */
    curl_easy_setopt(w.c, CURLOPT_TIMEOUT_MS, (secs + 30) * 1000L);
    pthread_mutex_lock(&k->lock);
    k->stats.watches++;
    pthread_mutex_unlock(&k->lock);
    rc = curl_easy_perform(w.c);
    r = watch_end(&w, rc, err);
    if (r < 0 && r != -ESTALE) {
        pthread_mutex_lock(&k->lock);
        k->stats.watch_errors++;
        pthread_mutex_unlock(&k->lock);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(w.c);
    kbuf_free(&w.line);
    kbuf_free(&w.body);
    return r;
}

/* Wait out the syncer's backoff (0.5-30 s, doubling, with jitter), or
 * until the verifier stops. */
static void sync_backoff(struct kube *k) {
    int64_t until;

    k->sync_backoff_ms = k->sync_backoff_ms ? k->sync_backoff_ms * 2 : BACKOFF_MIN_MS;
    if (k->sync_backoff_ms > BACKOFF_MAX_MS) {
        k->sync_backoff_ms = BACKOFF_MAX_MS;
    }
    until = time_mono_ms() + k->sync_backoff_ms * (75 + rand() % 51) / 100;
    pthread_mutex_lock(&k->lock);
    while (!k->stop && time_mono_ms() < until) {
        struct timespec ts;
        int64_t ms = until - time_mono_ms();
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)(ms % 1000) * 1000000;
        ts.tv_sec += ms / 1000 + ts.tv_nsec / 1000000000;
        ts.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&k->cond, &k->lock, &ts);
    }
    pthread_mutex_unlock(&k->lock);
}

/* The syncer: LIST, then WATCH from the list's resourceVersion, resumed
 * from the last event's when it ends; LIST again on 410 Gone and every
 * refresh_ms (the safety resync). Never under the engine's lock. */
static void *sync_run(void *ud) {
    struct kube *k = ud;
    bool need_list = !k->rv[0];

    if (need_list) {
        sync_backoff(k); /* kube_start's list failed just now */
    }
    while (!stopping(k)) {
        int r;
        if (need_list || time_mono_ms() - k->last_list_ms >= k->refresh_ms) {
            if (list_pods(k) < 0) {
                sync_backoff(k);
                continue;
            }
            need_list = false;
            k->sync_backoff_ms = 0;
        }
        r = watch_pods(k);
        if (r == -ESTALE) {
            need_list = true;
        } else if (r < 0) {
            sync_backoff(k);
        } else {
            k->sync_backoff_ms = 0;
        }
    }
    return NULL;
}

static void iso_time(int64_t wall_ms, char *out, size_t outsz) {
    time_t s = (time_t)(wall_ms / 1000);
    struct tm tm;

    gmtime_r(&s, &tm);
    strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int post_event(struct kube *k, const char *uid, const char *ns, const char *name,
                      const char *reason) {
    char path[600], t[32], gen[300];
    json_t *ev, *resp = NULL;
    int status;

    iso_time((int64_t)time(NULL) * 1000, t, sizeof(t));
    snprintf(gen, sizeof(gen), "%.240s.kima-", name);
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/events", ns);
    ev = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s,s:s,s:s,s:s,s:s},s:s,s:s,s:s,s:{s:s},s:s,s:s,"
                   "s:i,s:s,s:s}",
                   "apiVersion", "v1", "kind", "Event", "metadata", "generateName", gen,
                   "namespace", ns, "involvedObject", "apiVersion", "v1", "kind", "Pod", "name",
                   name, "namespace", ns, "uid", uid, "reason", "IntegrityViolation", "message",
                   reason, "type", "Warning", "source", "component", "kima-verifier",
                   "firstTimestamp", t, "lastTimestamp", t, "count", 1, "reportingComponent",
                   "kima-verifier", "reportingInstance", k->host);
    status = request(k, "POST", path, "application/json", ev, KUBE_TIMEOUT_MS, &resp);
    json_decref(ev);
    if (status != 201 && status != 200) {
        log_warn("kubernetes: event on %s/%s: %d %s", ns, name, status, api_reason(resp));
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
            applied_key(u, str_or_empty(json_object_get(p, "node")), key, sizeof(key));
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

static int reconcile(struct kube *k) {
    json_t *resp = NULL, *p;
    size_t i;
    int r = 0;

    engine_pods(k->e, NULL, &resp);
    add_untracked(k, json_object_get(resp, "pods"));
    json_array_foreach(json_object_get(resp, "pods"), i, p) {
        const char *uid = json_string_value(json_object_get(p, "uid"));
        const char *state = json_string_value(json_object_get(p, "state"));
        const char *reason = json_string_value(json_object_get(p, "reason"));
        json_int_t since = json_integer_value(json_object_get(p, "since_ms"));
        char ns[256], name[256], api_uid[64], have[16], reason_c[REASON_MAX + 1],
                have_reason[REASON_MAX + 1], path[700], at[32], key[160], rkey[160], akey[160],
                pkey[64 + 260];
        bool event_pending, want_event;
        json_t *a, *patch, *presp = NULL;
        int status;

        if (!uid || !state || !reason) {
            continue;
        }
        applied_key(uid, str_or_empty(json_object_get(p, "node")), pkey, sizeof(pkey));
        snprintf(reason_c, sizeof(reason_c), "%s", reason);
        pthread_mutex_lock(&k->lock);
        a = json_object_get(k->applied, pkey);
        if (!a) {
            pthread_mutex_unlock(&k->lock);
            continue; /* not (or no longer) in the cluster */
        }
        snprintf(ns, sizeof(ns), "%s", json_string_value(json_object_get(a, "ns")));
        snprintf(name, sizeof(name), "%s", json_string_value(json_object_get(a, "name")));
        snprintf(api_uid, sizeof(api_uid), "%s", json_string_value(json_object_get(a, "uid")));
        snprintf(have, sizeof(have), "%s", json_string_value(json_object_get(a, "trust")));
        snprintf(have_reason, sizeof(have_reason), "%s",
                 json_string_value(json_object_get(a, "reason")));
        event_pending = json_is_true(json_object_get(a, "event"));
        pthread_mutex_unlock(&k->lock);

        want_event = strcmp(state, "untrusted") == 0 && strcmp(have, "untrusted") != 0;
        if (strcmp(have, state) != 0 || strcmp(have_reason, reason_c) != 0) {
            snprintf(key, sizeof(key), "%s/trust", k->prefix);
            snprintf(rkey, sizeof(rkey), "%s/reason", k->prefix);
            snprintf(akey, sizeof(akey), "%s/attested-at", k->prefix);
            iso_time((int64_t)since, at, sizeof(at));
            /* The API UID makes the patch apply to this pod only, not to a
             * successor under the same name (the API refuses a patch whose
             * UID differs). */
            patch = json_pack("{s:{s:s,s:{s:s},s:{s:s,s:s}}}", "metadata", "uid", api_uid, "labels",
                              key, state, "annotations", rkey, reason_c, akey, at);
            snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", ns, name);
            status = request(k, "PATCH", path, "application/merge-patch+json", patch,
                             KUBE_TIMEOUT_MS, &presp);
            json_decref(patch);
            pthread_mutex_lock(&k->lock);
            if (status == 200) {
                k->stats.patches++;
                a = json_object_get(k->applied, pkey);
                if (a) {
                    json_object_set_new(a, "trust", json_string(state));
                    json_object_set_new(a, "reason", json_string(reason_c));
                    if (want_event) {
                        json_object_set_new(a, "event", json_true());
                        event_pending = true;
                    }
                }
                k->backoff_ms = 0;
            } else if (status == 404) {
                json_object_del(k->applied, pkey); /* the pod is gone */
            } else {
                k->stats.patch_errors++;
                log_warn("kubernetes: labelling %s/%s %s: %d %s", ns, name, state, status,
                         api_reason(presp));
                if (status < 0 || status == 409 || status == 429 || status >= 500 ||
                    status == 401 || status == 403) {
                    backoff(k);
                    r = -EAGAIN;
                }
            }
            pthread_mutex_unlock(&k->lock);
            json_decref(presp);
            if (r < 0) {
                break;
            }
        }
        if (event_pending) {
            if (post_event(k, api_uid, ns, name, reason_c) == 0) {
                pthread_mutex_lock(&k->lock);
                k->stats.events++;
                a = json_object_get(k->applied, pkey);
                if (a) {
                    json_object_del(a, "event");
                }
                pthread_mutex_unlock(&k->lock);
            }
        }
    }
    json_decref(resp);
    return r;
}

static void wait_ms_locked(struct kube *k, int64_t ms) {
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    ts.tv_sec += ms / 1000 + ts.tv_nsec / 1000000000;
    ts.tv_nsec %= 1000000000;
    pthread_cond_timedwait(&k->cond, &k->lock, &ts);
}

/* The label thread: measurements that waited for pods the syncer brought
 * are judged (at most every RESOLVE_GAP_MS), and labels are reconciled
 * when a verdict changed (a kick) and every tick_ms. */
static void *run(void *ud) {
    struct kube *k = ud;

    pthread_mutex_lock(&k->lock);
    while (!k->stop) {
        int64_t t = time_mono_ms(), wait_ms = k->tick_ms;
        bool resolve = k->resolve && t - k->last_resolve_ms >= RESOLVE_GAP_MS;
        bool labels = k->kicked || t - k->last_reconcile_ms >= k->tick_ms;

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
        if (labels && time_mono_ms() >= k->backoff_until_ms) {
            reconcile(k);
        }
        pthread_mutex_lock(&k->lock);
        t = time_mono_ms();
        if (k->resolve) {
            wait_ms = k->last_resolve_ms + RESOLVE_GAP_MS - t;
        }
        if (t + wait_ms > k->last_reconcile_ms + k->tick_ms) {
            wait_ms = k->last_reconcile_ms + k->tick_ms - t;
        }
        if (!k->stop && !k->kicked && wait_ms > 0) {
            wait_ms_locked(k, wait_ms);
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
    k->last_list_ms = INT64_MIN / 2;
    pthread_mutex_init(&k->lock, NULL);
    pthread_cond_init(&k->cond, NULL);
    if (gethostname(k->host, sizeof(k->host)) < 0) {
        snprintf(k->host, sizeof(k->host), "kima-verifier");
    }
    *ret = k;
    return 0;
}

int kube_start(struct kube *k) {
    int r;

    /* The first list before any evidence is judged (when the API answers;
     * else the syncer tries again, and measurements wait for their pods). */
    list_pods(k);
    r = pthread_create(&k->syncer, NULL, sync_run, k);
    if (r != 0) {
        return -r;
    }
    k->syncer_started = true;
    r = pthread_create(&k->thread, NULL, run, k);
    if (r != 0) {
        return -r;
    }
    k->started = true;
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
    json_decref(k->applied);
    kube_config_free(&k->cfg);
    pthread_mutex_destroy(&k->lock);
    pthread_cond_destroy(&k->cond);
    free(k);
}
