/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include "cgroup.h"

#define UID    "f52130f4-c5be-423e-8070-daaca055a5ad"
#define UID_   "f52130f4_c5be_423e_8070_daaca055a5ad"
#define CID    "5bab9779a4ffb2a5acc4160dedb8571b75806c6ad25bf936387678aefd19cb9e"
#define STATIC "0123456789abcdef0123456789abcdef"
#define OTHER  "0b0b0b0b-1111-4222-8333-444455556666"
#define OTHER_ "0b0b0b0b_1111_4222_8333_444455556666"
#define CID2   "9999999999999999999999999999999999999999999999999999999999999999"

struct expect {
    const char *path;
    enum ima_scope scope;
    enum ima_qos qos;
    enum ima_cgroup_driver driver;
    enum ima_runtime runtime;
    const char *uid;
    const char *cid;
};

static const struct expect cases[] = {
        /* systemd driver, every QoS class and runtime */
        {"/kubepods.slice/kubepods-pod" UID_ ".slice/cri-containerd-" CID ".scope", IMA_SCOPE_POD,
         IMA_QOS_GUARANTEED, IMA_DRIVER_SYSTEMD, IMA_RUNTIME_CONTAINERD, UID, CID},
        {"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_ ".slice/crio-" CID
         ".scope",
         IMA_SCOPE_POD, IMA_QOS_BURSTABLE, IMA_DRIVER_SYSTEMD, IMA_RUNTIME_CRIO, UID, CID},
        {"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" UID_
         ".slice/docker-" CID ".scope",
         IMA_SCOPE_POD, IMA_QOS_BESTEFFORT, IMA_DRIVER_SYSTEMD, IMA_RUNTIME_DOCKER, UID, CID},
        /* a custom cgroup root (kubelet --cgroup-root=/kubelet) */
        {"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
         "kubelet-kubepods-besteffort-pod" UID_ ".slice/cri-containerd-" CID ".scope",
         IMA_SCOPE_POD, IMA_QOS_BESTEFFORT, IMA_DRIVER_SYSTEMD, IMA_RUNTIME_CONTAINERD, UID, CID},
        /* nested cgroup inside the container */
        {"/kubepods.slice/kubepods-pod" UID_ ".slice/cri-containerd-" CID ".scope/init.scope",
         IMA_SCOPE_POD, IMA_QOS_GUARANTEED, IMA_DRIVER_SYSTEMD, IMA_RUNTIME_CONTAINERD, UID, CID},
        /* pod cgroup itself, and CRI-O's conmon: the pod without a container */
        {"/kubepods.slice/kubepods-pod" UID_ ".slice", IMA_SCOPE_POD, IMA_QOS_GUARANTEED,
         IMA_DRIVER_SYSTEMD, IMA_RUNTIME_NONE, UID, ""},
        {"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_
         ".slice/crio-conmon-" CID ".scope",
         IMA_SCOPE_POD, IMA_QOS_BURSTABLE, IMA_DRIVER_SYSTEMD, IMA_RUNTIME_NONE, UID, ""},
        /* static pod UID (32 hex) */
        {"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" STATIC
         ".slice/cri-containerd-" CID ".scope",
         IMA_SCOPE_POD, IMA_QOS_BURSTABLE, IMA_DRIVER_SYSTEMD, IMA_RUNTIME_CONTAINERD, STATIC, CID},
        /* cgroupfs driver */
        {"/kubepods/pod" UID "/" CID, IMA_SCOPE_POD, IMA_QOS_GUARANTEED, IMA_DRIVER_CGROUPFS,
         IMA_RUNTIME_UNSPECIFIED, UID, CID},
        {"/kubepods/burstable/pod" UID "/" CID, IMA_SCOPE_POD, IMA_QOS_BURSTABLE,
         IMA_DRIVER_CGROUPFS, IMA_RUNTIME_UNSPECIFIED, UID, CID},
        {"/kubepods/besteffort/pod" UID "/crio-" CID, IMA_SCOPE_POD, IMA_QOS_BESTEFFORT,
         IMA_DRIVER_CGROUPFS, IMA_RUNTIME_CRIO, UID, CID},
        {"/kubepods/besteffort/pod" UID "/docker-" CID, IMA_SCOPE_POD, IMA_QOS_BESTEFFORT,
         IMA_DRIVER_CGROUPFS, IMA_RUNTIME_DOCKER, UID, CID},
        {"/kubepods/besteffort/pod" UID, IMA_SCOPE_POD, IMA_QOS_BESTEFFORT, IMA_DRIVER_CGROUPFS,
         IMA_RUNTIME_NONE, UID, ""},
        /* the first pod component decides: a pod's own cgroups named like
         * another pod's stay the pod's */
        {"/kubepods/pod" UID "/" CID "/kubepods/pod" OTHER "/" CID2, IMA_SCOPE_POD,
         IMA_QOS_GUARANTEED, IMA_DRIVER_CGROUPFS, IMA_RUNTIME_UNSPECIFIED, UID, CID},
        {"/kubepods.slice/kubepods-pod" UID_ ".slice/cri-containerd-" CID
         ".scope/kubepods.slice/kubepods-pod" OTHER_ ".slice",
         IMA_SCOPE_POD, IMA_QOS_GUARANTEED, IMA_DRIVER_SYSTEMD, IMA_RUNTIME_CONTAINERD, UID, CID},
        /* node scope: host, runtime, kubelet, and look-alikes outside kubepods */
        {"/", IMA_SCOPE_NODE, 0, 0, 0, "", ""},
        {"-", IMA_SCOPE_NODE, 0, 0, 0, "", ""},
        {"", IMA_SCOPE_NODE, 0, 0, 0, "", ""},
        {"/system.slice/containerd.service", IMA_SCOPE_NODE, 0, 0, 0, "", ""},
        {"/system.slice/kubelet.service", IMA_SCOPE_NODE, 0, 0, 0, "", ""},
        {"/user.slice/user-1000.slice/session-1.scope", IMA_SCOPE_NODE, 0, 0, 0, "", ""},
        {"/system.slice/kubepods-helper.service", IMA_SCOPE_NODE, 0, 0, 0, "", ""},
        {"/other/pod" UID "/" CID, IMA_SCOPE_NODE, 0, 0, 0, "", ""},
        /* a pod slice without its parent slice, and no kubepods root */
        {"/kubepods-pod" UID_ ".slice", IMA_SCOPE_NODE, 0, 0, 0, "", ""},
        /* unplaced: directly in a kubepods root or QoS slice */
        {"/kubepods.slice", IMA_SCOPE_UNPLACED, 0, 0, 0, "", ""},
        {"/kubepods.slice/kubepods-burstable.slice", IMA_SCOPE_UNPLACED, 0, 0, 0, "", ""},
        {"/kubepods", IMA_SCOPE_UNPLACED, 0, 0, 0, "", ""},
        {"/kubepods/besteffort", IMA_SCOPE_UNPLACED, 0, 0, 0, "", ""},
        {"/kubelet.slice/kubelet-kubepods.slice", IMA_SCOPE_UNPLACED, 0, 0, 0, "", ""},
        {"/kubelet/kubepods/burstable", IMA_SCOPE_UNPLACED, 0, 0, 0, "", ""},
        /* unplaced: UID with dashes in the systemd form, upper case, wrong length */
        {"/kubepods.slice/kubepods-pod" UID ".slice/cri-containerd-" CID ".scope",
         IMA_SCOPE_UNPLACED, 0, 0, 0, "", ""},
        {"/kubepods.slice/kubepods-podF52130F4_C5BE_423E_8070_DAACA055A5AD.slice",
         IMA_SCOPE_UNPLACED, 0, 0, 0, "", ""},
        {"/kubepods/podabc/" CID, IMA_SCOPE_UNPLACED, 0, 0, 0, "", ""},
        {"/kubepods/pod" UID "x/" CID, IMA_SCOPE_UNPLACED, 0, 0, 0, "", ""},
        /* unplaced: QoS slice that does not match its parent, unknown QoS,
         * a pod slice under the wrong parent */
        {"/kubepods.slice/kubepods-besteffort.slice/kubepods-burstable-pod" UID_ ".slice",
         IMA_SCOPE_UNPLACED, 0, 0, 0, "", ""},
        {"/kubepods.slice/kubepods-gold.slice/kubepods-gold-pod" UID_ ".slice", IMA_SCOPE_UNPLACED,
         0, 0, 0, "", ""},
        {"/kubepods/gold/pod" UID "/" CID, IMA_SCOPE_UNPLACED, 0, 0, 0, "", ""},
        {"/kubepods.slice/evil.slice/kubepods-pod" UID_ ".slice/cri-containerd-" CID ".scope",
         IMA_SCOPE_UNPLACED, 0, 0, 0, "", ""},
        {"/kubelet.slice/kubelet-kubepods.slice/kubepods-pod" UID_ ".slice", IMA_SCOPE_UNPLACED, 0,
         0, 0, "", ""},
        /* malformed container ID: the pod, no container */
        {"/kubepods.slice/kubepods-pod" UID_ ".slice/cri-containerd-1234.scope", IMA_SCOPE_POD,
         IMA_QOS_GUARANTEED, IMA_DRIVER_SYSTEMD, IMA_RUNTIME_NONE, UID, ""},
        {"/kubepods.slice/kubepods-pod" UID_ ".slice/" CID ".scope", IMA_SCOPE_POD,
         IMA_QOS_GUARANTEED, IMA_DRIVER_SYSTEMD, IMA_RUNTIME_NONE, UID, ""},
};

