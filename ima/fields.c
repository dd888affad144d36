/* SPDX-License-Identifier: Apache-2.0 */
#include "fields.h"

#include <errno.h>
#include <string.h>

/* The kernel's hash_algo_name[] and hash_digest_size[] (crypto/hash_info.c). */
static const struct {
    const char *name;
    uint8_t size;
} kernel_algos[] = {
        {"md4", 16},      {"md5", 16},      {"sha1", 20},        {"rmd160", 20},
        {"sha256", 32},   {"sha384", 48},   {"sha512", 64},      {"sha224", 28},
        {"rmd128", 16},   {"rmd256", 32},   {"rmd320", 40},      {"wp256", 32},
        {"wp384", 48},    {"wp512", 64},    {"tgr128", 16},      {"tgr160", 20},
        {"tgr192", 24},   {"sm3", 32},      {"streebog256", 32}, {"streebog512", 64},
        {"sha3-256", 32}, {"sha3-384", 48}, {"sha3-512", 64},
};

size_t ima_algo_digest_size(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof(kernel_algos) / sizeof(kernel_algos[0]); i++) {
        if (strlen(kernel_algos[i].name) == len && memcmp(kernel_algos[i].name, name, len) == 0) {
            return kernel_algos[i].size;
        }
    }
    return 0;
}

static int why(const char **ret_why, const char *reason) {
    if (ret_why) {
        *ret_why = reason;
    }
    return -EBADMSG;
}

int ima_field_decode_digest(const struct ima_field *f, struct ima_digest_field *ret,
                            const char **ret_why) {
    struct ima_digest_field d = {.type = "", .algo = "", .digest = f->data};
    const uint8_t *nul;
    size_t prefix, size;

    switch (f->id) {
    case IMA_FIELD_D:
        if (f->len != 20) {
            return why(ret_why, "field d is not 20 bytes");
        }
        d.algo = "sha1";
        d.algo_len = 4;
        d.digest_len = 20;
        *ret = d;
        return 0;
    case IMA_FIELD_D_MODSIG:
        if (f->len == 0) {
            *ret = d;
            return 0;
        }
        break;
    case IMA_FIELD_D_NG:
    case IMA_FIELD_D_NGV2:
        break;
    default:
        return why(ret_why, "not a digest field");
    }

    /* "algo:\0" (or "type:algo:\0"), the longest algorithm name being 11. */
    nul = memchr(f->data, 0, f->len < 32 ? f->len : 32);
    if (!nul) {
        return why(ret_why, "digest prefix has no NUL terminator");
    }
    prefix = (size_t)(nul - f->data);
    if (prefix < 2 || f->data[prefix - 1] != ':') {
        return why(ret_why, "digest prefix does not end in ':'");
    }
    d.algo = (const char *)f->data;
    d.algo_len = prefix - 1;
    if (f->id == IMA_FIELD_D_NGV2) {
        const char *colon = memchr(d.algo, ':', d.algo_len);
        if (!colon) {
            return why(ret_why, "d-ngv2 prefix has no digest type");
        }
        d.type = d.algo;
        d.type_len = (size_t)(colon - d.algo);
        if (!((d.type_len == 3 && memcmp(d.type, "ima", 3) == 0) ||
              (d.type_len == 6 && memcmp(d.type, "verity", 6) == 0))) {
            return why(ret_why, "d-ngv2 digest type is neither ima nor verity");
        }
        d.algo = colon + 1;
        d.algo_len -= d.type_len + 1;
    }
    size = ima_algo_digest_size(d.algo, d.algo_len);
    if (size == 0) {
        return why(ret_why, "unknown digest algorithm");
    }
    d.digest = f->data + prefix + 1;
    d.digest_len = f->len - prefix - 1;
    if (d.digest_len != size) {
        return why(ret_why, "digest length does not match its algorithm");
    }
    *ret = d;
    return 0;
}

int ima_field_validate(const struct ima_field *f, bool legacy, const char **ret_why) {
    struct ima_digest_field d;

    switch (ima_field_fmt(f->id)) {
    case IMA_FMT_DIGEST:
    case IMA_FMT_DIGEST_WITH_ALGO:
    case IMA_FMT_DIGEST_WITH_TYPE_ALGO:
        return ima_field_decode_digest(f, &d, ret_why);
    case IMA_FMT_STRING:
        /* The kernel turns spaces into '_' in every string field
         * (ima_write_template_field_data), so a space was not written by a
         * kernel, and would make the ASCII list ambiguous. */
        if (memchr(f->data, ' ', f->len)) {
            return why(ret_why, "string field contains a space");
        }
        if (legacy) {
            /* The `ima` template's n: no NUL at all, at most 255 bytes. */
            if (f->len > 255) {
                return why(ret_why, "event name longer than 255 bytes");
            }
            if (memchr(f->data, 0, f->len)) {
                return why(ret_why, "event name contains a NUL byte");
            }
            return 0;
        }
        if (f->len == 0) {
            return 0;
        }
        if (f->data[f->len - 1] != 0) {
            return why(ret_why, "string field is not NUL-terminated");
        }
        if (memchr(f->data, 0, f->len - 1)) {
            return why(ret_why, "string field contains a NUL byte before its end");
        }
        return 0;
    case IMA_FMT_UINT:
        if (f->len != 0 && f->len != 1 && f->len != 2 && f->len != 4 && f->len != 8) {
            return why(ret_why, "integer field is not 0, 1, 2, 4 or 8 bytes");
        }
        return 0;
    case IMA_FMT_HEX:
        if (f->id == IMA_FIELD_XATTRLENGTHS && f->len % 4) {
            return why(ret_why, "xattrlengths is not a multiple of 4 bytes");
        }
        return 0;
    }
    return 0;
}

void ima_field_string(const struct ima_field *f, const char **ret_s, size_t *ret_len) {
    size_t len = f->len;

    if (len > 0 && f->data[len - 1] == 0) {
        len--;
    }
    *ret_s = (const char *)f->data;
    *ret_len = len;
}

uint64_t ima_field_uint(const struct ima_field *f) {
    uint64_t v = 0;

    for (uint32_t i = f->len; i > 0; i--) {
        v = v << 8 | f->data[i - 1];
    }
    return v;
}
