/* SPDX-License-Identifier: Apache-2.0 */
#include "verify.h"

#include <errno.h>
#include <string.h>

void ima_entry_hashed_data(const struct ima_entry *e, uint8_t scratch[IMA_LEGACY_HASHED_LEN],
                           const uint8_t **ret_data, size_t *ret_len) {
    if (!e->legacy) {
        *ret_data = e->data;
        *ret_len = e->data_len;
        return;
    }
    /* d[20] then the name in a zeroed 256-byte buffer (kernel
     * IMA_EVENT_NAME_LEN_MAX + 1); the parser capped the name at 255. */
    memset(scratch, 0, IMA_LEGACY_HASHED_LEN);
    memcpy(scratch, e->fields[0].data, 20);
    memcpy(scratch + 20, e->fields[1].data, e->fields[1].len);
    *ret_data = scratch;
    *ret_len = IMA_LEGACY_HASHED_LEN;
}

void ima_entry_template_hash(const struct ima_entry *e, enum ima_hash_alg alg, uint8_t *out) {
    uint8_t scratch[IMA_LEGACY_HASHED_LEN];
    const uint8_t *data;
    size_t len;

    ima_entry_hashed_data(e, scratch, &data, &len);
    ima_hash(alg, data, len, out);
}

int ima_entry_verify_digest(const struct ima_entry *e) {
    uint8_t md[IMA_DIGEST_MAX];
    enum ima_hash_alg alg;

    if (e->violation) {
        return 0;
    }
    if (ima_hash_from_size(e->digest_len, &alg) < 0) {
        return -EBADMSG;
    }
    ima_entry_template_hash(e, alg, md);
    return memcmp(md, e->digest, e->digest_len) == 0 ? 0 : -EBADMSG;
}
