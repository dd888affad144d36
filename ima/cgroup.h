/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_IMA_CGROUP_H
#define KIMA_IMA_CGROUP_H

#include <stddef.h>

#include "list.h"

/* Pod attribution from the cgroup recorded by the pod-aware templates
 * (docs/design.md section 4). Kubelet lays pods out as
 *   systemd:  [/<root>]/kubepods.slice[/kubepods-<qos>.slice]/kubepods[-<qos>]-pod<uid_>.slice/
 *             {cri-containerd,crio,docker}-<id>.scope
 *   cgroupfs: [/<root>]/kubepods[/<qos>]/pod<uid>/[{cri-containerd,crio,docker}-]<id>
 * where guaranteed pods have no QoS level and the systemd form writes the
 * UID's dashes as underscores. Anything below the container (nested cgroups,
 * however deep) belongs to that container; anything in the pod's cgroup that
 * is not a container (CRI-O's crio-conmon-<id>.scope, a malformed container
 * name) belongs to the pod with no container. The first pod component of a
 * path decides: a pod cannot name another pod by making cgroups below its own.
 *
 * A path with a kubepods root component ("kubepods"; "kubepods.slice" or
 * "<root>-kubepods.slice") but no valid pod component below it (a malformed
 * pod slice or UID, a process directly in a kubepods or QoS slice) is
 * unplaced: it is inside the pods' hierarchy, so it must be judged, never
 * passed over as a host process without a node policy would be. Everything
 * else (host services, "/") is node scope. */

#define IMA_POD_UID_MAX      36
#define IMA_CONTAINER_ID_LEN 64

enum ima_scope {
    IMA_SCOPE_NODE = 0,
    IMA_SCOPE_POD,
    /* Only a container ID is known (the `cgn` field holds the cgroup's last
     * component): the pod must be found from the container ID. */
    IMA_SCOPE_CONTAINER,
    /* Under a kubepods root, but in no pod that the path names correctly:
     * no pod UID, no container ID. */
    IMA_SCOPE_UNPLACED,
};

enum ima_qos {
    IMA_QOS_NONE = 0,
    IMA_QOS_GUARANTEED,
    IMA_QOS_BURSTABLE,
    IMA_QOS_BESTEFFORT,
};

enum ima_cgroup_driver {
    IMA_DRIVER_NONE = 0,
    IMA_DRIVER_SYSTEMD,
    IMA_DRIVER_CGROUPFS,
};

enum ima_runtime {
    IMA_RUNTIME_NONE = 0,
    IMA_RUNTIME_CONTAINERD,
    IMA_RUNTIME_CRIO,
    IMA_RUNTIME_DOCKER,
    IMA_RUNTIME_UNSPECIFIED, /* cgroupfs: a bare container ID */
};

struct ima_pod_ref {
    enum ima_scope scope;
    enum ima_qos qos;
    enum ima_cgroup_driver driver;
    enum ima_runtime runtime;
    char pod_uid[IMA_POD_UID_MAX + 1];           /* with dashes; "" unless scope is POD */
    char container_id[IMA_CONTAINER_ID_LEN + 1]; /* "" when not in a container */
};

const char *ima_scope_name(enum ima_scope s);
const char *ima_qos_name(enum ima_qos q);
const char *ima_driver_name(enum ima_cgroup_driver d);
const char *ima_runtime_name(enum ima_runtime r);

/* Classify a cgroup path (`len` bytes, need not be NUL-terminated, any
 * number of components; time linear in `len`, no allocation). Always fills
 * *ret; returns 0, or -EINVAL for NULL arguments. */
int ima_cgroup_attribute_path(const char *path, size_t len, struct ima_pod_ref *ret);

/* Classify a cgroup name (the `cgn` field: one path component). A bare name
 * cannot show where the cgroup sits: only a container scope or ID places it
 * (IMA_SCOPE_CONTAINER); any other name, including a cgroup a container made
 * below its own, is node scope. Only `cg-path` attributes nested cgroups. */
int ima_cgroup_attribute_name(const char *name, size_t len, struct ima_pod_ref *ret);

/* Classify an entry by its cg-path or cgn field; entries of templates without
 * either are node scope. Returns 0, -EINVAL for NULL arguments, or -EBADMSG
 * when the field does not read as its kind (a cg-path not starting with
 * '/' or "-", a cgn with a '/' other than the root's "/", either empty):
 * the entry's template name does not fit its data. */
int ima_entry_attribute(const struct ima_entry *e, struct ima_pod_ref *ret);

#endif
