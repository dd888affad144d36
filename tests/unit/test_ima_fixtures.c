/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include "ascii-parse.h"
#include "ascii.h"
#include "bootaggr.h"
#include "cgroup.h"
#include "hex.h"
#include "replay.h"
#include "verify.h"

/* Real lists from public projects (tests/fixtures/ima/README.md). */

/* Parse and verify every entry; returns the count. Fails on any error. */
static uint64_t parse_all(const uint8_t *buf, size_t len, uint32_t width) {
    struct ima_parser p;
    struct ima_entry e;
    size_t off = 0;

    ima_parser_init(&p, width);
    while (off < len) {
        int n = ima_parser_next(&p, buf + off, len - off, &e);
        if (n < 0) {
            char msg[256];
            fail_msg("%s", ima_error_format(&p.err, msg, sizeof(msg)));
        }
        if (ima_entry_verify_digest(&e) != 0) {
            fail_msg("entry %llu: template digest does not verify", (unsigned long long)e.index);
        }
        off += (size_t)n;
    }
    return p.index;
}

/* imakvtpcr10.txt: " PCR 10: 9b e6 ..." lines, sha1..sha512. */
static void read_pcr10(struct ima_pcr_value want[4]) {
    _cleanup_free_ uint8_t *txt = NULL;
    size_t len;
    char *line, *save = NULL;
    int b = 0;

    txt = read_fixture("ima/ibmtss/imakvtpcr10.txt", &len);
    for (line = strtok_r((char *)txt, "\n", &save); line && b < 4;
         line = strtok_r(NULL, "\n", &save)) {
        char *colon = strchr(line, ':');
        size_t n = 0;
        assert_non_null(colon);
        for (char *c = colon + 1; *c; c++) {
            if (*c != ' ') {
                int hi = hex_digit(c[0]), lo = hex_digit(c[1]);
                assert_true(hi >= 0 && lo >= 0);
                want[b].digest[n++] = (uint8_t)(hi << 4 | lo);
                c++;
            }
        }
        want[b].alg = (enum ima_hash_alg)b;
        want[b].pcr = 10;
        assert_int_equal(n, ima_hash_size(want[b].alg));
        b++;
    }
    assert_int_equal(b, 4);
}

/* Each of the four IBM lists replays to all four PCR 10 values of its vTPM,
 * and is detected at its own width. */
static void test_ibmtss_replay_all_banks(void **state) {
    static const struct {
        const char *file;
        uint32_t width;
    } lists[] = {{"ima/ibmtss/sha1.log", 20},
                 {"ima/ibmtss/sha256.log", 32},
                 {"ima/ibmtss/sha384.log", 48},
                 {"ima/ibmtss/sha512.log", 64}};
    struct ima_pcr_value want[4];
    (void)state;

    read_pcr10(want);
    for (size_t i = 0; i < 4; i++) {
        _cleanup_free_ uint8_t *buf = NULL;
        struct ima_parser p;
        struct ima_replay r;
        struct ima_replay_result res;
        uint32_t w;
        size_t len;

        buf = read_fixture(lists[i].file, &len);
        assert_int_equal(ima_list_detect_digest_len(buf, len, &w, NULL), 0);
        assert_int_equal(w, lists[i].width);
        assert_int_equal(parse_all(buf, len, w), 362);
        ima_parser_init(&p, w);
        ima_replay_init(&r, IMA_BANKS_ALL);
        assert_int_equal(ima_replay_list(&r, &p, buf, len, want, 4, &res), 0);
        assert_true(res.matched);
        assert_int_equal(res.entries, 362);
        assert_int_equal(res.bytes, len);
    }
}

