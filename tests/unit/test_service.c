/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "log.h"
#include "service.h"
#include "test-store-db.h"

/* kima-verifier's services opened, turned and closed as main() does, in a
 * private folder with plain HTTP on a free loopback port; and each start-up
 * refusal, after which verifier_close() releases what was opened (the
 * sanitizer build checks for leaks). */

struct fixture {
    char dir[64], db[128], audit_log[128], audit_key[128], pods[128];
    struct verifier_config cfg;
};

static int setup(void **state) {
    struct fixture *f = calloc(1, sizeof(*f));
    FILE *fp;

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/kima-test-service-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->pods, sizeof(f->pods), "%s/kima.db", f->dir);
    test_db_choose(f->db, sizeof(f->db), f->pods);
    snprintf(f->audit_log, sizeof(f->audit_log), "%s/audit.log", f->dir);
    snprintf(f->audit_key, sizeof(f->audit_key), "%s/audit.key", f->dir);
    snprintf(f->pods, sizeof(f->pods), "%s/pods.json", f->dir);
    fp = fopen(f->pods, "w");
    assert_non_null(fp);
    fputs("{\"apiVersion\":\"v1\",\"kind\":\"PodList\",\"items\":[]}\n", fp);
    assert_int_equal(fclose(fp), 0);
    /* The defaults of verifier/main.c's table. */
    f->cfg = (struct verifier_config){
            .listen = "127.0.0.1:0",
            .insecure_plain_http = true,
            .db = f->db,
            .pods_file = f->pods,
            .static_pod_namespaces = "kube-system",
            .label_prefix = "kima.dev",
            .kube_refresh_ms = 10000,
            .audit_log = f->audit_log,
            .audit_key = f->audit_key,
            .audit_max_bytes = 64u << 20,
            .audit_checkpoint_ms = AUDIT_CHECKPOINT_MS_DEFAULT,
            .interval_ms = 2000,
            .nonce_ttl_ms = 30000,
            .min_challenge_ms = 100,
            .attribution_grace_ms = 10000,
            .pcr_selection = "sha256:10",
            .threads = 2,
            .max_connections_per_cert = 8,
    };
    unsetenv("KUBERNETES_SERVICE_HOST");
    log_set_level(LOG_LEVEL_ERROR);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fixture *f = *state;
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void test_open_tick_close(void **state) {
    struct fixture *f = *state;
    struct verifier v;
    struct stat st;

    assert_int_equal(verifier_config_check(&f->cfg), 0);
    assert_int_equal(verifier_open(&f->cfg, &v), 0);
    assert_false(v.use_api);
    assert_null(v.kube);
    assert_non_null(v.engine);
    /* The settings reached the engine and the front. */
    assert_int_equal(v.engine_cfg.interval_ms, 2000);
    assert_int_equal(v.engine_cfg.min_challenge_ms, 100);
    assert_int_equal(v.http_cfg.threads, 2);
    assert_int_equal(v.http_cfg.max_connections, 0);
    assert_int_equal(v.http_cfg.max_connections_per_cert, 8);
    assert_int_equal(v.kube_opt.refresh_ms, 10000);
    assert_int_equal(stat(f->audit_key, &st), 0);
    assert_int_equal(verifier_listen(&v), 0);
    assert_non_null(v.http);
    verifier_tick(&v);
    verifier_tick(&v);
    verifier_close(&v);
    assert_null(v.engine);
    assert_null(v.http);
    verifier_close(&v); /* twice is harmless */

    /* Opened again on the same store and audit log. */
    assert_int_equal(verifier_open(&f->cfg, &v), 0);
    verifier_close(&v);
}

static void test_config_check(void **state) {
    struct fixture *f = *state;

    f->cfg.pcr_selection = "sha256:10+sha1:10";
    assert_int_equal(verifier_config_check(&f->cfg), 0);
    f->cfg.pcr_selection = "sha999:10";
    assert_int_equal(verifier_config_check(&f->cfg), -EINVAL);
    f->cfg.pcr_selection = "";
    assert_int_equal(verifier_config_check(&f->cfg), -EINVAL);
}

/* The Kubernetes API is used with --kubeconfig, --in-cluster, or in a pod
 * (KUBERNETES_SERVICE_HOST) unless a pods file is given. */
static void test_inventory_source(void **state) {
    struct fixture *f = *state;
    struct verifier v;

    setenv("KIMA_SERVICE_ACCOUNT_DIR", f->dir, 1); /* no token there */
    f->cfg.in_cluster = true;
    assert_true(verifier_open(&f->cfg, &v) < 0);
    assert_true(v.use_api);
    verifier_close(&v);

    f->cfg.in_cluster = false;
    setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
    assert_int_equal(verifier_open(&f->cfg, &v), 0);
    assert_false(v.use_api); /* the pods file wins */
    verifier_close(&v);
    f->cfg.pods_file = NULL;
    assert_true(verifier_open(&f->cfg, &v) < 0);
    assert_true(v.use_api);
    verifier_close(&v);
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KIMA_SERVICE_ACCOUNT_DIR");
}

static void test_refusals(void **state) {
    struct fixture *f = *state;
    struct verifier_config good = f->cfg;
    struct verifier v;

    /* Namespaces that are not namespace names. */
    f->cfg.static_pod_namespaces = "Kube System";
    assert_int_equal(verifier_config_check(&f->cfg), -EINVAL);
    f->cfg = good;
    assert_int_equal(verifier_config_check(&f->cfg), 0);

    /* --require-ek-cert without --ek-ca-dir; an --ek-ca-dir without CAs. */
    f->cfg.require_ek_cert = true;
    assert_int_equal(verifier_open(&f->cfg, &v), -EINVAL);
    assert_null(v.store);
    verifier_close(&v);
    f->cfg = good;
    f->cfg.ek_ca_dir = f->dir;
    assert_int_equal(verifier_open(&f->cfg, &v), -EINVAL);
    verifier_close(&v);

    /* --crl: ignored in plain HTTP, needs --client-ca, must be readable. */
    f->cfg = good;
    f->cfg.crl = "/nonexistent.crl";
    assert_int_equal(verifier_open(&f->cfg, &v), 0);
    assert_null(v.crl);
    verifier_close(&v);
    f->cfg.insecure_plain_http = false;
    assert_int_equal(verifier_open(&f->cfg, &v), -EINVAL);
    verifier_close(&v);
    f->cfg.client_ca = "/nonexistent.pem";
    assert_int_equal(verifier_open(&f->cfg, &v), -EINVAL);
    verifier_close(&v);

    /* A store that cannot be opened; a pods file that is not there. */
    f->cfg = good;
    f->cfg.db = "/nonexistent/kima.db";
    assert_int_equal(verifier_open(&f->cfg, &v), -EINVAL);
    assert_null(v.engine);
    verifier_close(&v);
    f->cfg = good;
    f->cfg.pods_file = "/nonexistent/pods.json";
    assert_int_equal(verifier_open(&f->cfg, &v), -EINVAL);
    verifier_close(&v);

    /* Opened, but the front cannot listen there. */
    f->cfg = good;
    f->cfg.listen = "nowhere";
    assert_int_equal(verifier_open(&f->cfg, &v), 0);
    assert_true(verifier_listen(&v) < 0);
    assert_null(v.http);
    verifier_close(&v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_open_tick_close, setup, teardown),
            cmocka_unit_test_setup_teardown(test_config_check, setup, teardown),
            cmocka_unit_test_setup_teardown(test_inventory_source, setup, teardown),
            cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
