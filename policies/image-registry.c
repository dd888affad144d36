/* SPDX-License-Identifier: Apache-2.0 */
/* docker://HOST/REPO: images from a registry over the OCI distribution API
 * (GET /v2/REPO/manifests/REF and /v2/REPO/blobs/DIGEST) with libcurl.
 *
 * Here: requests (a 401 answered once, a 429 retried within a budget,
 * statuses turned into sentences), manifests checked against the digest
 * asked for and the registry's Docker-Content-Digest, blobs as streams,
 * and the source itself. Transfers are image-registry-http.c's, auth
 * image-registry-auth.c's. Sources share only what `lock` guards (the
 * Authorization that worked last, the scheme), so blobs can be read from
 * several threads at once. */
#include "image-registry-internal.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "hex.h"

#define RATE_RETRIES  2
#define RATE_WAIT_MAX 5 /* seconds waited for a 429, all retries together */

static const char ACCEPT_MANIFESTS[] = "Accept: application/vnd.oci.image.index.v1+json, "
                                       "application/vnd.oci.image.manifest.v1+json, "
                                       "application/vnd.docker.distribution.manifest.list.v2+json, "
                                       "application/vnd.docker.distribution.manifest.v2+json";

/* ---- requests: authentication, rate limits, statuses ---- */

static int status_error(const struct reg_source *s, const struct reg_req *q, long status,
                        struct img_error *err) {
    if (status == 401) {
        return img_error_set(err, -EACCES,
                             s->basic ? "%s: authentication failed: check --authfile (the "
                                        "registry refused the credentials it holds for %s)"
                                      : "%s: authentication failed: check --authfile (%s wants "
                                        "credentials and the auth file has none for it)",
                             q->what, s->auth_host);
    }
    if (status == 403) {
        return img_error_set(err, -EACCES,
                             "%s: access denied (HTTP 403): the registry does not let these "
                             "credentials pull %s",
                             q->what, s->repo);
    }
    if (status == 404 && q->blob) {
        return img_error_set(err, -ENOENT, "%s: not found in %s (HTTP 404)", q->what, s->repo);
    }
    if (status == 404) {
        return img_error_set(err, -ENOENT, "%s: manifest \"%s\" not found in %s (HTTP 404)",
                             q->what, q->ref, s->repo);
    }
    if (status >= 500 && status < 600) {
        return img_error_set(err, -EIO, "%s: the registry failed (HTTP %ld)", q->what, status);
    }
    return img_error_set(err, -EPROTO, "%s: the registry answered HTTP %ld", q->what, status);
}

/* After a 429: wait as long as Retry-After asks (whole seconds; 1 when it
 * does not say) if the budget allows. True to try again. */
static bool rate_wait(const struct reg_xfer *x, int tries, unsigned *waited) {
    unsigned long want = 1;
    char *end;

    if (x->retry_after[0]) {
        want = strtoul(x->retry_after, &end, 10);
        if (*end || !isdigit((unsigned char)x->retry_after[0])) {
            want = RATE_WAIT_MAX + 1; /* an HTTP date: surely too long */
        }
    }
    if (tries >= RATE_RETRIES || *waited + want > RATE_WAIT_MAX) {
        return false;
    }
    *waited += (unsigned)want;
    for (struct timespec ts = {(time_t)want, 0}; nanosleep(&ts, &ts) < 0 && errno == EINTR;) {
    }
    return true;
}

/* The body's Content-Length must be the size the descriptor gives. */
static int length_check(const struct reg_xfer *x, struct img_error *err) {
    curl_off_t cl = -1;

    curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    if (x->expect >= 0 && cl >= 0 && cl != x->expect) {
        return img_error_set(err, -EBADMSG,
                             "%s: the registry announces %lld bytes (Content-Length), not the "
                             "%lld its descriptor gives",
                             x->what, (long long)cl, (long long)x->expect);
    }
    if (x->expect < 0 && cl >= 0 && (uint64_t)cl > x->cap) {
        return img_error_set(err, -EFBIG, "%s: larger than %llu bytes (the limit): %lld bytes",
                             x->what, (unsigned long long)x->cap, (long long)cl);
    }
    return 0;
}

struct attempt {
    int auth_tries, rate_tries;
    unsigned waited;
};