static void test_ibmtss_imatest_every_template(void **state) {
    _cleanup_free_ uint8_t *buf = NULL;
    struct ima_parser p;
    struct ima_entry e;
    size_t len, off = 0;
    unsigned violations = 0, unknown = 0, legacy = 0;
    (void)state;

    buf = read_fixture("ima/ibmtss/imatest.log", &len);
    ima_parser_init(&p, 20);
    while (off < len) {
        int n = ima_parser_next(&p, buf + off, len - off, &e);
        assert_true(n > 0);
        assert_int_equal(ima_entry_verify_digest(&e), 0);
        violations += e.violation;
        unknown += !e.known;
        legacy += e.legacy;
        off += (size_t)n;
    }
    assert_int_equal(p.index, 17);
    assert_int_equal(violations, 1);
    assert_int_equal(unknown, 0); /* every custom format name is read */
    assert_int_equal(legacy, 1);
}

/* Lists ending inside an entry: "need more bytes" at the exact place. */
static void test_tpm2tss_trailing_bytes(void **state) {
    static const struct {
        const char *file;
        uint64_t entries;
        uint64_t offset;
        size_t left;
    } lists[] = {{"ima/tpm2-tss/sml-ima-sha1.bin", 12, 916, 1},
                 {"ima/tpm2-tss/sml-ima-ng-sha1.bin", 6, 558, 1},
                 {"ima/tpm2-tss/sml-ima-sig-sha256.bin", 9, 987, 6}};
    (void)state;

    for (size_t i = 0; i < 3; i++) {
        _cleanup_free_ uint8_t *buf = NULL;
        struct ima_parser p;
        struct ima_replay r;
        struct ima_replay_result res;
        size_t len;
        char want[64];

        buf = read_fixture(lists[i].file, &len);
        ima_parser_init(&p, 20);
        ima_replay_init(&r, IMA_BANKS_ALL);
        assert_int_equal(ima_replay_list(&r, &p, buf, len, NULL, 0, &res), 0);
        assert_true(res.incomplete);
        assert_int_equal(res.entries, lists[i].entries);
        assert_int_equal(res.bytes, lists[i].offset);
        assert_int_equal(len - res.bytes, lists[i].left);
        assert_int_equal(p.err.code, -EAGAIN);
        assert_int_equal(p.err.index, lists[i].entries);
        assert_int_equal(p.err.offset, lists[i].offset);
        snprintf(want, sizeof(want), "%zu bytes present", lists[i].left);
        assert_non_null(strstr(p.err.msg, want));
    }
}

static void test_tpm2tss_violations_and_malformed(void **state) {
    _cleanup_free_ uint8_t *a = NULL, *b = NULL, *c = NULL;
    struct ima_parser p;
    struct ima_entry e;
    struct ima_error err;
    size_t len, off = 0;
    uint32_t w;
    (void)state;

    a = read_fixture("ima/tpm2-tss/sml-ima-sha1-invalidated.bin", &len);
    ima_parser_init(&p, 20);
    assert_int_equal(ima_parser_next(&p, a, len, &e), (int)len);
    assert_true(e.violation);
    assert_true(e.legacy);

    b = read_fixture("ima/tpm2-tss/sml-ima-sig-sha256-invalidated.bin", &len);
    ima_parser_init(&p, 20);
    while (off < len) {
        int n = ima_parser_next(&p, b + off, len - off, &e);
        assert_true(n > 0);
        off += (size_t)n;
    }
    assert_int_equal(p.index, 2);
    assert_true(e.violation);

    /* The malformed one: its template data length runs past the file. */
    c = read_fixture("ima/tpm2-tss/sml-ima-ng-sha1-invalidated.bin", &len);
    assert_int_equal(ima_list_detect_digest_len(c, len, &w, &err), -EBADMSG);
    assert_int_equal(err.index, 0);
    assert_int_equal(err.offset, 0);
    assert_non_null(strstr(err.msg, "with 20-byte template digests: incomplete entry"));
    ima_parser_init(&p, 20);
    assert_int_equal(ima_parser_next(&p, c, len, &e), -EAGAIN);
    assert_non_null(strstr(p.err.msg, "86 bytes present, the template data needs 87"));
}

