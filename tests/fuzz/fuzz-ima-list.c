/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the binary measurement list parser and everything that
 * consumes its entries (digest check, replay, ASCII rendering, attribution).
 * The first byte picks the digest width, or auto-detection. */
#include <stddef.h>
#include <stdint.h>

#include "ascii.h"
#include "bootaggr.h"
#include "cgroup.h"
#include "replay.h"
#include "verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const uint32_t widths[] = {0, 20, 32, 48, 64};
    static uint8_t pcrs[IMA_HASH_COUNT][IMA_BOOT_PCRS][IMA_DIGEST_MAX];
    struct ima_parser p;
    struct ima_replay r;
    struct ima_entry e;
    struct kbuf out = KBUF_INIT(1 << 22);
    uint32_t width;
    size_t off = 0;

    if (size < 1) {
        return 0;
    }
    width = widths[data[0] % 5];
    data++;
    size--;
    if (width == 0 && ima_list_detect_digest_len(data, size, &width, NULL) < 0) {
        return 0;
    }
    ima_parser_init(&p, width);
    ima_replay_init(&r, IMA_BANKS_ALL);
    while (off < size) {
        struct ima_pod_ref ref;
        enum ima_bootaggr_result br;
        int n = ima_parser_next(&p, data + off, size - off, &e);
        if (n <= 0) {
            break;
        }
        (void)ima_replay_entry(&r, &e);
        (void)ima_entry_verify_digest(&e);
        ima_entry_attribute(&e, &ref);
        ima_entry_check_boot_aggregate(&e, pcrs, IMA_BANKS_ALL, &br);
        kbuf_reset(&out);
        ima_entry_format_ascii(&e, &out);
        off += (size_t)n;
    }
    kbuf_free(&out);
    return 0;
}
