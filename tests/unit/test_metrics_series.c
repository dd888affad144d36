/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include "metrics-series.h"

/* The per-node and per-namespace series of /metrics (metrics-series.c):
 * their text, the caps and which nodes and namespaces the caps keep. */

static char *print(const struct metrics_series *m) {
    struct kbuf b = KBUF_INIT(1 << 20);

    assert_int_equal(metrics_series_print(m, &b), 0);
    return (char *)kbuf_steal(&b, NULL);
}

static void has(const char *text, const char *line) {
    if (!strstr(text, line)) {
        fail_msg("missing %s in:\n%s", line, text);
    }
}

static void lacks(const char *text, const char *what) {
    if (strstr(text, what)) {
        fail_msg("unexpected %s in:\n%s", what, text);
    }
}

static void test_nodes(void **state) {
    struct metrics_series m;
    char *t;
    (void)state;

    metrics_series_init(&m, METRICS_NODES_MAX, METRICS_NAMESPACES_MAX);
    assert_int_equal(metrics_series_add_node(&m, "node-1", NODE_TRUSTED, 1700000000123), 0);
    assert_int_equal(metrics_series_add_node(&m, "node-2", NODE_ACTIVE, 0), 0);
    assert_int_equal(metrics_series_add_node(&m, "node-3", NODE_STALE, 1700000000005), 0);
    t = print(&m);
    has(t, "\nkima_node_state{node=\"node-1\",state=\"trusted\"} 1\n");
    has(t, "\nkima_node_state{node=\"node-2\",state=\"active\"} 1\n");
    has(t, "\nkima_node_state{node=\"node-3\",state=\"stale\"} 1\n");
    has(t, "\nkima_node_last_attestation_timestamp_seconds{node=\"node-1\"} 1700000000.123\n");
    has(t, "\nkima_node_last_attestation_timestamp_seconds{node=\"node-3\"} 1700000000.005\n");
    /* Never attested: no timestamp (0 would read as "50 years without"). */
    lacks(t, "timestamp_seconds{node=\"node-2\"}");
    has(t, "\nkima_node_series_omitted 0\n");
    /* Each metric's lines in one group: every state line before the
     * timestamps' TYPE. */
    assert_true(strstr(t, "state=\"trusted\"} 1") <
                strstr(t, "# TYPE kima_node_last_attestation_timestamp_seconds"));
    free(t);
    metrics_series_free(&m);
}

static void test_node_cap_keeps_troubled(void **state) {
    struct metrics_series m;
    char *t;
    (void)state;

    metrics_series_init(&m, 2, METRICS_NAMESPACES_MAX);
    /* In name order, as the store lists them: the trusted ones first. */
    assert_int_equal(metrics_series_add_node(&m, "a", NODE_TRUSTED, 1000), 0);
    assert_int_equal(metrics_series_add_node(&m, "b", NODE_TRUSTED, 1000), 0);
    assert_int_equal(metrics_series_add_node(&m, "c", NODE_UNTRUSTED, 1000), 0);
    t = print(&m);
    has(t, "kima_node_state{node=\"c\",state=\"untrusted\"} 1\n");
    has(t, "kima_node_state{node=\"a\",state=\"trusted\"} 1\n");
    lacks(t, "node=\"b\"");
    has(t, "\nkima_node_series_omitted 1\n");
    free(t);
    metrics_series_free(&m);

    metrics_series_init(&m, 0, 0);
    assert_int_equal(metrics_series_add_node(&m, "a", NODE_STALE, 1000), 0);
    t = print(&m);
    lacks(t, "node=\"a\"");
    has(t, "\nkima_node_series_omitted 1\n");
    free(t);
    metrics_series_free(&m);
}

static void test_namespaces(void **state) {
    struct metrics_series m;
    char *t;
    (void)state;

    metrics_series_init(&m, METRICS_NODES_MAX, METRICS_NAMESPACES_MAX);
    assert_int_equal(metrics_series_add_pod(&m, "open5gs", POD_TRUSTED), 0);
    assert_int_equal(metrics_series_add_pod(&m, "default", POD_UNKNOWN), 0);
    assert_int_equal(metrics_series_add_pod(&m, "open5gs", POD_TRUSTED), 0);
    assert_int_equal(metrics_series_add_pod(&m, "open5gs", POD_UNTRUSTED), 0);
    t = print(&m);
    has(t, "\nkima_namespace_pods{namespace=\"open5gs\",state=\"trusted\"} 2\n");
    has(t, "\nkima_namespace_pods{namespace=\"open5gs\",state=\"untrusted\"} 1\n");
    has(t, "\nkima_namespace_pods{namespace=\"open5gs\",state=\"unknown\"} 0\n");
    has(t, "\nkima_namespace_pods{namespace=\"default\",state=\"unknown\"} 1\n");
    has(t, "\nkima_namespace_pods{namespace=\"default\",state=\"trusted\"} 0\n");
    lacks(t, "namespace=\"" METRICS_OTHER_NAMESPACE "\"");
    has(t, "\nkima_namespace_series_omitted 0\n");
    free(t);
    metrics_series_free(&m);
}