/* kernel-6.1/pcrs*.txt: "sha1:10=HEX" lines, PCRs 0-10 of both banks. */
static void read_kernel_pcrs(const char *file,
                             uint8_t pcrs[IMA_HASH_COUNT][IMA_BOOT_PCRS + 1][IMA_DIGEST_MAX],
                             unsigned want_lines) {
    _cleanup_free_ uint8_t *txt = NULL;
    size_t len;
    unsigned seen = 0;
    char *line, *save = NULL;

    txt = read_fixture(file, &len);
    for (line = strtok_r((char *)txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        enum ima_hash_alg alg;
        char *colon = strchr(line, ':'), *eq = strchr(line, '=');
        unsigned idx;
        assert_non_null(colon);
        assert_non_null(eq);
        assert_int_equal(ima_hash_from_name(line, (size_t)(colon - line), &alg), 0);
        idx = (unsigned)strtoul(colon + 1, NULL, 10);
        assert_true(idx <= IMA_BOOT_PCRS);
        assert_int_equal(hex_decode(eq + 1, strlen(eq + 1), pcrs[alg][idx], IMA_DIGEST_MAX),
                         (int)ima_hash_size(alg));
        seen++;
    }
    assert_int_equal(seen, want_lines);
}

/* Debian's 6.1 kernel under QEMU with a vTPM (kernel-6.1/make-fixture.sh):
 * the list replays to the PCR 10 the guest read in both banks; its
 * boot_aggregate is the kernel's aggregate of the PCRs 0-9 it read; the
 * ASCII list the kernel printed is the binary list rendered; and the second
 * list ends in the kernel's own open-writers violation entry. */
static void test_kernel_61_list(void **state) {
    static const struct {
        const char *list, *ascii, *pcrs;
        uint64_t entries;
    } boots[] = {
            {"ima/kernel-6.1/binary_runtime_measurements",
             "ima/kernel-6.1/ascii_runtime_measurements", "ima/kernel-6.1/pcrs.txt", 8},
            {"ima/kernel-6.1/binary_runtime_measurements-violation",
             "ima/kernel-6.1/ascii_runtime_measurements-violation",
             "ima/kernel-6.1/pcrs-violation.txt", 10},
    };
    (void)state;

    for (size_t i = 0; i < 2; i++) {
        _cleanup_free_ uint8_t *buf = NULL, *ascii = NULL;
        uint8_t pcrs[IMA_HASH_COUNT][IMA_BOOT_PCRS + 1][IMA_DIGEST_MAX] = {0};
        uint8_t boot[IMA_HASH_COUNT][IMA_BOOT_PCRS][IMA_DIGEST_MAX];
        struct ima_pcr_value want[2] = {{.alg = IMA_HASH_SHA1, .pcr = 10},
                                        {.alg = IMA_HASH_SHA256, .pcr = 10}};
        struct ima_parser p;
        struct ima_entry e, first = {0};
        unsigned violations = 0;
        struct ima_replay r;
        struct ima_replay_result res;
        enum ima_bootaggr_result br;
        struct kbuf rendered;
        size_t len, alen, off = 0;
        uint32_t w;

        buf = read_fixture(boots[i].list, &len);
        ascii = read_fixture(boots[i].ascii, &alen);
        read_kernel_pcrs(boots[i].pcrs, pcrs, 22);
        memcpy(want[0].digest, pcrs[IMA_HASH_SHA1][10], 20);
        memcpy(want[1].digest, pcrs[IMA_HASH_SHA256][10], 32);

        assert_int_equal(ima_list_detect_digest_len(buf, len, &w, NULL), 0);
        assert_int_equal(w, 20);
        assert_int_equal(parse_all(buf, len, w), boots[i].entries);
        ima_parser_init(&p, w);
        ima_replay_init(&r, IMA_BANK(IMA_HASH_SHA1) | IMA_BANK(IMA_HASH_SHA256));
        assert_int_equal(ima_replay_list(&r, &p, buf, len, want, 2, &res), 0);
        assert_true(res.matched);
        assert_int_equal(res.entries, boots[i].entries);

        kbuf_init(&rendered, 1 << 20);
        ima_parser_init(&p, w);
        while (off < len) {
            int n = ima_parser_next(&p, buf + off, len - off, &e);
            assert_true(n > 0);
            if (e.index == 0) {
                first = e;
            }
            if (e.violation) {
                /* the open-writers violation on /var/log/node.log, entry 8 */
                const struct ima_field *nm = ima_entry_field(&e, IMA_FIELD_N_NG);
                assert_int_equal(e.index, 8);
                assert_non_null(nm);
                assert_string_equal((const char *)nm->data, "/var/log/node.log");
                violations++;
            }
            assert_int_equal(ima_entry_format_ascii(&e, &rendered), 0);
            off += (size_t)n;
        }
        assert_int_equal(rendered.len, alen);
        assert_memory_equal(rendered.data, ascii, alen);
        kbuf_free(&rendered);

        for (int b = 0; b < IMA_HASH_COUNT; b++) {
            memcpy(boot[b], pcrs[b], sizeof(boot[b]));
        }
        assert_int_equal(ima_entry_check_boot_aggregate(
                                 &first, (const uint8_t(*)[IMA_BOOT_PCRS][IMA_DIGEST_MAX])boot,
                                 IMA_BANK(IMA_HASH_SHA1) | IMA_BANK(IMA_HASH_SHA256), &br),
                         0);
        assert_int_equal(br, IMA_BOOTAGGR_MATCH);
        assert_int_equal(violations, i);
    }
}

/* A list of Linux with kima's template patch under QEMU (tests/vm/test-vm.sh
 * --fixture), `width`-byte template digests: every entry is ima-cgpath and
 * its template digest verifies; the list replays to the guest's PCR 10 in
 * both banks; the pods' binaries are attributed to the three pods in both
 * cgroup layouts (want[i] entries each) and everything else
 * (boot_aggregate, busybox, kima's own binaries) is node scope. Returns the
 * number of entries. */
static uint64_t check_cgpath_list(const char *list, const char *pcrs_file, uint32_t width,
                                  const unsigned want_pods[3]) {
    static const struct {
        const char *uid;
        enum ima_cgroup_driver driver;
        enum ima_qos qos;
    } pods[] = {
            {"aaaaaaaa-0000-4000-8000-00000000000a", IMA_DRIVER_SYSTEMD, IMA_QOS_BESTEFFORT},
            {"aaaaaaaa-0000-4000-8000-00000000000b", IMA_DRIVER_CGROUPFS, IMA_QOS_BURSTABLE},
            {"aaaaaaaa-0000-4000-8000-00000000000c", IMA_DRIVER_SYSTEMD, IMA_QOS_GUARANTEED},
    };
    _cleanup_free_ uint8_t *buf = NULL;
    uint8_t pcrs[IMA_HASH_COUNT][IMA_BOOT_PCRS + 1][IMA_DIGEST_MAX] = {0};
    struct ima_pcr_value want[2] = {{.alg = IMA_HASH_SHA1, .pcr = 10},
                                    {.alg = IMA_HASH_SHA256, .pcr = 10}};
    struct ima_parser p;
    struct ima_entry e;
    struct ima_replay r;
    struct ima_replay_result res;
    unsigned counts[3] = {0}, node = 0;
    size_t len, off = 0;
    uint64_t n;

    buf = read_fixture(list, &len);
    read_kernel_pcrs(pcrs_file, pcrs, 2);
    memcpy(want[0].digest, pcrs[IMA_HASH_SHA1][10], 20);
    memcpy(want[1].digest, pcrs[IMA_HASH_SHA256][10], 32);
    n = parse_all(buf, len, width);
    assert_true(n > 20);
    ima_parser_init(&p, width);
    ima_replay_init(&r, IMA_BANK(IMA_HASH_SHA1) | IMA_BANK(IMA_HASH_SHA256));
    assert_int_equal(ima_replay_list(&r, &p, buf, len, want, 2, &res), 0);
    assert_true(res.matched);
    assert_int_equal(res.entries, n);

    ima_parser_init(&p, width);
    while (off < len) {
        struct ima_pod_ref ref;
        int k = ima_parser_next(&p, buf + off, len - off, &e);
        assert_true(k > 0);
        off += (size_t)k;
        assert_int_equal(e.name_len, 10);
        assert_memory_equal(e.name, "ima-cgpath", 10);
        assert_int_equal(ima_entry_verify_digest(&e), 0);
        assert_int_equal(ima_entry_attribute(&e, &ref), 0);
        if (ref.scope == IMA_SCOPE_NODE) {
            node++;
            continue;
        }
        assert_int_equal(ref.scope, IMA_SCOPE_POD);
        for (size_t i = 0; i < 3; i++) {
            if (strcmp(ref.pod_uid, pods[i].uid) == 0) {
                assert_int_equal(ref.driver, pods[i].driver);
                assert_int_equal(ref.qos, pods[i].qos);
                counts[i]++;
            }
        }
    }
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(counts[i], want_pods[i]);
    }
    assert_int_equal(node + want_pods[0] + want_pods[1] + want_pods[2], n);
    return n;
}

