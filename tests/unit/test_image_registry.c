/* SPDX-License-Identifier: Apache-2.0 */
/* The docker:// source (policies/image-registry.c) against
 * tests/helpers/fake-registry.py on loopback: an image read whole (every
 * blob through img_stream_verified), the auth flows, and each way a
 * registry can misbehave, each with the error it must give. The fake's
 * path is argv[1]; its misbehaviour is chosen by the repository name. */
#include "test-util.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include <netinet/in.h>

#include "base64.h"
#include "image-registry-internal.h"
#include "image.h"
#include "json-util.h"
#include "test-pki.h"

static const char *fake_path;
static struct img_error E; /* the last error; assert_error() clears it */

static struct {
    char dir[256];
    char ca[512], cert[512], key[512], info[512];
    pid_t pid;
    int port, other, plain;
    char manifest[160], index[160];
    char blob[8][160];
    int64_t blob_size[8];
    size_t nblobs;
} F;

/* ---- the fake registry ---- */

static int start_fake(void) {
    char *argv[] = {"python3",    (char *)fake_path, "--cert",    F.cert,   "--key",
                    F.key,        "--info",          F.info,      "--user", "alice",
                    "--password", "secret",          "--timeout", "600",    NULL};

    F.pid = fork();
    if (F.pid == 0) {
        char log[600];
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        snprintf(log, sizeof(log), "%s/fake.log", F.dir);
        fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 2);
        execvp("python3", argv);
        _exit(127);
    }
    return F.pid > 0 ? 0 : -1;
}

static int read_info(void) {
    _cleanup_json_ json_t *root = NULL;
    json_t *b;
    size_t i;

    for (int tries = 0; tries < 400 && access(F.info, F_OK) != 0; tries++) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    root = json_load_file(F.info, 0, NULL);
    if (!root) {
        return -1;
    }
    F.port = (int)json_integer_value(json_object_get(root, "port"));
    F.other = (int)json_integer_value(json_object_get(root, "other_port"));
    F.plain = (int)json_integer_value(json_object_get(root, "plain_port"));
    snprintf(F.manifest, sizeof(F.manifest), "%s",
             json_string_value(json_object_get(root, "manifest")));
    snprintf(F.index, sizeof(F.index), "%s",
             json_string_value(json_object_get(json_object_get(root, "tags"), "multi")));
    json_array_foreach(json_object_get(root, "blobs"), i, b) {
        if (i < ARRAY_SIZE(F.blob)) {
            snprintf(F.blob[i], sizeof(F.blob[i]), "%s",
                     json_string_value(json_object_get(b, "digest")));
            F.blob_size[i] = json_integer_value(json_object_get(b, "size"));
            F.nblobs = i + 1;
        }
    }
    return F.port > 0 && F.nblobs >= 3 ? 0 : -1;
}

static int group_setup(void **state) {
    struct test_pki ca = {0}, srv = {0};
    int r;

    (void)state;
    if (test_tmpdir_new("registry", F.dir, sizeof(F.dir)) < 0 ||
        test_pki_issue(&ca, NULL, "registry test CA", NULL, NULL, NULL) < 0 ||
        test_pki_issue(&srv, NULL, "registry", &ca, "serverAuth", "IP:127.0.0.1,DNS:localhost") <
                0) {
        return -1;
    }
    r = test_pki_save(&ca, F.dir, "ca", F.ca, sizeof(F.ca));
    r = r < 0 ? r : test_pki_save(&srv, F.dir, "server", F.cert, sizeof(F.cert));
    test_pki_free(&ca);
    test_pki_free(&srv);
    snprintf(F.key, sizeof(F.key), "%s/server.key", F.dir);
    snprintf(F.info, sizeof(F.info), "%s/info.json", F.dir);
    if (r < 0 || start_fake() < 0) {
        return -1;
    }
    return read_info();
}

static int group_teardown(void **state) {
    (void)state;
    if (F.pid > 0) {
        kill(F.pid, SIGTERM);
        waitpid(F.pid, NULL, 0);
    }
    test_tmpdir_free(F.dir);
    return 0;
}

/* ---- helpers ---- */

static void config_default(struct img_source_config *c) {
    *c = (struct img_source_config){.cacert = F.ca};
    img_limits_default(&c->limits);
}