/* One try. 0 with *ret set, 1 to try again, or a negative errno. */
static int request_once(struct reg_source *s, const struct reg_req *q, struct attempt *a,
                        struct reg_xfer **ret, struct img_error *err) {
    char *authz = NULL, msg[IMG_ERROR_MAX];
    struct reg_xfer *x = NULL;
    unsigned gen;
    bool plain, known;
    int r;

    pthread_mutex_lock(&s->lock);
    r = s->authz && !(authz = strdup(s->authz)) ? -ENOMEM : 0;
    gen = s->authz_gen;
    plain = s->plain_http;
    known = s->scheme_known;
    pthread_mutex_unlock(&s->lock);
    if (r == 0) {
        r = reg_xfer_new(s, q, plain, authz, &x);
    }
    reg_secret_free(authz);
    if (r < 0 || (r = reg_xfer_wait_headers(x)) < 0) {
        img_stream_close(x ? &x->s : NULL);
        return img_error_set(err, r, "%s: %s", q->what,
                             r == -ENOMEM ? "out of memory" : "libcurl failed");
    }
    if (!x->headers_done) { /* no answer */
        bool fallback = s->insecure && !known && !plain && x->result == CURLE_SSL_CONNECT_ERROR;
        r = reg_xfer_curl_error(x, msg, sizeof(msg));
        reg_xfer_close(&x->s);
        if (fallback) { /* insecure: a registry that does not speak TLS */
            pthread_mutex_lock(&s->lock);
            s->plain_http = true;
            pthread_mutex_unlock(&s->lock);
            return 1;
        }
        return img_error_set(err, r, "%s", msg);
    }
    pthread_mutex_lock(&s->lock);
    s->scheme_known = true;
    pthread_mutex_unlock(&s->lock);
    if (x->status == 200) {
        if ((r = length_check(x, err)) < 0) {
            reg_xfer_close(&x->s);
            return r;
        }
        *ret = x;
        return 0;
    }
    if (x->status == 401 && a->auth_tries++ == 0) {
        r = reg_authenticate(s, x->challenge, gen, q->what, err);
        reg_xfer_close(&x->s);
        return r < 0 ? r : 1;
    }
    if (x->status == 429) {
        bool again = rate_wait(x, a->rate_tries++, &a->waited);
        reg_xfer_close(&x->s);
        return again ? 1
                     : img_error_set(err, -EBUSY,
                                     "%s: rate limited by the registry (HTTP 429; gave up after "
                                     "%d tries and %u s of waiting)",
                                     q->what, a->rate_tries, a->waited);
    }
    r = status_error(s, q, x->status, err);
    reg_xfer_close(&x->s);
    return r;
}

/* GET a path: anonymous or with the Authorization that worked last; a
 * 401 answered once; a 429 retried within its budget. On success the
 * final response's headers are in and its body is ready to read. */
static int reg_request(struct reg_source *s, const struct reg_req *q, struct reg_xfer **ret,
                       struct img_error *err) {
    struct attempt a = {0};
    int r;

    do {
        r = request_once(s, q, &a, ret, err);
    } while (r == 1);
    return r;
}

/* ---- the source ---- */

static bool tag_valid(const char *t) {
    size_t n = strlen(t);

    if (n == 0 || n > 128 || !(isalnum((unsigned char)t[0]) || t[0] == '_')) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)t[i]) && !strchr("_.-", t[i])) {
            return false;
        }
    }
    return true;
}

static int digest_of(const uint8_t *data, size_t len, const char *alg, char *out, size_t outsz) {
    uint8_t md[EVP_MAX_MD_SIZE];
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    unsigned mdlen = 0;
    bool sha512 = strncmp(alg, "sha512:", 7) == 0;

    if (EVP_Digest(data, len, md, &mdlen, sha512 ? EVP_sha512() : EVP_sha256(), NULL) != 1) {
        return -EIO;
    }
    hex_encode(md, mdlen, hex);
    snprintf(out, outsz, "%s:%s", sha512 ? "sha512" : "sha256", hex);
    return 0;
}

/* The bytes against the digest asked for and the one the registry says
 * (`said`, "" when it said none). */
