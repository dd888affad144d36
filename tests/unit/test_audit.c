/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "audit.h"
#include "fileio.h"

static char dir[64], logpath[128], keypath[128];
static EVP_PKEY *key;

static int setup(void **state) {
    (void)state;
    assert_int_equal(test_tmpdir_new("audit", dir, sizeof(dir)), 0);
    snprintf(logpath, sizeof(logpath), "%s/audit.log", dir);
    snprintf(keypath, sizeof(keypath), "%s/audit.key", dir);
    assert_int_equal(audit_key_load_or_create(keypath, &key), 0);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    EVP_PKEY_free(key);
    return test_tmpdir_free(dir);
}

static void write_records(const char *path, int n, unsigned checkpoint_every) {
    struct audit_log *a;
    uint64_t seq;

    assert_int_equal(audit_open(path, key, 0, checkpoint_every, &a), 0);
    for (int i = 0; i < n; i++) {
        json_t *d = json_pack("{s:s,s:i}", "reason", "test", "i", i);
        struct audit_pod pod = {"ns", "pod-a", "uid-1"};
        assert_int_equal(audit_append(a, "state-change", "node-1", &pod, d, &seq), 0);
        json_decref(d);
        assert_int_equal(audit_sync(a, seq), 0);
    }
    audit_close(a);
}

static struct audit_verify_result verify1(const char *path) {
    struct audit_verify_result res;
    const char *paths[] = {path};
    assert_int_equal(audit_verify(paths, 1, key, &res), 0);
    return res;
}

/* Rewrite the file with a line changed by `edit`. */
static void rewrite(const char *path, void (*edit)(char **lines, int *n)) {
    char *lines[200];
    int n = 0;
    char buf[8192];
    FILE *f = fopen(path, "r");

    while (n < 200 && fgets(buf, sizeof(buf), f)) {
        lines[n++] = strdup(buf);
    }
    fclose(f);
    edit(lines, &n);
    f = fopen(path, "w");
    for (int i = 0; i < n; i++) {
        fputs(lines[i], f);
        free(lines[i]);
    }
    fclose(f);
}

static void edit_text(char **l, int *n) {
    (void)n;
    char *p = strstr(l[3], "pod-a");
    p[4] = 'b';
}
static void delete_line(char **l, int *n) {
    free(l[2]);
    memmove(&l[2], &l[3], (size_t)(*n - 3) * sizeof(char *));
    (*n)--;
}
static void swap_lines(char **l, int *n) {
    (void)n;
    char *t = l[1];
    l[1] = l[2];
    l[2] = t;
}

static void test_intact_and_tampering(void **state) {
    struct audit_verify_result res;
    char copy[160];
    (void)state;

    write_records(logpath, 10, 4);
    res = verify1(logpath);
    assert_true(res.intact);
    assert_int_equal(res.checkpoints, 3); /* after 4, 8, and at close */
    assert_int_equal(res.records, 13);
    assert_int_equal(res.unsigned_tail, 0);

    snprintf(copy, sizeof(copy), "%s.edit", logpath);
    for (int k = 0; k < 3; k++) {
        char cmd[400];
        void (*edits[])(char **, int *) = {edit_text, delete_line, swap_lines};
        const char *want[] = {"edited", "deleted or reordered", "deleted or reordered"};
        snprintf(cmd, sizeof(cmd), "cp %s %s", logpath, copy);
        assert_int_equal(system(cmd), 0);
        rewrite(copy, edits[k]);
        res = verify1(copy);
        assert_false(res.intact);
        if (!strstr(res.first_bad, want[k])) {
            fail_msg("edit %d: %s", k, res.first_bad);
        }
    }
    /* A checkpoint signed by another key. */
    {
        EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        const char *paths[] = {logpath};
        assert_int_equal(audit_verify(paths, 1, other, &res), 0);
        assert_false(res.intact);
        assert_non_null(strstr(res.first_bad, "signature does not verify"));
        EVP_PKEY_free(other);
    }
    unlink(copy);
    unlink(logpath);
}

static void test_reopen_continues_and_cuts_torn_line(void **state) {
    struct audit_verify_result res;
    FILE *f;
    (void)state;

    write_records(logpath, 3, 100);
    /* A crash mid-write leaves half a line: it was never acknowledged. */
    f = fopen(logpath, "a");
    fputs("{\"seq\":99,\"time\":\"x", f);
    fclose(f);
    res = verify1(logpath);
    assert_false(res.intact);
    write_records(logpath, 2, 100);
    res = verify1(logpath);
    assert_true(res.intact);
    assert_int_equal(res.records, 3 + 1 + 2 + 1);
    unlink(logpath);
}

static void test_rotation_keeps_chain(void **state) {
    struct audit_log *a;
    struct audit_verify_result res;
    struct audit_head head;
    uint64_t seq;
    char rotated[8][200];
    const char *paths[9];
    size_t n = 0;
    (void)state;

    assert_int_equal(audit_open(logpath, key, 2000, AUDIT_CHECKPOINT_EVERY_DEFAULT, &a), 0);
    for (int i = 0; i < 30; i++) {
        json_t *d = json_pack("{s:i}", "i", i);
        assert_int_equal(audit_append(a, "violation", "node-2", NULL, d, &seq), 0);
        json_decref(d);
    }
    assert_int_equal(audit_sync(a, seq), 0);
    assert_int_equal(audit_head(a, &head), 0);
    audit_close(a);
    {
        char cmd[300];
        FILE *p;
        snprintf(cmd, sizeof(cmd), "ls %s/audit.log.* | sort", dir);
        p = popen(cmd, "r");
        while (n < 8 && fgets(rotated[n], sizeof(rotated[n]), p)) {
            rotated[n][strcspn(rotated[n], "\n")] = 0;
            paths[n] = rotated[n];
            n++;
        }
        pclose(p);
    }
    assert_true(n >= 2);
    paths[n] = logpath;
    assert_int_equal(audit_verify(paths, n + 1, key, &res), 0);
    if (!res.intact) {
        fail_msg("%s", res.first_bad);
    }
    /* Against a head taken before the close: vouched for up to it, and the
     * close's checkpoint signs the rest. */
    assert_int_equal(audit_verify_head(paths, n + 1, key, &head, &res), 0);
    assert_true(res.head_matched);
    assert_int_equal(audit_verify_verdict(&res), AUDIT_INTACT);
    /* A rotated file left out breaks the chain. */
    assert_int_equal(audit_verify(paths + 1, n, key, &res), 0);
    assert_false(res.intact);
    /* A new log here would continue the rotated files' chain. */
    for (size_t i = 0; i < n; i++) {
        unlink(rotated[i]);
    }
    unlink(logpath);
}

