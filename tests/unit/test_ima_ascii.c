/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ascii-parse.h"
#include "ascii.h"
#include "ima-gen.h"
#include "verify.h"

static const uint8_t dg[32] = {0xde, 0xad, 0xbe, 0xef};

/* Render the single entry of g as ASCII into out. */
static void render(struct ima_gen *g, struct kbuf *out) {
    struct ima_parser p;
    struct ima_entry e;

    ima_parser_init(&p, g->digest_len);
    assert_int_equal(ima_parser_next(&p, g->list.data, g->list.len, &e), (int)g->list.len);
    kbuf_reset(out);
    assert_int_equal(ima_entry_format_ascii(&e, out), 0);
}

static void test_kernel_layout(void **state) {
    _cleanup_kbuf_ struct kbuf out = KBUF_INIT(1 << 16);
    struct ima_gen g;
    char s1[64], s2[64];
    uint8_t d[64], uid[4] = {0xe8, 0x03, 0, 0}, mode[2] = {0xa4, 0x81};
    struct gen_field f[9];
    char want[512], th[41];
    (void)state;

    /* PCR below 10 gets a leading space (%2d); an empty sig still has its space. */
    ima_gen_init(&g, 20, 1 << 20);
    f[0] = gen_dng(d, "sha256:", dg, 32);
    f[1] = gen_str(s1, "/usr/bin/x");
    f[2] = (struct gen_field){"", 0};
    assert_int_equal(ima_gen_add(&g, 9, "ima-sig", f, 3, false), 0);
    render(&g, &out);
    gen_hash(0, g.list.data + 4 + 20 + 4 + 7 + 4, g.list.len - (4 + 20 + 4 + 7 + 4),
             (uint8_t *)want);
    snprintf(th, sizeof(th), "%s", "");
    for (int i = 0; i < 20; i++) {
        snprintf(th + 2 * i, 3, "%02x", (uint8_t)want[i]);
    }
    snprintf(want, sizeof(want),
             " 9 %s ima-sig sha256:deadbeef00000000000000000000000000000000000000000000000000000000"
             " /usr/bin/x \n",
             th);
    assert_string_equal((char *)out.data, want);
    ima_gen_free(&g);

    /* Integers in decimal, xattr names as a string, empty d-modsig prints nothing. */
    ima_gen_init(&g, 20, 1 << 20);
    f[0] = gen_dng(d, "sha1:", dg, 20);
    f[1] = gen_str(s1, "/f");
    f[2] = gen_str(s2, "security.ima");
    f[3] = (struct gen_field){uid, 4};
    f[4] = (struct gen_field){mode, 2};
    f[5] = (struct gen_field){"", 0};
    assert_int_equal(ima_gen_add(&g, 10, "d-ng|n-ng|xattrnames|iuid|imode|d-modsig", f, 6, false),
                     0);
    render(&g, &out);
    assert_non_null(strstr((char *)out.data, " d-ng|n-ng|xattrnames|iuid|imode|d-modsig "
                                             "sha1:deadbeef00000000000000000000000000000000"
                                             " /f security.ima 1000 33188 \n"));
    ima_gen_free(&g);

    /* d-ngv2 keeps its type; legacy `ima` prints d in hex and n as is. */
    ima_gen_init(&g, 20, 1 << 20);
    f[0] = gen_dng(d, "verity:sha256:", dg, 32);
    f[1] = gen_str(s1, "/v");
    assert_int_equal(ima_gen_add(&g, 10, "ima-ngv2", f, 2, false), 0);
    render(&g, &out);
    assert_non_null(strstr((char *)out.data, " ima-ngv2 verity:sha256:deadbeef"));
    ima_gen_free(&g);

    ima_gen_init(&g, 20, 1 << 20);
    f[0] = (struct gen_field){dg, 20};
    f[1] = (struct gen_field){"/sbin/init", 10};
    assert_int_equal(ima_gen_add(&g, 10, "ima", f, 2, true), 0);
    render(&g, &out);
    assert_string_equal((char *)out.data, "10 0000000000000000000000000000000000000000 ima "
                                          "deadbeef00000000000000000000000000000000 /sbin/init\n");
    ima_gen_free(&g);
}