static int manifest_check(const char *what, const char *said, const char *ref, const struct kbuf *b,
                          char *digest, size_t digest_size, struct img_error *err) {
    char got[160], hdr[160];
    bool by_digest = img_digest_valid(ref);

    if (digest_of(b->data, b->len, by_digest ? ref : "sha256:", got, sizeof(got)) < 0) {
        return img_error_set(err, -EIO, "%s: hashing failed", what);
    }
    if (by_digest && strcmp(got, ref) != 0) {
        return img_error_set(err, -EBADMSG,
                             "%s: the manifest the registry sent does not match the digest asked "
                             "for (it hashes to %s)",
                             what, got);
    }
    if (said[0]) {
        if (!img_digest_valid(said)) {
            return img_error_set(err, -EBADMSG,
                                 "%s: the registry's Docker-Content-Digest header is not a "
                                 "sha256 or sha512 digest",
                                 what);
        }
        if (digest_of(b->data, b->len, said, hdr, sizeof(hdr)) < 0) {
            return img_error_set(err, -EIO, "%s: hashing failed", what);
        }
        if (strcmp(hdr, said) != 0) {
            return img_error_set(err, -EBADMSG,
                                 "%s: the manifest does not match the registry's "
                                 "Docker-Content-Digest %s (it hashes to %s)",
                                 what, said, hdr);
        }
    }
    if (strlen(got) >= digest_size) {
        return img_error_set(err, -EINVAL, "%s: no room for the digest", what);
    }
    memcpy(digest, got, strlen(got) + 1);
    return 0;
}

/* The media type from Content-Type: parameters dropped, checked. */
static int media_type_of(const struct reg_xfer *x, char *out, size_t outsz, struct img_error *err) {
    size_t n = strcspn(x->content_type, "; \t");

    for (size_t i = 0; i < n; i++) {
        char c = x->content_type[i];
        if (!isalnum((unsigned char)c) && !strchr("/.+-_", c)) {
            return img_error_set(err, -EBADMSG, "%s: the registry's Content-Type is malformed",
                                 x->what);
        }
    }
    if (n >= outsz) {
        return img_error_set(err, -EBADMSG, "%s: the registry's Content-Type is too long", x->what);
    }
    memcpy(out, x->content_type, n);
    out[n] = 0;
    return 0;
}

static int reg_manifest(struct img_source *src, const char *ref, struct kbuf *body,
                        char *media_type, size_t media_type_size, char *digest, size_t digest_size,
                        struct img_error *err) {
    struct reg_source *s = (struct reg_source *)src;
    _cleanup_kbuf_ struct kbuf b = KBUF_INIT(s->limits.max_manifest);
    char what[REG_WHAT_MAX], path[REG_REPO_MAX + 256], said[160], dg[160];
    struct reg_xfer *x = NULL;
    bool by_digest;
    int r;

    if (!body || !media_type || !digest) {
        return -EINVAL;
    }
    ref = ref ? ref : "latest";
    by_digest = img_digest_valid(ref);
    reg_say(what, sizeof(what), 0, "%s%s%.200s", s->base.name, by_digest ? "@" : ":", ref);
    if (!by_digest && !tag_valid(ref)) {
        return img_error_set(err, -EINVAL, "%s: not a tag or a sha256/sha512 digest", what);
    }
    snprintf(path, sizeof(path), "/v2/%s/manifests/%s", s->repo, ref);
    struct reg_req q = {path, ACCEPT_MANIFESTS, what, ref, false, -1, s->limits.max_manifest};
    if ((r = reg_request(s, &q, &x, err)) < 0) {
        return r;
    }
    if ((r = media_type_of(x, media_type, media_type_size, err)) < 0) {
        reg_xfer_close(&x->s);
        return r;
    }
    snprintf(said, sizeof(said), "%s", x->docker_digest);
    if ((r = img_stream_slurp(&x->s, s->limits.max_manifest, &b, err)) < 0) {
        return r; /* the stream is closed, its sentence in err */
    }
    if ((r = manifest_check(what, said, ref, &b, dg, sizeof(dg), err)) < 0) {
        return r;
    }
    if (strlen(dg) >= digest_size) {
        return img_error_set(err, -EINVAL, "%s: no room for the digest", what);
    }
    if ((r = kbuf_append(body, b.data, b.len)) < 0) {
        return img_error_set(err, r, "%s: the manifest does not fit the caller's buffer", what);
    }
    memcpy(digest, dg, strlen(dg) + 1);
    return 0;
}

static int reg_blob(struct img_source *src, const char *digest, int64_t size,
                    struct img_stream **ret, struct img_error *err) {
    struct reg_source *s = (struct reg_source *)src;
    char what[REG_WHAT_MAX], path[REG_REPO_MAX + 256];
    struct reg_xfer *x = NULL;
    int r;

    if (!ret) {
        return -EINVAL;
    }
    if (!img_digest_valid(digest)) {
        return img_error_set(err, -EINVAL, "%s: blob \"%.160s\": not a sha256/sha512 digest",
                             s->base.name, digest ? digest : "");
    }
    reg_say(what, sizeof(what), 0, "%s: blob %s", s->base.name, digest);
    snprintf(path, sizeof(path), "/v2/%s/blobs/%s", s->repo, digest);
    struct reg_req q = {path,
                        NULL,
                        what,
                        digest,
                        true,
                        size < 0 ? -1 : size,
                        size < 0 ? s->limits.max_bytes : (uint64_t)size};
    if ((r = reg_request(s, &q, &x, err)) < 0) {
        return r;
    }
    *ret = &x->s;
    return 0;
}