/* Over the cap: the namespaces with untrusted pods, then unknown ones, are
 * shown; the rest are summed under _other, so no pod is lost. */
static void test_namespace_cap(void **state) {
    struct metrics_series m;
    char *t;
    (void)state;

    metrics_series_init(&m, METRICS_NODES_MAX, 2);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(metrics_series_add_pod(&m, "a-quiet", POD_TRUSTED), 0);
    }
    assert_int_equal(metrics_series_add_pod(&m, "b-quiet", POD_TRUSTED), 0);
    assert_int_equal(metrics_series_add_pod(&m, "b-quiet", POD_UNKNOWN), 0);
    assert_int_equal(metrics_series_add_pod(&m, "z-bad", POD_UNTRUSTED), 0);
    assert_int_equal(metrics_series_add_pod(&m, "c-waiting", POD_UNKNOWN), 0);
    assert_int_equal(metrics_series_add_pod(&m, "c-waiting", POD_UNKNOWN), 0);
    t = print(&m);
    has(t, "kima_namespace_pods{namespace=\"z-bad\",state=\"untrusted\"} 1\n");
    has(t, "kima_namespace_pods{namespace=\"c-waiting\",state=\"unknown\"} 2\n");
    lacks(t, "namespace=\"a-quiet\"");
    lacks(t, "namespace=\"b-quiet\"");
    has(t, "kima_namespace_pods{namespace=\"_other\",state=\"trusted\"} 6\n");
    has(t, "kima_namespace_pods{namespace=\"_other\",state=\"unknown\"} 1\n");
    has(t, "kima_namespace_pods{namespace=\"_other\",state=\"untrusted\"} 0\n");
    has(t, "\nkima_namespace_series_omitted 2\n");
    free(t);
    metrics_series_free(&m);
}

/* Names come from agents' certificates and the inventory: escaped, bounded. */
static void test_hostile_names(void **state) {
    struct metrics_series m;
    char longname[METRICS_NAME_MAX + 2];
    char *t;
    (void)state;

    metrics_series_init(&m, METRICS_NODES_MAX, METRICS_NAMESPACES_MAX);
    assert_int_equal(metrics_series_add_node(&m, "n\"} 1\nkima_evil{a=\"\\", NODE_TRUSTED, 0), 0);
    assert_int_equal(metrics_series_add_pod(&m, "x\ny", POD_TRUSTED), 0);
    assert_int_equal(metrics_series_add_node(&m, "", NODE_TRUSTED, 0), -EINVAL);
    assert_int_equal(metrics_series_add_pod(&m, "", POD_TRUSTED), -EINVAL);
    assert_int_equal(metrics_series_add_node(&m, "n", (enum node_state)99, 0), -EINVAL);
    assert_int_equal(metrics_series_add_pod(&m, "ns", (enum pod_state)99), -EINVAL);
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(metrics_series_add_node(&m, longname, NODE_TRUSTED, 0), -E2BIG);
    assert_int_equal(metrics_series_add_pod(&m, longname, POD_TRUSTED), -E2BIG);
    longname[METRICS_NAME_MAX] = '\0';
    assert_int_equal(metrics_series_add_node(&m, longname, NODE_TRUSTED, 0), 0);
    t = print(&m);
    has(t, "kima_node_state{node=\"n\\\"} 1\\nkima_evil{a=\\\"\\\\\",state=\"trusted\"} 1\n");
    lacks(t, "\nkima_evil");
    has(t, "kima_namespace_pods{namespace=\"x\\ny\",state=\"trusted\"} 1\n");
    free(t);
    metrics_series_free(&m);
}

/* A text over the buffer's cap is an error, never a silently cut scrape. */
static void test_buffer_cap(void **state) {
    struct metrics_series m;
    struct kbuf b = KBUF_INIT(512);
    char name[32];
    (void)state;

    metrics_series_init(&m, METRICS_NODES_MAX, METRICS_NAMESPACES_MAX);
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof(name), "node-%d", i);
        assert_int_equal(metrics_series_add_node(&m, name, NODE_TRUSTED, 1000), 0);
    }
    assert_int_equal(metrics_series_print(&m, &b), -E2BIG);
    kbuf_free(&b);
    metrics_series_free(&m);
    metrics_series_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_nodes),         cmocka_unit_test(test_node_cap_keeps_troubled),
            cmocka_unit_test(test_namespaces),    cmocka_unit_test(test_namespace_cap),
            cmocka_unit_test(test_hostile_names), cmocka_unit_test(test_buffer_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
