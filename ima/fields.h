/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_IMA_FIELDS_H
#define KIMA_IMA_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "template.h"

/* One field of an entry's template data. `data` points into the caller's
 * buffer (the list), not NUL-terminated unless the bytes are. */
struct ima_field {
    uint8_t id; /* enum ima_field_id */
    uint32_t len;
    const uint8_t *data;
};

/* A decoded digest field (d, d-ng, d-ngv2, d-modsig). `algo` is the kernel's
 * hash_algo_name ("sha256", "sm3", ...), `type` is "ima" or "verity" for
 * d-ngv2 and empty otherwise; both point into the field data. */
struct ima_digest_field {
    const char *type;
    size_t type_len;
    const char *algo;
    size_t algo_len;
    const uint8_t *digest;
    size_t digest_len;
};

/* Digest size of a kernel hash algorithm name, 0 when kima does not know it. */
size_t ima_algo_digest_size(const char *name, size_t len);

/* Decode a digest field. `d` is 20 raw bytes (algo "sha1"); d-ng is
 * "algo:\0"+digest; d-ngv2 "type:algo:\0"+digest. An empty d-modsig decodes to
 * digest_len 0. Returns 0, or -EBADMSG with a static reason in *ret_why when
 * ret_why is not NULL. */
int ima_field_decode_digest(const struct ima_field *f, struct ima_digest_field *ret,
                            const char **ret_why);

/* Check a field's bytes against its format (string NUL-terminated without
 * interior NUL, unsigned of 0/1/2/4/8 bytes, digests as above). 0 or -EBADMSG
 * with a static reason. */
int ima_field_validate(const struct ima_field *f, bool legacy, const char **ret_why);

/* A string field as (pointer, length) without its terminating NUL. */
void ima_field_string(const struct ima_field *f, const char **ret_s, size_t *ret_len);

/* An IMA_FMT_UINT field's value; 0 for an empty field. */
uint64_t ima_field_uint(const struct ima_field *f);

#endif
