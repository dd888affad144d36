/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy.h"

static char dir[64];

#define SHA_A   "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define SHA_B   "sha256:60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
#define HEX64_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX64_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static void put(const char *name, const char *text) {
    char path[200];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/kima-policy-XXXXXX");
    assert_non_null(mkdtemp(dir));
    put("10-upf.json",
        "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"open5gs-upf\","
        "\"match\":{\"namespace\":\"open5gs\",\"podLabels\":{\"app\":\"upf\"}},"
        "\"digests\":{\"/usr/bin/open5gs-upfd\":[\"" SHA_A "\"],"
        "\"*\":[\"" SHA_B "\"]},"
        "\"excludes\":[\"^/tmp/\",\"^/dev/shm/\"]}");
    put("20-node.json", "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"NodePolicy\",\"name\":\"node\","
                        "\"digests\":{\"/usr/bin/containerd\":[\"" SHA_A "\"],"
                        "\"boot_aggregate\":[\"" SHA_B "\"]}}");
    put("30-keylime.json", "{\"meta\":{\"version\":1},\"digests\":{\"/usr/bin/"
                           "bash\":[\"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B\"]},"
                           "\"excludes\":[]}");
    put("15-pinned.json",
        "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"pinned-upf\","
        "\"match\":{\"namespace\":\"core\",\"images\":[\"sha256:" HEX64_A "\"]},"
        "\"digests\":{\"/usr/bin/open5gs-upfd\":[\"" SHA_A "\"]}}");
    put("readme.txt", "not a policy");
    return 0;
}

static int teardown(void **state) {
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd);
}

static void test_load_match_allow(void **state) {
    struct policy_set *s = NULL;
    _cleanup_kbuf_ struct kbuf err = KBUF_INIT(4096);
    const struct policy *p;
    json_t *labels = json_pack("{s:s,s:s}", "app", "upf", "tier", "core");
    json_t *other = json_pack("{s:s}", "app", "amf");
    (void)state;

    assert_int_equal(policy_set_load(dir, NULL, &s, &err), 0);
    assert_int_equal(err.len, 0);
    assert_int_equal(policy_set_count(s), 4);
    p = policy_set_match_pod(s, "open5gs", labels, NULL);
    assert_non_null(p);
    assert_string_equal(policy_name(p), "open5gs-upf");
    assert_null(policy_set_match_pod(s, "open5gs", other, NULL));
    assert_null(policy_set_match_pod(s, "default", labels, NULL));
    /* match.images: only pods running one of the listed image digests. */
    {
        json_t *img_ok = json_pack("[s,s]", "docker.io/x/y@sha256:" HEX64_B,
                                   "registry.local/open5gs/upf@sha256:" HEX64_A);
        json_t *img_other = json_pack("[s]", "registry.local/open5gs/upf@sha256:" HEX64_B);
        const struct policy *pi = policy_set_match_pod(s, "core", labels, img_ok);
        assert_non_null(pi);
        assert_string_equal(policy_name(pi), "pinned-upf");
        assert_null(policy_set_match_pod(s, "core", labels, img_other));
        assert_null(policy_set_match_pod(s, "core", labels, NULL));
        json_decref(img_ok);
        json_decref(img_other);
    }

    assert_true(policy_allows(p, "/usr/bin/open5gs-upfd", 21, SHA_A));
    assert_false(policy_allows(p, "/usr/bin/open5gs-upfd", 21, SHA_A "0"));
    assert_false(policy_allows(p, "/usr/bin/other", 14, SHA_A));
    assert_true(policy_allows(p, "/usr/bin/other", 14, SHA_B)); /* "*" */
    assert_true(policy_allows(p, "/tmp/x.sh", 9, SHA_A "ff"));  /* excluded */
    assert_false(policy_allows(p, "/etc/tmp/x", 10, SHA_A "ff"));
    /* A zero digest never passes, not even on an excluded path. */
    assert_false(policy_allows(
            p, "/tmp/x", 6,
            "sha256:0000000000000000000000000000000000000000000000000000000000000000"));
    /* Excludes, on their own (violations on excluded paths are ignored). */
    assert_true(policy_excludes(p, "/tmp/x", 6));
    assert_true(policy_excludes(p, "/dev/shm/y", 10));
    assert_false(policy_excludes(p, "/usr/bin/open5gs-upfd", 21));

    p = policy_set_node(s);
    assert_string_equal(policy_name(p), "node");
    assert_true(policy_allows(p, "/usr/bin/containerd", 19, SHA_A));
    assert_true(policy_allows(p, "boot_aggregate", 14, SHA_B));
    assert_false(policy_allows(p, "boot_aggregate", 14, SHA_A));
    assert_false(policy_excludes(p, "/tmp/x", 6));
    /* The Keylime runtime policy: bare hex, any case, as sha1. */
    p = policy_set_get(s, 3);
    assert_int_equal(policy_kind(p), POLICY_NODE);
    assert_true(
            policy_allows(p, "/usr/bin/bash", 13, "sha1:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"));
    json_decref(labels);
    json_decref(other);
    policy_set_free(s);
}