/* An auth file with a user:password for each key given (NULL-ended). */
static const char *authfile(const char *name, const char *userpass, ...) {
    static char path[600];
    char enc[256];
    const char *key;
    va_list ap;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s.json", F.dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    base64_encode(userpass, strlen(userpass), enc);
    fprintf(f, "{\"auths\": {");
    va_start(ap, userpass);
    for (int i = 0; (key = va_arg(ap, const char *)); i++) {
        fprintf(f, "%s\"%s\": {\"auth\": \"%s\"}", i ? ", " : "", key, enc);
    }
    va_end(ap);
    fprintf(f, "}}\n");
    fclose(f);
    return path;
}

static const char *main_host(void) {
    static char h[64];
    snprintf(h, sizeof(h), "127.0.0.1:%d", F.port);
    return h;
}

static int open_mode(const char *mode, const struct img_source_config *cfg, struct img_source **ret,
                     struct img_error *err) {
    char repo[128];

    snprintf(repo, sizeof(repo), "%s/app", mode);
    memset(err, 0, sizeof(*err));
    return img_registry_open(main_host(), repo, cfg, ret, err);
}

/* Read blob i through a digest check to its end. */
static int read_blob(struct img_source *s, size_t i, struct img_error *err) {
    struct img_stream *raw = NULL, *v = NULL;
    struct kbuf b = KBUF_INIT(64u << 20);
    int r;

    r = s->ops->blob(s, F.blob[i], F.blob_size[i], &raw, err);
    if (r < 0) {
        return r;
    }
    assert_int_equal(img_stream_verified(raw, F.blob[i], F.blob_size[i], &v), 0);
    r = img_stream_slurp(v, 64u << 20, &b, err);
    if (r == 0) {
        assert_int_equal(b.len, F.blob_size[i]);
    }
    kbuf_free(&b);
    return r;
}

/* The manifest "v1" and every blob of the image. */
static int read_image(const char *mode, const struct img_source_config *cfg,
                      struct img_error *err) {
    struct img_source *s = NULL;
    struct kbuf body = KBUF_INIT(8u << 20);
    char mt[128], digest[160];
    int r;

    r = open_mode(mode, cfg, &s, err);
    if (r == 0) {
        r = s->ops->manifest(s, "v1", &body, mt, sizeof(mt), digest, sizeof(digest), err);
    }
    if (r == 0) {
        assert_string_equal(digest, F.manifest);
        assert_string_equal(mt, "application/vnd.oci.image.manifest.v1+json");
    }
    for (size_t i = 0; r == 0 && i < F.nblobs; i++) {
        r = read_blob(s, i, err);
    }
    kbuf_free(&body);
    img_source_free(s);
    return r;
}

static int read_one_blob(const char *mode, const struct img_source_config *cfg, size_t i,
                         struct img_error *err) {
    struct img_source *s = NULL;
    int r = open_mode(mode, cfg, &s, err);

    if (r == 0) {
        r = read_blob(s, i, err);
    }
    img_source_free(s);
    return r;
}

static int read_manifest(const char *mode, const struct img_source_config *cfg, const char *ref,
                         struct img_error *err) {
    struct img_source *s = NULL;
    struct kbuf body = KBUF_INIT(8u << 20);
    char mt[128], digest[160];
    int r = open_mode(mode, cfg, &s, err);

    if (r == 0) {
        r = s->ops->manifest(s, ref, &body, mt, sizeof(mt), digest, sizeof(digest), err);
    }
    kbuf_free(&body);
    img_source_free(s);
    return r;
}

/* The largest blob: the one a stall or a truncation shows in. */
static size_t big_blob(void) {
    size_t best = 0;
    for (size_t i = 1; i < F.nblobs; i++) {
        if (F.blob_size[i] > F.blob_size[best]) {
            best = i;
        }
    }
    return best;
}