static void test_parse_back_is_byte_identical(void **state) {
    _cleanup_kbuf_ struct kbuf out = KBUF_INIT(1 << 16), bin = KBUF_INIT(1 << 20);
    struct ima_gen g;
    char s1[64], s2[128];
    uint8_t d[64], mode[2] = {0xed, 0x41}, gid[4] = {5, 0, 0, 0};
    struct gen_field f[9];
    struct ima_error err;
    uint32_t width;
    (void)state;

    ima_gen_init(&g, 32, 1 << 20);
    f[0] = gen_dng(d, "sha256:", dg, 32);
    f[1] = gen_str(s1, "/usr/lib/x.so");
    f[2] = (struct gen_field){"\x03\x02\x04\x01\x02\x03\x04\x00\x02\xaa\xbb", 11};
    assert_int_equal(ima_gen_add(&g, 10, "ima-sig", f, 3, false), 0);
    f[2] = (struct gen_field){"", 0};
    f[3] = (struct gen_field){"", 0};
    f[4] = (struct gen_field){"", 0};
    assert_int_equal(ima_gen_add(&g, 11, "ima-modsig", f, 5, false), 0);
    f[0] = gen_dng(d, "sha256:", dg, 32);
    f[1] = gen_str(s1, "/etc/f");
    f[2] = (struct gen_field){"", 0};
    f[3] = (struct gen_field){"", 0}; /* no xattrs: empty names */
    f[4] = (struct gen_field){"", 0};
    f[5] = (struct gen_field){"", 0};
    f[6] = (struct gen_field){"\0\0\0\0", 4};
    f[7] = (struct gen_field){gid, 4};
    f[8] = (struct gen_field){mode, 2};
    assert_int_equal(ima_gen_add(&g, 10, "evm-sig", f, 9, false), 0);
    f[0] = gen_str(s2, "/bin/sh:/usr/bin/containerd-shim-runc-v2:/sbin/init:swapper/0");
    f[1] = gen_str(s1, "/kubepods/besteffort/pod1/abc");
    f[2] = gen_dng(d, "sha256:", dg, 32);
    f[3] = gen_str(s1 + 40, "/bin/sh");
    assert_int_equal(ima_gen_add(&g, 10, "ima-cgpath", f, 4, false), 0);

    {
        struct ima_parser p;
        struct ima_entry e;
        size_t off = 0;
        ima_parser_init(&p, 32);
        while (off < g.list.len) {
            int n = ima_parser_next(&p, g.list.data + off, g.list.len - off, &e);
            assert_true(n > 0);
            assert_int_equal(ima_entry_format_ascii(&e, &out), 0);
            off += (size_t)n;
        }
    }
    assert_int_equal(ima_ascii_to_binary((char *)out.data, out.len, &bin, &width, &err), 0);
    assert_int_equal(width, 32);
    assert_int_equal(bin.len, g.list.len);
    assert_memory_equal(bin.data, g.list.data, g.list.len);
    ima_gen_free(&g);
}

static void expect_line_error(const char *line, int code, const char *needle) {
    struct ima_ascii_parser p;
    struct ima_entry e;
    int r;

    ima_ascii_parser_init(&p);
    r = ima_ascii_parse_line(&p, line, strlen(line), 0, &e);
    if (r != code || !strstr(p.err.msg, needle)) {
        fail_msg("\"%s\": got %d \"%s\", wanted %d \"%s\"", line, r, p.err.msg, code, needle);
    }
    ima_ascii_parser_free(&p);
}

