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
    assert_int_equal(test_tmpdir_new("policy", dir, sizeof(dir)), 0);
    put("10-upf.json",
        "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"open5gs-upf\","
        "\"match\":{\"namespace\":\"open5gs\",\"podLabels\":{\"app\":\"upf\"}},"
        "\"digests\":{\"/usr/bin/open5gs-upfd\":[\"" SHA_A "\"],"
        "\"*\":[\"" SHA_B "\"]},"
        "\"excludes\":[\"^/usr/share/doc/\",\"^/usr/share/locale/upf/\"]}");
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
    (void)state;
    return test_tmpdir_free(dir);
}

static void test_load_match_allow(void **state) {
    struct policy_set *s = NULL;
    _cleanup_kbuf_ struct kbuf err = KBUF_INIT(4096);
    const struct policy *p;
    json_t *labels = json_pack("{s:s,s:s}", "app", "upf", "tier", "core");
    json_t *other = json_pack("{s:s}", "app", "amf");
    (void)state;

    assert_int_equal(policy_set_load(dir, NULL, NULL, &s, &err), 0);
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
    assert_true(policy_allows(p, "/usr/bin/other", 14, SHA_B));                 /* "*" */
    assert_true(policy_allows(p, "/usr/share/doc/upf/README", 25, SHA_A "ff")); /* excluded */
    assert_false(policy_allows(p, "/etc/usr/share/doc/upf/x", 24, SHA_A "ff"));
    /* A zero digest never passes, not even on an excluded path. */
    assert_false(policy_allows(
            p, "/usr/share/doc/x", 16,
            "sha256:0000000000000000000000000000000000000000000000000000000000000000"));
    /* Excludes, on their own (violations on excluded paths are ignored). */
    assert_true(policy_excludes(p, "/usr/share/doc/x", 16));
    assert_true(policy_excludes(p, "/usr/share/locale/upf/y", 23));
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
    assert_int_equal(policy_set_load(sub, NULL, NULL, &s, &err), 0);
    assert_int_equal(policy_set_count(s), 0);
    if (!err.data || !strstr((char *)err.data, needle) || !strstr((char *)err.data, "p.json")) {
        fail_msg("\"%s\": %s", needle, err.data ? (char *)err.data : "(no error)");
    }
    policy_set_free(s);
    unlink(path);
}

/* Load `text` as the only file of a fresh directory; the set and the error
 * text are the caller's. */
static struct policy_set *load_one(const char *text, const struct policy_load_options *opts,
                                   struct kbuf *err) {
    struct policy_set *s = NULL;
    char sub[128], path[200];
    FILE *f;
    int r;

    snprintf(sub, sizeof(sub), "%s/one", dir);
    r = test_tmpdir_free(sub);
    assert_true(r == 0 || r == -ENOENT);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(path, sizeof(path), "%s/p.json", sub);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    kbuf_reset(err);
    assert_int_equal(policy_set_load(sub, NULL, opts, &s, err), 0);
    return s;
}

static bool has(const struct kbuf *err, const char *needle) {
    return err->data && strstr((const char *)err->data, needle);
}

#define KEYLIME_EXCLUDES(x)                                                                        \
    "{\"meta\":{\"version\":1},\"digests\":{\"/usr/bin/bash\":[\"" HEX64_A "\"]},\"excludes\":[" x \
    "]}"
#define NATIVE_EXCLUDES(x)                                                                   \
    "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"NodePolicy\",\"name\":\"n\",\"digests\":{}," \
    "\"excludes\":[" x "]}"

/* Keylime matches excludes with re.match: from the start of the path. An
 * unanchored "/tmp" would let /opt/evil/tmp/miner pass unjudged. */