static void expect_invalid(const char *text, const char *needle) {
    struct policy_set *s = NULL;
    _cleanup_kbuf_ struct kbuf err = KBUF_INIT(4096);
    char sub[128], path[200];

    snprintf(sub, sizeof(sub), "%s/bad", dir);
    mkdir(sub, 0700);
    snprintf(path, sizeof(path), "%s/p.json", sub);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    assert_int_equal(policy_set_load(sub, NULL, &s, &err), 0);
    assert_int_equal(policy_set_count(s), 0);
    if (!err.data || !strstr((char *)err.data, needle) || !strstr((char *)err.data, "p.json")) {
        fail_msg("\"%s\": %s", needle, err.data ? (char *)err.data : "(no error)");
    }
    policy_set_free(s);
    unlink(path);
}

static void test_invalid_files_named(void **state) {
    (void)state;
    expect_invalid("{", "invalid JSON");
    expect_invalid("[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]", "nested");
    expect_invalid("{\"apiVersion\":\"v2\",\"kind\":\"PodPolicy\"}", "apiVersion");
    expect_invalid("{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"Pod\",\"name\":\"x\"}", "kind");
    expect_invalid("{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"x\","
                   "\"digests\":{}}",
                   "\"match\" is missing");
    expect_invalid("{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"x\","
                   "\"match\":{},\"digests\":{}}",
                   "would match every pod");
    expect_invalid("{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"NodePolicy\",\"name\":\"x\","
                   "\"digests\":{\"/a\":[\"sha256:abc\"]}}",
                   "digests./a[0]");
    expect_invalid("{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"NodePolicy\",\"name\":\"x\","
                   "\"digests\":{\"rel\":[]}}",
                   "not an absolute path");
    expect_invalid("{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"NodePolicy\",\"name\":\"x\","
                   "\"digests\":{},\"excludes\":[\"(\"]}",
                   "excludes[0]");
    expect_invalid("{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"NodePolicy\",\"name\":\"x\","
                   "\"digests\":{},\"digests\":{}}",
                   "invalid JSON");
}

static void test_broken_update_keeps_old(void **state) {
    struct policy_set *s = NULL, *s2 = NULL;
    _cleanup_kbuf_ struct kbuf err = KBUF_INIT(4096);
    (void)state;

    assert_int_equal(policy_set_load(dir, NULL, &s, &err), 0);
    put("20-node.json", "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"NodePolicy\",");
    assert_int_equal(policy_set_load(dir, s, &s2, &err), 0);
    assert_int_equal(policy_set_count(s2), 4);
    assert_non_null(strstr((char *)err.data, "20-node.json"));
    assert_non_null(strstr((char *)err.data, "previous version stays in force"));
    assert_true(policy_allows(policy_set_node(s2), "/usr/bin/containerd", 19, SHA_A));
    policy_set_free(s);
    /* s2 still owns the kept policy after the old set is gone. */
    assert_true(policy_allows(policy_set_node(s2), "/usr/bin/containerd", 19, SHA_A));
    policy_set_free(s2);
    assert_int_equal(policy_set_load("/nonexistent/kima", NULL, &s, &err), -ENOENT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_load_match_allow),
            cmocka_unit_test(test_invalid_files_named),
            cmocka_unit_test(test_broken_update_keeps_old),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
