/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kube-config.h"

static char dir[64];

static void put(const char *name, const char *text) {
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int load(const char *text, const char *ctx, struct kube_config *c, char *err) {
    char path[256];

    put("config", text);
    snprintf(path, sizeof(path), "%s/config", dir);
    return kube_config_from_kubeconfig(path, ctx, c, err, 300);
}

static int setup(void **state) {
    (void)state;
    assert_int_equal(test_tmpdir_new("kube", dir, sizeof(dir)), 0);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    return test_tmpdir_free(dir);
}

#define HEAD                                                                  \
    "apiVersion: v1\nkind: Config\ncurrent-context: a\n"                      \
    "clusters:\n- name: c1\n  cluster:\n    server: https://10.0.0.1:6443/\n" \
    "    certificate-authority: certs/ca.pem\n"                               \
    "- name: c2\n  cluster:\n    server: https://api.example:443\n"           \
    "    certificate-authority-data: LS0tLS1CRUdJTg==\n"                      \
    "contexts:\n- name: a\n  context: {cluster: c1, user: u1}\n"              \
    "- name: b\n  context:\n    cluster: c2\n    user: u2\n"

static void test_kubeconfig(void **state) {
    struct kube_config c;
    char err[300], want[256];
    (void)state;

    put("token", "tok-from-file\n");
    assert_int_equal(load(HEAD "users:\n- name: u1\n  user:\n    token: abc.def\n"
                               "- name: u2\n  user:\n    client-certificate-data: Y2VydA==\n"
                               "    client-key-data: a2V5\n",
                          NULL, &c, err),
                     0);
    assert_string_equal(c.server, "https://10.0.0.1:6443");
    snprintf(want, sizeof(want), "%s/certs/ca.pem", dir); /* relative to the file */
    assert_string_equal(c.ca_file, want);
    assert_string_equal(c.token, "abc.def");
    assert_null(c.cert_data);
    assert_null(c.namespace);
    kube_config_free(&c);

    /* the context's namespace: the Lease's when POD_NAMESPACE is unset */
    assert_int_equal(load(HEAD "- name: n\n  context: {cluster: c1, user: u1, namespace: kima}\n"
                               "users:\n- name: u1\n  user:\n    token: abc.def\n",
                          "n", &c, err),
                     0);
    assert_string_equal(c.namespace, "kima");
    kube_config_free(&c);

    assert_int_equal(load(HEAD "users:\n- name: u1\n  user: {}\n"
                               "- name: u2\n  user:\n    client-certificate-data: Y2VydA==\n"
                               "    client-key-data: a2V5\n",
                          "b", &c, err),
                     0);
    assert_string_equal(c.server, "https://api.example:443");
    assert_int_equal(c.ca_len, 10);
    assert_memory_equal(c.ca_data, "-----BEGIN", 10);
    assert_int_equal(c.cert_len, 4);
    assert_memory_equal(c.cert_data, "cert", 4);
    assert_memory_equal(c.key_data, "key", 3);
    assert_null(c.token);
    kube_config_free(&c);

    assert_int_equal(
            load(HEAD "users:\n- name: u1\n  user:\n    tokenFile: token\n", NULL, &c, err), 0);
    assert_string_equal(c.token, "tok-from-file");
    kube_config_free(&c);
}

/* Files named by the kubeconfig resolve against its folder unless absolute;
 * tokens lose their line ends; the server its trailing slashes. */
static void test_kubeconfig_paths_and_tokens(void **state) {
    struct kube_config c;
    char err[300], want[256];
    (void)state;

    put("token", "tok\r\n\n");
    assert_int_equal(load("current-context: a\nclusters:\n- name: c1\n  cluster:\n"
                          "    server: https://x:6443///\n    certificate-authority: /etc/ca.pem\n"
                          "contexts:\n- name: a\n  context: {cluster: c1, user: u1}\n"
                          "users:\n- name: u1\n  user:\n    tokenFile: token\n"
                          "    client-certificate: pki/u1.crt\n    client-key: /keys/u1.key\n",
                          NULL, &c, err),
                     0);
    assert_string_equal(c.server, "https://x:6443");
    assert_string_equal(c.ca_file, "/etc/ca.pem");
    assert_string_equal(c.token, "tok");
    snprintf(want, sizeof(want), "%s/pki/u1.crt", dir);
    assert_string_equal(c.cert_file, want);
    assert_string_equal(c.key_file, "/keys/u1.key");
    assert_false(c.insecure);
    kube_config_free(&c);

    /* A token, not a tokenFile, when both are given; a context without a user. */
    assert_int_equal(load(HEAD "users:\n- name: u1\n  user: {token: t1, tokenFile: nowhere}\n",
                          NULL, &c, err),
                     0);
    assert_string_equal(c.token, "t1");
    kube_config_free(&c);
    assert_int_equal(load("current-context: a\nclusters:\n- name: c1\n  cluster: {server: "
                          "'https://x'}\ncontexts:\n- name: a\n  context: {cluster: c1}\n",
                          NULL, &c, err),
                     0);
    assert_null(c.token);
    assert_null(c.cert_file);
    kube_config_free(&c);
}

static void test_kubeconfig_refused(void **state) {
    static const struct {
        const char *text, *ctx, *why;
    } bad[] = {
            {HEAD "users:\n- name: u1\n  user: {token: x}\n", "nope", "context \"nope\""},
            {"current-context: a\ncontexts: []\n", NULL, "context \"a\""},
            {"clusters: []\n", NULL, "no current-context"},
            {HEAD "users: []\n", NULL, "user \"u1\" is missing"},
            {HEAD "users:\n- name: u1\n  user:\n    exec: {command: aws}\n", NULL, "exec"},
            {HEAD "users:\n- name: u1\n  user:\n    client-certificate: c.pem\n", NULL,
             "without its key"},
            {"current-context: a\nclusters:\n- name: c1\n  cluster: {server: http://x}\n"
             "contexts:\n- name: a\n  context: {cluster: c1}\n",
             NULL, "https://"},
            {HEAD "users:\n- name: u1\n  user: {client-certificate-data: '!!!'}\n", NULL,
             "not base64"},
            {"a: &x [1]\nb: *x\n", NULL, "aliases"},
            {"a: [1\n", NULL, "YAML error"},
            {"", NULL, "empty"},
            {HEAD "users:\n- name: u1\n  user: {token: \"ab\\r\\nX-Evil: 1\"}\n", NULL,
             "control characters"},
            {"current-context: a\ncontexts:\n- name: a\n  context: {cluster: c9}\n", NULL,
             "cluster \"c9\" is missing"},
            {HEAD "users:\n- name: u1\n  user: {tokenFile: no-such-token}\n", NULL,
             "cannot read the user's tokenFile no-such-token"},
    };
    struct kube_config c;
    char err[300];
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        if (load(bad[i].text, bad[i].ctx, &c, err) >= 0) {
            fail_msg("accepted case %zu", i);
        }
        if (!strstr(err, bad[i].why)) {
            fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err, bad[i].why);
        }
    }
    /* insecure-skip-tls-verify is read (and refused by the verifier). */
    assert_int_equal(
            load("current-context: a\nclusters:\n- name: c1\n  cluster: {server: 'https://x', "
                 "insecure-skip-tls-verify: true}\ncontexts:\n- name: a\n  context: {cluster: "
                 "c1}\n",
                 NULL, &c, err),
            0);
    assert_true(c.insecure);
    kube_config_free(&c);
}