#define assert_error(call, rc, text)                                                          \
    do {                                                                                      \
        memset(&E, 0, sizeof(E));                                                             \
        int r_ = (call);                                                                      \
        if (r_ != (rc) || !strstr(E.msg, (text))) {                                           \
            fail_msg("%s: got %d \"%s\", wanted %d with \"%s\"", #call, r_, E.msg, rc, text); \
        }                                                                                     \
    } while (0)

/* ---- an image read whole ---- */

static void test_anonymous(void **state) {
    struct img_source_config c;
    struct img_source *s = NULL;
    struct kbuf body = KBUF_INIT(1u << 20);
    char mt[128], digest[160];

    (void)state;
    config_default(&c);
    assert_int_equal(read_image("ok", &c, &E), 0);
    /* By digest, and the index by its tag. */
    assert_int_equal(open_mode("ok", &c, &s, &E), 0);
    assert_int_equal(
            s->ops->manifest(s, F.manifest, &body, mt, sizeof(mt), digest, sizeof(digest), &E), 0);
    assert_string_equal(digest, F.manifest);
    kbuf_reset(&body);
    assert_int_equal(
            s->ops->manifest(s, "multi", &body, mt, sizeof(mt), digest, sizeof(digest), &E), 0);
    assert_string_equal(digest, F.index);
    assert_string_equal(mt, "application/vnd.oci.image.index.v1+json");
    assert_non_null(strstr((const char *)body.data, F.manifest));
    kbuf_free(&body);
    img_source_free(s);
}

struct reader {
    struct img_source *s;
    size_t blob;
    int rc;
    struct img_error err;
};

static void *reader_main(void *p) {
    struct reader *rd = p;
    rd->rc = read_blob(rd->s, rd->blob, &rd->err);
    return NULL;
}

/* Several blobs at once from one source, each its own transfer, and a
 * Bearer token the threads share. */
static void test_threads(void **state) {
    struct img_source_config c;
    struct img_source *s = NULL;
    struct reader rd[6];
    pthread_t t[6];

    (void)state;
    config_default(&c);
    assert_int_equal(open_mode("bearer", &c, &s, &E), 0);
    for (size_t i = 0; i < ARRAY_SIZE(rd); i++) {
        rd[i] = (struct reader){.s = s, .blob = i % F.nblobs};
        assert_int_equal(pthread_create(&t[i], NULL, reader_main, &rd[i]), 0);
    }
    for (size_t i = 0; i < ARRAY_SIZE(rd); i++) {
        pthread_join(t[i], NULL);
        if (rd[i].rc != 0) {
            fail_msg("reader %zu: %d %s", i, rd[i].rc, rd[i].err.msg);
        }
    }
    img_source_free(s);
}

/* ---- authentication ---- */

static void test_bearer(void **state) {
    struct img_source_config c;
    char other[64];

    (void)state;
    config_default(&c);
    /* A public repository behind a token endpoint: an anonymous token. */
    assert_int_equal(read_image("bearer", &c, &E), 0);
    assert_int_equal(read_image("bearer-accesstoken", &c, &E), 0);
    /* A private one. */
    assert_error(read_image("bearerpriv", &c, &E), -EACCES,
                 "authentication failed: check --authfile");
    c.authfile = authfile("good", "alice:secret", main_host(), NULL);
    assert_int_equal(read_image("bearerpriv", &c, &E), 0);
    c.authfile = authfile("wrong", "alice:guess", main_host(), NULL);
    assert_error(read_image("bearerpriv", &c, &E), -EACCES,
                 "authentication failed: check --authfile");
    /* A realm on another host gets the registry's credentials (as docker
     * sends them), never the auth file's entry for the realm's own host:
     * the registry chooses the realm, and must not get a token minted with
     * the user's credentials for another service. */
    c.authfile = authfile("good", "alice:secret", main_host(), NULL);
    assert_int_equal(read_image("bearerpriv-realmother", &c, &E), 0);
    snprintf(other, sizeof(other), "localhost:%d", F.other);
    c.authfile = authfile("realmonly", "alice:secret", other, NULL);
    assert_error(read_image("bearerpriv-realmother", &c, &E), -EACCES,
                 "authentication failed: check --authfile");
    snprintf(other, sizeof(other), "https://localhost:%d/v1/", F.other);
    c.authfile = authfile("realmurl", "alice:secret", other, NULL);
    assert_error(read_image("bearerpriv-realmother", &c, &E), -EACCES, "authentication failed");
    /* The same host name on another port is another host. */
    snprintf(other, sizeof(other), "127.0.0.1:%d", F.other);
    c.authfile = authfile("realmport", "alice:secret", other, NULL);
    assert_error(read_image("bearerpriv-realmotherport", &c, &E), -EACCES, "authentication failed");
    c.authfile = authfile("good", "alice:secret", main_host(), NULL);
    assert_int_equal(read_image("bearerpriv-realmotherport", &c, &E), 0);
    /* A challenge that asks for push on another repository: kima asks for
     * pull on the repository it reads, and the fake's tokens are good for
     * the scope they were issued for only. */
    assert_int_equal(read_image("bearerpriv-scopeother", &c, &E), 0);
    c.authfile = NULL;
    assert_int_equal(read_image("bearer-scopeother", &c, &E), 0);
    /* Tokens that cannot be used, realms that must not be. */
    c.authfile = NULL;
    assert_error(read_manifest("bearer-hugetoken", &c, "v1", &E), -EACCES, "no usable \"token\"");
    assert_error(read_manifest("bearer-hugetokenbody", &c, "v1", &E), -EACCES,
                 "the token request failed: the answer is too large");
    assert_error(read_manifest("bearer-realmhttp", &c, "v1", &E), -EACCES, "not an https URL");
}

static void test_basic(void **state) {
    struct img_source_config c;
    char url[80];

    (void)state;
    config_default(&c);
    assert_error(read_image("basic", &c, &E), -EACCES,
                 "authentication failed: check --authfile (127.0.0.1");
    c.authfile = authfile("good", "alice:secret", main_host(), NULL);
    assert_int_equal(read_image("basic", &c, &E), 0);
    /* The docker forms of the key, and a key for the repository. */
    snprintf(url, sizeof(url), "https://%s/v1/", main_host());
    c.authfile = authfile("url", "alice:secret", url, NULL);
    assert_int_equal(read_image("basic", &c, &E), 0);
    snprintf(url, sizeof(url), "%s/basic/app", main_host());
    c.authfile = authfile("repo", "alice:secret", url, NULL);
    assert_int_equal(read_image("basic", &c, &E), 0);
    c.authfile = authfile("wrong", "alice:guess", main_host(), NULL);
    assert_error(read_image("basic", &c, &E), -EACCES, "refused the credentials");
    /* Another host's credentials are not sent. */
    c.authfile = authfile("elsewhere", "alice:secret", "registry.example:443", NULL);
    assert_error(read_image("basic", &c, &E), -EACCES, "the auth file has none");
    /* Nor those of the same host name on another port (443 when none). */
    snprintf(url, sizeof(url), "127.0.0.1:%d", F.other);
    c.authfile = authfile("port", "alice:secret", url, "127.0.0.1", NULL);
    assert_error(read_image("basic", &c, &E), -EACCES, "the auth file has none");
    /* The default places: $REGISTRY_AUTH_FILE first. */
    c.authfile = NULL;
    setenv("REGISTRY_AUTH_FILE", authfile("env", "alice:secret", main_host(), NULL), 1);
    assert_int_equal(read_image("basic", &c, &E), 0);
    unsetenv("REGISTRY_AUTH_FILE");
}

static void lookup_is(const json_t *auths, const char *host, const char *repo, const char *want) {
    char *got = NULL;
    char enc[64];

    assert_int_equal(reg_auth_lookup(auths, host, repo, &got, &E), 0);
    if (!want) {
        if (got) {
            fail_msg("%s / %s: credentials found, none wanted", host, repo ? repo : "");
        }
        return;
    }
    base64_encode(want, strlen(want), enc);
    assert_non_null(got);
    assert_string_equal(got, enc);
    reg_secret_free(got);
}

/* Keys match by host (case aside), port (443 when none is written) and
 * path, the most specific first. */
static void test_auth_lookup(void **state) {
    _cleanup_json_ json_t *auths = NULL;
    json_error_t jerr;

    (void)state;
    auths = json_loads("{\"reg.example\": {\"auth\": \"YTpob3N0\"},"          /* a:host */
                       " \"reg.example:5000\": {\"auth\": \"YTo1MDAw\"},"     /* a:5000 */
                       " \"REG.example:443/team\": {\"auth\": \"YTp0ZWFt\"}," /* a:team */
                       " \"https://other.example:8443/v1/\": {\"auth\": \"YTpvdGhlcg==\"},"
                       " \"[::1]:5000\": {\"auth\": \"YTp2Ng==\"}}",
                       0, &jerr);
    assert_non_null(auths);
    lookup_is(auths, "reg.example", "app", "a:host");
    lookup_is(auths, "reg.example:443", "app", "a:host");
    lookup_is(auths, "Reg.Example", NULL, "a:host");
    lookup_is(auths, "reg.example:5000", "app", "a:5000");
    lookup_is(auths, "reg.example", "team/app", "a:team");
    lookup_is(auths, "reg.example:443", "team", "a:team");
    lookup_is(auths, "reg.example:5000", "team/app", "a:5000");
    lookup_is(auths, "reg.example:5001", "app", NULL);
    lookup_is(auths, "reg.example.evil", "app", NULL);
    lookup_is(auths, "reg.exampl", "app", NULL);
    lookup_is(auths, "other.example:8443", "x", "a:other");
    lookup_is(auths, "other.example", "x", NULL);
    lookup_is(auths, "[::1]:5000", "x", "a:v6");
    lookup_is(auths, "[::1]", "x", NULL);
    lookup_is(auths, "::1", "x", NULL);
    lookup_is(NULL, "reg.example", "app", NULL);
}

static void test_authfile_errors(void **state) {
    struct img_source_config c;
    struct img_source *s = NULL;
    char path[600];
    FILE *f;

    (void)state;
    config_default(&c);
    snprintf(path, sizeof(path), "%s/nonexistent.json", F.dir);
    c.authfile = path;
    assert_error(open_mode("basic", &c, &s, &E), -ENOENT, "auth file");
    snprintf(path, sizeof(path), "%s/bad.json", F.dir);
    f = fopen(path, "w");
    fprintf(f, "{\"auths\": {\"%s\": {\"auth\": \"bm8gY29sb24=\"}}}", main_host());
    fclose(f);
    assert_error(open_mode("basic", &c, &s, &E), -EBADMSG, "not base64 of \"user:password\"");
    f = fopen(path, "w");
    fprintf(f, "{\"auths\": [");
    fclose(f);
    assert_error(open_mode("basic", &c, &s, &E), -EBADMSG, "not a JSON object");
    assert_null(s);
}

/* ---- statuses ---- */

static void test_statuses(void **state) {
    struct img_source_config c;
    struct img_source *s = NULL;
    struct img_stream *st = NULL;

    (void)state;
    config_default(&c);
    assert_error(read_manifest("ok", &c, "nope", &E), -ENOENT, "docker://127.0.0.1");
    assert_error(read_manifest("ok", &c, "nope", &E), -ENOENT,
                 "manifest \"nope\" not found in ok/app");
    assert_int_equal(open_mode("ok", &c, &s, &E), 0);
    assert_error(s->ops->blob(s,
                              "sha256:"
                              "0000000000000000000000000000000000000000000000000000000000000000",
                              5, &st, &E),
                 -ENOENT, "not found in ok/app");
    img_source_free(s);
    assert_error(read_manifest("fail", &c, "v1", &E), -EIO, "the registry failed (HTTP 500)");
    assert_error(read_manifest("forbidden", &c, "v1", &E), -EACCES, "access denied (HTTP 403)");
    assert_error(read_manifest("rate", &c, "v1", &E), -EBUSY, "rate limited");
    assert_int_equal(read_manifest("rateonce", &c, "v1", &E), 0);
}

/* ---- transport: TLS, redirects, connections ---- */

static void test_tls(void **state) {
    struct img_source_config c;
    struct img_source *s = NULL;
    char host[64];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int fd;

    (void)state;
    config_default(&c);
    c.cacert = NULL; /* the system's CAs do not know the test CA */
    assert_error(read_manifest("ok", &c, "v1", &E), -EPROTO, "TLS with the registry failed");
    /* Plain http: refused unless insecure. */
    config_default(&c);
    snprintf(host, sizeof(host), "127.0.0.1:%d", F.plain);
    memset(&E, 0, sizeof(E));
    assert_int_equal(img_registry_open(host, "ok/app", &c, &s, &E), 0);
    {
        struct kbuf b = KBUF_INIT(1u << 20);
        char mt[128], dg[160];
        assert_error(s->ops->manifest(s, "v1", &b, mt, sizeof(mt), dg, sizeof(dg), &E), -EPROTO,
                     "TLS");
        img_source_free(s);
        c.insecure = true;
        memset(&E, 0, sizeof(E));
        assert_int_equal(img_registry_open(host, "ok/app", &c, &s, &E), 0);
        assert_int_equal(s->ops->manifest(s, "v1", &b, mt, sizeof(mt), dg, sizeof(dg), &E), 0);
        assert_string_equal(dg, F.manifest);
        assert_int_equal(read_blob(s, 0, &E), 0);
        img_source_free(s);
        kbuf_free(&b);
    }
    /* Nobody listening. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    snprintf(host, sizeof(host), "127.0.0.1:%d", ntohs(a.sin_port));
    memset(&E, 0, sizeof(E));
    assert_int_equal(img_registry_open(host, "ok/app", &c, &s, &E), 0);
    assert_error(read_blob(s, 0, &E), -ECONNREFUSED, "cannot connect to the registry");
    img_source_free(s);
}

static void test_redirects(void **state) {
    struct img_source_config c;

    (void)state;
    config_default(&c);
    assert_error(read_one_blob("redirhttp", &c, 0, &E), -EPROTO, "not https");
    c.insecure = true;
    assert_int_equal(read_one_blob("redirhttp", &c, 0, &E), 0);
    c.insecure = false;
    /* To another host and port: fine, and the Authorization stays behind
     * (the other listener refuses a request that carries one). */
    assert_int_equal(read_image("redirother", &c, &E), 0);
    assert_int_equal(read_image("bearer-redirother", &c, &E), 0);
    c.authfile = authfile("good", "alice:secret", main_host(), NULL);
    assert_int_equal(read_image("basic-redirother", &c, &E), 0);
    c.authfile = NULL;
    assert_error(read_one_blob("redirloop", &c, 0, &E), -ELOOP, "more than 5 redirects");
}

static void test_stall(void **state) {
    struct img_source_config c;

    (void)state;
    config_default(&c);
    c.limits.timeout_s = 2;
    assert_error(read_one_blob("stall", &c, big_blob(), &E), -ETIMEDOUT,
                 "the registry stalled: no data for 2 s");
    assert_error(read_manifest("stallhead", &c, "v1", &E), -ETIMEDOUT, "stalled");
}

/* ---- bodies that lie ---- */

static void test_lengths(void **state) {
    struct img_source_config c;
    size_t big = big_blob();

    (void)state;
    config_default(&c);
    assert_error(read_one_blob("cllong", &c, big, &E), -EBADMSG, "bytes (Content-Length), not the");
    assert_error(read_one_blob("clshort", &c, big, &E), -EBADMSG,
                 "bytes (Content-Length), not the");
    assert_error(read_one_blob("truncate", &c, big, &E), -EBADMSG, "closed the connection after");
    assert_error(read_one_blob("extra", &c, big, &E), -EBADMSG, "sent more than the");
    assert_error(read_one_blob("badblob", &c, big, &E), -EBADMSG, "does not match its digest");
}

static void test_manifests(void **state) {
    struct img_source_config c;

    (void)state;
    config_default(&c);
    assert_error(read_manifest("hugemanifest", &c, "v1", &E), -EFBIG, "larger than 4194304 bytes");
    assert_error(read_manifest("hugenocl", &c, "v1", &E), -EFBIG, "larger than 4194304 bytes");
    assert_error(read_manifest("baddigest", &c, F.manifest, &E), -EBADMSG,
                 "does not match the digest asked for");
    assert_int_equal(read_manifest("baddigest", &c, "v1", &E), 0);
    assert_error(read_manifest("dcdwrong", &c, "v1", &E), -EBADMSG, "Docker-Content-Digest");
}

/* ---- arguments and challenges ---- */

static void test_arguments(void **state) {
    struct img_source_config c;
    struct img_source *s = NULL;
    struct img_stream *st = NULL;
    struct kbuf b = KBUF_INIT(1u << 20);
    char mt[64], dg[160];

    (void)state;
    config_default(&c);
    assert_int_equal(img_registry_open(NULL, "a", &c, &s, &E), -EINVAL);
    assert_error(img_registry_open("bad host", "a", &c, &s, &E), -EINVAL, "not a registry host");
    const char *repos[] = {"UPPER/x", "../x", "a//b", "a/", "/a", "a/./b", "a b"};
    for (size_t i = 0; i < ARRAY_SIZE(repos); i++) {
        memset(&E, 0, sizeof(E));
        assert_error(img_registry_open("127.0.0.1", repos[i], &c, &s, &E), -EINVAL,
                     "not a repository");
    }
    assert_int_equal(open_mode("ok", &c, &s, &E), 0);
    assert_error(s->ops->manifest(s, "../x", &b, mt, sizeof(mt), dg, sizeof(dg), &E), -EINVAL,
                 "not a tag");
    assert_error(s->ops->blob(s, "sha256:abc", 3, &st, &E), -EINVAL, "not a sha256");
    img_source_free(s);
    /* docker.io's conventions. */
    memset(&E, 0, sizeof(E));
    assert_int_equal(img_registry_open("docker.io", "debian", &c, &s, &E), 0);
    assert_string_equal(((struct reg_source *)s)->host, "registry-1.docker.io");
    assert_string_equal(((struct reg_source *)s)->repo, "library/debian");
    assert_string_equal(s->name, "docker://docker.io/debian");
    img_source_free(s);
    kbuf_free(&b);
}

static void test_challenges(void **state) {
    struct reg_challenge ch;

    (void)state;
    assert_int_equal(reg_challenge_parse("Bearer realm=\"https://a/token\",service=\"reg\","
                                         "scope=\"repository:x/y:pull\"",
                                         &ch),
                     0);
    assert_int_equal(ch.scheme, REG_SCHEME_BEARER);
    assert_string_equal(ch.realm, "https://a/token");
    assert_string_equal(ch.service, "reg");
    assert_string_equal(ch.scope, "repository:x/y:pull");
    assert_int_equal(reg_challenge_parse("basic realm=\"x \\\"y\\\"\"", &ch), 0);
    assert_int_equal(ch.scheme, REG_SCHEME_BASIC);
    assert_string_equal(ch.realm, "x \"y\"");
    assert_int_equal(reg_challenge_parse("Bearer realm=https://a/t, error=insufficient_scope", &ch),
                     0);
    assert_string_equal(ch.realm, "https://a/t");
    const char *bad[] = {"",
                         "Negotiate abc",
                         "Bearer",
                         "Bearer realm=\"unterminated",
                         "Bearer realm=\"a\" service=\"b\"",
                         "Bearer =x",
                         "Bearer realm=\"a\x01\""};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        assert_int_equal(reg_challenge_parse(bad[i], &ch), -EBADMSG);
    }
    char lng[3000];
    snprintf(lng, sizeof(lng), "Bearer realm=\"%02900d\"", 0);
    assert_int_equal(reg_challenge_parse(lng, &ch), -EBADMSG);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_anonymous),   cmocka_unit_test(test_threads),
            cmocka_unit_test(test_bearer),      cmocka_unit_test(test_basic),
            cmocka_unit_test(test_auth_lookup), cmocka_unit_test(test_authfile_errors),
            cmocka_unit_test(test_statuses),    cmocka_unit_test(test_tls),
            cmocka_unit_test(test_redirects),   cmocka_unit_test(test_stall),
            cmocka_unit_test(test_lengths),     cmocka_unit_test(test_manifests),
            cmocka_unit_test(test_arguments),   cmocka_unit_test(test_challenges),
    };

    if (argc < 2) {
        fprintf(stderr, "usage: %s FAKE_REGISTRY_PY\n", argv[0]);
        return 2;
    }
    fake_path = argv[1];
    /* No auth file of the machine's user may change what the tests see. */
    unsetenv("REGISTRY_AUTH_FILE");
    unsetenv("XDG_RUNTIME_DIR");
    setenv("HOME", "/nonexistent", 1);
    setenv("NO_PROXY", "*", 1);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
