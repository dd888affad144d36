/* SPDX-License-Identifier: Apache-2.0 */
#include "cgroup.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

struct span {
    const char *s;
    size_t len;
};

const char *ima_scope_name(enum ima_scope s) {
    switch (s) {
    case IMA_SCOPE_POD:
        return "pod";
    case IMA_SCOPE_CONTAINER:
        return "container";
    case IMA_SCOPE_UNPLACED:
        return "unplaced";
    default:
        return "node";
    }
}

const char *ima_qos_name(enum ima_qos q) {
    switch (q) {
    case IMA_QOS_GUARANTEED:
        return "guaranteed";
    case IMA_QOS_BURSTABLE:
        return "burstable";
    case IMA_QOS_BESTEFFORT:
        return "besteffort";
    default:
        return "";
    }
}

const char *ima_driver_name(enum ima_cgroup_driver d) {
    switch (d) {
    case IMA_DRIVER_SYSTEMD:
        return "systemd";
    case IMA_DRIVER_CGROUPFS:
        return "cgroupfs";
    default:
        return "";
    }
}

const char *ima_runtime_name(enum ima_runtime r) {
    switch (r) {
    case IMA_RUNTIME_CONTAINERD:
        return "containerd";
    case IMA_RUNTIME_CRIO:
        return "cri-o";
    case IMA_RUNTIME_DOCKER:
        return "docker";
    case IMA_RUNTIME_UNSPECIFIED:
        return "unspecified";
    default:
        return "";
    }
}

static bool starts_with(struct span a, const char *prefix) {
    size_t n = strlen(prefix);
    return a.len >= n && memcmp(a.s, prefix, n) == 0;
}

static bool ends_with(struct span a, const char *suffix) {
    size_t n = strlen(suffix);
    return a.len >= n && memcmp(a.s + a.len - n, suffix, n) == 0;
}

static bool equals(struct span a, const char *s) {
    return a.len == strlen(s) && memcmp(a.s, s, a.len) == 0;
}

static bool is_lower_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* A pod UID: a lowercase UUID whose separators are `sep`, or 32 hex digits
 * (static pods: kubelet names them by a hash). Written out with dashes. */
static bool parse_uid(struct span u, char sep, char out[IMA_POD_UID_MAX + 1]) {
    if (u.len == 32) {
        for (size_t i = 0; i < 32; i++) {
            if (!is_lower_hex(u.s[i])) {
                return false;
            }
        }
        memcpy(out, u.s, 32);
        out[32] = 0;
        return true;
    }
    if (u.len != 36) {
        return false;
    }
    for (size_t i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? u.s[i] != sep : !is_lower_hex(u.s[i])) {
            return false;
        }
        out[i] = dash ? '-' : u.s[i];
    }
    out[36] = 0;
    return true;
}

/* A container cgroup: [<runtime>-]<64 hex>[.scope]. */
static bool parse_container(struct span c, bool systemd, struct ima_pod_ref *ret) {
    static const struct {
        const char *prefix;
        enum ima_runtime rt;
    } runtimes[] = {
            {"cri-containerd-", IMA_RUNTIME_CONTAINERD},
            {"crio-", IMA_RUNTIME_CRIO},
            {"docker-", IMA_RUNTIME_DOCKER},
    };
    enum ima_runtime rt = IMA_RUNTIME_UNSPECIFIED;

    if (systemd) {
        if (!ends_with(c, ".scope")) {
            return false;
        }
        c.len -= strlen(".scope");
    }
    for (size_t i = 0; i < sizeof(runtimes) / sizeof(runtimes[0]); i++) {
        if (starts_with(c, runtimes[i].prefix)) {
            rt = runtimes[i].rt;
            c.s += strlen(runtimes[i].prefix);
            c.len -= strlen(runtimes[i].prefix);
            break;
        }
    }
    /* systemd scopes always name their runtime. */
    if ((systemd && rt == IMA_RUNTIME_UNSPECIFIED) || c.len != IMA_CONTAINER_ID_LEN) {
        return false;
    }
    for (size_t i = 0; i < c.len; i++) {
        if (!is_lower_hex(c.s[i])) {
            return false;
        }
    }
    memcpy(ret->container_id, c.s, c.len);
    ret->container_id[c.len] = 0;
    ret->runtime = rt;
    return true;
}

