/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include "fields.h"
#include "template.h"

static void check(const char *name, bool known, bool legacy, const char *ids) {
    struct ima_template t;
    char got[256] = "";
    size_t n = 0;

    assert_int_equal(ima_template_resolve(name, strlen(name), &t), 0);
    assert_int_equal(t.known, known);
    assert_int_equal(t.legacy, legacy);
    for (unsigned i = 0; i < t.nfields; i++) {
        n += (size_t)snprintf(got + n, sizeof(got) - n, "%s%s", i ? "|" : "",
                              ima_field_name(t.fields[i]));
    }
    assert_string_equal(got, ids);
}

static void test_builtins(void **state) {
    (void)state;
    check("ima", true, true, "d|n");
    check("ima-ng", true, false, "d-ng|n-ng");
    check("ima-ngv2", true, false, "d-ngv2|n-ng");
    check("ima-sig", true, false, "d-ng|n-ng|sig");
    check("ima-sigv2", true, false, "d-ngv2|n-ng|sig");
    check("ima-buf", true, false, "d-ng|n-ng|buf");
    check("ima-modsig", true, false, "d-ng|n-ng|sig|d-modsig|modsig");
    check("evm-sig", true, false,
          "d-ng|n-ng|evmsig|xattrnames|xattrlengths|xattrvalues|iuid|igid|imode");
    check("ima-cgpath", true, false, "dep|cg-path|d-ng|n-ng");
    check("ima-dep-cgn", true, false, "dep|cgn|d-ng|n-ng");
}

static void test_custom_and_unknown(void **state) {
    struct ima_template t;
    (void)state;

    check("d-ng|n-ng|sig", true, false, "d-ng|n-ng|sig");
    check("n", true, false, "n");
    /* "d|n" as a name is a custom format, not the legacy layout. */
    check("d|n", true, false, "d|n");
    check("ima-foo", false, false, "");
    check("d-ng||n-ng", false, false, "");
    check("d-ng|", false, false, "");
    check("d-ng|n-ng|somethingmuchtoolong", false, false, "");
    /* 16 fields is one more than the kernel allows. */
    check("n|n|n|n|n|n|n|n|n|n|n|n|n|n|n|n", false, false, "");
    check("n|n|n|n|n|n|n|n|n|n|n|n|n|n|n", true, false, "n|n|n|n|n|n|n|n|n|n|n|n|n|n|n");
    assert_int_equal(ima_template_resolve("", 0, &t), -EINVAL);
    {
        char big[300];
        memset(big, 'a', sizeof(big));
        assert_int_equal(ima_template_resolve(big, 256, &t), -EINVAL);
    }
}

static void test_decode_digest(void **state) {
    struct ima_digest_field d;
    const char *why = NULL;
    uint8_t buf[128];
    struct ima_field f = {.id = IMA_FIELD_D_NG, .data = buf};
    (void)state;

    memcpy(buf, "sha256:\0", 8);
    memset(buf + 8, 0xab, 32);
    f.len = 40;
    assert_int_equal(ima_field_decode_digest(&f, &d, &why), 0);
    assert_int_equal(d.algo_len, 6);
    assert_memory_equal(d.algo, "sha256", 6);
    assert_int_equal(d.digest_len, 32);
    assert_int_equal(d.digest[0], 0xab);

    f.len = 39; /* digest one byte short */
    assert_int_equal(ima_field_decode_digest(&f, &d, &why), -EBADMSG);
    assert_string_equal(why, "digest length does not match its algorithm");

    memcpy(buf, "sha256\0\0", 8); /* no ':' */
    f.len = 40;
    assert_int_equal(ima_field_decode_digest(&f, &d, &why), -EBADMSG);

    memcpy(buf, "blake3:\0", 8);
    assert_int_equal(ima_field_decode_digest(&f, &d, &why), -EBADMSG);
    assert_string_equal(why, "unknown digest algorithm");

    memcpy(buf, "sm3:\0", 5);
    memset(buf + 5, 1, 32);
    f.len = 37;
    assert_int_equal(ima_field_decode_digest(&f, &d, &why), 0);

    f.id = IMA_FIELD_D_NGV2;
    memcpy(buf, "verity:sha256:\0", 15);
    memset(buf + 15, 2, 32);
    f.len = 47;
    assert_int_equal(ima_field_decode_digest(&f, &d, &why), 0);
    assert_memory_equal(d.type, "verity", 6);
    assert_memory_equal(d.algo, "sha256", 6);
    memcpy(buf, "other:sha256:\0", 14);
    f.len = 46;
    assert_int_equal(ima_field_decode_digest(&f, &d, &why), -EBADMSG);

    f.id = IMA_FIELD_D_MODSIG;
    f.len = 0;
    assert_int_equal(ima_field_decode_digest(&f, &d, &why), 0);
    assert_int_equal(d.digest_len, 0);
    f.id = IMA_FIELD_D_NG; /* an empty d-ng is not allowed */
    assert_int_equal(ima_field_decode_digest(&f, &d, &why), -EBADMSG);

    f.id = IMA_FIELD_D;
    f.len = 20;
    assert_int_equal(ima_field_decode_digest(&f, &d, &why), 0);
    f.len = 21;
    assert_int_equal(ima_field_decode_digest(&f, &d, &why), -EBADMSG);
}

static void test_validate(void **state) {
    const char *why;
    struct ima_field f = {.id = IMA_FIELD_N_NG};
    (void)state;

    f.data = (const uint8_t *)"/bin/sh";
    f.len = 8;
    assert_int_equal(ima_field_validate(&f, false, &why), 0);
    f.len = 7;
    assert_int_equal(ima_field_validate(&f, false, &why), -EBADMSG);
    f.data = (const uint8_t *)"/my file";
    f.len = 9;
    assert_int_equal(ima_field_validate(&f, false, &why), -EBADMSG);
    assert_string_equal(why, "string field contains a space");
    f.data = (const uint8_t *)"/bin\0/sh";
    f.len = 9;
    assert_int_equal(ima_field_validate(&f, false, &why), -EBADMSG);
    f.id = IMA_FIELD_N; /* legacy n: no NUL at all */
    f.data = (const uint8_t *)"/bin/sh";
    f.len = 7;
    assert_int_equal(ima_field_validate(&f, true, &why), 0);
    f.len = 8;
    assert_int_equal(ima_field_validate(&f, true, &why), -EBADMSG);
    f.id = IMA_FIELD_IUID;
    f.len = 3;
    assert_int_equal(ima_field_validate(&f, false, &why), -EBADMSG);
    f.len = 4;
    assert_int_equal(ima_field_validate(&f, false, &why), 0);
    f.id = IMA_FIELD_XATTRLENGTHS;
    f.len = 6;
    assert_int_equal(ima_field_validate(&f, false, &why), -EBADMSG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_builtins),
            cmocka_unit_test(test_custom_and_unknown),
            cmocka_unit_test(test_decode_digest),
            cmocka_unit_test(test_validate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
