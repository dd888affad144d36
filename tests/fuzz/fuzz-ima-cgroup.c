/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: cgroup path and name attribution. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct ima_pod_ref ref;

    ima_cgroup_attribute_path((const char *)data, size, &ref);
    /* Whatever is claimed must be well-formed. */
    if (ref.scope == IMA_SCOPE_POD && (strlen(ref.pod_uid) != 36 && strlen(ref.pod_uid) != 32)) {
        abort();
    }
    if (ref.container_id[0] && strlen(ref.container_id) != IMA_CONTAINER_ID_LEN) {
        abort();
    }
    /* Neither node nor unplaced scope names a pod or a container. */
    if ((ref.scope == IMA_SCOPE_NODE || ref.scope == IMA_SCOPE_UNPLACED) &&
        (ref.pod_uid[0] || ref.container_id[0])) {
        abort();
    }
    ima_cgroup_attribute_name((const char *)data, size, &ref);
    if (ref.scope == IMA_SCOPE_POD || ref.scope == IMA_SCOPE_UNPLACED) {
        abort(); /* a bare name never names a pod, nor shows where it sits */
    }
    return 0;
}
