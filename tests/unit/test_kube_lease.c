/* SPDX-License-Identifier: Apache-2.0 */
/* The Lease's checks and arithmetic (verifier/kube-lease.h): times, a
 * Lease as the API answers it (and hostile ones), expiry, and how long a
 * holder may still write. */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include "kube-internal.h"
#include "kube-lease.h"
#include "time-util.h"

#define Y2020 1577836800000LL /* 2020-01-01T00:00:00Z */

static void test_time(void **state) {
    int64_t ms = 0;
    char out[40];

    (void)state;
    assert_int_equal(kube_lease_time_parse("2020-01-01T00:00:00Z", &ms), 0);
    assert_int_equal(ms, Y2020);
    assert_int_equal(kube_lease_time_parse("2020-01-01T00:00:01.5Z", &ms), 0);
    assert_int_equal(ms, Y2020 + 1500);
    assert_int_equal(kube_lease_time_parse("2020-01-01T00:00:00.123456789Z", &ms), 0);
    assert_int_equal(ms, Y2020 + 123);
    assert_int_equal(kube_lease_time_parse("2020-01-01T01:00:00+01:00", &ms), 0);
    assert_int_equal(ms, Y2020);
    assert_int_equal(kube_lease_time_parse("2019-12-31T23:00:00.000000-01:00", &ms), 0);
    assert_int_equal(ms, Y2020);
    ms = 42;
    const char *bad[] = {"",
                         "2020-01-01 00:00:00Z",
                         "2020-13-01T00:00:00Z",
                         "2020-01-01T24:00:00Z",
                         "2020-01-01T00:00:00",
                         "2020-01-01T00:00:00.Z",
                         "2020-01-01T00:00:00.1234567890Z",
                         "2020-01-01T00:00:00Zjunk",
                         "2020-01-01T00:00:00+1:00",
                         "1969-12-31T23:59:59Z",
                         "2O20-01-01T00:00:00Z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(kube_lease_time_parse(bad[i], &ms), -EINVAL);
    }
    assert_int_equal(kube_lease_time_parse(NULL, &ms), -EINVAL);
    assert_int_equal(ms, 42);
    kube_lease_time_format(Y2020 + 1234, out, sizeof(out));
    assert_string_equal(out, "2020-01-01T00:00:01.234000Z");
    assert_int_equal(kube_lease_time_parse(out, &ms), 0);
    assert_int_equal(ms, Y2020 + 1234);
}

static json_t *lease(const char *spec_json) {
    json_t *spec = json_loads(spec_json, 0, NULL), *j;

    assert_non_null(spec);
    j = json_pack("{s:s,s:s,s:{s:s,s:s,s:s},s:o}", "apiVersion", "coordination.k8s.io/v1", "kind",
                  "Lease", "metadata", "name", "kima-verifier", "namespace", "kima",
                  "resourceVersion", "1042", "spec", spec);
    assert_non_null(j);
    return j;
}

static int parse(const char *spec_json, struct kube_lease_record *l, char *err) {
    json_t *j = lease(spec_json);
    int r = kube_lease_parse(j, "kima-verifier", l, err, 200);

    json_decref(j);
    return r;
}

static void test_parse(void **state) {
    struct kube_lease_record l;
    char err[200];

    (void)state;
    assert_int_equal(parse("{\"holderIdentity\": \"kima-verifier-1\", \"leaseDurationSeconds\": "
                           "15, \"acquireTime\": \"2020-01-01T00:00:00.000000Z\", \"renewTime\": "
                           "\"2020-01-01T00:00:10.000000Z\", \"leaseTransitions\": 3}",
                           &l, err),
                     0);
    assert_string_equal(l.holder, "kima-verifier-1");
    assert_int_equal(l.duration_s, 15);
    assert_int_equal(l.acquire_ms, Y2020);
    assert_int_equal(l.renew_ms, Y2020 + 10000);
    assert_int_equal(l.transitions, 3);
    assert_string_equal(l.rv, "1042");
    /* released: no holder, anything else optional */
    assert_int_equal(parse("{}", &l, err), 0);
    assert_string_equal(l.holder, "");
    assert_int_equal(l.renew_ms, -1);
    assert_int_equal(parse("{\"holderIdentity\": \"\", \"leaseDurationSeconds\": 1}", &l, err), 0);
}

static void refused(const char *spec_json, const char *why) {
    struct kube_lease_record l = {.duration_s = 77};
    char err[200] = "";

    assert_int_equal(parse(spec_json, &l, err), -EBADMSG);
    assert_int_equal(l.duration_s, 77); /* untouched */
    if (!strstr(err, why)) {
        fail_msg("%s: \"%s\" does not say \"%s\"", spec_json, err, why);
    }
}

