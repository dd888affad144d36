/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_AGENT_POSITION_H
#define KIMA_AGENT_POSITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"

/* Where the agent stands in the node's IMA measurement list: the list's
 * files, the byte offset of the verifier's next entry (kept in
 * state-dir/position across restarts within one boot), and the offset of
 * every entry of the last batch sent, so that whatever index the verifier
 * asks for next is found without parsing the list from the start. */

/* New measurements one round sends at most. */
#define IMA_SEND_MAX (64u << 20)

struct list_position {
    char list_path[4200], count_path[4200];
    uint32_t digest_len;
    /* Where the verifier's next index starts in the list. */
    uint64_t known_index, known_offset;
    /* Entry offsets of the last batch sent: [from, from + n]. */
    uint64_t batch_from, *batch_offsets;
    size_t batch_n;
};

/* The list under securityfs: the per-bank SHA-256 list when the kernel has
 * one (>= 6.10), else the SHA-1 one. Position 0, no batch. */
void position_init(struct list_position *p, const char *securityfs);
/* Read the list of the bank `alg` from now on: the kernel's per-bank list
 * of that algorithm (>= 6.10), else the SHA-1 one, which is the only list
 * of older kernels (the verifier replays any bank from it). When that is
 * another list than the one read so far, the remembered offsets are
 * dropped (they are offsets in the other list) and true is returned. */
bool position_use_bank(struct list_position *p, const char *securityfs, enum ima_hash_alg alg);
/* Frees the batch index; `p` may then be initialised again. */
void position_free(struct list_position *p);

/* The list started again (a reboot): forget the position and the batch. */
void position_restart(struct list_position *p);

/* The byte offset of entry `index`: the verifier's known position, an entry
 * of the last batch, or found by parsing the list from the start (after a
 * restart without a saved position). -ERANGE when the list has fewer
 * entries (logged), or the negative errno of reading it. */
int position_offset_of(const struct list_position *p, uint64_t index, uint64_t *ret);

/* Read the list from byte `offset` to its end, at most IMA_SEND_MAX bytes
 * (-EFBIG, logged, past that). The caller frees *ret with free(). */
int position_read_from(const struct list_position *p, uint64_t offset, uint8_t **ret,
                       size_t *ret_len);

/* Remember the offset of every whole entry of the batch `d` (len bytes,
 * entry `from` at list offset `offset`), replacing the last batch's. When
 * memory runs out the old index stays, or the new one is cut short: the
 * list is parsed instead for what it lacks. */
void position_index_batch(struct list_position *p, uint64_t from, uint64_t offset, const uint8_t *d,
                          size_t len);

/* ima/runtime_measurements_count, 0 when unreadable. */
uint64_t position_read_count(const struct list_position *p);

/* The boot id from `file` (at most 64 characters, trailing newline and
 * spaces cut), or "unknown". */
void position_boot_id(const char *file, char *out, size_t outsz);

/* state-dir/position: "<index> <offset> <boot id>", replaced atomically;
 * a failure is ignored (the list is parsed again after a restart). */
void position_save(const struct list_position *p, const char *state_dir, const char *boot_id);
/* Take the saved position when it was saved in this boot. */
void position_load(struct list_position *p, const char *state_dir, const char *boot_id);

#endif