struct thread_arg {
    struct audit_log *a;
    int id;
};

static void *appender(void *p) {
    struct thread_arg *t = p;
    for (int i = 0; i < 50; i++) {
        uint64_t seq;
        json_t *d = json_pack("{s:i,s:i}", "thread", t->id, "i", i);
        if (audit_append(t->a, "state-change", "n", NULL, d, &seq) < 0 ||
            audit_sync(t->a, seq) < 0) {
            abort();
        }
        json_decref(d);
    }
    return NULL;
}

static void test_concurrent_appends(void **state) {
    struct audit_log *a;
    struct audit_verify_result res;
    pthread_t th[4];
    struct thread_arg args[4];
    char path[160];
    (void)state;

    snprintf(path, sizeof(path), "%s/concurrent.log", dir);
    assert_int_equal(audit_open(path, key, 0, 64, &a), 0);
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){a, i};
        pthread_create(&th[i], NULL, appender, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    audit_close(a);
    res = verify1(path);
    assert_true(res.intact);
    assert_int_equal(res.records - res.checkpoints, 200);
}

/* --- the open tail, the timer, the head, the caps */

static int64_t fake_now;
static int64_t fake_clock(void *ud) {
    (void)ud;
    return fake_now;
}
#define T0 1767225600000 /* 2026-01-01T00:00:00.000Z */

static struct audit_log *open_fake(const char *path, unsigned checkpoint_every) {
    struct audit_log *a;

    assert_int_equal(audit_open(path, key, 0, checkpoint_every, &a), 0);
    audit_set_clock(a, fake_clock, NULL);
    return a;
}

static void append1(struct audit_log *a, const char *type, json_t *d) {
    uint64_t seq;
    assert_int_equal(audit_append(a, type, "node-1", NULL, d, &seq), 0);
    assert_int_equal(audit_sync(a, seq), 0);
}

static void append_n(struct audit_log *a, int n) {
    for (int i = 0; i < n; i++) {
        json_t *d = json_pack("{s:s,s:i}", "reason", "test", "i", i);
        append1(a, "state-change", d);
        json_decref(d);
        fake_now += 1000;
    }
}