static void test_hostile(void **state) {
    char holder[400], spec[600];
    const char *ok_times = "\"renewTime\": \"2020-01-01T00:00:00Z\"";

    (void)state;
    refused("{\"holderIdentity\": \"x\", \"leaseDurationSeconds\": 999999, \"renewTime\": "
            "\"2020-01-01T00:00:00Z\"}",
            "leaseDurationSeconds is not an integer in 1..3600");
    refused("{\"holderIdentity\": \"x\", \"leaseDurationSeconds\": 0}", "leaseDurationSeconds");
    refused("{\"holderIdentity\": \"x\", \"leaseDurationSeconds\": \"15\"}",
            "leaseDurationSeconds");
    refused("{\"holderIdentity\": \"x\", \"leaseDurationSeconds\": 15}",
            "without leaseDurationSeconds or renewTime");
    refused("{\"holderIdentity\": \"x\", \"renewTime\": \"2020-01-01T00:00:00Z\"}",
            "without leaseDurationSeconds or renewTime");
    refused("{\"holderIdentity\": 7}", "holderIdentity");
    refused("{\"holderIdentity\": \"a b\"}", "holderIdentity");
    refused("{\"holderIdentity\": \"a\\nb\"}", "holderIdentity");
    memset(holder, 'h', 300);
    holder[300] = 0;
    snprintf(spec, sizeof(spec), "{\"holderIdentity\": \"%s\", \"leaseDurationSeconds\": 15, %s}",
             holder, ok_times);
    refused(spec, "holderIdentity is not a string of at most 253");
    refused("{\"holderIdentity\": \"x\", \"leaseDurationSeconds\": 15, \"renewTime\": "
            "\"yesterday\"}",
            "renewTime is not an RFC 3339 time");
    refused("{\"acquireTime\": 5}", "acquireTime");
    refused("{\"leaseTransitions\": -1}", "leaseTransitions");
    refused("{\"leaseTransitions\": 3000000000}", "leaseTransitions");

    /* the object around the spec */
    struct kube_lease_record l;
    char err[200];
    json_t *j = lease("{}");
    assert_int_equal(kube_lease_parse(j, "other", &l, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "metadata.name"));
    json_object_set_new(j, "kind", json_string("ConfigMap"));
    assert_int_equal(kube_lease_parse(j, "kima-verifier", &l, err, sizeof(err)), -EBADMSG);
    json_object_set_new(j, "kind", json_string("Lease"));
    json_object_set_new(j, "spec", json_array());
    assert_int_equal(kube_lease_parse(j, "kima-verifier", &l, err, sizeof(err)), -EBADMSG);
    json_object_set_new(j, "spec", json_object());
    json_object_del(json_object_get(j, "metadata"), "resourceVersion");
    assert_int_equal(kube_lease_parse(j, "kima-verifier", &l, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "resourceVersion"));
    memset(holder, '9', 200);
    holder[200] = 0;
    json_object_set_new(json_object_get(j, "metadata"), "resourceVersion", json_string(holder));
    assert_int_equal(kube_lease_parse(j, "kima-verifier", &l, err, sizeof(err)), -EBADMSG);
    json_decref(j);
    j = json_array();
    assert_int_equal(kube_lease_parse(j, "kima-verifier", &l, err, sizeof(err)), -EBADMSG);
    json_decref(j);
}

static void test_available(void **state) {
    struct kube_lease_record l = {.holder = "other", .duration_s = 15, .renew_ms = Y2020};
    const int64_t mono = 1000000;

    (void)state;
    /* expired by the wall clock and unchanged for 15 s as seen here */
    assert_true(kube_lease_available(&l, Y2020 + 15001, mono, mono + 15000));
    /* not expired by the wall clock */
    assert_false(kube_lease_available(&l, Y2020 + 15000, mono, mono + 60000));
    assert_false(kube_lease_available(&l, Y2020 + 1000, mono, mono + 60000));
    /* a renewTime long past (a clock behind), but the object changed just
     * now: not before 15 s of this verifier's own clock */
    assert_false(kube_lease_available(&l, Y2020 + 3600000, mono, mono + 14999));
    assert_true(kube_lease_available(&l, Y2020 + 3600000, mono, mono + 15000));
    /* a renewTime in the future: never */
    l.renew_ms = Y2020 + 3600000;
    assert_false(kube_lease_available(&l, Y2020 + 60000, mono, mono + 3600000));
    /* released */
    l.holder[0] = 0;
    assert_true(kube_lease_available(&l, Y2020, mono, mono));
}

