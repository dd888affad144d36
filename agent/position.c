/* SPDX-License-Identifier: Apache-2.0 */
#include "position.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "list.h"
#include "log.h"
#include "macro.h"
#include "parse.h"

void position_init(struct list_position *p, const char *securityfs) {
    char per_bank[4200];
    struct stat st;

    *p = (struct list_position){0};
    snprintf(per_bank, sizeof(per_bank), "%s/ima/binary_runtime_measurements_sha256", securityfs);
    if (stat(per_bank, &st) == 0) {
        snprintf(p->list_path, sizeof(p->list_path), "%s", per_bank);
        p->digest_len = 32;
    } else {
        snprintf(p->list_path, sizeof(p->list_path), "%s/ima/binary_runtime_measurements",
                 securityfs);
        p->digest_len = 20;
    }
    snprintf(p->count_path, sizeof(p->count_path), "%s/ima/runtime_measurements_count", securityfs);
}

bool position_use_bank(struct list_position *p, const char *securityfs, enum ima_hash_alg alg) {
    char path[4200];
    uint32_t digest_len = (uint32_t)ima_hash_size(alg);
    struct stat st;

    snprintf(path, sizeof(path), "%s/ima/binary_runtime_measurements_%s", securityfs,
             ima_hash_name(alg));
    if (stat(path, &st) < 0) {
        snprintf(path, sizeof(path), "%s/ima/binary_runtime_measurements", securityfs);
        digest_len = 20;
    }
    if (strcmp(path, p->list_path) == 0 && digest_len == p->digest_len) {
        return false;
    }
    snprintf(p->list_path, sizeof(p->list_path), "%s", path);
    p->digest_len = digest_len;
    position_restart(p);
    log_info("the quote covers the %s bank: reading %s (template digests of %u bytes)",
             ima_hash_name(alg), p->list_path, (unsigned)digest_len);
    return true;
}

void position_free(struct list_position *p) {
    if (!p) {
        return;
    }
    free(p->batch_offsets);
    p->batch_offsets = NULL;
}

void position_restart(struct list_position *p) {
    p->known_index = p->known_offset = 0;
    free(p->batch_offsets);
    p->batch_offsets = NULL;
}

void position_save(const struct list_position *p, const char *state_dir, const char *boot_id) {
    char path[4200], text[200];
    int n;

    snprintf(path, sizeof(path), "%s/position", state_dir);
    n = snprintf(text, sizeof(text), "%llu %llu %s\n", (unsigned long long)p->known_index,
                 (unsigned long long)p->known_offset, boot_id);
    if (n > 0 && (size_t)n < sizeof(text)) {
        (void)write_file_atomic(path, text, (size_t)n, 0600);
    }
}

void position_load(struct list_position *p, const char *state_dir, const char *boot_id) {
    char path[4200], b[128] = "";
    unsigned long long idx, off;
    FILE *f;

    snprintf(path, sizeof(path), "%s/position", state_dir);
    f = fopen(path, "r");
    if (f && fscanf(f, "%llu %llu %127s", &idx, &off, b) == 3 && strcmp(b, boot_id) == 0) {
        p->known_index = idx;
        p->known_offset = off;
    }
    if (f) {
        fclose(f);
    }
}

void position_boot_id(const char *file, char *out, size_t outsz) {
    _cleanup_free_ uint8_t *d = NULL;
    size_t len;

    if (read_file_capped(file, 256, &d, &len) < 0) {
        snprintf(out, outsz, "unknown");
        return;
    }
    while (len && (d[len - 1] == '\n' || d[len - 1] == ' ')) {
        len--;
    }
    snprintf(out, outsz, "%.*s", (int)(len < 64 ? len : 64), (char *)d);
}

uint64_t position_read_count(const struct list_position *p) {
    _cleanup_free_ uint8_t *d = NULL;
    size_t len;
    uint64_t v = 0;

    if (read_file_capped(p->count_path, 64, &d, &len) == 0) {
        while (len && (d[len - 1] == '\n')) {
            len--;
        }
        parse_u64_n((const char *)d, len, &v);
    }
    return v;
}

int position_offset_of(const struct list_position *p, uint64_t index, uint64_t *ret) {
    struct ima_parser parser;
    _cleanup_free_ uint8_t *data = NULL;
    size_t len;
    long n;
    int r;

    struct stat st;

    /* A remembered offset holds only while the list is at least that long
     * (after a reboot a new list starts). securityfs files report size 0:
     * there the agent restarts with the node anyway. */
    if (stat(p->list_path, &st) < 0) {
        return -errno;
    }
    if (st.st_size == 0) {
        st.st_size = INT64_MAX;
    }
    if (index == p->known_index && p->known_offset <= (uint64_t)st.st_size) {
        *ret = p->known_offset;
        return 0;
    }
    if (p->batch_offsets && index >= p->batch_from && index - p->batch_from <= p->batch_n &&
        p->batch_offsets[index - p->batch_from] <= (uint64_t)st.st_size) {
        *ret = p->batch_offsets[index - p->batch_from];
        return 0;
    }
    if (index == 0) {
        *ret = 0;
        return 0;
    }
    r = read_file_capped(p->list_path, SIZE_MAX / 2, &data, &len);
    if (r < 0) {
        return r;
    }
    ima_parser_init(&parser, p->digest_len);
    n = ima_parser_skip_to(&parser, data, len, index);
    if (n < 0) {
        log_warn("the verifier expects entry %llu, the list has fewer", (unsigned long long)index);
        return -ERANGE;
    }
    *ret = (uint64_t)n;
    return 0;
}

int position_read_from(const struct list_position *p, uint64_t offset, uint8_t **ret,
                       size_t *ret_len) {
    int fd = open(p->list_path, O_RDONLY | O_CLOEXEC), r;

    if (fd < 0) {
        r = -errno;
        log_error("cannot open %s: %s", p->list_path, strerror(-r));
        return r;
    }
    if (lseek(fd, (off_t)offset, SEEK_SET) != (off_t)offset) {
        /* securityfs seq files can seek; if one cannot, read and skip. */
        uint8_t skip[65536];
        for (uint64_t left = offset; left > 0;) {
            long n = read_full(fd, skip, left < sizeof(skip) ? left : sizeof(skip));
            if (n <= 0) {
                close(fd);
                return -EIO;
            }
            left -= (uint64_t)n;
        }
    }
    r = read_fd_capped(fd, IMA_SEND_MAX, ret, ret_len);
    if (r == -EFBIG) {
        log_error("more than %u bytes of new measurements: the verifier would not get them in "
                  "one round",
                  IMA_SEND_MAX);
    }
    close(fd);
    return r;
}

void position_index_batch(struct list_position *p, uint64_t from, uint64_t offset, const uint8_t *d,
                          size_t len) {
    struct ima_parser parser;
    struct ima_entry e;
    size_t off = 0, n = 0, alloc = 64;
    uint64_t *offs = malloc(alloc * sizeof(*offs));

    if (!offs) {
        return;
    }
    ima_parser_init(&parser, p->digest_len);
    offs[n++] = offset;
    while (off < len) {
        int k = ima_parser_next(&parser, d + off, len - off, &e);
        if (k <= 0) {
            break;
        }
        off += (size_t)k;
        if (n == alloc) {
            uint64_t *no = realloc(offs, 2 * alloc * sizeof(*offs));
            if (!no) {
                break;
            }
            offs = no;
            alloc *= 2;
        }
        offs[n++] = offset + off;
    }
    free(p->batch_offsets);
    p->batch_offsets = offs;
    p->batch_from = from;
    p->batch_n = n - 1;
}