static void test_keylime_excludes_anchored(void **state) {
    _cleanup_kbuf_ struct kbuf err = KBUF_INIT(4096);
    struct policy_set *s;
    const struct policy *p;
    (void)state;

    s = load_one(KEYLIME_EXCLUDES("\"/tmp\",\"/var/log/\",\"boot_aggregate\""), NULL, &err);
    assert_int_equal(policy_set_count(s), 1);
    p = policy_set_get(s, 0);
    assert_false(policy_excludes(p, "/opt/evil/tmp/miner", 19));
    assert_false(policy_allows(p, "/opt/evil/tmp/miner", 19, SHA_B));
    assert_true(policy_excludes(p, "/tmp/x", 6));
    assert_true(policy_excludes(p, "/tmpfoo/x", 9)); /* re.match("/tmp", "/tmpfoo/x") too */
    assert_true(policy_excludes(p, "/var/log/syslog", 15));
    assert_false(policy_excludes(p, "/host/var/log/x", 15));
    assert_true(policy_excludes(p, "boot_aggregate", 14));
    /* A path the regex cannot see whole is never excluded. */
    assert_false(policy_excludes(p, "/tmp/x\0/usr/bin/evil", 20));
    policy_set_free(s);

    /* Patterns that are not anchored by themselves are anchored all the
     * same: alternation, a leading wildcard, an unbalanced ')' (which glibc
     * takes as a literal). */
    s = load_one(KEYLIME_EXCLUDES("\"/x|/tmp/\",\"[a-z]*/cache/\",\"/y)|/tmp\""), NULL, &err);
    assert_int_equal(policy_set_count(s), 1);
    p = policy_set_get(s, 0);
    assert_false(policy_excludes(p, "/opt/evil/tmp/miner", 19));
    assert_false(policy_excludes(p, "/opt/cache/miner", 16));
    assert_false(policy_excludes(p, "/a/y)/tmp", 9));
    assert_true(policy_excludes(p, "/tmp/x", 6));
    assert_true(policy_excludes(p, "/y)", 3));
    policy_set_free(s);
}

/* kima-native excludes are anchored the same way: "/tmp" in a kima.dev/v1
 * policy has the same hole unanchored. */
static void test_native_excludes_anchored(void **state) {
    _cleanup_kbuf_ struct kbuf err = KBUF_INIT(4096);
    struct policy_set *s;
    const struct policy *p;
    (void)state;

    s = load_one(NATIVE_EXCLUDES("\"/var/tmp\",\"var/log/\",\"^/srv/cache/\""), NULL, &err);
    assert_int_equal(policy_set_count(s), 1);
    p = policy_set_get(s, 0);
    assert_false(policy_excludes(p, "/opt/evil/var/tmp/miner", 23));
    assert_true(policy_excludes(p, "/var/tmp/x", 10));
    /* No leading "/": it matches no absolute path. */
    assert_false(policy_excludes(p, "/var/log/x", 10));
    assert_false(policy_excludes(p, "/x/srv/cache/y", 14));
    assert_true(policy_excludes(p, "/srv/cache/y", 12));
    policy_set_free(s);
}

/* An exclude that matches every path would leave nothing judged: the file
 * fails validation, naming the exclude, unless the option allows it; then it
 * loads with a warning. */
static void test_match_all_excludes(void **state) {
    static const char *const all[] = {
            KEYLIME_EXCLUDES("\"^/var/log/\",\".*\""),
            KEYLIME_EXCLUDES("\"^/var/log/\",\"^/\""),
            NATIVE_EXCLUDES("\"^/var/log/\",\".*\""),
            NATIVE_EXCLUDES("\"^/var/log/\",\"^/\""),
            NATIVE_EXCLUDES("\"^/var/log/\",\"/\""),
            NATIVE_EXCLUDES("\"^/var/log/\",\"\""),
            NATIVE_EXCLUDES("\"^/var/log/\",\"x*\""),
            NATIVE_EXCLUDES("\"^/var/log/\",\"/|^boot\""),
    };
    struct policy_load_options allow = {.allow_match_all_excludes = true};
    _cleanup_kbuf_ struct kbuf err = KBUF_INIT(4096);
    struct policy_set *s;
    (void)state;

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        s = load_one(all[i], NULL, &err);
        if (policy_set_count(s) != 0 || !has(&err, "\"excludes[1]\"") ||
            !has(&err, "matches every path") || !has(&err, "p.json") || has(&err, "warning")) {
            fail_msg("%s: %s", all[i], err.data ? (char *)err.data : "(no error)");
        }
        policy_set_free(s);

        s = load_one(all[i], &allow, &err);
        if (policy_set_count(s) != 1 || !has(&err, "warning: \"excludes[1]\"") ||
            !has(&err, "matches every path")) {
            fail_msg("allowed %s: %s", all[i], err.data ? (char *)err.data : "(no error)");
        }
        assert_true(policy_excludes(policy_set_get(s, 0), "/usr/bin/bash", 13));
        policy_set_free(s);
    }
    /* Broad but not every path: loads, with no match-all complaint. */
    s = load_one(NATIVE_EXCLUDES("\"^/usr/\",\"^/[a-z]\""), NULL, &err);
    assert_int_equal(policy_set_count(s), 1);
    assert_false(has(&err, "matches every path"));
    policy_set_free(s);
}