static void test_budget(void **state) {
    const int64_t r = 5000000;

    (void)state;
    /* until 2 s before expiry (15 s), at most the cap */
    assert_int_equal(kube_lease_write_budget_ms(r, r, 10000), 10000);
    assert_int_equal(kube_lease_write_budget_ms(r, r, 60000), 13000);
    assert_int_equal(kube_lease_write_budget_ms(r, r + 9999, 10000), 3001);
    /* from the deadline (10 s) on, nothing */
    assert_int_equal(kube_lease_write_budget_ms(r, r + 10000, 10000), 0);
    assert_int_equal(kube_lease_write_budget_ms(r, r + 60000, 10000), 0);
    /* never renewed */
    assert_int_equal(kube_lease_write_budget_ms(INT64_MIN / 2, r, 10000), 0);
    /* a write started before the deadline ends before the Lease expires */
    for (int64_t t = r; t < r + KUBE_LEASE_DEADLINE_MS; t += 250) {
        int64_t b = kube_lease_write_budget_ms(r, t, 10000);
        assert_true(b > 0);
        assert_true(t + b <= r + KUBE_LEASE_DURATION_S * 1000 - KUBE_LEASE_MARGIN_MS);
    }
}

static void test_body(void **state) {
    struct kube_lease_record in = {.holder = "v-1",
                                   .duration_s = 15,
                                   .acquire_ms = Y2020,
                                   .renew_ms = Y2020 + 2500,
                                   .transitions = 7},
                             out;
    json_t *j;
    char err[200];

    (void)state;
    j = kube_lease_body("kima", "kima-verifier", NULL, &in);
    assert_non_null(j);
    assert_null(json_object_get(json_object_get(j, "metadata"), "resourceVersion"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "spec"), "renewTime")),
                        "2020-01-01T00:00:02.500000Z");
    json_decref(j);
    j = kube_lease_body("kima", "kima-verifier", "77", &in);
    assert_int_equal(kube_lease_parse(j, "kima-verifier", &out, err, sizeof(err)), 0);
    assert_string_equal(out.rv, "77");
    assert_string_equal(out.holder, "v-1");
    assert_int_equal(out.duration_s, 15);
    assert_int_equal(out.acquire_ms, Y2020);
    assert_int_equal(out.renew_ms, Y2020 + 2500);
    assert_int_equal(out.transitions, 7);
    json_decref(j);
}

/* The gate of every label and Event write (kube_write): nothing is sent
 * unless this verifier holds the Lease and its deadline has not passed.
 * The API is a closed loopback port: a request that is made fails (-EIO),
 * one that is not made is -EPERM. */
static void test_write_gate(void **state) {
    struct kube *k = calloc(1, sizeof(*k));
    json_t *resp = NULL, *body = json_object();

    (void)state;
    assert_non_null(k);
    pthread_mutex_init(&k->lock, NULL);
    pthread_mutex_init(&k->wlock, NULL);
    k->cfg.server = "https://127.0.0.1:1";
    snprintf(k->ua, sizeof(k->ua), "kima-verifier/test");
    /* no Lease: this verifier writes */
    assert_int_equal(kube_write_budget_ms(k), KUBE_TIMEOUT_MS);
    assert_int_equal(
            kube_write(k, "PATCH", "/api/v1/namespaces/a/pods/b", "application/json", body, &resp),
            -EIO);
    snprintf(k->lease, sizeof(k->lease), "kima-verifier");
    /* a Lease not held */
    assert_int_equal(kube_write_budget_ms(k), 0);
    assert_int_equal(kube_write(k, "PATCH", "/x", "application/json", body, &resp), -EPERM);
    /* held, renewed just now: sent */
    k->leader = true;
    k->renewed_ms = time_mono_ms();
    assert_true(kube_write_budget_ms(k) > 0);
    assert_int_equal(kube_write(k, "PATCH", "/x", "application/json", body, &resp), -EIO);
    /* held, but the last renewal began 10 s ago: the deadline passed */
    k->renewed_ms = time_mono_ms() - KUBE_LEASE_DEADLINE_MS;
    assert_int_equal(kube_write(k, "POST", "/x", "application/json", body, &resp), -EPERM);
    /* released (the drain) */
    k->renewed_ms = time_mono_ms();
    k->resigned = true;
    assert_int_equal(kube_write(k, "POST", "/x", "application/json", body, &resp), -EPERM);
    assert_null(resp);
    json_decref(body);
    pthread_mutex_destroy(&k->lock);
    pthread_mutex_destroy(&k->wlock);
    free(k);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_time),       cmocka_unit_test(test_parse),
            cmocka_unit_test(test_hostile),    cmocka_unit_test(test_available),
            cmocka_unit_test(test_budget),     cmocka_unit_test(test_body),
            cmocka_unit_test(test_write_gate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