static void test_parse_errors(void **state) {
    (void)state;
    expect_line_error("", -EBADMSG, "needs at least 3");
    expect_line_error("x 0000000000000000000000000000000000000000 ima-ng sha1:00 /a", -EBADMSG,
                      "PCR index");
    expect_line_error("24 0000000000000000000000000000000000000000 ima-ng sha1:00 /a", -EBADMSG,
                      "PCR index");
    expect_line_error("10 00 ima-ng sha1:00 /a", -EBADMSG, "hex digits");
    expect_line_error("10 000000000000000000000000000000000000000g ima-ng sha1:00 /a", -EBADMSG,
                      "not hex");
    expect_line_error("10 0000000000000000000000000000000000000000 ima-zz a b", -EBADMSG,
                      "is not known");
    expect_line_error("10 0000000000000000000000000000000000000000 ima-ng /a", -EBADMSG,
                      "has 2 fields, the line has 1");
    expect_line_error("10 0000000000000000000000000000000000000000 ima-ng sha1:00 /a extra",
                      -EBADMSG, "has 2 fields, the line has 3");
    expect_line_error("10 0000000000000000000000000000000000000000 ima-ng sha1:zz /a", -EBADMSG,
                      "field 0 (d-ng) digest is not hex");
    expect_line_error("10 0000000000000000000000000000000000000000 ima-ng 00 /a", -EBADMSG,
                      "field 0 (d-ng) has no algorithm prefix");
    /* Structurally fine, but d-ng's digest is too short for sha1: the binary checks apply. */
    expect_line_error("10 0000000000000000000000000000000000000000 ima-ng sha1:00 /a", -EBADMSG,
                      "digest length does not match");
    /* More parts than any template has fields: never dropped or merged. */
    expect_line_error("10 0000000000000000000000000000000000000000 n|n|n|n|n|n|n|n|n|n|n|n|n|n|n "
                      "a b c d e f g h i j k l m n o p q",
                      -EBADMSG, "more than 18 space-separated parts");
    expect_line_error("10 0000000000000000000000000000000000000000 n|n|n|n|n|n|n|n|n|n|n|n|n|n|n "
                      "a b c d e f g h i j k l m n",
                      -EBADMSG, "has 15 fields, the line has 14");
    expect_line_error("10 0000000000000000000000000000000000000000 evm-sig "
                      "sha1:0000000000000000000000000000000000000000 /a     x 0 0",
                      -EBADMSG, "field 6 (iuid) is not an unsigned number");
    expect_line_error("10 0000000000000000000000000000000000000000 evm-sig "
                      "sha1:0000000000000000000000000000000000000000 /a      0 70000",
                      -EBADMSG, "field 8 (imode)");
}

/* The parts of a line and the caps on it: one space between parts, so an
 * empty template name is an empty part, not a skipped one. */
static void test_parts_and_caps(void **state) {
    static const char head[] = "10 0000000000000000000000000000000000000000 ima-ng "
                               "sha1:0000000000000000000000000000000000000000 ";
    size_t big = IMA_ASCII_LINE_MAX + 1;
    char *line = malloc(big + 1), name[300];
    (void)state;

    expect_line_error("10 0000000000000000000000000000000000000000  sha1:00 /a", -EBADMSG,
                      "template name is empty or longer than 255");
    memset(name, 'n', 256);
    snprintf(name + 256, sizeof(name) - 256, " a b");
    assert_non_null(line);
    snprintf(line, big + 1, "10 0000000000000000000000000000000000000000 %s", name);
    expect_line_error(line, -EBADMSG, "template name is empty or longer than 255");

    /* A path longer than an entry can hold. */
    memcpy(line, head, sizeof(head) - 1);
    memset(line + sizeof(head) - 1, 'a', IMA_TEMPLATE_DATA_MAX + 1000);
    line[sizeof(head) - 1 + IMA_TEMPLATE_DATA_MAX + 1000] = 0;
    expect_line_error(line, -E2BIG, "field 1 (n-ng) is too long");

    /* A line longer than any entry prints as. */
    memset(line + sizeof(head) - 1, 'a', big - (sizeof(head) - 1));
    line[big] = 0;
    snprintf(name, sizeof(name), "line of %zu bytes exceeds %d", big, IMA_ASCII_LINE_MAX);
    expect_line_error(line, -E2BIG, name);
    free(line);
}

static void test_width_must_agree(void **state) {
    const char *text = "10 0000000000000000000000000000000000000000 ima-ng "
                       "sha1:0000000000000000000000000000000000000000 /a\n"
                       "10 0000000000000000000000000000000000000000000000000000000000000000 ima-ng "
                       "sha1:0000000000000000000000000000000000000000 /b\n";
    _cleanup_kbuf_ struct kbuf bin = KBUF_INIT(1 << 20);
    struct ima_error err;
    (void)state;

    assert_int_equal(ima_ascii_to_binary(text, strlen(text), &bin, NULL, &err), -EBADMSG);
    assert_int_equal(err.index, 1);
    assert_int_equal(err.offset, (size_t)(strchr(text, '\n') - text) + 1);
    assert_non_null(strstr(err.msg, "differs from the list's 20"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_kernel_layout),
            cmocka_unit_test(test_parse_back_is_byte_identical),
            cmocka_unit_test(test_parse_errors),
            cmocka_unit_test(test_parts_and_caps),
            cmocka_unit_test(test_width_must_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