static void test_paths(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ima_pod_ref r;
        const struct expect *x = &cases[i];

        assert_int_equal(ima_cgroup_attribute_path(x->path, strlen(x->path), &r), 0);
        if (r.scope != x->scope || r.qos != x->qos || r.driver != x->driver ||
            r.runtime != x->runtime || strcmp(r.pod_uid, x->uid) != 0 ||
            strcmp(r.container_id, x->cid) != 0) {
            fail_msg("case %zu %s: got scope=%d qos=%d driver=%d runtime=%d uid=%s cid=%s", i,
                     x->path, r.scope, r.qos, r.driver, r.runtime, r.pod_uid, r.container_id);
        }
    }
}

static void test_names(void **state) {
    struct ima_pod_ref r;
    const char *n;
    (void)state;

    n = "cri-containerd-" CID ".scope";
    assert_int_equal(ima_cgroup_attribute_name(n, strlen(n), &r), 0);
    assert_int_equal(r.scope, IMA_SCOPE_CONTAINER);
    assert_int_equal(r.runtime, IMA_RUNTIME_CONTAINERD);
    assert_string_equal(r.container_id, CID);
    assert_string_equal(r.pod_uid, "");
    n = CID;
    assert_int_equal(ima_cgroup_attribute_name(n, strlen(n), &r), 0);
    assert_int_equal(r.scope, IMA_SCOPE_CONTAINER);
    assert_int_equal(r.driver, IMA_DRIVER_CGROUPFS);
    n = "containerd.service";
    assert_int_equal(ima_cgroup_attribute_name(n, strlen(n), &r), 0);
    assert_int_equal(r.scope, IMA_SCOPE_NODE);
    n = "a/" CID;
    assert_int_equal(ima_cgroup_attribute_name(n, strlen(n), &r), 0);
    assert_int_equal(r.scope, IMA_SCOPE_NODE);
    /* a bare name cannot show that it is under kubepods: never unplaced */
    n = "kubepods.slice";
    assert_int_equal(ima_cgroup_attribute_name(n, strlen(n), &r), 0);
    assert_int_equal(r.scope, IMA_SCOPE_NODE);
}

