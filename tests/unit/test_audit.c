/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "audit.h"

static char dir[64], logpath[128], keypath[128];
static EVP_PKEY *key;

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/kima-audit-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(logpath, sizeof(logpath), "%s/audit.log", dir);
    snprintf(keypath, sizeof(keypath), "%s/audit.key", dir);
    assert_int_equal(audit_key_load_or_create(keypath, &key), 0);
    return 0;
}

static int teardown(void **state) {
    char cmd[200];
    (void)state;
    EVP_PKEY_free(key);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd);
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
    uint64_t seq;
    char rotated[8][200];
    const char *paths[9];
    size_t n = 0;
    (void)state;

    assert_int_equal(audit_open(logpath, key, 2000, 1000, &a), 0);
    for (int i = 0; i < 30; i++) {
        json_t *d = json_pack("{s:i}", "i", i);
        assert_int_equal(audit_append(a, "violation", "node-2", NULL, d, &seq), 0);
        json_decref(d);
    }
    assert_int_equal(audit_sync(a, seq), 0);
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
    /* A rotated file left out breaks the chain. */
    assert_int_equal(audit_verify(paths + 1, n, key, &res), 0);
    assert_false(res.intact);
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

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_intact_and_tampering),
            cmocka_unit_test(test_reopen_continues_and_cuts_torn_line),
            cmocka_unit_test(test_rotation_keeps_chain),
            cmocka_unit_test(test_concurrent_appends),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
