/* SPDX-License-Identifier: Apache-2.0 */
/* What counts as a tamper of the trust label (verifier/kube-tamper.c): the
 * syncer's mark when the API shows a pod again, and the label thread's
 * judgement against the verdict. No API, no engine: a struct kube with the
 * fields the two read. */
#include "test-util.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <jansson.h>

#include "kube-internal.h"

struct fx {
    struct kube k;
};

static int setup(void **state) {
    struct fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    snprintf(f->k.prefix, sizeof(f->k.prefix), "kima.dev");
    f->k.applied = json_object();
    pthread_mutex_init(&f->k.lock, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fx *f = *state;

    json_decref(f->k.applied);
    pthread_mutex_destroy(&f->k.lock);
    free(f);
    return 0;
}

/* An applied entry showing `trust`. */
static json_t *entry(const char *trust) {
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "ns", "open5gs", "name", "upf-0", "uid",
                     "u-1", "id", "u-1", "node", "node-1", "trust", trust, "reason", "r");
}

/* A pod object whose managedFields name `who` as a manager of the trust
 * label (and the verifier as another). */
static json_t *pod_by(const char *who) {
    return json_pack("{s:{s:[{s:s,s:s,s:s,s:{s:{s:{s:{}}}}},{s:s,s:s,s:{s:{s:{s:{}}}}}]}}",
                     "metadata", "managedFields", "manager", who, "operation", "Update", "time",
                     "2026-12-02T04:00:00Z", "fieldsV1", "f:metadata", "f:labels",
                     "f:kima.dev/trust", "manager", "kima-verifier", "operation", "Update",
                     "fieldsV1", "f:metadata", "f:labels", "f:kima.dev/trust");
}

/* The syncer replaces `old` (in the map) by an entry showing `seen`; the
 * mark it leaves, or NULL. */
static const json_t *follow(struct fx *f, json_t *old, const char *seen, bool *ret_kick) {
    json_t *a = entry(seen), *obj = pod_by("kubectl-label");

    *ret_kick = kube_tamper_follow_locked(&f->k, old, a, obj);
    json_object_set_new(f->k.applied, "u-1@node-1", a);
    json_decref(obj);
    return json_object_get(json_object_get(a, "own"), "tamper");
}

static void test_tamper_marked(void **state) {
    struct fx *f = *state;
    json_t *old = entry("untrusted");
    const json_t *t;
    bool kick;

    kube_tamper_vouch_locked(&f->k, old, "untrusted");
    json_object_set_new(old, "event", json_true());
    t = follow(f, old, "trusted", &kick);
    assert_true(kick);
    assert_non_null(t);
    assert_string_equal(json_string_value(json_object_get(t, "seen")), "trusted");
    assert_string_equal(json_string_value(json_object_get(t, "was")), "untrusted");
    assert_string_equal(json_string_value(json_object_get(t, "wrote")), "untrusted");
    /* who did it, from managedFields; the verifier itself is no suspect */
    assert_int_equal(json_array_size(json_object_get(t, "managers")), 1);
    assert_string_equal(json_string_value(json_object_get(
                                json_array_get(json_object_get(t, "managers"), 0), "manager")),
                        "kubectl-label");
    /* the pending Event and the own state go with the pod */
    assert_true(
            json_is_true(json_object_get(json_object_get(f->k.applied, "u-1@node-1"), "event")));
    json_decref(old);
}

/* What `kubectl apply` last wrote, when the pod has it. */
static void test_last_applied(void **state) {
    struct fx *f = *state;
    json_t *old = entry("untrusted"), *a = entry("trusted"),
           *obj = pod_by("kubectl-client-side-apply");
    const json_t *t;

    kube_tamper_vouch_locked(&f->k, old, "untrusted");
    json_object_set_new(json_object_get(obj, "metadata"), "annotations",
                        json_pack("{s:s}", "kubectl.kubernetes.io/last-applied-configuration",
                                  "{\"metadata\":{\"labels\":{\"kima.dev/trust\":\"trusted\"}}}"));
    assert_true(kube_tamper_follow_locked(&f->k, old, a, obj));
    t = json_object_get(json_object_get(a, "own"), "tamper");
    assert_string_equal(json_string_value(json_object_get(t, "last_applied")), "trusted");
    json_decref(a);
    /* not JSON: left out */
    a = entry("trusted");
    json_object_set_new(json_object_get(obj, "metadata"), "annotations",
                        json_pack("{s:s}", "kubectl.kubernetes.io/last-applied-configuration",
                                  "{\"metadata\":"));
    assert_true(kube_tamper_follow_locked(&f->k, old, a, obj));
    t = json_object_get(json_object_get(a, "own"), "tamper");
    assert_null(json_object_get(t, "last_applied"));
    assert_non_null(json_object_get(t, "managers"));
    json_decref(a);
    json_decref(obj);
    json_decref(old);
}

static void test_removal_marked(void **state) {
    struct fx *f = *state;
    json_t *old = entry("trusted");
    bool kick;

    kube_tamper_vouch_locked(&f->k, old, "trusted");
    assert_non_null(follow(f, old, "", &kick));
    assert_true(kick);
    json_decref(old);
}

/* Not a tamper: the verifier's own write echoed, one in flight, a pod it
 * never vouched for, a label that did not change, a replica not writing. */
