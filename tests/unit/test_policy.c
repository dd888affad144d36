/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "hex.h"
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
        /* A bare config digest, and CRI-O's bare hex image ID; a prefix of
         * the hex does not do. */
        {
            json_t *bare = json_pack("[s]", "sha256:" HEX64_A), *hex = json_pack("[s]", HEX64_A);
            json_t *part = json_pack("[s]", "0123");
            assert_non_null(policy_set_match_pod(s, "core", labels, bare));
            assert_non_null(policy_set_match_pod(s, "core", labels, hex));
            assert_null(policy_set_match_pod(s, "core", labels, part));
            json_decref(bare);
            json_decref(hex);
            json_decref(part);
        }
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

/* regcomp's memory follows the excludes' expansion: one file's excludes
 * together, and all loaded files' together, are bounded too. */
static void test_exclude_weight_totals(void **state) {
    _cleanup_kbuf_ struct kbuf err = KBUF_INIT(1 << 16);
    struct policy_set *s = NULL;
    char text[4096], sub[128], path[200];
    size_t o;
    (void)state;

    /* 17 excludes of 4,000 atoms: over 65,536 in one file. */
    o = (size_t)snprintf(text, sizeof(text),
                         "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"NodePolicy\",\"name\":\"n\","
                         "\"digests\":{},\"excludes\":[");
    for (int i = 0; i < 17; i++) {
        o += (size_t)snprintf(text + o, sizeof(text) - o, "%s\"^/%d(a{1,40}){1,100}\"",
                              i ? "," : "", i);
    }
    snprintf(text + o, sizeof(text) - o, "]}");
    s = load_one(text, NULL, &err);
    assert_int_equal(policy_set_count(s), 0);
    assert_true(has(&err, "\"excludes[16]\": the excludes expand to more than 65536 atoms in all"));
    policy_set_free(s);

    /* Five files of 16 such excludes: the fifth is over 262,144 in all. */
    snprintf(sub, sizeof(sub), "%s/weights", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    for (int f = 0; f < 5; f++) {
        FILE *fp;
        o = (size_t)snprintf(
                text, sizeof(text),
                "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"p%d\","
                "\"match\":{\"namespace\":\"ns%d\"},\"digests\":{},\"excludes\":[",
                f, f);
        for (int i = 0; i < 16; i++) {
            o += (size_t)snprintf(text + o, sizeof(text) - o, "%s\"^/%d(a{1,40}){1,100}\"",
                                  i ? "," : "", i);
        }
        snprintf(text + o, sizeof(text) - o, "]}");
        snprintf(path, sizeof(path), "%s/p%d.json", sub, f);
        fp = fopen(path, "w");
        assert_non_null(fp);
        fputs(text, fp);
        fclose(fp);
    }
    kbuf_reset(&err);
    assert_int_equal(policy_set_load(sub, NULL, NULL, &s, &err), 0);
    assert_int_equal(policy_set_count(s), 4);
    assert_true(has(&err, "p4.json: with the files before it, the excludes expand to more than "
                          "262144 atoms in all"));
    policy_set_free(s);
    assert_int_equal(test_tmpdir_free(sub), 0);
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

/* Allocation failures, injected at the libc boundary: the test links with
 * -Wl,--wrap for malloc, calloc and strdup, so the policy code's own calls
 * come here (jansson's, OpenSSL's and regcomp's do not). Disarmed, they pass
 * through. */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
char *__wrap_strdup(const char *s);

static long alloc_countdown = -1; /* fail when it reaches 0; -1: never */

static bool alloc_fails(void) {
    return alloc_countdown >= 0 && alloc_countdown-- == 0;
}

void *__wrap_malloc(size_t n) {
    return alloc_fails() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size) {
    return alloc_fails() ? NULL : __real_calloc(n, size);
}

char *__wrap_strdup(const char *s) {
    return alloc_fails() ? NULL : __real_strdup(s);
}

#define POD_POLICY                                                                                 \
    "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"open5gs-upf\","             \
    "\"match\":{\"namespace\":\"open5gs\",\"podLabels\":{\"app\":\"upf\",\"tier\":\"core\"},"      \
    "\"images\":[\"sha256:" HEX64_A "\",\"sha256:" HEX64_B "\"]},"                                 \
    "\"digests\":{\"/usr/bin/open5gs-upfd\":[\"" SHA_A "\",\"" SHA_B "\"],\"*\":[\"" SHA_B "\"]}," \
    "\"excludes\":[\"^/usr/share/doc/\",\"^/usr/share/locale/\"]}"

/* Every allocation of a parse fails in turn: each failure is -ENOMEM with a
 * message, leaves the result alone and leaks nothing (the sanitizer build
 * checks leaks); with none failing, the same bytes load. */
static void test_parse_out_of_memory(void **state) {
    static const char *const texts[] = {
            POD_POLICY,
            KEYLIME_EXCLUDES("\"^/usr/share/doc/\""),
    };
    (void)state;

    for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
        long n;
        int r = -ENOMEM;
        for (n = 0; r == -ENOMEM; n++) {
            struct policy *p = (struct policy *)&n; /* must stay as it is */
            char err[256] = "";
            alloc_countdown = n;
            r = policy_parse(texts[t], strlen(texts[t]), "/etc/kima/p.json", NULL, &p, NULL, err,
                             sizeof(err));
            alloc_countdown = -1;
            if (r == 0) {
                assert_int_equal(policy_digest_count(p), t == 0 ? 3 : 1);
                policy_free(p);
                break;
            }
            assert_int_equal(r, -ENOMEM);
            assert_ptr_equal(p, (struct policy *)&n);
            if (!strstr(err, "out of memory")) {
                fail_msg("allocation %ld: \"%s\"", n, err);
            }
        }
        /* Each of the policy, its file and name, the namespace, labels,
         * images, table, digests and excludes was failed once. */
        assert_true(n >= (t == 0 ? 16 : 6));
    }
}

/* The canonical form of one policy text, and its id. */
static void canonical_of(const char *text, const char *file, char **ret_canon, char *ret_id,
                         size_t idsz) {
    char err[256] = "";
    struct policy *p = NULL;

    if (policy_canonical(text, strlen(text), file, NULL, ret_canon, err, sizeof(err)) != 0) {
        fail_msg("%s: %s", file, err);
    }
    assert_int_equal(policy_parse(text, strlen(text), file, NULL, &p, NULL, err, sizeof(err)), 0);
    snprintf(ret_id, idsz, "%s", policy_id(p));
    policy_free(p);
}

/* Whitespace, key order, digest case, order and repeats, and the order of
 * excludes, images and labels are how a file is written, not what it
 * means: the canonical form and the id stay. */
static void test_canonical_stable(void **state) {
    static const char *const same[] = {
            POD_POLICY,
            "{ \"excludes\" : [ \"^/usr/share/locale/\", \"^/usr/share/doc/\", "
            "\"^/usr/share/doc/\" ],\n  \"digests\": {\"*\": [\"" SHA_B "\"],\n"
            "  \"/usr/bin/open5gs-upfd\": [\"sha256:60303AE22B998861BCE3B28F33EEC1BE758A213C86C93"
            "C076DBE9F558C11C752\", \"" SHA_A "\", \"" SHA_B "\"], \"/usr/bin/none\": []},\n"
            "  \"match\": {\"images\": [\"sha256:" HEX64_B "\", \"sha256:" HEX64_A "\"],"
            " \"podLabels\": {\"tier\": \"core\", \"app\": \"upf\"}, \"namespace\": \"open5gs\"},\n"
            "  \"name\": \"open5gs-upf\", \"kind\": \"PodPolicy\", \"apiVersion\": "
            "\"kima.dev/v1\"}\n",
    };
    char *canon[2] = {NULL, NULL}, id[2][320];
    (void)state;

    for (size_t i = 0; i < 2; i++) {
        canonical_of(same[i], "/etc/kima/policies/upf.json", &canon[i], id[i], sizeof(id[i]));
    }
    assert_string_equal(
            canon[0],
            "{\"apiVersion\":\"kima.dev/v1\",\"digests\":{\"*\":[\"" SHA_B "\"],"
            "\"/usr/bin/open5gs-upfd\":[\"" SHA_B "\",\"" SHA_A "\"]},"
            "\"excludes\":[\"^/usr/share/doc/\",\"^/usr/share/locale/\"],\"kind\":\"PodPolicy\","
            "\"match\":{\"images\":[\"sha256:" HEX64_A "\",\"sha256:" HEX64_B "\"],"
            "\"namespace\":\"open5gs\",\"podLabels\":{\"app\":\"upf\",\"tier\":\"core\"}},"
            "\"name\":\"open5gs-upf\"}");
    assert_string_equal(canon[1], canon[0]);
    assert_string_equal(id[1], id[0]);
    assert_non_null(strstr(id[0], "open5gs-upf@sha256:"));
    free(canon[0]);
    free(canon[1]);
}

/* Anything that changes what the policy judges or matches changes the id. */
static void test_canonical_changes(void **state) {
    static const char *const texts[] = {
            POD_POLICY,
            /* one digest fewer */
            "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"open5gs-upf\","
            "\"match\":{\"namespace\":\"open5gs\",\"podLabels\":{\"app\":\"upf\",\"tier\":\"core\"}"
            ","
            "\"images\":[\"sha256:" HEX64_A "\",\"sha256:" HEX64_B "\"]},"
            "\"digests\":{\"/usr/bin/open5gs-upfd\":[\"" SHA_A "\"],\"*\":[\"" SHA_B "\"]},"
            "\"excludes\":[\"^/usr/share/doc/\",\"^/usr/share/locale/\"]}",
            /* another namespace */
            "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"open5gs-upf\","
            "\"match\":{\"namespace\":\"open5gs2\",\"podLabels\":{\"app\":\"upf\",\"tier\":"
            "\"core\"},"
            "\"images\":[\"sha256:" HEX64_A "\",\"sha256:" HEX64_B "\"]},"
            "\"digests\":{\"/usr/bin/open5gs-upfd\":[\"" SHA_A "\",\"" SHA_B "\"],\"*\":[\"" SHA_B
            "\"]},\"excludes\":[\"^/usr/share/doc/\",\"^/usr/share/locale/\"]}",
            /* one exclude fewer */
            "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"open5gs-upf\","
            "\"match\":{\"namespace\":\"open5gs\",\"podLabels\":{\"app\":\"upf\",\"tier\":\"core\"}"
            ","
            "\"images\":[\"sha256:" HEX64_A "\",\"sha256:" HEX64_B "\"]},"
            "\"digests\":{\"/usr/bin/open5gs-upfd\":[\"" SHA_A "\",\"" SHA_B "\"],\"*\":[\"" SHA_B
            "\"]},\"excludes\":[\"^/usr/share/doc/\"]}",
            /* the digest under another path */
            "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"open5gs-upf\","
            "\"match\":{\"namespace\":\"open5gs\",\"podLabels\":{\"app\":\"upf\",\"tier\":\"core\"}"
            ","
            "\"images\":[\"sha256:" HEX64_A "\",\"sha256:" HEX64_B "\"]},"
            "\"digests\":{\"/usr/bin/open5gs-smfd\":[\"" SHA_A "\",\"" SHA_B "\"],\"*\":[\"" SHA_B
            "\"]},\"excludes\":[\"^/usr/share/doc/\",\"^/usr/share/locale/\"]}",
            /* one image fewer */
            "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"open5gs-upf\","
            "\"match\":{\"namespace\":\"open5gs\",\"podLabels\":{\"app\":\"upf\",\"tier\":\"core\"}"
            ","
            "\"images\":[\"sha256:" HEX64_A "\"]},"
            "\"digests\":{\"/usr/bin/open5gs-upfd\":[\"" SHA_A "\",\"" SHA_B "\"],\"*\":[\"" SHA_B
            "\"]},\"excludes\":[\"^/usr/share/doc/\",\"^/usr/share/locale/\"]}",
    };
    enum { N = sizeof(texts) / sizeof(texts[0]) };
    char *canon[N], id[N][320], err[256];
    (void)state;

    for (size_t i = 0; i < N; i++) {
        canonical_of(texts[i], "upf.json", &canon[i], id[i], sizeof(id[i]));
        for (size_t k = 0; k < i; k++) {
            if (strcmp(id[i], id[k]) == 0 || strcmp(canon[i], canon[k]) == 0) {
                fail_msg("policies %zu and %zu have the same canonical form", k, i);
            }
        }
    }
    for (size_t i = 0; i < N; i++) {
        free(canon[i]);
    }
    /* A Keylime policy is named after its file, and the name is content. */
    canonical_of(KEYLIME_EXCLUDES("\"^/tmp/\""), "a.json", &canon[0], id[0], sizeof(id[0]));
    canonical_of(KEYLIME_EXCLUDES("\"^/tmp/\""), "b.json", &canon[1], id[1], sizeof(id[1]));
    assert_string_not_equal(id[0] + 6, id[1] + 6);
    free(canon[0]);
    free(canon[1]);
    /* A file the parser refuses has no canonical form. */
    canon[0] = (char *)err;
    assert_int_equal(policy_canonical("{}", 2, "x.json", NULL, &canon[0], err, sizeof(err)),
                     -EBADMSG);
    assert_ptr_equal(canon[0], (char *)err);
    assert_int_equal(policy_canonical("{}", 2, "x.json", NULL, NULL, err, sizeof(err)), -EINVAL);
}

/* policy_parse() reads (buf, len) alone: no NUL, no file. */
static void test_parse_buffer(void **state) {
    _cleanup_kbuf_ struct kbuf warnings = KBUF_INIT(4096);
    const char *text = KEYLIME_EXCLUDES("\"^/tmp/\"");
    size_t len = strlen(text);
    char *buf = malloc(len + 3), err[256] = "", hex[65], want[128];
    const char *canon;
    uint8_t md[32];
    struct policy *p = NULL;
    (void)state;

    assert_non_null(buf);
    memcpy(buf, text, len);
    memcpy(buf + len, "}}}", 3); /* past len: never read */
    assert_int_equal(policy_parse(buf, len, "/etc/kima/policies/runtime.json", NULL, &p, &warnings,
                                  err, sizeof(err)),
                     0);
    assert_string_equal(policy_name(p), "runtime.json");
    assert_string_equal(policy_file(p), "/etc/kima/policies/runtime.json");
    assert_int_equal(policy_kind(p), POLICY_NODE);
    /* The id hashes the canonical form, not the file's bytes. */
    canon = "{\"apiVersion\":\"kima.dev/v1\",\"digests\":{\"/usr/bin/bash\":[\"sha256:" HEX64_A
            "\"]},\"excludes\":[\"^/tmp/\"],\"kind\":\"NodePolicy\",\"name\":\"runtime.json\"}";
    assert_true(EVP_Digest(canon, strlen(canon), md, NULL, EVP_sha256(), NULL));
    snprintf(want, sizeof(want), "runtime.json@sha256:%s", hex_encode(md, sizeof(md), hex));
    assert_string_equal(policy_id(p), want);
    assert_string_equal(policy_content_digest(p), want + strlen("runtime.json@"));
    assert_true(policy_allows(p, "/usr/bin/bash", 13, "sha256:" HEX64_A));
    assert_true(has(&warnings, "/etc/kima/policies/runtime.json: warning: \"excludes[0]\""));
    policy_free(p);
    policy_free(NULL);

    /* A refused file leaves the result and the warnings alone. */
    kbuf_reset(&warnings);
    p = (struct policy *)buf;
    assert_int_equal(policy_parse(NATIVE_EXCLUDES("\"^/tmp/\",\".*\""),
                                  strlen(NATIVE_EXCLUDES("\"^/tmp/\",\".*\"")), "p.json", NULL, &p,
                                  &warnings, err, sizeof(err)),
                     -EBADMSG);
    assert_ptr_equal(p, (struct policy *)buf);
    assert_int_equal(warnings.len, 0);
    assert_non_null(strstr(err, "\"excludes[1]\" (\".*\") matches every path"));

    /* Arguments, and the size cap that the file reader also applies. */
    p = NULL;
    assert_int_equal(policy_parse(NULL, 1, "p.json", NULL, &p, NULL, err, sizeof(err)), -EINVAL);
    assert_int_equal(policy_parse(buf, len, NULL, NULL, &p, NULL, err, sizeof(err)), -EINVAL);
    assert_int_equal(policy_parse(buf, len, "p.json", NULL, NULL, NULL, err, sizeof(err)), -EINVAL);
    assert_int_equal(policy_parse(buf, len, "p.json", NULL, &p, NULL, NULL, 0), -EINVAL);
    assert_int_equal(policy_parse(buf, (size_t)POLICY_FILE_MAX + 1, "p.json", NULL, &p, NULL, err,
                                  sizeof(err)),
                     -E2BIG);
    assert_string_equal(err, "larger than 16777216 bytes");
    assert_null(p);
    free(buf);
}

/* Each parser's refusals, with the code and the whole message. */
static void test_parse_errors(void **state) {
#define HDR  "\"apiVersion\":\"kima.dev/v1\","
#define POD  "{" HDR "\"kind\":\"PodPolicy\",\"name\":\"p\","
#define NODE "{" HDR "\"kind\":\"NodePolicy\",\"name\":\"n\","
    static const struct {
        const char *text;
        int r;
        const char *err;
    } cases[] = {
            /* header */
            {"[]", -EBADMSG, "not a JSON object"},
            {"{\"kind\":\"NodePolicy\",\"name\":\"n\",\"digests\":1,\"apiVersion\":2}", -EBADMSG,
             "\"apiVersion\" is not a string"},
            {"{\"kind\":\"NodePolicy\",\"name\":\"n\"}", -EBADMSG,
             "\"apiVersion\" is missing (a string expected)"},
            {"{\"apiVersion\":\"kima.dev/v2\"}", -EBADMSG, "\"apiVersion\" is not kima.dev/v1"},
            {"{" HDR "\"name\":\"n\"}", -EBADMSG, "\"kind\" is missing (a string expected)"},
            {"{" HDR "\"kind\":\"nodepolicy\"}", -EBADMSG,
             "\"kind\" is neither PodPolicy nor NodePolicy"},
            {"{" HDR "\"kind\":\"NodePolicy\"}", -EBADMSG,
             "\"name\" is missing (a string expected)"},
            /* match */
            {NODE "\"match\":{\"namespace\":\"a\"},\"digests\":{}}", -EBADMSG,
             "a NodePolicy has no \"match\""},
            {"{\"digests\":{},\"match\":{\"namespace\":\"a\"}}", -EBADMSG,
             "a NodePolicy has no \"match\""},
            {POD "\"digests\":{}}", -EBADMSG, "\"match\" is missing (a PodPolicy needs one)"},
            {POD "\"match\":\"a\",\"digests\":{}}", -EBADMSG,
             "\"match\" is missing (a PodPolicy needs one)"},
            {POD "\"match\":{\"namespace\":[]}}", -EBADMSG, "\"namespace\" is not a string"},
            {POD "\"match\":{\"podLabels\":[]}}", -EBADMSG, "\"match.podLabels\" is not an object"},
            {POD "\"match\":{\"podLabels\":{\"app\":\"a\",\"tier\":1}}}", -EBADMSG,
             "\"match.podLabels.tier\" is not a string"},
            {POD "\"match\":{\"namespace\":\"a\",\"images\":{}}}", -EBADMSG,
             "\"match.images\" is not an array of at most 64 digests"},
            {POD "\"match\":{\"namespace\":\"a\",\"images\":[\"sha256:" HEX64_A
                 "\",\"sha256:" HEX64_A "0\"]}}",
             -EBADMSG, "\"match.images[1]\" is not sha256:<64 hex digits>"},
            {POD "\"match\":{\"images\":[\"sha256:" HEX64_A "\"]},\"digests\":{}}", -EBADMSG,
             "\"match\" names no namespace and no labels: it would match every pod"},
            /* digests */
            {NODE "\"excludes\":[]}", -EBADMSG, "\"digests\" is missing or not an object"},
            {NODE "\"digests\":[]}", -EBADMSG, "\"digests\" is missing or not an object"},
            {NODE "\"digests\":{\"/a\":[],\"/b\":\"" SHA_A "\"}}", -EBADMSG,
             "\"digests./b\" is not an array"},
            {NODE "\"digests\":{\"/a\":[],\"usr/bin/x\":[]}}", -EBADMSG,
             "\"digests\" key \"usr/bin/x\" is not an absolute path, \"*\" or \"boot_aggregate\""},
            {NODE "\"digests\":{\"/a\":[\"" SHA_A "\",\"" HEX64_A "\"]}}", -EBADMSG,
             "\"digests./a[1]\" is not \"sha1|sha256|sha384|sha512|sm3:<hex>\""},
            {"{\"digests\":{\"rel\":[\"" HEX64_A "\",\"sm3:" HEX64_A "\",\"abc\"]}}", -EBADMSG,
             "\"digests.rel[2]\" is not \"sha1|sha256|sha384|sha512|sm3:<hex>\""},
            /* excludes */
            {NODE "\"digests\":{},\"excludes\":{}}", -EBADMSG,
             "\"excludes\" is not an array of at most 1024 regexes"},
            {NODE "\"digests\":{},\"excludes\":[\"^/a\",7]}", -EBADMSG,
             "\"excludes[1]\" is not a valid extended regex"},
            {NODE "\"digests\":{},\"excludes\":[\"^/a\",\"^/[b\"]}", -EBADMSG,
             "\"excludes[1]\" is not a valid extended regex"},
            {NODE "\"digests\":{},\"excludes\":[\"^/a\",\"^/a{1,101}\"]}", -EBADMSG,
             "\"excludes[1]\" repeats more than 100 times"},
            {NODE "\"digests\":{},\"excludes\":[\"^/a\",\"^\"]}", -EBADMSG,
             "\"excludes[1]\" (\"^\") matches every path: nothing would be judged (refused; "
             "--allow-match-all-excludes loads it)"},
    };
#undef HDR
#undef POD
#undef NODE
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        _cleanup_kbuf_ struct kbuf warnings = KBUF_INIT(4096);
        struct policy *p = NULL;
        char err[512] = "";
        int r = policy_parse(cases[i].text, strlen(cases[i].text), "/x/p.json", NULL, &p, &warnings,
                             err, sizeof(err));
        if (r != cases[i].r || strcmp(err, cases[i].err) != 0 || p || warnings.len) {
            fail_msg("%s: %d \"%s\"", cases[i].text, r, err);
        }
    }
}

