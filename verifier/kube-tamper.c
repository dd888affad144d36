/* SPDX-License-Identifier: Apache-2.0 */
/* A trust label changed by someone other than the verifier (see kube.h):
 * noticed on the pod watch, restored by the label thread at once, audited,
 * counted and told by an Event. The admission guard (k8s/base/
 * label-guard.yaml) refuses such a change where it is installed; this is
 * the net under it.
 *
 * A pod's "own" state in the applied map (k->lock):
 *   wrote     the trust label this verifier wrote, or found equal to its
 *             verdict, while it was the writer: what the API should show;
 *   writing   a label being written now (its echo on the watch is ours);
 *   tamper    a change the watch showed, for the label thread to judge:
 *             {"seen", "was", "wrote", "managers": [...], "last_applied"};
 *   tamper_ms when the last tamper was audited (monotonic), tamper_sup how
 *             many were counted since without a record.
 * A change is a tamper when this verifier is the writer, it had vouched for
 * the label (a pod it never labelled is not tampered with), the label seen
 * is neither what it wrote nor what it is writing, and (judged by the label
 * thread) it is not the verdict either: a label another replica wrote
 * during a change of leader says the truth. */
#include "kube-internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "json-util.h"
#include "log.h"
#include "time-util.h"

#define TAMPER_AUDIT_GAP_MS 60000           /* one record and one Event a pod a minute, at most */
#define MANAGED_FIELDS_MAX  32              /* managedFields entries looked at */
#define MANAGERS_MAX        4               /* managers of the label kept in a record */
#define MANAGER_MAX         128             /* bytes of a manager's name kept */
#define OWN_MANAGER         "kima-verifier" /* the API names our writes by our User-Agent */
#define LAST_APPLIED_MAX    (256u << 10)    /* the annotation (annotations total at most 256 KiB) */
#define LAST_APPLIED        "kubectl.kubernetes.io/last-applied-configuration"

json_t *kube_own(json_t *a) {
    json_t *own = json_object_get(a, "own");

    if (!own) {
        own = json_object();
        json_object_set_new(a, "own", own);
    }
    return own;
}

static json_t *short_str(const char *s) {
    char buf[MANAGER_MAX + 1];

    snprintf(buf, sizeof(buf), "%s", s ? s : "");
    return json_string(buf); /* NULL when the cut left broken UTF-8: left out */
}

/* Who else manages the trust label, as the API's managedFields say (the
 * manager, its operation, time and subresource): at most MANAGERS_MAX. */
static json_t *label_managers(struct kube *k, const json_t *obj) {
    const json_t *mf = json_object_get(json_object_get(obj, "metadata"), "managedFields"), *m;
    json_t *out = json_array();
    char fkey[200];
    size_t i;

    snprintf(fkey, sizeof(fkey), "f:%s/trust", k->prefix);
    json_array_foreach(mf, i, m) {
        const json_t *labels = json_object_get(
                json_object_get(json_object_get(m, "fieldsV1"), "f:metadata"), "f:labels");
        const char *who = json_string_value(json_object_get(m, "manager"));
        json_t *e;
        if (i >= MANAGED_FIELDS_MAX || json_array_size(out) >= MANAGERS_MAX) {
            break;
        }
        if (!json_object_get(labels, fkey) || (who && strcmp(who, OWN_MANAGER) == 0)) {
            continue;
        }
        e = json_object();
        json_object_set_new(e, "manager", short_str(who));
        json_object_set_new(e, "operation",
                            short_str(json_string_value(json_object_get(m, "operation"))));
        json_object_set_new(e, "time", short_str(json_string_value(json_object_get(m, "time"))));
        if (json_is_string(json_object_get(m, "subresource"))) {
            json_object_set_new(e, "subresource",
                                short_str(json_string_value(json_object_get(m, "subresource"))));
        }
        json_array_append_new(out, e);
    }
    return out;
}

/* The trust label in kubectl's last-applied configuration of the pod (the
 * value a `kubectl apply` wrote), or NULL: none, or not readable. */
static json_t *last_applied_label(struct kube *k, const json_t *obj) {
    const char *text = json_string_value(json_object_get(
            json_object_get(json_object_get(obj, "metadata"), "annotations"), LAST_APPLIED));
    json_t *cfg = NULL, *out, *v;
    char key[160], perr[100];
    size_t n = text ? strlen(text) : 0;

    if (!n || n > LAST_APPLIED_MAX ||
        json_parse_bounded(text, n, 32, 1u << 16, &cfg, perr, sizeof(perr)) < 0) {
        return NULL;
    }
    snprintf(key, sizeof(key), "%s/trust", k->prefix);
    v = json_object_get(json_object_get(json_object_get(cfg, "metadata"), "labels"), key);
    out = json_is_string(v) ? short_str(json_string_value(v)) : NULL;
    json_decref(cfg);
    return out;
}

