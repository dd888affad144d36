/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include "base64.h"

/* RFC 4648 section 10 test vectors. */
static const struct {
    const char *plain, *b64;
} vectors[] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
};

static void test_rfc4648_vectors(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        char enc[32];
        uint8_t dec[32];
        size_t n = strlen(vectors[i].plain);

        assert_int_equal(base64_encoded_len(n), strlen(vectors[i].b64));
        assert_int_equal(base64_encode(vectors[i].plain, n, enc), strlen(vectors[i].b64));
        assert_string_equal(enc, vectors[i].b64);
        assert_int_equal(base64_decode(enc, strlen(enc), dec, sizeof(dec)), (int)n);
        assert_memory_equal(dec, vectors[i].plain, n);
    }
}

static void test_binary_roundtrip(void **state) {
    uint8_t in[1000], out[1000];
    char enc[1400];
    (void)state;

    for (int i = 0; i < 1000; i++) {
        in[i] = (uint8_t)(i * 7 + 3);
    }
    for (size_t n = 0; n < 1000; n += 37) {
        size_t e = base64_encode(in, n, enc);
        assert_true(base64_decoded_max(e) >= n);
        assert_int_equal(base64_decode(enc, e, out, sizeof(out)), (int)n);
        assert_memory_equal(in, out, n);
    }
}

static void test_rejects(void **state) {
    uint8_t out[16];
    (void)state;

    assert_int_equal(base64_decode("Zg=", 3, out, 16), -EINVAL);      /* length */
    assert_int_equal(base64_decode("Zg==Zg==", 8, out, 16), -EINVAL); /* padding mid-way */
    assert_int_equal(base64_decode("Z===", 4, out, 16), -EINVAL);     /* three pads */
    assert_int_equal(base64_decode("Zm9v\n", 5, out, 16), -EINVAL);   /* whitespace */
    assert_int_equal(base64_decode("Zm-v", 4, out, 16), -EINVAL);     /* url alphabet */
    assert_int_equal(base64_decode("Zh==", 4, out, 16), -EINVAL);     /* non-canonical bits */
    assert_int_equal(base64_decode("Zm9=", 4, out, 16), -EINVAL);     /* non-canonical bits */
    assert_int_equal(base64_decode("Zm=v", 4, out, 16), -EINVAL);
    assert_int_equal(base64_decode("Zm9vYmFy", 8, out, 5), -E2BIG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_rfc4648_vectors),
            cmocka_unit_test(test_binary_roundtrip),
            cmocka_unit_test(test_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
