/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_IMA_LIST_H
#define KIMA_IMA_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fields.h"
#include "hash.h"
#include "template.h"

/* The binary measurement list (binary_runtime_measurements[_<bank>]), parsed
 * from a caller's buffer without copying: an entry's pointers stay valid as
 * long as the buffer does. Layout (docs/formats.md section 1):
 *   u32 pcr | digest[D] | u32 name_len | name |
 *   name == "ima" ? d[20] u32 n_len n : u32 data_len | (u32 len | bytes)...
 * All integers little-endian. */

#define IMA_PCR_COUNT           24 /* a PC-client TPM's PCRs 0..23 */
#define IMA_EVENT_NAME_MAX      255
#define IMA_TEMPLATE_DATA_MAX   (1u << 20)
#define IMA_ENTRIES_MAX_DEFAULT (UINT64_C(1) << 26)
/* Largest bytes the `ima` template hashes: d || name padded to 256. */
#define IMA_LEGACY_HASHED_LEN (20 + IMA_EVENT_NAME_MAX + 1)

struct ima_entry {
    uint64_t index;  /* position in the list, from 0 */
    uint64_t offset; /* byte offset of the entry in the list */
    uint32_t size;   /* bytes the entry takes in the list */
    uint32_t pcr;
    const uint8_t *digest; /* template digest as recorded */
    uint32_t digest_len;
    const char *name; /* template name, not NUL-terminated */
    uint32_t name_len;
    /* Template data: for `ima`, the bytes d[20] | u32 n_len | n. */
    const uint8_t *data;
    uint32_t data_len;
    bool legacy;    /* the `ima` template */
    bool known;     /* every field id is known (see struct ima_template) */
    bool violation; /* all-zero template digest */
    uint8_t nfields;
    struct ima_field fields[IMA_FIELDS_MAX];
};

/* Why parsing stopped. `msg` is a static-size, plain-ASCII description; with
 * ima_error_format() it reads "entry 12 at byte offset 4096: ...". */
struct ima_error {
    int code; /* the negative errno returned */
    uint64_t index;
    uint64_t offset;
    char msg[160];
};

struct ima_parser {
    uint32_t digest_len;
    uint64_t index;  /* index of the next entry */
    uint64_t offset; /* list byte offset of the next entry */
    uint64_t max_entries;
    struct ima_error err;
    /* The last template name resolved; a list rarely switches templates. */
    uint32_t cache_len;
    char cache_name[IMA_TEMPLATE_NAME_MAX];
    struct ima_template cache;
};

/* digest_len: 20, 32, 48 or 64. 0 or -EINVAL. */
int ima_parser_init(struct ima_parser *p, uint32_t digest_len);

/* Resume at entry `index`, which starts at list byte offset `offset`: the
 * next buffer given to ima_parser_next() must start there. */
void ima_parser_seek(struct ima_parser *p, uint64_t index, uint64_t offset);

/* Parse the entry at the start of buf[0..len). Returns the bytes it takes
 * (> 0) and fills *ret_entry, or:
 *   -EAGAIN   the buffer ends inside the entry (a live list still growing, or a
 *             truncated file): give more bytes; p->err says how many are there;
 *   -EBADMSG  the entry is malformed;
 *   -E2BIG    a length or the entry count is over its cap.
 * On error p->err names the entry index and byte offset and the parser does
 * not move. */
int ima_parser_next(struct ima_parser *p, const uint8_t *buf, size_t len,
                    struct ima_entry *ret_entry);

/* Move the parser forward to entry `index` when only the index is known: buf
 * starts at the parser's position and entries are parsed (not verified) and
 * passed over. Returns the bytes skipped (the start of entry `index` in buf),
 * or the parser's negative errno (-EAGAIN when buf ends first: the parser then
 * stands after the last whole entry, as after any error); -EINVAL if
 * the parser is already past `index`. */
long ima_parser_skip_to(struct ima_parser *p, const uint8_t *buf, size_t len, uint64_t index);

/* "entry N at byte offset O: msg" into out. Returns out. */
char *ima_error_format(const struct ima_error *err, char *out, size_t outsz);

/* Find the template digest width of a whole list held in buf: the width at
 * which every entry parses and every non-violation template digest verifies
 * (a trailing partial entry is allowed here; the real parse reports it). An
 * empty list is 20. Returns 0, or -EBADMSG when no width fits, with *ret_err
 * (if given) describing the failure at the width that parsed the most
 * entries. */
int ima_list_detect_digest_len(const uint8_t *buf, size_t len, uint32_t *ret_digest_len,
                               struct ima_error *ret_err);

/* The digest width named by a per-bank list file name ("..._sha256"), or 0
 * when the name has no such suffix. */
uint32_t ima_list_digest_len_from_filename(const char *path);

/* The first field with this id, or NULL. */
const struct ima_field *ima_entry_field(const struct ima_entry *e, enum ima_field_id id);

#endif