/* An exclude over a place where code can be written and run loads, with a
 * warning naming the exclude and the place. */
/* Excludes whose shape would take regcomp's memory or regexec's time are
 * refused before regcomp sees them; ordinary ones load. */
static void test_exclude_shapes(void **state) {
    static const struct {
        const char *exclude, *why;
    } bad[] = {
            {"^r++++++++++++++++++/a/vlog/", "stacks repetition operators"},
            {"^/x.*?y", "stacks repetition operators"},
            {"^/(a{1,100}){1,100}", "expands to more than"},
            {"^/a{1,32767}", "repeats more than"},
            {"^/(a)\\\\1", "uses a back-reference"},
            {"^/((((((((((((((((((a))))))))))))))))))", "nests groups more than"},
            {"^/x{2,", "malformed"},
    };
    static const char *const good[] = {
            "^/var/log/",
            "^/usr/lib/python3\\\\.[0-9]+/",
            "^/opt/(foo|bar)/.*\\\\.log$",
            "^/proc/[0-9]{1,7}/",
            "^/a[]b]c",
            "^/d[[:digit:]]+/",
    };
    _cleanup_kbuf_ struct kbuf err = KBUF_INIT(4096);
    char text[1024];
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct policy_set *s;
        snprintf(text, sizeof(text), NATIVE_EXCLUDES("\"%s\""), bad[i].exclude);
        s = load_one(text, NULL, &err);
        if (policy_set_count(s) != 0 || !has(&err, "\"excludes[0]\"") || !has(&err, bad[i].why)) {
            fail_msg("%s: %s", bad[i].exclude, err.data ? (char *)err.data : "(no error)");
        }
        policy_set_free(s);
    }
    {
        char longer[POLICY_EXCLUDE_LEN_MAX + 8];
        struct policy_set *s;
        memset(longer, 'a', sizeof(longer) - 1);
        longer[0] = '^';
        longer[sizeof(longer) - 1] = 0;
        snprintf(text, sizeof(text), NATIVE_EXCLUDES("\"%s\""), longer);
        s = load_one(text, NULL, &err);
        assert_int_equal(policy_set_count(s), 0);
        assert_true(has(&err, "longer than"));
        policy_set_free(s);
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct policy_set *s;
        snprintf(text, sizeof(text), NATIVE_EXCLUDES("\"%s\""), good[i]);
        s = load_one(text, NULL, &err);
        if (policy_set_count(s) != 1) {
            fail_msg("%s: %s", good[i], err.data ? (char *)err.data : "(not loaded)");
        }
        policy_set_free(s);
    }
}