static void copy_file(const char *from, const char *to) {
    _cleanup_free_ uint8_t *data = NULL;
    size_t len;
    FILE *f;

    assert_int_equal(read_file_capped(from, 64u << 20, &data, &len), 0);
    f = fopen(to, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* Line `n` (1-based; 0: the last) of a file, as a new string. */
static char *line_of(const char *path, int n) {
    _cleanup_free_ uint8_t *data = NULL;
    size_t len, off = 0;
    int i = 0;
    char *last = NULL;

    assert_int_equal(read_file_capped(path, 64u << 20, &data, &len), 0);
    while (off < len) {
        char *l = (char *)data + off, *nl = memchr(l, '\n', len - off);
        size_t ll = nl ? (size_t)(nl - l) : len - off;
        free(last);
        last = strndup(l, ll);
        off += ll + 1;
        if (++i == n) {
            break;
        }
    }
    assert_non_null(last);
    return last;
}

static json_t *record_of(const char *path, int n) {
    _cleanup_free_ char *l = line_of(path, n);
    json_t *j = json_loads(l, 0, NULL);
    assert_non_null(j);
    return j;
}

static int count_lines(const char *path) {
    _cleanup_free_ uint8_t *data = NULL;
    size_t len;
    int n = 0;

    assert_int_equal(read_file_capped(path, 64u << 20, &data, &len), 0);
    for (size_t i = 0; i < len; i++) {
        n += data[i] == '\n';
    }
    return n;
}

/* Replace the last line by `edit` of it, and re-chain: recompute its hash
 * as anyone who can write the file can (no key needed). */
static void rewrite_last_and_rechain(const char *path, const char *from, const char *to) {
    _cleanup_free_ uint8_t *data = NULL;
    size_t len, start;
    char *body, *p, hex[65];
    uint8_t md[32];
    unsigned int mdlen;
    FILE *f;

    assert_int_equal(read_file_capped(path, 64u << 20, &data, &len), 0);
    start = len - 1;
    while (start > 0 && data[start - 1] != '\n') {
        start--;
    }
    body = strndup((char *)data + start, len - 1 - start);
    p = strstr(body, from);
    assert_non_null(p);
    assert_int_equal(strlen(from), strlen(to));
    memcpy(p, to, strlen(to));
    p = strstr(body, ",\"hash\":\"");
    assert_non_null(p);
    p[0] = '}';
    p[1] = 0;
    EVP_Digest(body, strlen(body), md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) {
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
    f = fopen(path, "w");
    fwrite(data, 1, start, f);
    p[0] = 0;
    fprintf(f, "%s,\"hash\":\"%s\"}\n", body, hex);
    fclose(f);
    free(body);
}

static void test_timer_checkpoint(void **state) {
    struct audit_verify_result res;
    struct audit_log *a;
    char crash[160];
    json_auto_t *last = NULL;
    (void)state;
    unlink(logpath); /* test_rotation_keeps_chain leaves its log */

    fake_now = T0;
    a = open_fake(logpath, 1000);
    audit_set_checkpoint_ms(a, 5000);
    /* Nothing unsigned: no checkpoint, however late. */
    assert_int_equal(audit_checkpoint_due(a, T0 + 3600000), 0);
    append_n(a, 2); /* stamped T0 and T0 + 1 s */
    assert_int_equal(audit_checkpoint_due(a, T0 + 4999), 0);
    assert_int_equal(count_lines(logpath), 2);
    assert_int_equal(audit_checkpoint_due(a, T0 + 5000), 1);
    assert_int_equal(count_lines(logpath), 3);
    last = record_of(logpath, 0);
    assert_string_equal(json_string_value(json_object_get(last, "type")), "checkpoint");
    /* Signed: nothing is due any more. */
    assert_int_equal(audit_checkpoint_due(a, T0 + 60000), 0);
    assert_int_equal(count_lines(logpath), 3);
    res = verify1(logpath);
    assert_true(res.intact);
    assert_int_equal(res.unsigned_tail, 0);
    assert_int_equal(audit_verify_verdict(&res), AUDIT_INTACT);

    /* The interval counts from the oldest unsigned record, not the newest. */
    fake_now = T0 + 100000;
    append_n(a, 3); /* T0+100 s .. T0+102 s */
    assert_int_equal(audit_checkpoint_due(a, T0 + 104999), 0);
    assert_int_equal(audit_checkpoint_due(a, T0 + 105000), 1);
    /* A clock that stepped back does not hold the tail open. */
    fake_now = T0 + 200000;
    append_n(a, 1);
    assert_int_equal(audit_checkpoint_due(a, T0 + 150000), 1);
    /* The interval is clamped to its minimum. */
    audit_set_checkpoint_ms(a, 10);
    fake_now = T0 + 300000;
    append_n(a, 1);
    assert_int_equal(audit_checkpoint_due(a, T0 + 300999), 0);
    assert_int_equal(audit_checkpoint_due(a, T0 + 301000), 1);

    /* A crash leaves an unsigned tail; the reopened log signs it by timer. */
    append_n(a, 1);
    snprintf(crash, sizeof(crash), "%s/crash.log", dir);
    copy_file(logpath, crash);
    audit_close(a);
    fake_now = T0 + 400000;
    a = open_fake(crash, 1000);
    assert_int_equal(audit_checkpoint_due(a, T0 + 404999), 0);
    assert_int_equal(audit_checkpoint_due(a, T0 + 405000), 1);
    audit_close(a);
    res = verify1(crash);
    assert_true(res.intact);
    assert_int_equal(res.unsigned_tail, 0);
    unlink(crash);
    unlink(logpath);
}

/* A log with a checkpoint at seq 5 and two records after it, as a copy
 * taken while the verifier runs. */
static struct audit_log *log_with_tail(const char *copy) {
    struct audit_log *a;

    fake_now = T0;
    a = open_fake(logpath, 4);
    append_n(a, 6); /* 1-4, checkpoint 5, 6 at T0+4 s, 7 at T0+5 s */
    copy_file(logpath, copy);
    return a;
}

static void test_unsigned_tail_reported(void **state) {
    struct audit_verify_result res;
    struct audit_log *a;
    char copy[160];
    (void)state;
    unlink(logpath); /* test_rotation_keeps_chain leaves its log */

    snprintf(copy, sizeof(copy), "%s/tail.log", dir);
    a = log_with_tail(copy);
    res = verify1(copy);
    assert_true(res.intact);
    assert_int_equal(res.records, 7);
    assert_int_equal(res.checkpoints, 1);
    assert_int_equal(res.unsigned_tail, 2);
    assert_int_equal(res.last_seq, 7);
    assert_int_equal(res.last_checkpoint_seq, 5);
    assert_string_equal(res.last_checkpoint_time, "2026-01-01T00:00:03.000Z");
    assert_string_equal(res.first_unsigned_time, "2026-01-01T00:00:04.000Z");
    assert_int_equal(audit_verify_verdict(&res), AUDIT_UNSIGNED_TAIL);
    audit_close(a);
    /* Closing signs it. */
    res = verify1(logpath);
    assert_int_equal(res.unsigned_tail, 0);
    assert_string_equal(res.first_unsigned_time, "");
    assert_int_equal(audit_verify_verdict(&res), AUDIT_INTACT);
    unlink(copy);
    unlink(logpath);
}

static void test_rechained_tail_is_not_signed(void **state) {
    struct audit_verify_result res;
    struct audit_head head;
    struct audit_log *a;
    char copy[160];
    const char *paths[] = {copy};
    (void)state;
    unlink(logpath); /* test_rotation_keeps_chain leaves its log */

    snprintf(copy, sizeof(copy), "%s/rechained.log", dir);
    a = log_with_tail(copy);
    assert_int_equal(audit_head(a, &head), 0);
    assert_int_equal(head.seq, 7);
    /* The last record rewritten, its hash recomputed: the chain holds, but
     * nothing signs it, so it is not "intact and signed". */
    rewrite_last_and_rechain(copy, "\"i\":5", "\"i\":9");
    res = verify1(copy);
    assert_true(res.intact);
    assert_int_equal(res.unsigned_tail, 2);
    assert_int_equal(audit_verify_verdict(&res), AUDIT_UNSIGNED_TAIL);
    /* Against the head taken before, the rewrite is named. */
    assert_int_equal(audit_verify_head(paths, 1, key, &head, &res), 0);
    assert_false(res.intact);
    assert_int_equal(audit_verify_verdict(&res), AUDIT_TAMPERED);
    if (!strstr(res.first_bad, "(seq 7)") || !strstr(res.first_bad, "signed head")) {
        fail_msg("%s", res.first_bad);
    }
    /* The tail cut off (the file now ends at the checkpoint): offline it
     * looks complete; the head says it is not. */
    copy_file(logpath, copy);
    {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "sed -i '6,$d' %s", copy);
        assert_int_equal(system(cmd), 0);
    }
    res = verify1(copy);
    assert_int_equal(audit_verify_verdict(&res), AUDIT_INTACT);
    assert_int_equal(audit_verify_head(paths, 1, key, &head, &res), 0);
    assert_true(res.truncated);
    assert_int_equal(res.last_seq, 5);
    assert_int_equal(audit_verify_verdict(&res), AUDIT_TRUNCATED);
    /* The live file against the head: records up to it are vouched for,
     * the ones appended after it are the unsigned tail. */
    append_n(a, 1);
    {
        const char *live[] = {logpath};
        assert_int_equal(audit_verify_head(live, 1, key, &head, &res), 0);
        assert_true(res.intact);
        assert_true(res.head_matched);
        assert_int_equal(res.unsigned_tail, 1);
        assert_string_equal(res.first_unsigned_time, "2026-01-01T00:00:06.000Z");
        assert_int_equal(audit_verify_verdict(&res), AUDIT_UNSIGNED_TAIL);
        assert_int_equal(audit_head(a, &head), 0);
        assert_int_equal(audit_verify_head(live, 1, key, &head, &res), 0);
        assert_int_equal(audit_verify_verdict(&res), AUDIT_INTACT);
        assert_int_equal(res.unsigned_tail, 0);
    }
    audit_close(a);
    unlink(copy);
    unlink(logpath);
}

static void test_head_signature(void **state) {
    struct audit_head h, back, forged;
    struct audit_log *a;
    char err[256];
    json_auto_t *j = NULL;
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    (void)state;
    unlink(logpath); /* test_rotation_keeps_chain leaves its log */

    fake_now = T0;
    a = open_fake(logpath, 1000);
    /* An empty log's head: seq 0, zero hash; it verifies an empty file. */
    assert_int_equal(audit_head(a, &h), 0);
    assert_int_equal(h.seq, 0);
    assert_int_equal(strspn(h.hash, "0"), 64);
    assert_true(audit_head_signature_ok(&h, key));
    {
        struct audit_verify_result res;
        const char *paths[] = {logpath};
        assert_int_equal(audit_verify_head(paths, 1, key, &h, &res), 0);
        assert_true(res.head_matched);
        assert_int_equal(audit_verify_verdict(&res), AUDIT_INTACT);
    }
    append_n(a, 3);
    assert_int_equal(audit_head(a, &h), 0);
    assert_int_equal(h.seq, 3);
    assert_string_equal(h.time, "2026-01-01T00:00:03.000Z");
    {
        _cleanup_free_ char *l = line_of(logpath, 3);
        assert_non_null(strstr(l, h.hash));
    }
    /* Round trip through JSON. */
    j = audit_head_to_json(&h);
    assert_non_null(j);
    assert_int_equal(audit_head_from_json(j, &back, err, sizeof(err)), 0);
    assert_int_equal(back.seq, 3);
    assert_string_equal(back.hash, h.hash);
    assert_string_equal(back.time, h.time);
    assert_true(audit_head_signature_ok(&back, key));
    /* Every field is signed, and only the audit key signs. */
    forged = back;
    forged.seq = 2;
    assert_false(audit_head_signature_ok(&forged, key));
    forged = back;
    forged.hash[0] = forged.hash[0] == 'a' ? 'b' : 'a';
    assert_false(audit_head_signature_ok(&forged, key));
    forged = back;
    forged.time[18] = '9';
    assert_false(audit_head_signature_ok(&forged, key));
    forged = back;
    forged.signature[5] = forged.signature[5] == 'A' ? 'B' : 'A';
    assert_false(audit_head_signature_ok(&forged, key));
    assert_false(audit_head_signature_ok(&back, other));
    /* A checkpoint signature is not a head signature (separate contexts). */
    {
        json_auto_t *ck = NULL;
        audit_checkpoint(a);
        ck = record_of(logpath, 0);
        forged = back;
        forged.seq = 4;
        snprintf(forged.signature, sizeof(forged.signature), "%s",
                 json_string_value(json_object_get(json_object_get(ck, "details"), "signature")));
        assert_false(audit_head_signature_ok(&forged, key));
    }
    /* Malformed heads are refused before any signature check. */
    {
        const char *bad_heads[] = {
                "[]",
                "{\"hash\":\"00\",\"time\":\"t\",\"signature\":\"s\"}",
                "{\"seq\":-1,\"hash\":\"x\",\"time\":\"t\",\"signature\":\"s\"}",
                "{\"seq\":1,\"hash\":"
                "\"ABCDEF0000000000000000000000000000000000000000000000000000000"
                "000\",\"time\":\"t\",\"signature\":\"s\"}",
                "{\"seq\":1,\"hash\":\"00\",\"time\":\"t\",\"signature\":\"s\"}",
                "{\"seq\":1,\"hash\":\"000000000000000000000000000000000000000000000000000000000000"
                "0000\",\"time\":\"t\\u001b[2J\",\"signature\":\"s\"}",
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad_heads); i++) {
            json_auto_t *b = json_loads(bad_heads[i], 0, NULL);
            assert_non_null(b);
            if (audit_head_from_json(b, &back, err, sizeof(err)) != -EBADMSG) {
                fail_msg("head %zu accepted", i);
            }
        }
    }
    audit_close(a);
    EVP_PKEY_free(other);
    unlink(logpath);
}

static void test_field_cap(void **state) {
    struct audit_verify_result res;
    struct audit_log *a;
    size_t big = 180 * 1024;
    char *path = malloc(big + 1);
    json_auto_t *rec = NULL;
    const char *s;
    char want[64];
    (void)state;
    unlink(logpath); /* test_rotation_keeps_chain leaves its log */

    memset(path, 'p', big);
    path[0] = '/';
    path[big] = 0;
    a = open_fake(logpath, 1000);
    {
        json_t *d = json_pack("{s:s,s:s}", "path", path, "reason", "not allowed");
        append1(a, "violation", d);
        json_decref(d);
    }
    {
        /* A key as long as the value, and bytes that are not UTF-8 (jansson
         * checks only what goes through json_string). */
        json_t *d = json_object();
        json_object_set_new(d, path, json_stringn_nocheck("a\xff\xfe/b", 5));
        append1(a, "violation", d);
        json_decref(d);
    }
    append1(a, "reset", NULL);
    audit_close(a);
    {
        _cleanup_free_ char *l = line_of(logpath, 1);
        assert_true(strlen(l) < AUDIT_FIELD_MAX + 512);
    }
    rec = record_of(logpath, 1);
    s = json_string_value(json_object_get(json_object_get(rec, "details"), "path"));
    assert_non_null(s);
    assert_true(strlen(s) <= AUDIT_FIELD_MAX);
    snprintf(want, sizeof(want), "...[%zu bytes]", big);
    assert_int_equal(strncmp(s, "/ppp", 4), 0);
    assert_string_equal(s + strlen(s) - strlen(want), want);
    assert_string_equal(
            json_string_value(json_object_get(json_object_get(rec, "details"), "reason")),
            "not allowed");
    json_decref(rec);
    rec = record_of(logpath, 2);
    {
        const char *k;
        json_t *v;
        int n = 0;
        json_object_foreach(json_object_get(rec, "details"), k, v) {
            assert_true(strlen(k) <= AUDIT_FIELD_MAX);
            assert_string_equal(k + strlen(k) - strlen(want), want);
            assert_string_equal(json_string_value(v), "a\\xff\\xfe/b");
            n++;
        }
        assert_int_equal(n, 1);
    }
    json_decref(rec);
    /* NULL details: no details, said so. */
    rec = record_of(logpath, 3);
    assert_true(json_is_object(json_object_get(rec, "details")));
    assert_int_equal(json_object_size(json_object_get(rec, "details")), 0);
    res = verify1(logpath);
    if (!res.intact) {
        fail_msg("%s", res.first_bad);
    }
    assert_int_equal(res.records, 4);
    free(path);
    unlink(logpath);
}

static void test_huge_details_summarised(void **state) {
    struct audit_verify_result res;
    struct audit_log *a;
    json_t *d = json_object(), *deep = json_object();
    char *field = malloc(4001), *text, hash[65];
    json_auto_t *rec = NULL;
    json_t *got;
    uint8_t md[32];
    unsigned int mdlen;
    (void)state;
    unlink(logpath); /* test_rotation_keeps_chain leaves its log */

    memset(field, 'x', 4000);
    field[4000] = 0;
    for (int i = 0; i < 400; i++) { /* 1.6 MB of fields, each under the cap */
        char k[16];
        snprintf(k, sizeof(k), "f%d", i);
        json_object_set_new(d, k, json_string(field));
    }
    for (int i = 0; i < AUDIT_DEPTH_MAX + 4; i++) {
        json_t *outer = json_object();
        json_object_set_new(outer, "in", deep);
        deep = outer;
    }
    a = open_fake(logpath, 1000);
    append1(a, "violation", d);
    append1(a, "violation", deep);
    audit_close(a);
    {
        _cleanup_free_ char *l = line_of(logpath, 1);
        assert_true(strlen(l) <= AUDIT_LINE_MAX);
    }
    rec = record_of(logpath, 1);
    got = json_object_get(rec, "details");
    assert_true(json_is_true(json_object_get(got, "truncated")));
    text = json_dumps(d, JSON_COMPACT);
    assert_int_equal(json_integer_value(json_object_get(got, "bytes")), strlen(text));
    EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) {
        snprintf(hash + 2 * i, 3, "%02x", md[i]);
    }
    assert_string_equal(json_string_value(json_object_get(got, "sha256")), hash);
    free(text);
    json_decref(rec);
    rec = record_of(logpath, 2);
    assert_true(json_is_true(json_object_get(json_object_get(rec, "details"), "truncated")));
    res = verify1(logpath);
    if (!res.intact) {
        fail_msg("%s", res.first_bad);
    }
    assert_int_equal(res.records, 3);
    json_decref(d);
    json_decref(deep);
    free(field);
    unlink(logpath);
}

