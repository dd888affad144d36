/* SPDX-License-Identifier: Apache-2.0 */
/* Policy documents: canonical text, merge and diff; and what the generator
 * writes parses with the verifier's own parser. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "generate.h"
#include "policy-doc.h"
#include "policy.h"

#define H1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define H2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define H3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"

static json_t *doc(const char *text) {
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    struct img_error err = {{0}};

    assert_non_null(j);
    assert_int_equal(policy_doc_check(j, "t", &err), 0);
    return j;
}

/* The verifier's parser must take `text`. */
static void verifier_parses(const char *text) {
    struct policy *p = NULL;
    char err[256] = "";

    if (policy_parse(text, strlen(text), "gen.json", NULL, &p, NULL, err, sizeof(err)) != 0) {
        fail_msg("the verifier refuses it: %s\n%s", err, text);
    }
    policy_free(p);
}

#define A_DOC                                                                                     \
    "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"app\",\"match\":{"         \
    "\"namespace\":\"ns\",\"images\":[\"" H2 "\"]},\"digests\":{\"/usr/bin/b\":[\"" H2 "\",\"" H1 \
    "\",\"" H1 "\"],\"/usr/bin/a\":[\"" H1 "\"]}}"
#define B_DOC                                                                                    \
    "{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"app\",\"match\":{"        \
    "\"namespace\":\"ns\",\"images\":[\"" H3 "\"]},\"excludes\":[\"^/tmp/cache/\"],\"digests\":" \
    "{\"/usr/bin/b\":[\"" H3 "\"],\"/usr/bin/c\":[\"" H3 "\"]}}"

static void test_text_canonical(void **state) {
    json_t *a = doc(A_DOC);
    char *text = NULL;

    (void)state;
    assert_int_equal(policy_doc_text(a, &text), 0);
    /* Keys sorted, lists sorted and each digest once, a final newline. */
    assert_non_null(strstr(text, "\"/usr/bin/a\""));
    assert_true(strstr(text, "\"/usr/bin/a\"") < strstr(text, "\"/usr/bin/b\""));
    assert_true(strstr(text, "\"apiVersion\"") < strstr(text, "\"digests\""));
    assert_true(strstr(text, "\"digests\"") < strstr(text, "\"kind\""));
    assert_true(strstr(strstr(text, "/usr/bin/b"), H1) < strstr(strstr(text, "/usr/bin/b"), H2));
    assert_null(strstr(strstr(strstr(text, "/usr/bin/b"), H1) + 1, H1));
    assert_int_equal(text[strlen(text) - 1], '\n');
    verifier_parses(text);
    free(text);
    json_decref(a);
}

static void test_merge(void **state) {
    json_t *docs[2] = {doc(A_DOC), doc(B_DOC)}, *m = NULL;
    const char *files[2] = {"a.json", "b.json"};
    struct img_error err = {{0}};
    char *text = NULL;

    (void)state;
    assert_int_equal(policy_doc_merge(docs, files, 2, NULL, &m, &err), 0);
    json_t *b = policy_doc_sorted(json_object_get(json_object_get(m, "digests"), "/usr/bin/b"));
    assert_int_equal(json_array_size(b), 3);
    json_decref(b);
    assert_non_null(json_object_get(json_object_get(m, "digests"), "/usr/bin/c"));
    assert_int_equal(json_array_size(json_object_get(json_object_get(m, "match"), "images")), 2);
    assert_int_equal(json_array_size(json_object_get(m, "excludes")), 1);
    assert_int_equal(policy_doc_text(m, &text), 0);
    verifier_parses(text);
    free(text);
    json_decref(m);
    /* Deterministic: B+A gives the same text as A+B. */
    json_t *rev[2] = {docs[1], docs[0]}, *m2 = NULL;
    char *t1 = NULL, *t2 = NULL;
    assert_int_equal(policy_doc_merge(docs, files, 2, NULL, &m, &err), 0);
    assert_int_equal(policy_doc_merge(rev, files, 2, NULL, &m2, &err), 0);
    assert_int_equal(policy_doc_text(m, &t1), 0);
    assert_int_equal(policy_doc_text(m2, &t2), 0);
    assert_string_equal(t1, t2);
    free(t1), free(t2);
    json_decref(m), json_decref(m2);
    json_decref(docs[0]), json_decref(docs[1]);
}