/* Linux 6.1: one list, SHA-1 template digests. */
static void test_kernel_61_cgpath_list(void **state) {
    static const unsigned want[3] = {1, 2, 1};
    (void)state;

    check_cgpath_list("ima/kernel-6.1-cgpath/binary_runtime_measurements",
                      "ima/kernel-6.1-cgpath/pcrs.txt", 20, want);
}

/* Linux 6.12 writes a list per PCR bank: binary_runtime_measurements (the
 * _sha1 list) and binary_runtime_measurements_sha256. Each replays to both
 * banks' PCR 10 and attributes alike; they hold the same entries (PCR,
 * template, template data) and differ only in the template digest. The
 * width is found from the name and from the data. */
static void test_kernel_612_cgpath_lists(void **state) {
    static const unsigned want[3] = {1, 2, 1};
    static const char *sha1 = "ima/kernel-6.12-cgpath/binary_runtime_measurements",
                      *sha256 = "ima/kernel-6.12-cgpath/binary_runtime_measurements_sha256";
    _cleanup_free_ uint8_t *a = NULL, *b = NULL;
    struct ima_parser pa, pb;
    struct ima_entry ea, eb;
    size_t alen, blen, aoff = 0, boff = 0;
    uint32_t w;
    (void)state;

    assert_int_equal(check_cgpath_list(sha1, "ima/kernel-6.12-cgpath/pcrs.txt", 20, want),
                     check_cgpath_list(sha256, "ima/kernel-6.12-cgpath/pcrs.txt", 32, want));
    a = read_fixture(sha1, &alen);
    b = read_fixture(sha256, &blen);
    assert_int_equal(ima_list_digest_len_from_filename(sha256), 32);
    assert_int_equal(ima_list_detect_digest_len(b, blen, &w, NULL), 0);
    assert_int_equal(w, 32);
    assert_int_equal(ima_list_detect_digest_len(a, alen, &w, NULL), 0);
    assert_int_equal(w, 20);
    ima_parser_init(&pa, 20);
    ima_parser_init(&pb, 32);
    while (aoff < alen) {
        int ka = ima_parser_next(&pa, a + aoff, alen - aoff, &ea);
        int kb = ima_parser_next(&pb, b + boff, blen - boff, &eb);
        assert_true(ka > 0 && kb == ka + 12);
        assert_int_equal(ea.pcr, eb.pcr);
        assert_int_equal(ea.digest_len, 20);
        assert_int_equal(eb.digest_len, 32);
        assert_int_equal(ea.data_len, eb.data_len);
        assert_memory_equal(ea.data, eb.data, ea.data_len);
        aoff += (size_t)ka;
        boff += (size_t)kb;
    }
    assert_int_equal(boff, blen);
}

