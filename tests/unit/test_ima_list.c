/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include "ima-gen.h"
#include "list.h"
#include "verify.h"

static const uint8_t file_digest[64] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};

/* One ima-ng entry for `path`. */
static void add_ng(struct ima_gen *g, uint32_t pcr, const char *path) {
    char s[512];
    uint8_t d[128];
    struct gen_field f[2] = {gen_dng(d, "sha256:", file_digest, 32), gen_str(s, path)};

    assert_int_equal(ima_gen_add(g, pcr, "ima-ng", f, 2, false), 0);
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void test_parse_entry_fields(void **state) {
    struct ima_gen g;
    struct ima_parser p;
    struct ima_entry e;
    int n;
    (void)state;

    ima_gen_init(&g, 20, 1 << 20);
    add_ng(&g, 10, "/usr/bin/bash");
    assert_int_equal(ima_parser_init(&p, 20), 0);
    n = ima_parser_next(&p, g.list.data, g.list.len, &e);
    assert_int_equal(n, (int)g.list.len);
    assert_int_equal(e.pcr, 10);
    assert_int_equal(e.index, 0);
    assert_int_equal(e.offset, 0);
    assert_int_equal(e.size, g.list.len);
    assert_int_equal(e.name_len, 6);
    assert_memory_equal(e.name, "ima-ng", 6);
    assert_false(e.legacy);
    assert_true(e.known);
    assert_false(e.violation);
    assert_int_equal(e.nfields, 2);
    assert_int_equal(e.fields[0].id, IMA_FIELD_D_NG);
    assert_int_equal(e.fields[0].len, 8 + 32);
    assert_int_equal(e.fields[1].id, IMA_FIELD_N_NG);
    assert_string_equal((const char *)e.fields[1].data, "/usr/bin/bash");
    assert_int_equal(ima_entry_verify_digest(&e), 0);
    assert_ptr_equal(ima_entry_field(&e, IMA_FIELD_N_NG), &e.fields[1]);
    assert_null(ima_entry_field(&e, IMA_FIELD_SIG));
    assert_int_equal(p.index, 1);
    assert_int_equal(p.offset, g.list.len);
    ima_gen_free(&g);
}

static void test_incremental_byte_by_byte(void **state) {
    struct ima_gen g;
    struct ima_parser p;
    struct ima_entry e;
    size_t off = 0, avail = 0;
    unsigned got = 0;
    (void)state;

    ima_gen_init(&g, 32, 1 << 20);
    for (int i = 0; i < 5; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/bin/tool%d", i);
        add_ng(&g, 10, path);
    }
    ima_parser_init(&p, 32);
    /* Bytes arrive one at a time, as from a list that is still growing: a
     * partial entry is never an error, and the parser does not move. */
    while (avail < g.list.len) {
        int n;
        avail++;
        n = ima_parser_next(&p, g.list.data + off, avail - off, &e);
        if (n == -EAGAIN) {
            assert_int_equal(p.index, got);
            assert_int_equal(p.err.index, got);
            assert_int_equal(p.err.offset, off);
            continue;
        }
        assert_true(n > 0);
        assert_int_equal(e.index, got);
        assert_int_equal(e.offset, off);
        off += (size_t)n;
        got++;
    }
    assert_int_equal(got, 5);
    assert_int_equal(off, g.list.len);

    /* Resume at entry 3 by index and byte offset. */
    {
        struct ima_parser p2;
        size_t at = 0;
        ima_parser_init(&p, 32);
        for (int i = 0; i < 3; i++) {
            at += (size_t)ima_parser_next(&p, g.list.data + at, g.list.len - at, &e);
        }
        ima_parser_init(&p2, 32);
        ima_parser_seek(&p2, 3, at);
        assert_true(ima_parser_next(&p2, g.list.data + at, g.list.len - at, &e) > 0);
        assert_int_equal(e.index, 3);
        assert_int_equal(e.offset, at);
        assert_string_equal((const char *)e.fields[1].data, "/bin/tool3");

        /* Resume by index alone: skip to it. */
        ima_parser_init(&p2, 32);
        assert_int_equal(ima_parser_skip_to(&p2, g.list.data, g.list.len, 3), (long)at);
        assert_int_equal(p2.index, 3);
        assert_int_equal(p2.offset, at);
        assert_int_equal(ima_parser_skip_to(&p2, g.list.data + at, g.list.len - at, 3), 0);
        assert_int_equal(ima_parser_skip_to(&p2, g.list.data + at, g.list.len - at, 2), -EINVAL);
        assert_int_equal(ima_parser_skip_to(&p2, g.list.data + at, g.list.len - at, 9), -EAGAIN);
        assert_int_equal(p2.index, 5);
    }
    ima_gen_free(&g);
}

/* Parse a one-entry list after `mutate` changed it; expect `code` and an
 * error message containing `needle`. */
static void expect_error(struct ima_gen *g, uint32_t width, int code, const char *needle) {
    struct ima_parser p;
    struct ima_entry e;
    char msg[256];
    int n;

    ima_parser_init(&p, width);
    n = ima_parser_next(&p, g->list.data, g->list.len, &e);
    if (n != code || !strstr(p.err.msg, needle)) {
        fail_msg("got %d \"%s\", wanted %d \"%s\"", n, p.err.msg, code, needle);
    }
    assert_int_equal(p.index, 0);
    assert_int_equal(p.offset, 0);
    ima_error_format(&p.err, msg, sizeof(msg));
    assert_non_null(strstr(msg, "entry 0 at byte offset 0: "));
}

static void test_malformed_headers(void **state) {
    struct ima_gen g;
    (void)state;

    ima_gen_init(&g, 20, 1 << 20);
    add_ng(&g, 10, "/x");

    put32(g.list.data, 24);
    expect_error(&g, 20, -EBADMSG, "PCR index 24 is out of range");
    put32(g.list.data, 10);

    put32(g.list.data + 24, 0);
    expect_error(&g, 20, -EBADMSG, "template name is empty");
    put32(g.list.data + 24, 256);
    expect_error(&g, 20, -E2BIG, "template name length 256 exceeds 255");
    put32(g.list.data + 24, 0xffffffff);
    expect_error(&g, 20, -E2BIG, "template name length");
    put32(g.list.data + 24, 6);

    g.list.data[28 + 3] = ' '; /* "ima ng" */
    expect_error(&g, 20, -EBADMSG, "not printable");
    g.list.data[28 + 3] = '-';

    put32(g.list.data + 34, (1u << 20) + 1);
    expect_error(&g, 20, -E2BIG, "template data length 1048577 exceeds");
    put32(g.list.data + 34, 0x7fffffff);
    expect_error(&g, 20, -E2BIG, "exceeds");
    ima_gen_free(&g);
}

static void test_malformed_fields(void **state) {
    struct ima_gen g;
    char s[64];
    uint8_t d[128];
    struct gen_field f[3];
    (void)state;

    /* d-ng length running past the template data. */
    ima_gen_init(&g, 20, 1 << 20);
    add_ng(&g, 10, "/x");
    put32(g.list.data + 38, 200);
    expect_error(&g, 20, -EBADMSG, "field 0 (d-ng) length 200 runs past the template data");
    ima_gen_free(&g);

    /* A third field in an ima-ng entry. */
    ima_gen_init(&g, 20, 1 << 20);
    f[0] = gen_dng(d, "sha1:", file_digest, 20);
    f[1] = gen_str(s, "/x");
    f[2] = (struct gen_field){"", 0};
    assert_int_equal(ima_gen_add(&g, 10, "ima-ng", f, 3, false), 0);
    expect_error(&g, 20, -EBADMSG, "more than 2 fields");
    ima_gen_free(&g);

    /* One field missing. */
    ima_gen_init(&g, 20, 1 << 20);
    assert_int_equal(ima_gen_add(&g, 10, "ima-sig", f, 2, false), 0);
    expect_error(&g, 20, -EBADMSG, "needs 3 fields, the data holds 2");
    ima_gen_free(&g);

    /* n-ng without its NUL. */
    ima_gen_init(&g, 20, 1 << 20);
    f[1] = (struct gen_field){"/x", 2};
    assert_int_equal(ima_gen_add(&g, 10, "ima-ng", f, 2, false), 0);
    expect_error(&g, 20, -EBADMSG, "field 1 (n-ng): string field is not NUL-terminated");
    ima_gen_free(&g);

    /* A NUL inside a path (would hide a suffix from the ASCII form). */
    ima_gen_init(&g, 20, 1 << 20);
    f[1] = (struct gen_field){"/ok\0/evil", 10};
    assert_int_equal(ima_gen_add(&g, 10, "ima-ng", f, 2, false), 0);
    expect_error(&g, 20, -EBADMSG, "NUL byte before its end");
    ima_gen_free(&g);

    /* d-ng whose prefix lacks ':' and one with a wrong-size digest. */
    ima_gen_init(&g, 20, 1 << 20);
    f[0] = gen_dng(d, "sha1", file_digest, 20);
    f[1] = gen_str(s, "/x");
    assert_int_equal(ima_gen_add(&g, 10, "ima-ng", f, 2, false), 0);
    expect_error(&g, 20, -EBADMSG, "field 0 (d-ng): digest prefix does not end in ':'");
    ima_gen_free(&g);
    ima_gen_init(&g, 20, 1 << 20);
    f[0] = gen_dng(d, "sha256:", file_digest, 20);
    assert_int_equal(ima_gen_add(&g, 10, "ima-ng", f, 2, false), 0);
    expect_error(&g, 20, -EBADMSG, "digest length does not match its algorithm");
    ima_gen_free(&g);

    /* Legacy `ima` with an over-long name length. */
    ima_gen_init(&g, 20, 1 << 20);
    f[0] = (struct gen_field){file_digest, 20};
    f[1] = (struct gen_field){"/bin/ls", 7};
    assert_int_equal(ima_gen_add(&g, 10, "ima", f, 2, false), 0);
    put32(g.list.data + 4 + 20 + 4 + 3 + 20, 256);
    expect_error(&g, 20, -E2BIG, "event name length 256 exceeds 255");
    ima_gen_free(&g);
}

static void test_unknown_template_is_opaque(void **state) {
    struct ima_gen g;
    struct ima_parser p;
    struct ima_entry e;
    struct gen_field f[3] = {{"ab", 2}, {"", 0}, {"xyz", 3}};
    (void)state;

    ima_gen_init(&g, 20, 1 << 20);
    assert_int_equal(ima_gen_add(&g, 10, "future-template", f, 3, false), 0);
    ima_parser_init(&p, 20);
    assert_int_equal(ima_parser_next(&p, g.list.data, g.list.len, &e), (int)g.list.len);
    assert_false(e.known);
    assert_int_equal(e.nfields, 3);
    assert_int_equal(e.fields[2].id, IMA_FIELD_UNKNOWN);
    assert_int_equal(e.fields[2].len, 3);
    /* Its digest is still checked. */
    assert_int_equal(ima_entry_verify_digest(&e), 0);
    ima_gen_free(&g);
}

static void test_entry_count_cap(void **state) {
    struct ima_gen g;
    struct ima_parser p;
    struct ima_entry e;
    size_t off = 0;
    (void)state;

    ima_gen_init(&g, 20, 1 << 20);
    for (int i = 0; i < 4; i++) {
        add_ng(&g, 10, "/x");
    }
    ima_parser_init(&p, 20);
    p.max_entries = 3;
    for (int i = 0; i < 3; i++) {
        off += (size_t)ima_parser_next(&p, g.list.data + off, g.list.len - off, &e);
    }
    assert_int_equal(ima_parser_next(&p, g.list.data + off, g.list.len - off, &e), -E2BIG);
    assert_non_null(strstr(p.err.msg, "more than 3 entries"));
    ima_gen_free(&g);
}

static void test_digest_mismatch(void **state) {
    struct ima_gen g;
    struct ima_parser p;
    struct ima_entry e;
    (void)state;

    ima_gen_init(&g, 20, 1 << 20);
    add_ng(&g, 10, "/usr/bin/bash");
    g.list.data[g.list.len - 2] ^= 1; /* one bit of the path */
    ima_parser_init(&p, 20);
    assert_true(ima_parser_next(&p, g.list.data, g.list.len, &e) > 0);
    assert_int_equal(ima_entry_verify_digest(&e), -EBADMSG);
    ima_gen_free(&g);
}

static void test_detect_width(void **state) {
    static const uint32_t widths[] = {20, 32, 48, 64};
    struct ima_error err;
    uint32_t w;
    (void)state;

    for (size_t i = 0; i < 4; i++) {
        struct ima_gen g;
        ima_gen_init(&g, widths[i], 1 << 20);
        add_ng(&g, 10, "boot_aggregate");
        add_ng(&g, 10, "/usr/lib/systemd/systemd");
        assert_int_equal(ima_list_detect_digest_len(g.list.data, g.list.len, &w, &err), 0);
        assert_int_equal(w, widths[i]);
        /* A trailing partial entry does not hide the width. */
        assert_int_equal(ima_list_detect_digest_len(g.list.data, g.list.len - 3, &w, &err), 0);
        assert_int_equal(w, widths[i]);
        /* A broken digest makes no width fit, and the error says where. */
        g.list.data[g.list.len - 2] ^= 1;
        assert_int_equal(ima_list_detect_digest_len(g.list.data, g.list.len, &w, &err), -EBADMSG);
        assert_int_equal(err.index, 1);
        assert_non_null(strstr(err.msg, "template digest does not match"));
        ima_gen_free(&g);
    }
    assert_int_equal(ima_list_detect_digest_len(NULL, 0, &w, NULL), 0);
    assert_int_equal(w, 20);
    assert_int_equal(ima_list_detect_digest_len((const uint8_t *)"garbage!", 8, &w, &err),
                     -EBADMSG);

    assert_int_equal(ima_list_digest_len_from_filename("/sys/x/binary_runtime_measurements"), 0);
    assert_int_equal(ima_list_digest_len_from_filename("binary_runtime_measurements_sha1"), 20);
    assert_int_equal(ima_list_digest_len_from_filename("a/b_sha256"), 32);
    assert_int_equal(ima_list_digest_len_from_filename("b_sha384"), 48);
    assert_int_equal(ima_list_digest_len_from_filename("b_sha512"), 64);
    assert_int_equal(ima_list_digest_len_from_filename("b_sha3_256"), 0);
}

static void test_init_rejects_width(void **state) {
    struct ima_parser p;
    (void)state;
    assert_int_equal(ima_parser_init(&p, 16), -EINVAL);
    assert_int_equal(ima_parser_init(&p, 0), -EINVAL);
    assert_int_equal(ima_parser_init(&p, 48), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse_entry_fields),
            cmocka_unit_test(test_incremental_byte_by_byte),
            cmocka_unit_test(test_malformed_headers),
            cmocka_unit_test(test_malformed_fields),
            cmocka_unit_test(test_unknown_template_is_opaque),
            cmocka_unit_test(test_entry_count_cap),
            cmocka_unit_test(test_digest_mismatch),
            cmocka_unit_test(test_detect_width),
            cmocka_unit_test(test_init_rejects_width),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