/* A write that fails part way (a full disk, a file size limit) is cut back
 * to the last whole record: the chain stays verifiable when the verifier
 * goes on (found by the security review). */
static void test_partial_write_cut_back(void **state) {
    char tdir[64], path[128], keyp[128];
    struct audit_log *a = NULL;
    struct audit_verify_result res;
    EVP_PKEY *akey = NULL, *pub = NULL;
    struct rlimit old, lim;
    struct stat st;
    json_t *d;
    uint64_t seq;
    const char *paths[1];
    (void)state;

    assert_int_equal(test_tmpdir_new("audit-fsz", tdir, sizeof(tdir)), 0);
    snprintf(path, sizeof(path), "%s/audit.log", tdir);
    snprintf(keyp, sizeof(keyp), "%s/audit.key", tdir);
    assert_int_equal(audit_key_load_or_create(keyp, &akey), 0);
    assert_int_equal(audit_open(path, akey, 0, AUDIT_CHECKPOINT_EVERY_DEFAULT, &a), 0);
    assert_int_equal(audit_append(a, "registration", "node-1", NULL, NULL, &seq), 0);
    assert_int_equal(audit_sync(a, seq), 0);

    /* The disk fills up in the middle of the next record. */
    assert_int_equal(stat(path, &st), 0);
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)st.st_size + 40;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    d = json_pack("{s:s}", "reason", "a record longer than the room left on the disk");
    assert_true(audit_append(a, "violation", "node-1", NULL, d, &seq) < 0);
    json_decref(d);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);

    /* Room again: the verifier goes on. */
    assert_int_equal(audit_append(a, "state-change", "node-1", NULL, NULL, &seq), 0);
    assert_int_equal(audit_sync(a, seq), 0);
    assert_int_equal(audit_checkpoint(a), 0);
    audit_close(a);

    {
        char pubp[140];
        FILE *f;
        snprintf(pubp, sizeof(pubp), "%s.pub", keyp);
        f = fopen(pubp, "r");
        assert_non_null(f);
        pub = PEM_read_PUBKEY(f, NULL, NULL, NULL);
        fclose(f);
    }
    paths[0] = path;
    assert_int_equal(audit_verify(paths, 1, pub, &res), 0);
    print_message("audit verify after the failed write: %s\n",
                  res.intact ? "intact" : res.first_bad);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(akey);
    assert_int_equal(test_tmpdir_free(tdir), 0);
    assert_true(res.intact);
}