static void reg_free(struct img_source *src) {
    struct reg_source *s = (struct reg_source *)src;

    free(s->cacert);
    json_decref(s->auths);
    reg_secret_free(s->basic);
    reg_secret_free(s->authz);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->auth_lock);
    free(s);
}

static const struct img_source_ops reg_ops = {
        .manifest = reg_manifest,
        .blob = reg_blob,
        .free = reg_free,
};

/* host[:port], a name or an address: letters, digits, ".-:[]". */
static bool host_valid(const char *h) {
    size_t n = strlen(h);

    if (n == 0 || n >= REG_HOST_MAX || h[0] == '.' || h[0] == '-' || h[0] == ':') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)h[i]) && !strchr(".-:[]", h[i])) {
            return false;
        }
    }
    return true;
}

/* A repository: lowercase components of [a-z0-9._-] joined by '/', none
 * empty, "." or "..". */
static bool repo_valid(const char *r) {
    size_t n = strlen(r), start = 0;

    if (n == 0 || n >= REG_REPO_MAX - 16) {
        return false;
    }
    for (size_t i = 0; i <= n; i++) {
        if (i == n || r[i] == '/') {
            size_t len = i - start;
            if (len == 0 || (len == 1 && r[start] == '.') ||
                (len == 2 && r[start] == '.' && r[start + 1] == '.')) {
                return false;
            }
            start = i + 1;
        } else if (!islower((unsigned char)r[i]) && !isdigit((unsigned char)r[i]) &&
                   !strchr("._-", r[i])) {
            return false;
        }
    }
    return true;
}

/* docker.io (and index.docker.io) is served by registry-1.docker.io, and
 * its single-component repositories live under library/. */
static void docker_hub(struct reg_source *s, const char *host, const char *repo) {
    bool hub = strcmp(host, "docker.io") == 0 || strcmp(host, "index.docker.io") == 0;

    snprintf(s->host, sizeof(s->host), "%s", hub ? "registry-1.docker.io" : host);
    snprintf(s->auth_host, sizeof(s->auth_host), "%s", hub ? "docker.io" : host);
    snprintf(s->repo, sizeof(s->repo), "%s%s", hub && !strchr(repo, '/') ? "library/" : "", repo);
}

int img_registry_open(const char *host, const char *repo, const struct img_source_config *cfg,
                      struct img_source **ret, struct img_error *err) {
    struct reg_source *s;
    int r;

    if (!host || !repo || !cfg || !ret) {
        return -EINVAL;
    }
    if (!host_valid(host)) {
        return img_error_set(err, -EINVAL, "docker://%.300s: not a registry host[:port]", host);
    }
    if (!repo_valid(repo)) {
        return img_error_set(err, -EINVAL,
                             "docker://%s/%.300s: not a repository (lowercase letters, digits, "
                             "\"._-\", components joined by \"/\")",
                             host, repo);
    }
    CURLcode rc = reg_curl_init();
    if (rc != CURLE_OK) {
        return img_error_set(err, -EIO, "libcurl cannot start: %s", curl_easy_strerror(rc));
    }
    if (!(s = calloc(1, sizeof(*s)))) {
        return img_error_set(err, -ENOMEM, "out of memory");
    }
    s->base.ops = &reg_ops;
    snprintf(s->base.name, sizeof(s->base.name), "docker://%s/%s", host, repo);
    docker_hub(s, host, repo);
    s->insecure = cfg->insecure;
    s->limits = cfg->limits;
    if (s->limits.timeout_s == 0) {
        struct img_limits d;
        img_limits_default(&d);
        s->limits.timeout_s = d.timeout_s;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->auth_lock, NULL);
    if (cfg->cacert && !(s->cacert = strdup(cfg->cacert))) {
        reg_free(&s->base);
        return img_error_set(err, -ENOMEM, "out of memory");
    }
    if ((r = reg_auth_load(s, cfg->authfile, err)) < 0) {
        img_error_prefix(err, "%s", s->base.name);
        reg_free(&s->base);
        return r;
    }
    *ret = &s->base;
    return 0;
}