bool kube_tamper_follow_locked(struct kube *k, const json_t *old, json_t *a, const json_t *obj) {
    json_t *own = json_object_get(old, "own");
    const char *seen = json_string_value(json_object_get(a, "trust"));
    const char *was = json_string_value(json_object_get(old, "trust"));
    const char *wrote, *writing;
    json_t *t, *applied;

    if (old && json_is_true(json_object_get(old, "event"))) {
        json_object_set_new(a, "event", json_true());
    }
    if (!own) {
        return false;
    }
    json_object_set(a, "own", own); /* shared: the label thread may hold the old entry */
    wrote = json_string_value(json_object_get(own, "wrote"));
    writing = json_string_value(json_object_get(own, "writing"));
    if (!kube_writer_locked(k) || !wrote || !seen || !was || strcmp(seen, was) == 0 ||
        strcmp(seen, wrote) == 0 || (writing && strcmp(seen, writing) == 0)) {
        return false;
    }
    t = json_pack("{s:s,s:s,s:s,s:o}", "seen", seen, "was", was, "wrote", wrote, "managers",
                  label_managers(k, obj));
    applied = last_applied_label(k, obj);
    if (applied) {
        json_object_set_new(t, "last_applied", applied);
    }
    json_object_set_new(own, "tamper", t);
    return true;
}

void kube_tamper_vouch_locked(struct kube *k, json_t *a, const char *state) {
    if (kube_writer_locked(k)) {
        json_object_set_new(kube_own(a), "wrote", json_string(state));
    }
}

/* Count it; audit it and post an Event unless this pod's last record is
 * younger than TAMPER_AUDIT_GAP_MS (then it is counted in the next). */
void kube_tamper_report(struct kube *k, const char *pkey, json_t *t, const char *state) {
    char ns[256] = "", name[256] = "", uid[64] = "", node[256] = "", msg[600], key[160];
    int64_t now = time_mono_ms(), last;
    json_int_t suppressed = 0;
    bool report = false;
    json_t *a, *own;

    pthread_mutex_lock(&k->lock);
    a = json_object_get(k->applied, pkey);
    own = json_object_get(a, "own");
    if (a && own) {
        snprintf(ns, sizeof(ns), "%s", json_string_value(json_object_get(a, "ns")));
        snprintf(name, sizeof(name), "%s", json_string_value(json_object_get(a, "name")));
        snprintf(uid, sizeof(uid), "%s", json_string_value(json_object_get(a, "uid")));
        snprintf(node, sizeof(node), "%s", json_string_value(json_object_get(a, "node")));
        last = json_integer_value(json_object_get(own, "tamper_ms"));
        suppressed = json_integer_value(json_object_get(own, "tamper_sup"));
        report = !json_object_get(own, "tamper_ms") || now - last >= TAMPER_AUDIT_GAP_MS;
        if (report) {
            json_object_set_new(own, "tamper_ms", json_integer(now));
            json_object_set_new(own, "tamper_sup", json_integer(0));
        } else {
            json_object_set_new(own, "tamper_sup", json_integer(suppressed + 1));
        }
    }
    pthread_mutex_unlock(&k->lock);
    if (!report) {
        engine_enforce_record(k->e, ENFORCE_TAMPER, NULL, NULL, NULL, NULL);
        return;
    }
    snprintf(key, sizeof(key), "%s/trust", k->prefix);
    json_object_set_new(t, "label", json_string(key));
    json_object_set_new(t, "verdict", json_string(state));
    json_object_set_new(t, "suppressed_before", json_integer(suppressed));
    struct audit_pod ap = {ns, name, uid};
    if (engine_enforce_record(k->e, ENFORCE_TAMPER, "label-tampered", node[0] ? node : NULL, &ap,
                              t) < 0) {
        log_error("audit: the label-tampered record of %s/%s could not be written", ns, name);
    }
    log_warn("kubernetes: %s/%s: label %s changed to \"%s\" by someone else: restoring \"%s\"", ns,
             name, key, json_string_value(json_object_get(t, "seen")), state);
    snprintf(msg, sizeof(msg),
             "the label %s was changed to \"%.20s\" by someone other than the kima verifier; "
             "restored to \"%s\"",
             key, json_string_value(json_object_get(t, "seen")), state);
    kube_post_event(k, uid, ns, name, "TrustLabelTampered", msg);
}

json_t *kube_tamper_take(struct kube *k, const char *pkey, const char *state) {
    json_t *a, *own, *t = NULL;
    const char *seen;

    pthread_mutex_lock(&k->lock);
    a = json_object_get(k->applied, pkey);
    own = json_object_get(a, "own");
    if (own && json_object_get(own, "tamper")) {
        t = json_incref(json_object_get(own, "tamper"));
        json_object_del(own, "tamper");
    }
    pthread_mutex_unlock(&k->lock);
    seen = json_string_value(json_object_get(t, "seen"));
    if (t && (!seen || strcmp(seen, state) == 0)) {
        json_decref(t); /* the label says the verdict: no tamper */
        t = NULL;
    }
    return t;
}