/* --- one chain per replica */

/* A log of replica `name` (NULL: an old log that names none) with key k:
 * n records, a checkpoint every `every`, closed. */
static void write_replica_log(const char *path, EVP_PKEY *k, const char *name, int n,
                              unsigned every) {
    struct audit_log *a;
    uint64_t seq;

    assert_int_equal(audit_open(path, k, 0, every, &a), 0);
    if (name) {
        assert_int_equal(audit_set_replica(a, name), 0);
    }
    for (int i = 0; i < n; i++) {
        json_t *d = json_pack("{s:i}", "i", i);
        assert_int_equal(audit_append(a, "state-change", "node-1", NULL, d, &seq), 0);
        json_decref(d);
    }
    assert_int_equal(audit_sync(a, seq), 0);
    audit_close(a);
}

/* Replace every `from` by `to` (same length) in the file and re-chain it
 * all, as anyone who can write the file can: hashes and prevs recomputed,
 * signatures left as they were (no key). */
static void edit_and_rechain(const char *path, const char *from, const char *to) {
    _cleanup_free_ uint8_t *data = NULL;
    char prev[65], hex[65], *body, *p;
    size_t len, off = 0;
    uint8_t md[32];
    unsigned int mdlen;
    FILE *f;

    assert_int_equal(read_file_capped(path, 64u << 20, &data, &len), 0);
    assert_int_equal(strlen(from), strlen(to));
    memset(prev, '0', 64);
    prev[64] = 0;
    f = fopen(path, "w");
    assert_non_null(f);
    while (off < len) {
        char *l = (char *)data + off, *nl = memchr(l, '\n', len - off);
        body = strndup(l, (size_t)(nl - l));
        off += (size_t)(nl - l) + 1;
        for (p = strstr(body, from); p; p = strstr(p + 1, from)) {
            memcpy(p, to, strlen(to));
        }
        p = strstr(body, "\"prev\":\"");
        memcpy(p + 8, prev, 64);
        p = strstr(body, ",\"hash\":\"");
        p[0] = '}';
        p[1] = 0;
        EVP_Digest(body, strlen(body), md, &mdlen, EVP_sha256(), NULL);
        for (int i = 0; i < 32; i++) {
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
        }
        p[0] = 0;
        fprintf(f, "%s,\"hash\":\"%s\"}\n", body, hex);
        memcpy(prev, hex, 65);
        free(body);
    }
    fclose(f);
}