static enum ima_qos qos_from(struct span q) {
    if (equals(q, "burstable")) {
        return IMA_QOS_BURSTABLE;
    }
    if (equals(q, "besteffort")) {
        return IMA_QOS_BESTEFFORT;
    }
    return IMA_QOS_NONE;
}

/* systemd: comp[i] is "<P>-pod<uid>.slice" with P = "<root->kubepods[-<qos>]"
 * and comp[i-1] == "<P>.slice". Returns true and fills ret on a match. */
static bool match_systemd_pod(const struct span *comp, size_t i, struct ima_pod_ref *ret) {
    struct span c = comp[i], parent, p, uid;
    const char *pod;

    if (i == 0 || !ends_with(c, ".slice")) {
        return false;
    }
    c.len -= strlen(".slice");
    /* The last "-pod" separates the parent slice's name from the UID. */
    pod = NULL;
    for (size_t k = c.len; k >= 4; k--) {
        if (memcmp(c.s + k - 4, "-pod", 4) == 0) {
            pod = c.s + k - 4;
            break;
        }
    }
    if (!pod) {
        return false;
    }
    p = (struct span){c.s, (size_t)(pod - c.s)};
    uid = (struct span){pod + 4, c.len - p.len - 4};
    parent = comp[i - 1];
    if (!ends_with(parent, ".slice") || parent.len - strlen(".slice") != p.len ||
        memcmp(parent.s, p.s, p.len) != 0) {
        return false;
    }
    /* P is "...kubepods" (guaranteed) or "...kubepods-<qos>", and the chain of
     * slices above it must spell the same prefixes (systemd nests names). */
    if (ends_with(p, "kubepods")) {
        ret->qos = IMA_QOS_GUARANTEED;
    } else {
        const char *dash = memrchr(p.s, '-', p.len);
        struct span base, q;
        if (!dash) {
            return false;
        }
        base = (struct span){p.s, (size_t)(dash - p.s)};
        q = (struct span){dash + 1, p.len - base.len - 1};
        ret->qos = qos_from(q);
        if (ret->qos == IMA_QOS_NONE || !ends_with(base, "kubepods") || i < 2) {
            return false;
        }
        if (comp[i - 2].len != base.len + strlen(".slice") ||
            memcmp(comp[i - 2].s, base.s, base.len) != 0 || !ends_with(comp[i - 2], ".slice")) {
            return false;
        }
    }
    if (!parse_uid(uid, '_', ret->pod_uid)) {
        return false;
    }
    ret->driver = IMA_DRIVER_SYSTEMD;
    return true;
}

/* cgroupfs: comp[i] is "pod<uid>" under ".../kubepods[/<qos>]". */
static bool match_cgroupfs_pod(const struct span *comp, size_t i, struct ima_pod_ref *ret) {
    struct span c = comp[i];

    if (i == 0 || !starts_with(c, "pod")) {
        return false;
    }
    if (equals(comp[i - 1], "kubepods")) {
        ret->qos = IMA_QOS_GUARANTEED;
    } else if (i >= 2 && equals(comp[i - 2], "kubepods") &&
               (ret->qos = qos_from(comp[i - 1])) != IMA_QOS_NONE) {
        /* burstable or besteffort */
    } else {
        return false;
    }
    if (!parse_uid((struct span){c.s + 3, c.len - 3}, '-', ret->pod_uid)) {
        return false;
    }
    ret->driver = IMA_DRIVER_CGROUPFS;
    return true;
}

/* A kubepods root: "kubepods" (cgroupfs), "kubepods.slice" or
 * "<root>-kubepods.slice" (systemd, kubelet --cgroup-root). */
static bool is_kubepods_root(struct span c) {
    return equals(c, "kubepods") || equals(c, "kubepods.slice") || ends_with(c, "-kubepods.slice");
}