static void test_merge_disagree(void **state) {
    json_t *a = doc(A_DOC), *m = NULL;
    json_t *b = doc("{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"other\","
                    "\"match\":{\"namespace\":\"ns2\"},\"digests\":{}}");
    json_t *docs[2] = {a, b};
    const char *files[2] = {"a.json", "b.json"};
    struct img_error err = {{0}};

    (void)state;
    assert_int_equal(policy_doc_merge(docs, files, 2, NULL, &m, &err), -EBADMSG);
    assert_non_null(
            strstr(err.msg, "\"name\" differs: a.json says \"app\", b.json says \"other\""));
    err.msg[0] = 0;
    /* --name settles the name; the namespace still differs. */
    assert_int_equal(policy_doc_merge(docs, files, 2, "x", &m, &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "\"match.namespace\" differs"));
    json_decref(a), json_decref(b);
}

static void test_merge_unpinned(void **state) {
    json_t *a = doc(A_DOC), *m = NULL;
    json_t *b = doc("{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"PodPolicy\",\"name\":\"app\","
                    "\"match\":{\"namespace\":\"ns\"},\"digests\":{}}");
    json_t *docs[2] = {a, b};
    const char *files[2] = {"a.json", "b.json"};
    struct img_error err = {{0}};

    (void)state;
    /* B matches any image: so must the merge. */
    assert_int_equal(policy_doc_merge(docs, files, 2, NULL, &m, &err), 0);
    assert_null(json_object_get(json_object_get(m, "match"), "images"));
    json_decref(m), json_decref(a), json_decref(b);
}

static void test_check(void **state) {
    struct img_error err = {{0}};
    json_t *j = json_loads("{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"NodePolicy\",\"name\":\"n\","
                           "\"digests\":{\"/x\":[1]}}",
                           0, NULL);

    (void)state;
    assert_int_equal(policy_doc_check(j, "f.json", &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "f.json: \"digests./x\" is not an array of strings"));
    json_decref(j);
    j = json_loads("{\"apiVersion\":\"kima.dev/v1\",\"kind\":\"NodePolicy\",\"name\":\"n\","
                   "\"digests\":{},\"extra\":1}",
                   0, NULL);
    err.msg[0] = 0;
    assert_int_equal(policy_doc_check(j, "f.json", &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "\"extra\" is not a field"));
    json_decref(j);
}

static void test_diff(void **state) {
    json_t *a = doc(A_DOC), *b = doc(B_DOC);
    _cleanup_kbuf_ struct kbuf out = KBUF_INIT(1 << 20);
    bool same = true;
    const char *want = "- match.images " H2 "\n"
                       "+ match.images " H3 "\n"
                       "+ excludes ^/tmp/cache/\n"
                       "- /usr/bin/a " H1 "\n"
                       "- /usr/bin/b " H1 "\n"
                       "- /usr/bin/b " H2 "\n"
                       "+ /usr/bin/b " H3 "\n"
                       "+ /usr/bin/c " H3 "\n";

    (void)state;
    assert_int_equal(policy_doc_diff(a, b, &out, &same), 0);
    assert_false(same);
    assert_string_equal((char *)out.data, want);
    kbuf_reset(&out);
    assert_int_equal(policy_doc_diff(a, a, &out, &same), 0);
    assert_true(same);
    assert_int_equal(out.len, 0);
    json_decref(a), json_decref(b);
}

/* The generator's text with no source read: still a policy the verifier
 * takes, with the match asked for; a PodPolicy without a match is refused. */
static void test_generated_text(void **state) {
    struct gen_config cfg = {0};
    struct gen *g = NULL;
    struct img_error err = {{0}};
    json_t *labels = json_pack("{ss}", "app", "web");
    struct gen_meta m = {.name = "web", .ns = "prod", .labels = labels};
    char *text = NULL;

    (void)state;
    img_options_default(&cfg.img);
    assert_int_equal(gen_new(&cfg, &g), 0);
    assert_int_equal(gen_policy_text(g, &m, &text, &err), 0);
    assert_non_null(strstr(text, "\"podLabels\""));
    assert_non_null(strstr(text, "\"kind\": \"PodPolicy\""));
    verifier_parses(text);
    free(text);
    m = (struct gen_meta){.name = "node", .node = true};
    assert_int_equal(gen_policy_text(g, &m, &text, &err), 0);
    assert_null(strstr(text, "\"match\""));
    verifier_parses(text);
    free(text);
    m = (struct gen_meta){.name = "x"};
    assert_int_equal(gen_policy_text(g, &m, &text, &err), -EINVAL);
    gen_free(g);
    json_decref(labels);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_text_canonical), cmocka_unit_test(test_merge),
            cmocka_unit_test(test_merge_disagree), cmocka_unit_test(test_merge_unpinned),
            cmocka_unit_test(test_check),          cmocka_unit_test(test_diff),
            cmocka_unit_test(test_generated_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
