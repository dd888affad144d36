/* SPDX-License-Identifier: Apache-2.0 */
#include "state.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

static const char *const node_names[] = {
        [NODE_REGISTERED] = "registered", [NODE_ACTIVE] = "active", [NODE_TRUSTED] = "trusted",
        [NODE_UNTRUSTED] = "untrusted",   [NODE_STALE] = "stale",
};

static const char *const pod_names[] = {
        [POD_UNKNOWN] = "unknown",
        [POD_TRUSTED] = "trusted",
        [POD_UNTRUSTED] = "untrusted",
};

const char *node_state_name(enum node_state s) {
    return (size_t)s < sizeof(node_names) / sizeof(node_names[0]) ? node_names[s] : "untrusted";
}

const char *pod_state_name(enum pod_state s) {
    return (size_t)s < sizeof(pod_names) / sizeof(pod_names[0]) ? pod_names[s] : "untrusted";
}

int node_state_parse(const char *name, enum node_state *ret) {
    for (size_t i = 0; name && i < sizeof(node_names) / sizeof(node_names[0]); i++) {
        if (strcmp(name, node_names[i]) == 0) {
            *ret = (enum node_state)i;
            return 0;
        }
    }
    return -EINVAL;
}

int pod_state_parse(const char *name, enum pod_state *ret) {
    for (size_t i = 0; name && i < sizeof(pod_names) / sizeof(pod_names[0]); i++) {
        if (strcmp(name, pod_names[i]) == 0) {
            *ret = (enum pod_state)i;
            return 0;
        }
    }
    return -EINVAL;
}