static void test_replica_names(void **state) {
    char err[160], long_name[80];
    (void)state;

    assert_int_equal(audit_replica_check("kima-verifier-0", err, sizeof(err)), 0);
    assert_int_equal(audit_replica_check("a", err, sizeof(err)), 0);
    memset(long_name, 'a', 63);
    long_name[63] = 0;
    assert_int_equal(audit_replica_check(long_name, err, sizeof(err)), 0);
    long_name[63] = 'a';
    long_name[64] = 0;
    assert_int_equal(audit_replica_check(long_name, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "longer than 63"));
    assert_int_equal(audit_replica_check("", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "empty"));
    assert_int_equal(audit_replica_check(NULL, err, sizeof(err)), -EINVAL);
    assert_int_equal(audit_replica_check("Kima", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "uppercase letter at 1"));
    assert_int_equal(audit_replica_check("a.b", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "at 2"));
    assert_int_equal(audit_replica_check("-a", err, sizeof(err)), -EINVAL);
    assert_int_equal(audit_replica_check("a-", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "start and end"));
}

static void test_replica_chain(void **state) {
    struct audit_verify_result res;
    struct audit_log *a;
    char path[160], fp[AUDIT_KEY_FP_LEN + 1];
    json_auto_t *first = NULL, *second = NULL;
    (void)state;

    snprintf(path, sizeof(path), "%s/replica.log", dir);
    unlink(path);
    write_replica_log(path, key, "kima-verifier-0", 6, 4);
    /* The chain starts with its name, signed at once. */
    first = record_of(path, 1);
    second = record_of(path, 2);
    assert_int_equal(audit_key_fingerprint(key, fp), 0);
    assert_int_equal(strlen(fp), AUDIT_KEY_FP_LEN);
    assert_string_equal(json_string_value(json_object_get(first, "type")), "replica");
    assert_string_equal(
            json_string_value(json_object_get(json_object_get(first, "details"), "replica")),
            "kima-verifier-0");
    assert_string_equal(
            json_string_value(json_object_get(json_object_get(first, "details"), "key")), fp);
    assert_string_equal(json_string_value(json_object_get(second, "type")), "checkpoint");
    res = verify1(path);
    if (!res.intact) {
        fail_msg("%s", res.first_bad);
    }
    assert_string_equal(res.replica, "kima-verifier-0");
    assert_true(res.replica_signed);
    assert_string_equal(res.key_fp, fp);
    assert_int_equal(res.first_seq, 1);
    assert_int_equal(res.records, 2 + 6 + 2); /* replica, checkpoint, 6, checkpoints at 4, close */
    /* The same replica again: no new start record; another one refused. */
    write_replica_log(path, key, "kima-verifier-0", 1, 100);
    assert_int_equal(count_lines(path), 10 + 2);
    assert_int_equal(audit_open(path, key, 0, 100, &a), 0);
    assert_int_equal(audit_set_replica(a, "kima-verifier-1"), -EEXIST);
    assert_int_equal(audit_set_replica(a, "Bad_Name"), -EINVAL);
    audit_close(a);
    assert_int_equal(count_lines(path), 12);
    res = verify1(path);
    assert_true(res.intact);
    unlink(path);
}

