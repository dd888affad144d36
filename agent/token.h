/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_AGENT_TOKEN_H
#define KIMA_AGENT_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* The agent's bearer token (--token-file): a projected ServiceAccount token
 * the kubelet writes and rotates (it swaps the symlink `..data` to a new
 * folder, so the file's inode changes). The file is read again when its
 * device, inode, size or mtime changed, and at least every
 * AGENT_TOKEN_REREAD_MS whatever they say. docs/kubernetes.md, "Agent
 * identity". */

/* The largest token file taken; a projected token is 1 to 2 KB. */
#define AGENT_TOKEN_MAX       (16u * 1024)
#define AGENT_TOKEN_REREAD_MS 60000

struct agent_token {
    const char *path; /* borrowed */
    char *value;      /* the token in use (malloc'd), or NULL before the first read */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    int64_t read_ms; /* when value was read (monotonic) */
};

/* The token in a file's bytes (pure): blanks around it trimmed; -EINVAL
 * when none is left, -E2BIG over AGENT_TOKEN_MAX, -EBADMSG for a byte no
 * bearer token has (RFC 6750's b64token: letters, digits, -._~+/ and
 * trailing '='). The reason in err. *ret is malloc'd, the caller's. */
int agent_token_parse(const uint8_t *buf, size_t len, char **ret, char *err, size_t errsz);

void agent_token_init(struct agent_token *t, const char *path);
void agent_token_free(struct agent_token *t);

/* The token to send now (now_ms monotonic), read again when due. *ret is
 * borrowed until the next call. 0, or a negative errno with the reason
 * logged (no token sent then: a file that turned empty or garbage is not
 * papered over with an older token). */
int agent_token_get(struct agent_token *t, int64_t now_ms, const char **ret);

#endif