/* `prefix`, then `depth` components "/d<k>", then `suffix`. */
static size_t build(char *buf, size_t size, const char *prefix, int depth, const char *suffix) {
    size_t n = (size_t)snprintf(buf, size, "%s", prefix);

    for (int k = 0; k < depth; k++) {
        n += (size_t)snprintf(buf + n, size - n, "/d%d", k);
    }
    n += (size_t)snprintf(buf + n, size - n, "%s", suffix);
    assert_true(n < size);
    return n;
}

static void expect_ref(const char *path, size_t len, enum ima_scope scope, const char *uid,
                       const char *cid) {
    struct ima_pod_ref r;

    assert_int_equal(ima_cgroup_attribute_path(path, len, &r), 0);
    if (r.scope != scope || strcmp(r.pod_uid, uid) != 0 || strcmp(r.container_id, cid) != 0) {
        fail_msg("%.120s... (%zu bytes): got scope=%s uid=%s cid=%s", path, len,
                 ima_scope_name(r.scope), r.pod_uid, r.container_id);
    }
}

/* A cgroup under a pod's cgroup belongs to that pod however deep it is: a
 * process 70 (or 200) levels down must not leave its pod. */
static void test_deep_paths_stay_in_their_pod(void **state) {
    static char path[16384];
    size_t n;
    (void)state;

    n = build(path, sizeof(path),
              "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_
              ".slice/cri-containerd-" CID ".scope",
              70, "");
    expect_ref(path, n, IMA_SCOPE_POD, UID, CID);
    n = build(path, sizeof(path), "/kubepods/besteffort/pod" UID "/" CID, 70, "/miner");
    expect_ref(path, n, IMA_SCOPE_POD, UID, CID);
    n = build(path, sizeof(path), "/kubepods/pod" UID "/crio-" CID, 200, "");
    expect_ref(path, n, IMA_SCOPE_POD, UID, CID);
    n = build(path, sizeof(path), "/kubepods.slice/kubepods-pod" UID_ ".slice/docker-" CID ".scope",
              200, "/kubepods.slice/kubepods-pod" OTHER_ ".slice");
    expect_ref(path, n, IMA_SCOPE_POD, UID, CID);
    /* 70 levels below the pod cgroup itself: the pod, no container */
    n = build(path, sizeof(path), "/kubepods/burstable/pod" UID, 70, "");
    expect_ref(path, n, IMA_SCOPE_POD, UID, "");
    /* a cgroup root 70 levels deep (kubelet --cgroup-root) */
    n = build(path, sizeof(path), "", 70, "/kubepods/pod" UID "/" CID);
    expect_ref(path, n, IMA_SCOPE_POD, UID, CID);
    /* the length is all that is given: the rest of the buffer is not read */
    n = build(path, sizeof(path), "/kubepods/pod" UID "/" CID, 100, "");
    expect_ref(path, strlen("/kubepods/pod" UID), IMA_SCOPE_POD, UID, "");
}