static void test_writable_excludes_warn(void **state) {
    _cleanup_kbuf_ struct kbuf err = KBUF_INIT(4096);
    struct policy_set *s;
    (void)state;

    s = load_one(NATIVE_EXCLUDES("\"^/usr/share/doc/\",\"^/tmp/\",\"^/dev/shm\",\"^/home/\","
                                 "\"/run\",\"^/var/log/open5gs/\""),
                 NULL, &err);
    assert_int_equal(policy_set_count(s), 1);
    if (!has(&err, "p.json: warning: \"excludes[1]\" (\"^/tmp/\") matches /tmp/x or below, where "
                   "code can be written and run") ||
        !has(&err, "\"excludes[5]\" (\"^/var/log/open5gs/\") matches /var/log/x or below") ||
        !has(&err, "\"excludes[2]\" (\"^/dev/shm\") matches /dev/shm/x") ||
        !has(&err, "\"excludes[3]\" (\"^/home/\") matches /home/u/x") ||
        !has(&err, "\"excludes[4]\" (\"/run\") matches /run/x") || has(&err, "excludes[0]") ||
        has(&err, "every path")) {
        fail_msg("%s", err.data ? (char *)err.data : "(no warning)");
    }
    policy_set_free(s);

    s = load_one(KEYLIME_EXCLUDES("\"/var/tmp\""), NULL, &err);
    assert_int_equal(policy_set_count(s), 1);
    assert_true(has(&err, "warning: \"excludes[0]\" (\"/var/tmp\") matches /var/tmp/x"));
    policy_set_free(s);

    /* At most 8 warnings a file, then one line for the rest. */
    s = load_one(NATIVE_EXCLUDES("\"^/tmp/\",\"^/tmp\",\"^/tm\",\"^/t\",\"/tmp/x\",\"^/tmp/.\","
                                 "\"^(/tmp)\",\"^/tmp/x\",\"^/tmp/[a-z]\",\"^/run/\""),
                 NULL, &err);
    assert_int_equal(policy_set_count(s), 1);
    assert_true(has(&err, "\"excludes[7]\" (\"^/tmp/x\") matches /tmp/x"));
    assert_false(has(&err, "excludes[8]"));
    assert_false(has(&err, "excludes[9]"));
    assert_true(has(&err, "p.json: warning: more excludes match where code can run\n"));
    {
        size_t lines = 0;
        for (size_t i = 0; i < err.len; i++) {
            lines += err.data[i] == '\n';
        }
        assert_int_equal(lines, 9);
    }
    policy_set_free(s);

    /* Log and state directories are written by the workload too: warned. */
    s = load_one(NATIVE_EXCLUDES("\"^/var/log/\",\"^/var/lib/open5gs/db/\""), NULL, &err);
    assert_int_equal(policy_set_count(s), 1);
    assert_true(has(&err, "\"excludes[0]\" (\"^/var/log/\") matches /var/log/x"));
    assert_true(
            has(&err, "\"excludes[1]\" (\"^/var/lib/open5gs/db/\") matches /var/lib/x or below"));
    policy_set_free(s);

    /* The same narrow exclude spelt with a group, brackets, escaped
     * slashes or an alternative: each warned. */
    {
        static const char *const spellings[] = {
                "\"^(/var/log/open5gs/)\"",
                "\"^/var/lo[g]/open5gs/\"",
                "\"^\\\\/var\\\\/log\\\\/open5gs\\\\/\"",
                "\"^/var/log/open5g[s]/\"",
                "\"^(/usr/share/doc/x|/var/log/open5gs/)\"",
                "\"^/usr/share/doc/x|^/var/log/open5gs/\"",
                "\"^/var/(lib|log)/open5gs/\"",
        };
        char text[300];
        for (size_t i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++) {
            snprintf(text, sizeof(text), NATIVE_EXCLUDES("%s"), spellings[i]);
            err.len = 0;
            s = load_one(text, NULL, &err);
            assert_int_equal(policy_set_count(s), 1);
            if (!has(&err, "\"excludes[0]\"") || !has(&err, "where code can be written")) {
                fail_msg("%s: %s", spellings[i], err.data ? (char *)err.data : "(no warning)");
            }
            policy_set_free(s);
        }
    }

    /* Read-only places (documentation, locales): no warning. */
    s = load_one(NATIVE_EXCLUDES("\"^/usr/share/doc/\",\"^/usr/share/locale/\""), NULL, &err);
    assert_int_equal(policy_set_count(s), 1);
    assert_int_equal(err.len, 0);
    policy_set_free(s);
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

    assert_int_equal(policy_set_load(dir, NULL, NULL, &s, &err), 0);
    put("20-node.json", "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"NodePolicy\",");
    assert_int_equal(policy_set_load(dir, s, NULL, &s2, &err), 0);
    assert_int_equal(policy_set_count(s2), 4);
    assert_non_null(strstr((char *)err.data, "20-node.json"));
    assert_non_null(strstr((char *)err.data, "previous version stays in force"));
    assert_true(policy_allows(policy_set_node(s2), "/usr/bin/containerd", 19, SHA_A));
    policy_set_free(s);
    /* s2 still owns the kept policy after the old set is gone. */
    assert_true(policy_allows(policy_set_node(s2), "/usr/bin/containerd", 19, SHA_A));
    policy_set_free(s2);
    assert_int_equal(policy_set_load("/nonexistent/kima", NULL, NULL, &s, &err), -ENOENT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_load_match_allow),
            cmocka_unit_test(test_invalid_files_named),
            cmocka_unit_test(test_broken_update_keeps_old),
            cmocka_unit_test(test_keylime_excludes_anchored),
            cmocka_unit_test(test_native_excludes_anchored),
            cmocka_unit_test(test_match_all_excludes),
            cmocka_unit_test(test_writable_excludes_warn),
            cmocka_unit_test(test_exclude_shapes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
