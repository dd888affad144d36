/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the ASCII measurement list reader, and the round trip
 * through rendering. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ascii-parse.h"
#include "ascii.h"
#include "verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct ima_ascii_parser p, check;
    struct ima_entry e, e2;
    struct kbuf out = KBUF_INIT(1 << 22), bin = KBUF_INIT(1 << 22);
    const char *text = (const char *)data;
    size_t off = 0;

    ima_ascii_parser_init(&p);
    ima_ascii_parser_init(&check);
    while (off < size) {
        const char *nl = memchr(text + off, '\n', size - off);
        size_t len = nl ? (size_t)(nl - (text + off)) : size - off;

        if (ima_ascii_parse_line(&p, text + off, len, off, &e) == 0) {
            (void)ima_entry_verify_digest(&e);
            kbuf_reset(&out);
            /* What was read must print, and the print must read back to the
             * same binary entry (hex case and PCR spacing may differ from the
             * input, so compare the canonical forms). */
            if (ima_entry_format_ascii(&e, &out) < 0) {
                abort();
            }
            kbuf_reset(&bin);
            if (kbuf_append(&bin, p.storage.data, p.storage.len) < 0 ||
                ima_ascii_parse_line(&check, (const char *)out.data, out.len - 1, 0, &e2) < 0 ||
                check.storage.len != bin.len ||
                memcmp(check.storage.data, bin.data, bin.len) != 0) {
                abort();
            }
        }
        off += len + (nl ? 1 : 0);
    }
    ima_ascii_parser_free(&p);
    ima_ascii_parser_free(&check);
    kbuf_free(&out);
    kbuf_free(&bin);
    return 0;
}
