/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include "cgroup.h"

#define UID    "f52130f4-c5be-423e-8070-daaca055a5ad"
#define UID_   "f52130f4_c5be_423e_8070_daaca055a5ad"
#define CID    "5bab9779a4ffb2a5acc4160dedb8571b75806c6ad25bf936387678aefd19cb9e"
#define STATIC "0123456789abcdef0123456789abcdef"

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
        /* node scope: host, runtime, kubelet, and look-alikes */
        {"/", IMA_SCOPE_NODE, 0, 0, 0, "", ""},
        {"-", IMA_SCOPE_NODE, 0, 0, 0, "", ""},
        {"", IMA_SCOPE_NODE, 0, 0, 0, "", ""},
        {"/system.slice/containerd.service", IMA_SCOPE_NODE, 0, 0, 0, "", ""},
        {"/system.slice/kubelet.service", IMA_SCOPE_NODE, 0, 0, 0, "", ""},
        {"/kubepods.slice", IMA_SCOPE_NODE, 0, 0, 0, "", ""},
        {"/kubepods.slice/kubepods-burstable.slice", IMA_SCOPE_NODE, 0, 0, 0, "", ""},
        {"/kubepods", IMA_SCOPE_NODE, 0, 0, 0, "", ""},
        /* UID with dashes in the systemd form, upper case, wrong length */
        {"/kubepods.slice/kubepods-pod" UID ".slice/cri-containerd-" CID ".scope", IMA_SCOPE_NODE,
         0, 0, 0, "", ""},
        {"/kubepods.slice/kubepods-podF52130F4_C5BE_423E_8070_DAACA055A5AD.slice", IMA_SCOPE_NODE,
         0, 0, 0, "", ""},
        {"/kubepods/podabc/" CID, IMA_SCOPE_NODE, 0, 0, 0, "", ""},
        /* QoS slice that does not match its parent, unknown QoS */
        {"/kubepods.slice/kubepods-besteffort.slice/kubepods-burstable-pod" UID_ ".slice",
         IMA_SCOPE_NODE, 0, 0, 0, "", ""},
        {"/kubepods.slice/kubepods-gold.slice/kubepods-gold-pod" UID_ ".slice", IMA_SCOPE_NODE, 0,
         0, 0, "", ""},
        {"/kubepods/gold/pod" UID "/" CID, IMA_SCOPE_NODE, 0, 0, 0, "", ""},
        {"/other/pod" UID "/" CID, IMA_SCOPE_NODE, 0, 0, 0, "", ""},
        /* a pod slice without its parent slice */
        {"/kubepods-pod" UID_ ".slice", IMA_SCOPE_NODE, 0, 0, 0, "", ""},
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
}

static void test_deep_path_is_node(void **state) {
    char path[4096];
    struct ima_pod_ref r;
    size_t n = 0;
    (void)state;

    for (int i = 0; i < 70; i++) {
        n += (size_t)snprintf(path + n, sizeof(path) - n, "/x");
    }
    snprintf(path + n, sizeof(path) - n, "/kubepods/pod" UID "/" CID);
    assert_int_equal(ima_cgroup_attribute_path(path, strlen(path), &r), 0);
    assert_int_equal(r.scope, IMA_SCOPE_NODE);
    assert_int_equal(ima_cgroup_attribute_path(NULL, 0, &r), -EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_paths),
            cmocka_unit_test(test_names),
            cmocka_unit_test(test_deep_path_is_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