static void test_in_cluster(void **state) {
    struct kube_config c;
    char err[300];
    (void)state;

    unsetenv("KUBERNETES_SERVICE_HOST");
    assert_int_equal(kube_config_in_cluster(dir, &c, err, sizeof(err)), -ENOENT);
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    put("token", "sa-token\n");
    assert_int_equal(kube_config_in_cluster(dir, &c, err, sizeof(err)), 0);
    assert_string_equal(c.server, "https://10.96.0.1:443");
    assert_string_equal(c.token, "sa-token");
    assert_non_null(strstr(c.ca_file, "/ca.crt"));
    assert_null(c.namespace); /* no namespace file */
    kube_config_free(&c);
    put("namespace", "kima-system\n"); /* the Lease's namespace */
    assert_int_equal(kube_config_in_cluster(dir, &c, err, sizeof(err)), 0);
    assert_string_equal(c.namespace, "kima-system");
    kube_config_free(&c);
    setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
    assert_int_equal(kube_config_in_cluster(dir, &c, err, sizeof(err)), 0);
    assert_string_equal(c.server, "https://[fd00::1]:443");
    kube_config_free(&c);
    setenv("KUBERNETES_SERVICE_PORT", "44x", 1);
    assert_int_equal(kube_config_in_cluster(dir, &c, err, sizeof(err)), -EINVAL);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    put("token", "sa token\r\n");
    assert_int_equal(kube_config_in_cluster(dir, &c, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "control characters"));
    put("token", "sa-token\r\n");
    assert_int_equal(kube_config_in_cluster(dir, &c, err, sizeof(err)), 0);
    assert_string_equal(c.token, "sa-token");
    kube_config_free(&c);
    /* The token's file read again (the kubelet rotates it): a new token
     * replaces the one in hand; the same, a missing file or a file without
     * a usable token keep it. */
    put("token", "sa-token\n");
    assert_int_equal(kube_config_in_cluster(dir, &c, err, sizeof(err)), 0);
    assert_int_equal(kube_config_reread_token(&c), 0);
    assert_string_equal(c.token, "sa-token");
    put("token", "sa-token-2\n");
    assert_int_equal(kube_config_reread_token(&c), 1);
    assert_string_equal(c.token, "sa-token-2");
    put("token", "sa token\n");
    assert_int_equal(kube_config_reread_token(&c), -EBADMSG);
    put("token", "");
    assert_int_equal(kube_config_reread_token(&c), -EBADMSG);
    {
        char path[256];
        snprintf(path, sizeof(path), "%s/token", dir);
        assert_int_equal(unlink(path), 0);
    }
    assert_true(kube_config_reread_token(&c) < 0);
    assert_string_equal(c.token, "sa-token-2");
    kube_config_free(&c);
    assert_int_equal(kube_config_reread_token(&c), 0); /* no file to read */
    assert_int_equal(kube_config_in_cluster("/nonexistent", &c, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "cannot read the service account token /nonexistent/token"));
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_kubeconfig),
            cmocka_unit_test(test_kubeconfig_paths_and_tokens),
            cmocka_unit_test(test_kubeconfig_refused),
            cmocka_unit_test(test_in_cluster),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