static void test_not_marked(void **state) {
    struct fx *f = *state;
    json_t *old = entry("trusted");
    bool kick;

    /* never labelled by this verifier */
    assert_null(follow(f, old, "untrusted", &kick));
    assert_false(kick);
    /* its own write, echoed: wrote is the new value */
    kube_tamper_vouch_locked(&f->k, old, "untrusted");
    assert_null(follow(f, old, "untrusted", &kick));
    /* a write in flight */
    json_object_set_new(json_object_get(old, "own"), "wrote", json_string("trusted"));
    json_object_set_new(json_object_get(old, "own"), "writing", json_string("untrusted"));
    assert_null(follow(f, old, "untrusted", &kick));
    json_object_del(json_object_get(old, "own"), "writing");
    /* the same value again (another field of the pod changed) */
    json_object_set_new(old, "trust", json_string("unknown"));
    assert_null(follow(f, old, "unknown", &kick));
    /* a replica that does not hold the Lease marks nothing */
    json_object_set_new(old, "trust", json_string("trusted"));
    snprintf(f->k.lease, sizeof(f->k.lease), "kima-verifier");
    f->k.leader = false;
    assert_null(follow(f, old, "untrusted", &kick));
    f->k.leader = true;
    assert_non_null(follow(f, old, "untrusted", &kick));
    assert_true(kick);
    json_object_del(json_object_get(old, "own"), "tamper"); /* taken */
    f->k.resigned = true;
    assert_null(follow(f, old, "unknown", &kick));
    assert_false(kick);
    json_decref(old);
}

/* The label thread takes a mark once, and only when the label seen is not
 * the verdict (another replica's write during a change of leader). */
static void test_take(void **state) {
    struct fx *f = *state;
    json_t *old = entry("untrusted"), *t;
    bool kick;

    kube_tamper_vouch_locked(&f->k, old, "untrusted");
    assert_non_null(follow(f, old, "trusted", &kick));
    t = kube_tamper_take(&f->k, "u-1@node-1", "untrusted");
    assert_non_null(t);
    json_decref(t);
    assert_null(kube_tamper_take(&f->k, "u-1@node-1", "untrusted")); /* taken */
    assert_non_null(follow(f, old, "trusted", &kick));
    assert_null(kube_tamper_take(&f->k, "u-1@node-1", "trusted")); /* the verdict */
    assert_null(kube_tamper_take(&f->k, "nobody@node-1", "trusted"));
    json_decref(old);
}

/* When the label thread reconciles: every tick, and at once on a kick,
 * but at most one kicked pass every KUBE_KICK_GAP_MS, so that a burst of
 * tampers (each one a kick, from anyone who may patch a pod) cannot keep
 * it doing full passes back to back (review finding R17-5). */
static void test_labels_due(void **state) {
    const int64_t tick = 1000, last = 50000;
    int64_t wait = -1;
    (void)state;

    /* Never reconciled (the monotonic clock is past a tick): now. */
    assert_true(kube_labels_due(false, 5000, 0, tick, &wait));
    /* A tick: now, kicked or not. */
    assert_true(kube_labels_due(false, last + tick, last, tick, &wait));
    assert_true(kube_labels_due(true, last + tick, last, tick, &wait));
    /* No kick: the rest of the tick. */
    assert_false(kube_labels_due(false, last + 10, last, tick, &wait));
    assert_int_equal(wait, tick - 10);
    /* A kick long enough after the last pass: now. */
    assert_true(kube_labels_due(true, last + KUBE_KICK_GAP_MS, last, tick, &wait));
    /* A kick right after a pass: after the gap, not now, not after a tick. */
    assert_false(kube_labels_due(true, last + 1, last, tick, &wait));
    assert_int_equal(wait, KUBE_KICK_GAP_MS - 1);
    assert_false(kube_labels_due(true, last, last, tick, &wait));
    assert_int_equal(wait, KUBE_KICK_GAP_MS);
    /* A tick shorter than the gap still rules. */
    assert_false(kube_labels_due(true, last + 1, last, 20, &wait));
    assert_int_equal(wait, 19);
    /* A clock behind the last pass (cannot happen; bounded all the same). */
    assert_false(kube_labels_due(false, last - 5, last, tick, &wait));
    assert_true(wait > 0 && wait <= tick + 5);
}

/* A 409 to a label patch (the pod's name holds another pod now: anyone
 * who may delete and create pods can cause one) must not stop the pass or
 * back off the labels of every pod; the API's own trouble does (review
 * finding R17-7). */
static void test_patch_backs_off(void **state) {
    (void)state;

    assert_false(kube_patch_backs_off(409));
    assert_false(kube_patch_backs_off(422));
    assert_false(kube_patch_backs_off(404));
    assert_true(kube_patch_backs_off(429));
    assert_true(kube_patch_backs_off(500));
    assert_true(kube_patch_backs_off(503));
    assert_true(kube_patch_backs_off(401));
    assert_true(kube_patch_backs_off(403));
    assert_true(kube_patch_backs_off(-ETIMEDOUT));
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_tamper_marked, setup, teardown),
            cmocka_unit_test_setup_teardown(test_last_applied, setup, teardown),
            cmocka_unit_test_setup_teardown(test_removal_marked, setup, teardown),
            cmocka_unit_test_setup_teardown(test_not_marked, setup, teardown),
            cmocka_unit_test_setup_teardown(test_take, setup, teardown),
            cmocka_unit_test(test_labels_due),
            cmocka_unit_test(test_patch_backs_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
