/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include "ascii-parse.h"
#include "ascii.h"
#include "cgroup.h"
#include "ima-gen.h"
#include "replay.h"
#include "verify.h"

/* Lists with every template, at every digest width, written by the test
 * generator (EVP hashing): parsed, verified and replayed by the library, and
 * compared with the generator's own PCR values; then rendered to ASCII and
 * read back byte for byte. */

static const uint32_t widths[] = {20, 32, 48, 64};
static const uint8_t fdig[64] = {0x9f, 0x86, 0xd0, 0x81, 0x88, 0x4c, 0x7d, 0x65};

struct layout {
    const char *fmt; /* printf with %s = UID (systemd form as needed), %s = CID */
    bool systemd;
    enum ima_qos qos;
    enum ima_runtime runtime;
};

#define UIDD "1a2b3c4d-0000-4111-8222-933344445555"
#define UIDU "1a2b3c4d_0000_4111_8222_933344445555"
#define CID  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const struct layout layouts[] = {
        {"/kubepods.slice/kubepods-pod" UIDU ".slice/cri-containerd-" CID ".scope", true,
         IMA_QOS_GUARANTEED, IMA_RUNTIME_CONTAINERD},
        {"/kubepods.slice/kubepods-pod" UIDU ".slice/crio-" CID ".scope", true, IMA_QOS_GUARANTEED,
         IMA_RUNTIME_CRIO},
        {"/kubepods.slice/kubepods-pod" UIDU ".slice/docker-" CID ".scope", true,
         IMA_QOS_GUARANTEED, IMA_RUNTIME_DOCKER},
        {"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UIDU
         ".slice/cri-containerd-" CID ".scope",
         true, IMA_QOS_BURSTABLE, IMA_RUNTIME_CONTAINERD},
        {"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UIDU ".slice/crio-" CID
         ".scope",
         true, IMA_QOS_BURSTABLE, IMA_RUNTIME_CRIO},
        {"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UIDU ".slice/docker-" CID
         ".scope",
         true, IMA_QOS_BURSTABLE, IMA_RUNTIME_DOCKER},
        {"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" UIDU
         ".slice/cri-containerd-" CID ".scope",
         true, IMA_QOS_BESTEFFORT, IMA_RUNTIME_CONTAINERD},
        {"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" UIDU ".slice/crio-" CID
         ".scope",
         true, IMA_QOS_BESTEFFORT, IMA_RUNTIME_CRIO},
        {"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" UIDU
         ".slice/docker-" CID ".scope",
         true, IMA_QOS_BESTEFFORT, IMA_RUNTIME_DOCKER},
        {"/kubepods/pod" UIDD "/" CID, false, IMA_QOS_GUARANTEED, IMA_RUNTIME_UNSPECIFIED},
        {"/kubepods/pod" UIDD "/crio-" CID, false, IMA_QOS_GUARANTEED, IMA_RUNTIME_CRIO},
        {"/kubepods/burstable/pod" UIDD "/" CID, false, IMA_QOS_BURSTABLE, IMA_RUNTIME_UNSPECIFIED},
        {"/kubepods/burstable/pod" UIDD "/docker-" CID, false, IMA_QOS_BURSTABLE,
         IMA_RUNTIME_DOCKER},
        {"/kubepods/besteffort/pod" UIDD "/" CID, false, IMA_QOS_BESTEFFORT,
         IMA_RUNTIME_UNSPECIFIED},
        {"/kubepods/besteffort/pod" UIDD "/cri-containerd-" CID, false, IMA_QOS_BESTEFFORT,
         IMA_RUNTIME_CONTAINERD},
        /* node scope */
        {"/", false, IMA_QOS_NONE, IMA_RUNTIME_NONE},
        {"/system.slice/containerd.service", false, IMA_QOS_NONE, IMA_RUNTIME_NONE},
        {"/system.slice/kubelet.service", false, IMA_QOS_NONE, IMA_RUNTIME_NONE},
};