/* Paths of any depth that name no pod: node scope outside kubepods,
 * unplaced inside it, never an error. */
static void test_deep_paths_without_pod(void **state) {
    static char path[16384];
    struct ima_pod_ref r;
    size_t n;
    (void)state;

    n = build(path, sizeof(path), "/system.slice", 1000, "");
    expect_ref(path, n, IMA_SCOPE_NODE, "", "");
    n = build(path, sizeof(path), "", 1000, "/x.scope");
    expect_ref(path, n, IMA_SCOPE_NODE, "", "");
    n = build(path, sizeof(path), "/kubepods.slice", 1000, "");
    expect_ref(path, n, IMA_SCOPE_UNPLACED, "", "");
    n = build(path, sizeof(path), "/kubepods/burstable", 1000, "");
    expect_ref(path, n, IMA_SCOPE_UNPLACED, "", "");
    /* a pod-like component too deep under a host path to have kubepods as
     * its parent: node */
    n = build(path, sizeof(path), "/system.slice", 999, "/pod" UID);
    expect_ref(path, n, IMA_SCOPE_NODE, "", "");
    assert_int_equal(ima_cgroup_attribute_path(NULL, 0, &r), -EINVAL);
    assert_int_equal(ima_cgroup_attribute_path(path, 0, NULL), -EINVAL);
}

static void test_scope_names(void **state) {
    (void)state;
    assert_string_equal(ima_scope_name(IMA_SCOPE_NODE), "node");
    assert_string_equal(ima_scope_name(IMA_SCOPE_POD), "pod");
    assert_string_equal(ima_scope_name(IMA_SCOPE_CONTAINER), "container");
    assert_string_equal(ima_scope_name(IMA_SCOPE_UNPLACED), "unplaced");
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_paths),
            cmocka_unit_test(test_names),
            cmocka_unit_test(test_deep_paths_stay_in_their_pod),
            cmocka_unit_test(test_deep_paths_without_pod),
            cmocka_unit_test(test_scope_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