/* The 77 ima-cgpath entries: SHA-384 digests verify, and every entry goes to
 * the pod and container that the golden file (made from the event text with
 * sed, see README) names. */
static void test_cima_cgpath_attribution(void **state) {
    _cleanup_free_ uint8_t *buf = NULL, *golden = NULL;
    struct ima_parser p;
    struct ima_entry e;
    size_t len, glen, off = 0;
    char *line, *save = NULL;
    uint32_t w;
    (void)state;

    buf = read_fixture("ima/cima/DERIVED-ima-cgpath-binary_runtime_measurements_sha384", &len);
    golden = read_fixture("ima/golden/cima.attribution", &glen);
    assert_int_equal(ima_list_detect_digest_len(buf, len, &w, NULL), 0);
    assert_int_equal(w, 48);
    ima_parser_init(&p, 48);
    line = strtok_r((char *)golden, "\n", &save);
    while (off < len) {
        struct ima_pod_ref ref;
        char want[256];
        int n = ima_parser_next(&p, buf + off, len - off, &e);
        assert_true(n > 0);
        assert_int_equal(ima_entry_verify_digest(&e), 0);
        assert_int_equal(ima_entry_attribute(&e, &ref), 0);
        assert_int_equal(ref.scope, IMA_SCOPE_POD);
        assert_non_null(line);
        snprintf(want, sizeof(want), "%llu %s %s", (unsigned long long)e.index, ref.pod_uid,
                 ref.container_id);
        assert_string_equal(line, want);
        line = strtok_r(NULL, "\n", &save);
        off += (size_t)n;
    }
    assert_null(line);
    assert_int_equal(p.index, 77);
}