/* The caps on counts, each at and one past its figure. */
static void test_parse_caps(void **state) {
    _cleanup_kbuf_ struct kbuf text = KBUF_INIT(16u << 20);
    struct policy *p = NULL;
    char err[256] = "";
    (void)state;

    /* 64 labels and 64 images load; 65 of either do not. */
    for (int over = 0; over < 3; over++) {
        kbuf_reset(&text);
        kbuf_printf(&text, "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"p\","
                           "\"digests\":{},\"match\":{\"podLabels\":{\"k\":\"v\"");
        for (int i = 1; i < POLICY_LABELS_MAX + (over == 1); i++) {
            kbuf_printf(&text, ",\"k%d\":\"v\"", i);
        }
        kbuf_printf(&text, "},\"images\":[\"sha256:" HEX64_A "\"");
        for (int i = 1; i < POLICY_IMAGES_MAX + (over == 2); i++) {
            kbuf_printf(&text, ",\"sha256:" HEX64_A "\"");
        }
        kbuf_printf(&text, "]}}");
        assert_int_equal(policy_parse((char *)text.data, text.len, "p.json", NULL, &p, NULL, err,
                                      sizeof(err)),
                         over ? -EBADMSG : 0);
        if (over) {
            assert_string_equal(err, over == 1 ? "\"match.podLabels\" has more than 64 labels"
                                               : "\"match.images\" is not an array of at most 64 "
                                                 "digests");
        }
        policy_free(TAKE_PTR(p));
    }
    /* 1024 excludes load, 1025 do not. */
    for (int over = 0; over < 2; over++) {
        kbuf_reset(&text);
        kbuf_printf(&text, "{\"digests\":{},\"excludes\":[\"^/x0\"");
        for (int i = 1; i < POLICY_EXCLUDES_MAX + over; i++) {
            kbuf_printf(&text, ",\"^/x%d\"", i);
        }
        kbuf_printf(&text, "]}");
        assert_int_equal(policy_parse((char *)text.data, text.len, "p.json", NULL, &p, NULL, err,
                                      sizeof(err)),
                         over ? -EBADMSG : 0);
        assert_true(over || policy_excludes(p, "/x1023/y", 8));
        policy_free(TAKE_PTR(p));
    }
    /* A million digests are counted, not refused (the first is not a
     * digest); one more is over the cap before any is read. */
    for (int over = 0; over < 2; over++) {
        kbuf_reset(&text);
        kbuf_printf(&text, "{\"digests\":{\"/a\":[0");
        for (int i = 1; i < POLICY_DIGESTS_MAX + over; i++) {
            assert_int_equal(kbuf_append(&text, ",0", 2), 0);
        }
        kbuf_printf(&text, "]}}");
        assert_int_equal(policy_parse((char *)text.data, text.len, "p.json", NULL, &p, NULL, err,
                                      sizeof(err)),
                         -EBADMSG);
        assert_string_equal(err, over ? "\"digests\" lists more than 1000000 digests"
                                      : "\"digests./a[0]\" is not "
                                        "\"sha1|sha256|sha384|sha512|sm3:<hex>\"");
    }
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
            cmocka_unit_test(test_exclude_weight_totals),
            cmocka_unit_test(test_parse_buffer),
            cmocka_unit_test(test_parse_errors),
            cmocka_unit_test(test_parse_caps),
            cmocka_unit_test(test_parse_out_of_memory),
            cmocka_unit_test(test_canonical_stable),
            cmocka_unit_test(test_canonical_changes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
