/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_CLI_IMA_PODS_H
#define KIMA_CLI_IMA_PODS_H

#include <stdint.h>

#include "buf.h"
#include "cgroup.h"
#include "json-writer.h"
#include "list.h"

/* Per-pod and per-container entry counts of a list, for `kimactl ima pods`.
 * Pods and containers are listed in order of first appearance. */

#define IMA_PODS_MAX            65536
#define IMA_PODS_CONTAINERS_MAX 4096 /* per pod, and cgn-only containers in all */

struct ima_pods;

/* NULL when out of memory. Free with ima_pods_free(). */
struct ima_pods *ima_pods_new(void);
void ima_pods_free(struct ima_pods *p);
static inline void ima_pods_freep(struct ima_pods **p) {
    ima_pods_free(*p);
}

/* Attribute one entry. 0, -E2BIG (over a cap), -ENOMEM, or -EBADMSG when
 * its cgroup field does not read as its template says (ima_entry_attribute). */
int ima_pods_add(struct ima_pods *p, const struct ima_entry *e);

int ima_pods_write_text(const struct ima_pods *p, struct kbuf *out);
void ima_pods_write_json(const struct ima_pods *p, struct json_writer *w);

#endif