static void test_keylime_ascii(void **state) {
    _cleanup_free_ uint8_t *txt = NULL, *neg = NULL, *s1 = NULL, *s256 = NULL;
    _cleanup_kbuf_ struct kbuf bin = KBUF_INIT(1 << 20), again = KBUF_INIT(1 << 20);
    struct ima_error err;
    struct ima_parser p;
    struct ima_entry e;
    uint32_t w;
    size_t len, off = 0;
    (void)state;

    /* Every entry parses, verifies, and renders back to the same text. */
    txt = read_fixture("ima/keylime/test_entries_ascii.txt", &len);
    assert_int_equal(ima_ascii_to_binary((char *)txt, len, &bin, &w, &err), 0);
    assert_int_equal(w, 20);
    assert_int_equal(parse_all(bin.data, bin.len, 20), 9);
    ima_parser_init(&p, 20);
    while (off < bin.len) {
        int n = ima_parser_next(&p, bin.data + off, bin.len - off, &e);
        assert_int_equal(ima_entry_format_ascii(&e, &again), 0);
        off += (size_t)n;
    }
    assert_int_equal(again.len, len);
    assert_memory_equal(again.data, txt, len);

    /* The negative case parses but its digest does not verify. */
    neg = read_fixture("ima/keylime/negative_bad_sig_template_hash_mismatch.txt", &len);
    kbuf_reset(&bin);
    assert_int_equal(ima_ascii_to_binary((char *)neg, len, &bin, &w, &err), 0);
    ima_parser_init(&p, 20);
    assert_true(ima_parser_next(&p, bin.data, bin.len, &e) > 0);
    assert_int_equal(ima_entry_verify_digest(&e), -EBADMSG);

    /* The runtime-policy lists: the sha1 one's boot_aggregate is all zero. */
    s1 = read_fixture("ima/keylime/ima-log-sha1", &len);
    kbuf_reset(&bin);
    assert_int_equal(ima_ascii_to_binary((char *)s1, len, &bin, &w, &err), 0);
    ima_parser_init(&p, 20);
    assert_true(ima_parser_next(&p, bin.data, bin.len, &e) > 0);
    assert_true(e.violation);
    s256 = read_fixture("ima/keylime/ima-log-sha256", &len);
    kbuf_reset(&bin);
    assert_int_equal(ima_ascii_to_binary((char *)s256, len, &bin, &w, &err), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_ibmtss_replay_all_banks),
            cmocka_unit_test(test_ibmtss_imatest_every_template),
            cmocka_unit_test(test_tpm2tss_trailing_bytes),
            cmocka_unit_test(test_tpm2tss_violations_and_malformed),
            cmocka_unit_test(test_cima_cgpath_attribution),
            cmocka_unit_test(test_keylime_ascii),
            cmocka_unit_test(test_kernel_61_list),
            cmocka_unit_test(test_kernel_61_cgpath_list),
            cmocka_unit_test(test_kernel_612_cgpath_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