/* Add one entry of every template kima knows. */
static void add_every_template(struct ima_gen *g) {
    char s1[256], s2[256], s3[256];
    uint8_t d1[128], d2[128], u4[4] = {0xe8, 3, 0, 0}, m2[2] = {0xa4, 0x81};
    struct gen_field f[9];
    const char *sig = "\x03\x02\x04\x11\x22\x33\x44\x00\x04\xaa\xbb\xcc\xdd";

    f[0] = (struct gen_field){fdig, 20};
    f[1] = (struct gen_field){"boot_aggregate", 14};
    assert_int_equal(ima_gen_add(g, 10, "ima", f, 2, false), 0);
    f[0] = gen_dng(d1, "sha256:", fdig, 32);
    f[1] = gen_str(s1, "/usr/bin/ima-ng");
    assert_int_equal(ima_gen_add(g, 10, "ima-ng", f, 2, false), 0);
    f[0] = gen_dng(d1, "ima:sha256:", fdig, 32);
    assert_int_equal(ima_gen_add(g, 10, "ima-ngv2", f, 2, false), 0);
    f[0] = gen_dng(d1, "sha512:", fdig, 64);
    f[2] = (struct gen_field){sig, 13};
    assert_int_equal(ima_gen_add(g, 10, "ima-sig", f, 3, false), 0);
    f[0] = gen_dng(d1, "verity:sha256:", fdig, 32);
    assert_int_equal(ima_gen_add(g, 10, "ima-sigv2", f, 3, false), 0);
    f[0] = gen_dng(d1, "sha1:", fdig, 20);
    f[1] = gen_str(s1, "kexec-cmdline");
    f[2] = (struct gen_field){"root=/dev/vda ro", 16};
    assert_int_equal(ima_gen_add(g, 10, "ima-buf", f, 3, false), 0);
    f[0] = gen_dng(d1, "sha256:", fdig, 32);
    f[1] = gen_str(s1, "/lib/modules/x.ko");
    f[2] = (struct gen_field){"", 0};
    f[3] = gen_dng(d2, "sha256:", fdig + 1, 32);
    f[4] = (struct gen_field){"\x30\x82\x01\x00", 4};
    assert_int_equal(ima_gen_add(g, 10, "ima-modsig", f, 5, false), 0);
    f[3] = (struct gen_field){"", 0};
    f[4] = (struct gen_field){"", 0};
    assert_int_equal(ima_gen_add(g, 10, "ima-modsig", f, 5, false), 0);
    f[1] = gen_str(s1, "/etc/evm");
    f[2] = (struct gen_field){"\x05\x02\x04\x01", 4};
    f[3] = gen_str(s2, "security.selinux|security.ima");
    f[4] = (struct gen_field){"\x02\x00\x00\x00\x03\x00\x00\x00", 8};
    f[5] = (struct gen_field){"s\0abc", 5};
    f[6] = (struct gen_field){u4, 4};
    f[7] = (struct gen_field){u4, 4};
    f[8] = (struct gen_field){m2, 2};
    assert_int_equal(ima_gen_add(g, 10, "evm-sig", f, 9, false), 0);
    /* custom format names */
    f[0] = gen_dng(d1, "sha384:", fdig, 48);
    f[1] = gen_str(s1, "/custom");
    f[2] = (struct gen_field){u4, 4};
    assert_int_equal(ima_gen_add(g, 11, "d-ng|n-ng|iuid", f, 3, false), 0);
    f[0] = (struct gen_field){fdig, 20};
    f[1] = gen_str(s1, "/legacy-fields");
    assert_int_equal(ima_gen_add(g, 11, "d|n", f, 2, false), 0);
    /* pod-aware templates */
    f[0] = gen_str(s1, "/usr/local/bin/app:/usr/bin/containerd-shim-runc-v2:/sbin/init:swapper/0");
    f[1] = gen_str(s2, "/kubepods/besteffort/pod" UIDD "/" CID);
    f[2] = gen_dng(d1, "sha256:", fdig, 32);
    f[3] = gen_str(s3, "/usr/local/bin/app");
    assert_int_equal(ima_gen_add(g, 10, "ima-cgpath", f, 4, false), 0);
    f[1] = gen_str(s2, "cri-containerd-" CID ".scope");
    assert_int_equal(ima_gen_add(g, 10, "ima-dep-cgn", f, 4, false), 0);
    /* violations, in the pre- and post-5.19 forms */
    f[0] = gen_dng(d1, "sha1:", (const uint8_t[64]){0}, 20);
    f[1] = gen_str(s1, "/tmp/tomtou");
    assert_int_equal(ima_gen_add(g, 10, "ima-ng", f, 2, true), 0);
    f[0] = gen_dng(d1, "sha256:", (const uint8_t[64]){0}, 32);
    assert_int_equal(ima_gen_add(g, 10, "ima-ng", f, 2, true), 0);
}

static void replay_and_compare(struct ima_gen *g) {
    struct ima_parser p;
    struct ima_replay r;
    struct ima_replay_result res;

    ima_parser_init(&p, g->digest_len);
    ima_replay_init(&r, IMA_BANKS_ALL);
    assert_int_equal(ima_replay_list(&r, &p, g->list.data, g->list.len, NULL, 0, &res), 0);
    assert_int_equal(res.entries, g->count);
    assert_int_equal(res.bytes, g->list.len);
    assert_int_equal(r.touched, g->touched);
    for (int b = 0; b < IMA_HASH_COUNT; b++) {
        for (uint32_t pcr = 0; pcr < IMA_PCR_COUNT; pcr++) {
            assert_memory_equal(ima_replay_get(&r, (enum ima_hash_alg)b, pcr), g->pcr[b][pcr],
                                gen_bank_size(b));
        }
    }
}

