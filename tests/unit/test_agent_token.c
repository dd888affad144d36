/* SPDX-License-Identifier: Apache-2.0 */
/* agent/token.c: the token in a file's bytes, and the file read again as
 * the kubelet rotates it (a new folder, the ..data symlink swapped) or
 * every AGENT_TOKEN_REREAD_MS. The clock is the test's. */
#include "test-util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "token.h"

struct parse_case {
    const char *in;
    int want;
    const char *token; /* when 0 */
};

static const struct parse_case parse_cases[] = {
        {"eyJhbGciOi.eyJhdWQiOlsia2ltYSJd.c2ln", 0, "eyJhbGciOi.eyJhdWQiOlsia2ltYSJd.c2ln"},
        {"  tok-node-1\n", 0, "tok-node-1"},
        {"\r\n\ttok+/_~.-==\r\n", 0, "tok+/_~.-=="},
        {"", -EINVAL, NULL},
        {" \n\t\r\n", -EINVAL, NULL},
        {"tok node-1", -EBADMSG, NULL},
        {"tok\nnode-1", -EBADMSG, NULL},
        {"tok=a", -EBADMSG, NULL},
        {"tok\"", -EBADMSG, NULL},
        {"tok\x01", -EBADMSG, NULL},
        {"t\xc3\xa9", -EBADMSG, NULL},
};

static void test_parse(void **state) {
    char err[160], *t = NULL;
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(parse_cases); i++) {
        const struct parse_case *c = &parse_cases[i];
        int r = agent_token_parse((const uint8_t *)c->in, strlen(c->in), &t, err, sizeof(err));
        if (r != c->want) {
            fail_msg("case %zu: %d, wanted %d (%s)", i, r, c->want, err);
        }
        if (r == 0) {
            assert_string_equal(t, c->token);
            free(t);
            t = NULL;
        } else {
            assert_true(strlen(err) > 0);
        }
    }
    /* A NUL inside is a byte no token has. */
    assert_int_equal(agent_token_parse((const uint8_t *)"ab\0cd", 5, &t, err, sizeof(err)),
                     -EBADMSG);
}

static void test_parse_cap(void **state) {
    uint8_t *buf = malloc(AGENT_TOKEN_MAX + 3);
    char err[160], *t = NULL;
    (void)state;

    assert_non_null(buf);
    memset(buf, 'a', AGENT_TOKEN_MAX + 3);
    buf[AGENT_TOKEN_MAX] = '\n';
    assert_int_equal(agent_token_parse(buf, AGENT_TOKEN_MAX + 1, &t, err, sizeof(err)), 0);
    assert_int_equal(strlen(t), AGENT_TOKEN_MAX);
    free(t);
    buf[AGENT_TOKEN_MAX] = 'a';
    assert_int_equal(agent_token_parse(buf, AGENT_TOKEN_MAX + 1, &t, err, sizeof(err)), -E2BIG);
    free(buf);
}

static void put(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write_full(fd, text, strlen(text)), 0);
    close(fd);
}

/* The kubelet's swap: DIR/..N/token written, DIR/..data pointed at it. */
static void kubelet_swap(const char *dir, int n, const char *text) {
    char sub[4200], file[4300], tmp[4200], data[4200], target[16];

    snprintf(target, sizeof(target), "..%d", n);
    snprintf(sub, sizeof(sub), "%s/%s", dir, target);
    snprintf(file, sizeof(file), "%s/token", sub);
    snprintf(tmp, sizeof(tmp), "%s/..data_tmp", dir);
    snprintf(data, sizeof(data), "%s/..data", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    put(file, text);
    assert_int_equal(symlink(target, tmp), 0);
    assert_int_equal(rename(tmp, data), 0);
}

static void test_rotation(void **state) {
    char dir[4096], link[4200];
    struct agent_token t;
    const char *v = NULL;
    (void)state;

    assert_int_equal(test_tmpdir_new("token", dir, sizeof(dir)), 0);
    snprintf(link, sizeof(link), "%s/token", dir);
    agent_token_init(&t, link);
    /* No file yet. */
    assert_int_equal(agent_token_get(&t, 0, &v), -ENOENT);
    kubelet_swap(dir, 1, "tok-one\n");
    assert_int_equal(symlink("..data/token", link), 0);
    assert_int_equal(agent_token_get(&t, 0, &v), 0);
    assert_string_equal(v, "tok-one");
    /* Rotated: seen at the next request, long before the periodic read. */
    kubelet_swap(dir, 2, "tok-two\n");
    assert_int_equal(agent_token_get(&t, 1, &v), 0);
    assert_string_equal(v, "tok-two");
    /* Rotated to garbage: refused, no older token sent instead. */
    kubelet_swap(dir, 3, "tok three\n");
    assert_int_equal(agent_token_get(&t, 2, &v), -EBADMSG);
    assert_int_equal(agent_token_get(&t, 3, &v), -EBADMSG);
    kubelet_swap(dir, 4, "");
    assert_int_equal(agent_token_get(&t, 4, &v), -EINVAL);
    kubelet_swap(dir, 5, "tok-five");
    assert_int_equal(agent_token_get(&t, 5, &v), 0);
    assert_string_equal(v, "tok-five");
    agent_token_free(&t);
    agent_token_free(&t);
    assert_int_equal(test_tmpdir_free(dir), 0);
}

/* A file changed in place with its size and mtime as they were: read again
 * after AGENT_TOKEN_REREAD_MS all the same. */
static void test_periodic(void **state) {
    char dir[4096], path[4200];
    struct agent_token t;
    struct stat st;
    const char *v = NULL;
    (void)state;

    assert_int_equal(test_tmpdir_new("token", dir, sizeof(dir)), 0);
    snprintf(path, sizeof(path), "%s/token", dir);
    put(path, "tok-aaa");
    agent_token_init(&t, path);
    assert_int_equal(agent_token_get(&t, 1000, &v), 0);
    assert_string_equal(v, "tok-aaa");
    assert_int_equal(stat(path, &st), 0);
    {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(write_full(fd, "tok-bbb", 7), 0);
        assert_int_equal(futimens(fd, (struct timespec[2]){st.st_atim, st.st_mtim}), 0);
        close(fd);
    }
    assert_int_equal(agent_token_get(&t, 1000 + AGENT_TOKEN_REREAD_MS - 1, &v), 0);
    assert_string_equal(v, "tok-aaa");
    assert_int_equal(agent_token_get(&t, 1000 + AGENT_TOKEN_REREAD_MS, &v), 0);
    assert_string_equal(v, "tok-bbb");
    /* Too big a file: refused. */
    {
        char *big = malloc(AGENT_TOKEN_MAX + 2048);
        assert_non_null(big);
        memset(big, 'a', AGENT_TOKEN_MAX + 2047);
        big[AGENT_TOKEN_MAX + 2047] = 0;
        put(path, big);
        free(big);
    }
    assert_int_equal(agent_token_get(&t, 1000 + 2 * AGENT_TOKEN_REREAD_MS, &v), -E2BIG);
    agent_token_free(&t);
    assert_int_equal(test_tmpdir_free(dir), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse),
            cmocka_unit_test(test_parse_cap),
            cmocka_unit_test(test_rotation),
            cmocka_unit_test(test_periodic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
