/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include "ima-gen.h"
#include "replay.h"

static const uint8_t fd_digest[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

static void add_ng(struct ima_gen *g, uint32_t pcr, const char *path, bool violation) {
    char s[256];
    uint8_t d[64];
    struct gen_field f[2] = {gen_dng(d, "sha256:", fd_digest, 32), gen_str(s, path)};

    assert_int_equal(ima_gen_add(g, pcr, "ima-ng", f, 2, violation), 0);
}

/* Lists with two PCR indexes and violations replay, in every bank, to what
 * the generator computed independently. */
static void test_replay_matches_generator(void **state) {
    static const uint32_t widths[] = {20, 32, 48, 64};
    (void)state;

    for (size_t w = 0; w < 4; w++) {
        struct ima_gen g;
        struct ima_parser p;
        struct ima_replay r;
        struct ima_replay_result res;

        ima_gen_init(&g, widths[w], 1 << 20);
        for (int i = 0; i < 40; i++) {
            char path[32];
            snprintf(path, sizeof(path), "/opt/bin/f%d", i);
            add_ng(&g, i % 3 == 0 ? 11 : 10, path, i % 7 == 3);
        }
        ima_parser_init(&p, widths[w]);
        assert_int_equal(ima_replay_init(&r, IMA_BANKS_ALL), 0);
        assert_int_equal(ima_replay_list(&r, &p, g.list.data, g.list.len, NULL, 0, &res), 0);
        assert_false(res.matched);
        assert_false(res.incomplete);
        assert_int_equal(res.entries, 40);
        assert_int_equal(res.bytes, g.list.len);
        assert_int_equal(r.touched, (1u << 10) | (1u << 11));
        for (int b = 0; b < IMA_HASH_COUNT; b++) {
            for (uint32_t pcr = 10; pcr <= 11; pcr++) {
                assert_memory_equal(ima_replay_get(&r, (enum ima_hash_alg)b, pcr), g.pcr[b][pcr],
                                    gen_bank_size(b));
            }
            /* Untouched PCRs stay zero. */
            assert_memory_equal(ima_replay_get(&r, (enum ima_hash_alg)b, 9), (uint8_t[64]){0},
                                gen_bank_size(b));
        }
        ima_gen_free(&g);
    }
}

/* The quote may lag the list: the match is found at the prefix the PCR value
 * belongs to, and the rest is left for the next round. */
static void test_prefix_match_and_resume(void **state) {
    struct ima_gen g, g5;
    struct ima_parser p;
    struct ima_replay r;
    struct ima_replay_result res;
    struct ima_pcr_value want[2];
    (void)state;

    ima_gen_init(&g, 20, 1 << 20);
    ima_gen_init(&g5, 20, 1 << 20);
    for (int i = 0; i < 10; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/f%d", i);
        add_ng(&g, 10, path, false);
        if (i < 5) {
            add_ng(&g5, 10, path, false);
        }
    }
    want[0] = (struct ima_pcr_value){.alg = IMA_HASH_SHA256, .pcr = 10};
    memcpy(want[0].digest, g5.pcr[1][10], 32);
    want[1] = (struct ima_pcr_value){.alg = IMA_HASH_SHA1, .pcr = 10};
    memcpy(want[1].digest, g5.pcr[0][10], 20);

    ima_parser_init(&p, 20);
    ima_replay_init(&r, IMA_BANK(IMA_HASH_SHA1) | IMA_BANK(IMA_HASH_SHA256));
    assert_int_equal(ima_replay_list(&r, &p, g.list.data, g.list.len, want, 2, &res), 0);
    assert_true(res.matched);
    assert_int_equal(res.entries, 5);
    assert_int_equal(res.bytes, g5.list.len);
    assert_int_equal(p.index, 5);

    /* Next round: the full list's value, from where we stopped. */
    memcpy(want[0].digest, g.pcr[1][10], 32);
    memcpy(want[1].digest, g.pcr[0][10], 20);
    assert_int_equal(
            ima_replay_list(&r, &p, g.list.data + res.bytes, g.list.len - res.bytes, want, 2, &res),
            0);
    assert_true(res.matched);
    assert_int_equal(res.entries, 5);

    /* A value no prefix reaches: everything is consumed, no match. */
    ima_parser_init(&p, 20);
    ima_replay_init(&r, IMA_BANK(IMA_HASH_SHA256));
    memset(want[0].digest, 0x5a, 32);
    assert_int_equal(ima_replay_list(&r, &p, g.list.data, g.list.len, want, 1, &res), 0);
    assert_false(res.matched);
    assert_int_equal(res.entries, 10);

    /* All-zero PCR: matched by the empty prefix. */
    ima_parser_init(&p, 20);
    ima_replay_init(&r, IMA_BANK(IMA_HASH_SHA256));
    memset(want[0].digest, 0, 32);
    assert_int_equal(ima_replay_list(&r, &p, g.list.data, g.list.len, want, 1, &res), 0);
    assert_true(res.matched);
    assert_int_equal(res.entries, 0);

    /* A wanted bank that is not replayed is a caller error. */
    want[0].alg = IMA_HASH_SHA512;
    assert_int_equal(ima_replay_list(&r, &p, g.list.data, g.list.len, want, 1, &res), -EINVAL);
    ima_gen_free(&g);
    ima_gen_free(&g5);
}

static void test_mismatch_stops_without_extending(void **state) {
    struct ima_gen g;
    struct ima_parser p;
    struct ima_replay r, before;
    struct ima_replay_result res;
    size_t second;
    (void)state;

    ima_gen_init(&g, 32, 1 << 20);
    add_ng(&g, 10, "/a", false);
    second = g.list.len;
    add_ng(&g, 10, "/b", false);
    add_ng(&g, 10, "/c", false);
    g.list.data[second + 4] ^= 0x80; /* the second entry's recorded digest */

    ima_parser_init(&p, 32);
    ima_replay_init(&r, IMA_BANKS_ALL);
    assert_int_equal(ima_replay_list(&r, &p, g.list.data, g.list.len, NULL, 0, &res), -EBADMSG);
    assert_int_equal(res.entries, 1);
    assert_int_equal(res.bytes, second);
    assert_int_equal(p.err.index, 1);
    assert_int_equal(p.err.offset, second);
    assert_non_null(strstr(p.err.msg, "template digest does not match"));
    /* The parser stays at the bad entry and the PCRs hold the first one only. */
    assert_int_equal(p.index, 1);
    assert_int_equal(p.offset, second);
    before = r;
    {
        struct ima_entry e;
        assert_true(ima_parser_next(&p, g.list.data + second, g.list.len - second, &e) > 0);
        assert_int_equal(ima_replay_entry(&r, &e), -EBADMSG);
        assert_memory_equal(&before, &r, sizeof(r));
    }
    ima_gen_free(&g);
}

static void test_incomplete_tail(void **state) {
    struct ima_gen g;
    struct ima_parser p;
    struct ima_replay r;
    struct ima_replay_result res;
    (void)state;

    ima_gen_init(&g, 20, 1 << 20);
    add_ng(&g, 10, "/a", false);
    add_ng(&g, 10, "/b", false);
    ima_parser_init(&p, 20);
    ima_replay_init(&r, IMA_BANK(IMA_HASH_SHA1));
    assert_int_equal(ima_replay_list(&r, &p, g.list.data, g.list.len - 1, NULL, 0, &res), 0);
    assert_true(res.incomplete);
    assert_int_equal(res.entries, 1);
    assert_int_equal(p.index, 1);
    assert_int_equal(ima_replay_init(&r, 0), -EINVAL);
    assert_int_equal(ima_replay_init(&r, 1u << 4), -EINVAL);
    ima_gen_free(&g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_replay_matches_generator),
            cmocka_unit_test(test_prefix_match_and_resume),
            cmocka_unit_test(test_mismatch_stops_without_extending),
            cmocka_unit_test(test_incomplete_tail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