static void ascii_roundtrip(struct ima_gen *g) {
    _cleanup_kbuf_ struct kbuf text = KBUF_INIT(1 << 22), bin = KBUF_INIT(1 << 22);
    struct ima_parser p;
    struct ima_entry e;
    struct ima_error err;
    uint32_t width;
    size_t off = 0;

    ima_parser_init(&p, g->digest_len);
    while (off < g->list.len) {
        int n = ima_parser_next(&p, g->list.data + off, g->list.len - off, &e);
        assert_true(n > 0);
        assert_true(e.known);
        assert_int_equal(ima_entry_verify_digest(&e), 0);
        assert_int_equal(ima_entry_format_ascii(&e, &text), 0);
        off += (size_t)n;
    }
    if (ima_ascii_to_binary((char *)text.data, text.len, &bin, &width, &err) < 0) {
        fail_msg("ASCII read-back: entry %llu: %s", (unsigned long long)err.index, err.msg);
    }
    assert_int_equal(width, g->digest_len);
    assert_int_equal(bin.len, g->list.len);
    assert_memory_equal(bin.data, g->list.data, g->list.len);
}

static void test_every_template_every_width(void **state) {
    (void)state;
    for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
        struct ima_gen g;
        ima_gen_init(&g, widths[w], 1 << 22);
        add_every_template(&g);
        replay_and_compare(&g);
        ascii_roundtrip(&g);
        ima_gen_free(&g);
    }
}

static void test_cgpath_every_layout(void **state) {
    (void)state;
    for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
        struct ima_gen g;
        struct ima_parser p;
        struct ima_entry e;
        size_t off = 0, i = 0;

        ima_gen_init(&g, widths[w], 1 << 22);
        for (size_t k = 0; k < sizeof(layouts) / sizeof(layouts[0]); k++) {
            char s1[128], s2[512], s3[64];
            uint8_t d[128];
            struct gen_field f[4] = {
                    gen_str(s1, "/bin/sh:/usr/bin/containerd-shim-runc-v2:/sbin/init:swapper/0"),
                    gen_str(s2, layouts[k].fmt), gen_dng(d, "sha256:", fdig, 32),
                    gen_str(s3, "/bin/sh")};
            assert_int_equal(ima_gen_add(&g, 10, "ima-cgpath", f, 4, false), 0);
        }
        replay_and_compare(&g);
        ascii_roundtrip(&g);
        ima_parser_init(&p, widths[w]);
        while (off < g.list.len) {
            struct ima_pod_ref ref;
            const struct layout *L = &layouts[i];
            int n = ima_parser_next(&p, g.list.data + off, g.list.len - off, &e);
            assert_true(n > 0);
            assert_int_equal(ima_entry_attribute(&e, &ref), 0);
            if (L->qos == IMA_QOS_NONE) {
                assert_int_equal(ref.scope, IMA_SCOPE_NODE);
            } else {
                assert_int_equal(ref.scope, IMA_SCOPE_POD);
                assert_string_equal(ref.pod_uid, UIDD);
                assert_string_equal(ref.container_id, CID);
                assert_int_equal(ref.qos, L->qos);
                assert_int_equal(ref.runtime, L->runtime);
                assert_int_equal(ref.driver, L->systemd ? IMA_DRIVER_SYSTEMD : IMA_DRIVER_CGROUPFS);
            }
            off += (size_t)n;
            i++;
        }
        assert_int_equal(i, sizeof(layouts) / sizeof(layouts[0]));
        ima_gen_free(&g);
    }
}

static void test_templates_without_cgroup_are_node(void **state) {
    struct ima_gen g;
    struct ima_parser p;
    struct ima_entry e;
    struct ima_pod_ref ref;
    size_t off = 0;
    (void)state;

    ima_gen_init(&g, 20, 1 << 22);
    add_every_template(&g);
    ima_parser_init(&p, 20);
    while (off < g.list.len) {
        int n = ima_parser_next(&p, g.list.data + off, g.list.len - off, &e);
        assert_int_equal(ima_entry_attribute(&e, &ref), 0);
        if (e.name_len == 10 && memcmp(e.name, "ima-cgpath", 10) == 0) {
            assert_int_equal(ref.scope, IMA_SCOPE_POD);
        } else if (e.name_len == 11 && memcmp(e.name, "ima-dep-cgn", 11) == 0) {
            assert_int_equal(ref.scope, IMA_SCOPE_CONTAINER);
            assert_string_equal(ref.container_id, CID);
        } else {
            assert_int_equal(ref.scope, IMA_SCOPE_NODE);
        }
        off += (size_t)n;
    }
    ima_gen_free(&g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_every_template_every_width),
            cmocka_unit_test(test_cgpath_every_layout),
            cmocka_unit_test(test_templates_without_cgroup_are_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
