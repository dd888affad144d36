/* SPDX-License-Identifier: Apache-2.0 */
#include "ima-gen.h"

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

static const char *const bank_names[GEN_BANKS] = {"SHA1", "SHA256", "SHA384", "SHA512"};
static const size_t bank_sizes[GEN_BANKS] = {20, 32, 48, 64};

size_t gen_bank_size(int bank) {
    return bank_sizes[bank];
}

void gen_hash(int bank, const void *data, size_t len, uint8_t *out) {
    unsigned int n;

    EVP_Digest(data, len, out, &n, EVP_get_digestbyname(bank_names[bank]), NULL);
}

void ima_gen_init(struct ima_gen *g, uint32_t digest_len, size_t max_bytes) {
    memset(g, 0, sizeof(*g));
    kbuf_init(&g->list, max_bytes);
    g->digest_len = digest_len;
}

void ima_gen_free(struct ima_gen *g) {
    kbuf_free(&g->list);
}

static int put32(struct kbuf *b, uint32_t v) {
    uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return kbuf_append(b, le, 4);
}

int ima_gen_add(struct ima_gen *g, uint32_t pcr, const char *name, const struct gen_field *f,
                size_t nf, bool violation) {
    bool legacy = strcmp(name, "ima") == 0;
    uint8_t data_buf[64 * 1024], digest[64] = {0};
    size_t dlen = 0;
    int list_bank = -1;
    int r;

    for (int b = 0; b < GEN_BANKS; b++) {
        if (bank_sizes[b] == g->digest_len) {
            list_bank = b;
        }
    }
    if (list_bank < 0 || pcr >= GEN_PCRS) {
        return -EINVAL;
    }
    /* The hashed bytes: template data, or for `ima` d || n padded to 256. */
    if (legacy) {
        if (nf != 2 || f[0].len != 20 || f[1].len > 255) {
            return -EINVAL;
        }
        memset(data_buf, 0, 20 + 256);
        memcpy(data_buf, f[0].data, 20);
        memcpy(data_buf + 20, f[1].data, f[1].len);
        dlen = 20 + 256;
    } else {
        for (size_t i = 0; i < nf; i++) {
            uint32_t l = (uint32_t)f[i].len;
            if (dlen + 4 + l > sizeof(data_buf)) {
                return -E2BIG;
            }
            data_buf[dlen] = (uint8_t)l;
            data_buf[dlen + 1] = (uint8_t)(l >> 8);
            data_buf[dlen + 2] = (uint8_t)(l >> 16);
            data_buf[dlen + 3] = (uint8_t)(l >> 24);
            memcpy(data_buf + dlen + 4, f[i].data, l);
            dlen += 4 + l;
        }
    }
    if (!violation) {
        gen_hash(list_bank, data_buf, dlen, digest);
    }
    if ((r = put32(&g->list, pcr)) < 0 || (r = kbuf_append(&g->list, digest, g->digest_len)) < 0 ||
        (r = put32(&g->list, (uint32_t)strlen(name))) < 0 ||
        (r = kbuf_append(&g->list, name, strlen(name))) < 0) {
        return r;
    }
    if (legacy) {
        if ((r = kbuf_append(&g->list, f[0].data, 20)) < 0 ||
            (r = put32(&g->list, (uint32_t)f[1].len)) < 0 ||
            (r = kbuf_append(&g->list, f[1].data, f[1].len)) < 0) {
            return r;
        }
    } else if ((r = put32(&g->list, (uint32_t)dlen)) < 0 ||
               (r = kbuf_append(&g->list, data_buf, dlen)) < 0) {
        return r;
    }
    for (int b = 0; b < GEN_BANKS; b++) {
        uint8_t cat[128], x[64];
        size_t sz = bank_sizes[b];
        if (violation) {
            memset(x, 0xff, sz);
        } else {
            gen_hash(b, data_buf, dlen, x);
        }
        memcpy(cat, g->pcr[b][pcr], sz);
        memcpy(cat + sz, x, sz);
        gen_hash(b, cat, 2 * sz, g->pcr[b][pcr]);
    }
    g->touched |= 1u << pcr;
    g->count++;
    return 0;
}

struct gen_field gen_str(char *storage, const char *s) {
    size_t n = strlen(s) + 1;
    memcpy(storage, s, n);
    return (struct gen_field){storage, n};
}

struct gen_field gen_dng(uint8_t *storage, const char *prefix, const uint8_t *digest, size_t dlen) {
    size_t p = strlen(prefix) + 1;
    memcpy(storage, prefix, p);
    memcpy(storage + p, digest, dlen);
    return (struct gen_field){storage, p + dlen};
}