/* The next non-empty component of path[*pos..len), advancing *pos past it. */
static bool next_component(const char *path, size_t len, size_t *pos, struct span *ret) {
    size_t i = *pos;

    while (i < len && path[i] == '/') {
        i++;
    }
    if (i == len) {
        *pos = len;
        return false;
    }
    ret->s = path + i;
    while (i < len && path[i] != '/') {
        i++;
    }
    ret->len = (size_t)(path + i - ret->s);
    *pos = i;
    return true;
}

int ima_cgroup_attribute_path(const char *path, size_t len, struct ima_pod_ref *ret) {
    /* The pod matchers look at most two components up, so a window of the
     * last three is all the scan keeps: a path is attributed however deep it
     * is (a cap would let a pod hide below it). */
    struct span w[3], c;
    size_t n = 0, pos = 0;
    bool root = false;

    if (!path || !ret) {
        return -EINVAL;
    }
    memset(ret, 0, sizeof(*ret));
    while (next_component(path, len, &pos, &c)) {
        struct ima_pod_ref r = {0};
        size_t i = n < 3 ? n : 2;
        bool systemd;

        if (n >= 3) {
            w[0] = w[1];
            w[1] = w[2];
        }
        w[i] = c;
        n++;
        root |= is_kubepods_root(c);
        /* The first pod component wins: cgroups a pod creates below its own
         * are its own, whatever they are named. */
        if (match_systemd_pod(w, i, &r)) {
            systemd = true;
        } else if (match_cgroupfs_pod(w, i, &r)) {
            systemd = false;
        } else {
            continue;
        }
        r.scope = IMA_SCOPE_POD;
        /* Not a container (conmon, a pod-level cgroup): the pod, no container. */
        if (next_component(path, len, &pos, &c) && !parse_container(c, systemd, &r)) {
            r.container_id[0] = 0;
            r.runtime = IMA_RUNTIME_NONE;
        }
        *ret = r;
        return 0;
    }
    if (root) {
        ret->scope = IMA_SCOPE_UNPLACED;
    }
    return 0;
}

int ima_cgroup_attribute_name(const char *name, size_t len, struct ima_pod_ref *ret) {
    struct span comp[2];

    if (!name || !ret) {
        return -EINVAL;
    }
    memset(ret, 0, sizeof(*ret));
    if (memchr(name, '/', len)) {
        return 0;
    }
    comp[0] = (struct span){name, len};
    /* A bare name cannot show the pod's parent slices: only a container
     * scope or ID identifies anything. */
    if (parse_container(comp[0], ends_with(comp[0], ".scope"), ret)) {
        ret->scope = IMA_SCOPE_CONTAINER;
        ret->driver = ends_with(comp[0], ".scope") ? IMA_DRIVER_SYSTEMD : IMA_DRIVER_CGROUPFS;
    } else {
        memset(ret, 0, sizeof(*ret));
    }
    return 0;
}

int ima_entry_attribute(const struct ima_entry *e, struct ima_pod_ref *ret) {
    const struct ima_field *f;
    const char *s;
    size_t len;

    if (!e || !ret) {
        return -EINVAL;
    }
    memset(ret, 0, sizeof(*ret));
    /* The template name is not in the template digest: whoever sends the
     * list can rename an entry. A field must read as what its name says,
     * or a cg-path renamed to a cgn (or back) would move the entry out of
     * its pod. The kernel writes "-" when it finds no cgroup. */
    f = ima_entry_field(e, IMA_FIELD_CG_PATH);
    if (f) {
        ima_field_string(f, &s, &len);
        if (!(len == 1 && s[0] == '-') && (len == 0 || s[0] != '/')) {
            return -EBADMSG; /* a cgroup path starts at the root */
        }
        return ima_cgroup_attribute_path(s, len, ret);
    }
    f = ima_entry_field(e, IMA_FIELD_CGN);
    if (f) {
        ima_field_string(f, &s, &len);
        if (len == 0 || (memchr(s, '/', len) && !(len == 1 && s[0] == '/'))) {
            return -EBADMSG; /* a cgroup name is one component, or the root's "/" */
        }
        return ima_cgroup_attribute_name(s, len, ret);
    }
    return 0;
}
