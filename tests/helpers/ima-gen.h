/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_TESTS_IMA_GEN_H
#define KIMA_TESTS_IMA_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Test-side writer of binary measurement lists. It computes the template
 * digests and the expected PCR values itself, with OpenSSL's EVP_Digest and
 * none of ima/, so tests compare the library against an independent
 * computation. */

#define GEN_BANKS 4 /* sha1, sha256, sha384, sha512: the order of enum ima_hash_alg */
#define GEN_PCRS  24

struct gen_field {
    const void *data;
    size_t len;
};

struct ima_gen {
    struct kbuf list;
    uint32_t digest_len;
    uint64_t count;
    uint8_t pcr[GEN_BANKS][GEN_PCRS][64];
    uint32_t touched;
};

/* digest_len 20, 32, 48 or 64 picks the list's bank. */
void ima_gen_init(struct ima_gen *g, uint32_t digest_len, size_t max_bytes);
void ima_gen_free(struct ima_gen *g);

/* Append an entry of template `name` with these fields. For name "ima",
 * fields are d (20 bytes) and n (no NUL). A violation records a zero template
 * digest and extends 0xff. Returns 0 or a negative errno. */
int ima_gen_add(struct ima_gen *g, uint32_t pcr, const char *name, const struct gen_field *f,
                size_t nf, bool violation);

/* Size of a bank's digest and its one-shot hash (EVP_Digest). */
size_t gen_bank_size(int bank);
void gen_hash(int bank, const void *data, size_t len, uint8_t *out);

/* Field builders into caller storage; each returns the field. */
struct gen_field gen_str(char *storage, const char *s); /* s + NUL */
struct gen_field gen_dng(uint8_t *storage, const char *prefix, const uint8_t *digest,
                         size_t dlen); /* "prefix" + NUL + digest, e.g. prefix "sha256:" */

#endif