/* A chain passed off as another replica's: its name edited in every record
 * and the chain re-hashed, without the key. */
static void test_replica_rename_caught(void **state) {
    struct audit_verify_result res;
    char path[160];
    (void)state;

    snprintf(path, sizeof(path), "%s/renamed.log", dir);
    unlink(path);
    write_replica_log(path, key, "kima-verifier-0", 3, 100);
    edit_and_rechain(path, "\"kima-verifier-0\"", "\"kima-verifier-1\"");
    res = verify1(path);
    assert_false(res.intact);
    assert_false(res.replica_signed);
    if (!strstr(res.first_bad, "checkpoint signature does not verify")) {
        fail_msg("%s", res.first_bad);
    }
    /* Its name taken out to pass as an old log: the signatures say no. */
    unlink(path);
    write_replica_log(path, key, "kima-verifier-0", 3, 100);
    edit_and_rechain(path, ",\"replica\":\"kima-verifier-0\"", ",\"xeplica\":\"kima-verifier-0\"");
    res = verify1(path);
    assert_false(res.intact);
    /* The key field edited to another fingerprint. */
    unlink(path);
    write_replica_log(path, key, "kima-verifier-0", 3, 100);
    edit_and_rechain(path, "\"key\":\"sha256:", "\"key\":\"sha257:");
    res = verify1(path);
    assert_false(res.intact);
    assert_non_null(strstr(res.first_bad, "not the fingerprint"));
    unlink(path);
}

/* A log written before replicas had names verifies as before; named later,
 * it names its replica from there on. */
static void test_old_log_then_named(void **state) {
    struct audit_verify_result res;
    char path[160];
    (void)state;

    snprintf(path, sizeof(path), "%s/old.log", dir);
    unlink(path);
    write_replica_log(path, key, NULL, 5, 2);
    res = verify1(path);
    assert_true(res.intact);
    assert_string_equal(res.replica, "");
    assert_false(res.replica_signed);
    assert_int_equal(audit_verify_verdict(&res), AUDIT_INTACT);
    write_replica_log(path, key, "kima-verifier-2", 2, 100);
    res = verify1(path);
    if (!res.intact) {
        fail_msg("%s", res.first_bad);
    }
    assert_string_equal(res.replica, "kima-verifier-2");
    assert_true(res.replica_signed);
    unlink(path);
}

/* Every break is listed with its seq, and the walk goes on past each. */
static void delete_8_and_14(char **l, int *n) {
    free(l[13]);
    memmove(&l[13], &l[14], (size_t)(*n - 14) * sizeof(char *));
    free(l[7]);
    memmove(&l[7], &l[8], (size_t)(*n - 9) * sizeof(char *));
    *n -= 2;
}

static void test_every_gap_listed(void **state) {
    struct audit_verify_result res;
    char path[160];
    (void)state;

    snprintf(path, sizeof(path), "%s/gaps.log", dir);
    unlink(path);
    write_replica_log(path, key, "kima-verifier-0", 20, 5);
    rewrite(path, delete_8_and_14);
    res = verify1(path);
    assert_false(res.intact);
    assert_int_equal(res.ngaps, 2);
    if (!strstr(res.gaps[0], "(seq 9): sequence jumps from 7: seq 8-8 missing") ||
        !strstr(res.gaps[1], "(seq 15): sequence jumps from 13: seq 14-14 missing")) {
        fail_msg("%s | %s", res.gaps[0], res.gaps[1]);
    }
    assert_string_equal(res.first_bad, res.gaps[0]);
    /* The checkpoints after the gaps still verify: the tail is signed. */
    assert_int_equal(res.unsigned_tail, 0);
    assert_true(res.replica_signed);
    assert_int_equal(res.last_seq, 2 + 20 + 4); /* the close had nothing to sign */
    unlink(path);
}

static void test_missing_rotated_file(void **state) {
    struct audit_verify_result res;
    struct audit_log *a;
    char rotated[16][200], path[160];
    const char *paths[17];
    size_t n = 0, k = 0;
    uint64_t seq;
    (void)state;

    snprintf(path, sizeof(path), "%s/rot/audit.log", dir);
    snprintf(rotated[0], sizeof(rotated[0]), "%s/rot", dir);
    mkdir(rotated[0], 0700);
    assert_int_equal(audit_open(path, key, 1500, 100, &a), 0);
    assert_int_equal(audit_set_replica(a, "kima-verifier-1"), 0);
    for (int i = 0; i < 30; i++) {
        json_t *d = json_pack("{s:i}", "i", i);
        assert_int_equal(audit_append(a, "violation", "node-2", NULL, d, &seq), 0);
        json_decref(d);
    }
    audit_close(a);
    {
        char cmd[300];
        FILE *p;
        snprintf(cmd, sizeof(cmd), "ls %s/rot/audit.log.* | sort", dir);
        p = popen(cmd, "r");
        while (n < 16 && fgets(rotated[n], sizeof(rotated[n]), p)) {
            rotated[n][strcspn(rotated[n], "\n")] = 0;
            n++;
        }
        pclose(p);
    }
    assert_true(n >= 3);
    for (size_t i = 0; i < n; i++) {
        if (i != 1) {
            paths[k++] = rotated[i];
        }
    }
    paths[k++] = path;
    assert_int_equal(audit_verify(paths, k, key, &res), 0);
    assert_false(res.intact);
    assert_int_equal(res.ngaps, 1);
    if (!strstr(res.first_bad, "a rotated file is missing before this one") ||
        !strstr(res.first_bad, rotated[2])) {
        fail_msg("%s", res.first_bad);
    }
    for (size_t i = 0; i < n; i++) {
        unlink(rotated[i]);
    }
    unlink(path);
}

/* A line longer than AUDIT_LINE_MAX is reported and skipped, never held. */
static void test_long_line_skipped(void **state) {
    struct audit_verify_result res;
    _cleanup_free_ uint8_t *data = NULL;
    char path[160];
    size_t len, cut;
    FILE *f;
    (void)state;

    snprintf(path, sizeof(path), "%s/long.log", dir);
    unlink(path);
    write_replica_log(path, key, "kima-verifier-0", 4, 100);
    /* After the second line, a line of AUDIT_LINE_MAX + 10 bytes. */
    assert_int_equal(read_file_capped(path, 64u << 20, &data, &len), 0);
    {
        const uint8_t *nl = memchr(data, '\n', len);
        nl = memchr(nl + 1, '\n', len - (size_t)(nl + 1 - data));
        cut = (size_t)(nl - data) + 1;
    }
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, cut, f), cut);
    for (size_t i = 0; i < AUDIT_LINE_MAX + 10; i++) {
        fputc('x', f);
    }
    fputc('\n', f);
    assert_int_equal(fwrite(data + cut, 1, len - cut, f), len - cut);
    fclose(f);
    res = verify1(path);
    assert_false(res.intact);
    assert_int_equal(res.ngaps, 1);
    if (!strstr(res.first_bad, ":3 (seq 3): a line longer than")) {
        fail_msg("%s", res.first_bad);
    }
    assert_int_equal(res.records, 2 + 4 + 1);
    assert_int_equal(res.last_seq, 7);
    unlink(path);
}

/* A log reopened when a rotation has just left the live file empty goes on
 * from the newest rotated file's chain (it once began again at seq 1). */
static void test_reopen_after_rotation(void **state) {
    struct audit_verify_result res;
    struct audit_log *a;
    char path[160], rotated[200];
    struct stat st;
    uint64_t seq = 0;
    (void)state;

    snprintf(path, sizeof(path), "%s/rot2", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/rot2/audit.log", dir);
    assert_int_equal(audit_open(path, key, 4096, 100, &a), 0);
    assert_int_equal(audit_set_replica(a, "kima-verifier-0"), 0);
    for (int i = 0; i < 200 && (stat(path, &st) < 0 || st.st_size > 0 || seq < 3); i++) {
        json_t *d = json_pack("{s:i}", "i", i);
        assert_int_equal(audit_append(a, "violation", "node-2", NULL, d, &seq), 0);
        json_decref(d);
    }
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 0); /* rotated just now */
    audit_close(a);
    snprintf(rotated, sizeof(rotated), "%s.%020" PRIu64, path, seq + 1);
    assert_int_equal(stat(rotated, &st), 0);
    write_replica_log(path, key, "kima-verifier-0", 2, 100);
    {
        const char *paths[] = {rotated, path};
        assert_int_equal(audit_verify(paths, 2, key, &res), 0);
    }
    if (!res.intact) {
        fail_msg("%s", res.first_bad);
    }
    assert_int_equal(res.first_seq, 1);
    assert_int_equal(res.last_seq, seq + 1 + 2 + 1);
    unlink(rotated);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_intact_and_tampering),
            cmocka_unit_test(test_reopen_continues_and_cuts_torn_line),
            cmocka_unit_test(test_rotation_keeps_chain),
            cmocka_unit_test(test_concurrent_appends),
            cmocka_unit_test(test_timer_checkpoint),
            cmocka_unit_test(test_unsigned_tail_reported),
            cmocka_unit_test(test_rechained_tail_is_not_signed),
            cmocka_unit_test(test_head_signature),
            cmocka_unit_test(test_field_cap),
            cmocka_unit_test(test_huge_details_summarised),
            cmocka_unit_test(test_partial_write_cut_back),
            cmocka_unit_test(test_replica_names),
            cmocka_unit_test(test_replica_chain),
            cmocka_unit_test(test_replica_rename_caught),
            cmocka_unit_test(test_old_log_then_named),
            cmocka_unit_test(test_every_gap_listed),
            cmocka_unit_test(test_missing_rotated_file),
            cmocka_unit_test(test_long_line_skipped),
            cmocka_unit_test(test_reopen_after_rotation),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
