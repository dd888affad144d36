/* SPDX-License-Identifier: Apache-2.0 */
/* docker://HOST/REPO: images from a registry over the OCI distribution API
 * (GET /v2/REPO/manifests/REF and /v2/REPO/blobs/DIGEST) with libcurl.
 *
 * Every transfer is one easy handle in a multi handle of its own, driven
 * from the reader's read(): a blob streams through a buffer of a few curl
 * chunks (the transfer pauses while the reader is behind), never whole.
 * Sources share only what `lock` guards (the Authorization that worked
 * last, the scheme), so blobs can be read from several threads at once.
 *
 * What must stay true: TLS peers and host names are always verified; plain
 * http (also in redirects) only with `insecure`; at most 5 redirects, and
 * curl (>= 7.83) drops our Authorization header when one leaves the host
 * and port; every body is capped (the manifest limit, or the blob's size)
 * whatever Content-Length says; no byte for limits.timeout_s fails. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "hex.h"
#include "image-registry-internal.h"

#define PEND_MAX      (4u << 20)   /* bytes buffered between curl and the reader */
#define PEND_PAUSE    (256u << 10) /* above this, the transfer waits for the reader */
#define MAX_REDIRS    5L
#define RATE_RETRIES  2
#define RATE_WAIT_MAX 5 /* seconds waited for a 429, all retries together */
#define CONNECT_MAX_S 30
#define WHAT_MAX      700

static const char ACCEPT_MANIFESTS[] = "Accept: application/vnd.oci.image.index.v1+json, "
                                       "application/vnd.oci.image.manifest.v1+json, "
                                       "application/vnd.docker.distribution.manifest.list.v2+json, "
                                       "application/vnd.docker.distribution.manifest.v2+json";

/* ---- libcurl, once ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init(void) {
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void reg_easy_setup(const struct reg_source *s, CURL *c, char *errbuf) {
    const char *protos = s->insecure ? "http,https" : "https";
    long connect_s =
            s->limits.timeout_s < CONNECT_MAX_S ? (long)s->limits.timeout_s : CONNECT_MAX_S;

    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, protos);
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, protos);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, MAX_REDIRS);
    curl_easy_setopt(c, CURLOPT_UNRESTRICTED_AUTH, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (s->cacert) {
        curl_easy_setopt(c, CURLOPT_CAINFO, s->cacert);
    }
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, connect_s);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)s->limits.timeout_s);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "kima");
}

/* ---- one transfer ---- */

struct reg_xfer {
    struct img_stream s;
    CURLM *multi;
    CURL *easy;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
    char what[WHAT_MAX];
    unsigned timeout_s;
    struct kbuf pend; /* body bytes curl gave and the reader has not taken */
    size_t off;
    int64_t expect; /* bytes the body must hold, -1: any up to cap */
    uint64_t cap, received;
    long status;
    unsigned events; /* callbacks seen: progress for xfer_step */
    bool location, headers_done, done, paused, overflow;
    CURLcode result;
    char content_type[256];
    char docker_digest[160];
    char challenge[REG_CHALLENGE_MAX];
    char retry_after[16];
};

/* Copy a header value (trimmed) when it fits; "" when it does not. */
static void header_copy(const char *v, size_t n, char *out, size_t outsz) {
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t')) {
        n--;
    }
    if (n >= outsz) {
        n = 0;
    }
    memcpy(out, v, n);
    out[n] = 0;
}

static void header_reset(struct reg_xfer *x) {
    x->location = false;
    x->content_type[0] = x->docker_digest[0] = x->challenge[0] = x->retry_after[0] = 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    struct reg_xfer *x = ud;
    size_t len = size * n, name;
    const char *v;

    x->events++;
    if (x->headers_done) {
        return len; /* trailers */
    }
    if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {
        const char *sp = memchr(p, ' ', len);
        x->status = sp && (size_t)(sp - p) + 4 <= len ? strtol(sp + 1, NULL, 10) : 0;
        header_reset(x);
        return len;
    }
    if (len <= 2 && (p[0] == '\r' || p[0] == '\n')) {
        /* The end of a response's headers: the final one unless it is
         * informational or a redirect curl follows. */
        bool redirect = x->status >= 300 && x->status < 400 && x->status != 304 && x->location;
        x->headers_done = !(x->status >= 100 && x->status < 200) && !redirect;
        return len;
    }
    if (!(v = memchr(p, ':', len))) {
        return len;
    }
    name = (size_t)(v - p);
    for (v++; v < p + len && (*v == ' ' || *v == '\t'); v++) {
    }
    n = len - (size_t)(v - p);
#define IS(h) (name == sizeof(h) - 1 && strncasecmp(p, h, name) == 0)
    if (IS("content-type")) {
        header_copy(v, n, x->content_type, sizeof(x->content_type));
    } else if (IS("docker-content-digest")) {
        header_copy(v, n, x->docker_digest, sizeof(x->docker_digest));
    } else if (IS("www-authenticate") && !x->challenge[0]) {
        header_copy(v, n, x->challenge, sizeof(x->challenge));
    } else if (IS("retry-after")) {
        header_copy(v, n, x->retry_after, sizeof(x->retry_after));
    } else if (IS("location")) {
        x->location = true;
    }
#undef IS
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    struct reg_xfer *x = ud;
    size_t len = size * n, pending = x->pend.len - x->off;

    x->events++;
    if (!x->headers_done || x->status != 200) {
        return len; /* a redirect's or an error's body: not ours */
    }
    if (pending > 0 && pending + len > PEND_PAUSE) {
        x->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    if (x->received + len > x->cap) {
        x->overflow = true;
        return 0;
    }
    if (x->off > 0 && x->off == x->pend.len) {
        kbuf_reset(&x->pend);
        x->off = 0;
    }
    if (kbuf_append(&x->pend, p, len) < 0) {
        return 0;
    }
    x->received += len;
    return len;
}

/* One round of curl's work; waits (at most a second) only when nothing
 * happened. curl's low-speed limit ends a stalled transfer. */
static int xfer_step(struct reg_xfer *x) {
    unsigned before = x->events;
    int running = 0, numfds = 0, left;
    CURLMsg *m;

    if (x->paused && x->off == x->pend.len) {
        x->paused = false;
        curl_easy_pause(x->easy, CURLPAUSE_CONT);
    }
    if (curl_multi_perform(x->multi, &running) != CURLM_OK) {
        return -EIO;
    }
    while ((m = curl_multi_info_read(x->multi, &left))) {
        if (m->msg == CURLMSG_DONE) {
            x->done = true;
            x->result = m->data.result;
        }
    }
    if (x->done || x->events != before || x->paused) {
        return 0;
    }
    return curl_multi_poll(x->multi, NULL, 0, 1000, &numfds) == CURLM_OK ? 0 : -EIO;
}

static bool tls_error(CURLcode rc) {
    return rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_PEER_FAILED_VERIFICATION ||
           rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_CACERT_BADFILE ||
           rc == CURLE_SSL_CIPHER || rc == CURLE_SSL_ISSUER_ERROR;
}

/* A sentence into a buffer; long ones are cut. Returns rc. */
_printf_(4, 5) static int say(char *out, size_t outsz, int rc, const char *fmt, ...) {
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(out, outsz, fmt, ap);
    va_end(ap);
    return rc;
}

/* The sentence for a transfer that failed in curl, into out. */
static int xfer_curl_error(const struct reg_xfer *x, char *out, size_t outsz) {
    const char *why = x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->result);
    CURLcode rc = x->result;

    if (x->overflow || rc == CURLE_FILESIZE_EXCEEDED) {
        if (x->expect >= 0) {
            return say(out, outsz, -EBADMSG,
                       "%s: the registry sent more than the %lld bytes its descriptor gives",
                       x->what, (long long)x->expect);
        }
        return say(out, outsz, -EFBIG, "%s: larger than %llu bytes (the limit)", x->what,
                   (unsigned long long)x->cap);
    }
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        return say(out, outsz, -ETIMEDOUT, "%s: the registry stalled: no data for %u s (%s)",
                   x->what, x->timeout_s, why);
    }
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST) {
        return say(out, outsz, rc == CURLE_COULDNT_CONNECT ? -ECONNREFUSED : -EHOSTUNREACH,
                   "%s: cannot connect to the registry: %s", x->what, why);
    }
    if (tls_error(rc)) {
        return say(out, outsz, -EPROTO,
                   "%s: TLS with the registry failed (is --cacert its CA?): %s", x->what, why);
    }
    if (rc == CURLE_UNSUPPORTED_PROTOCOL) {
        return say(out, outsz, -EPROTO,
                   "%s: the registry redirected to a URL that is not https, refused "
                   "(--insecure allows http): %s",
                   x->what, why);
    }
    if (rc == CURLE_TOO_MANY_REDIRECTS) {
        return say(out, outsz, -ELOOP, "%s: more than %ld redirects", x->what, MAX_REDIRS);
    }
    if (rc == CURLE_PARTIAL_FILE) {
        return say(out, outsz, -EBADMSG,
                   "%s: the registry closed the connection after %llu bytes, before the end its "
                   "Content-Length announced",
                   x->what, (unsigned long long)x->received);
    }
    return say(out, outsz, -EIO, "%s: %s", x->what, why);
}

/* The end of the body: curl's verdict, then the length. */
static ssize_t xfer_end(struct reg_xfer *x) {
    if (x->result != CURLE_OK) {
        return xfer_curl_error(x, x->s.err, sizeof(x->s.err));
    }
    if (x->expect >= 0 && x->received != (uint64_t)x->expect) {
        return say(x->s.err, sizeof(x->s.err), -EBADMSG,
                   "%s: the registry sent %llu bytes, not the %lld its descriptor gives", x->what,
                   (unsigned long long)x->received, (long long)x->expect);
    }
    return 0;
}

static ssize_t xfer_read(struct img_stream *s, void *buf, size_t n) {
    struct reg_xfer *x = (struct reg_xfer *)s;
    size_t k;
    int r;

    while (x->off == x->pend.len) {
        if (x->done) {
            return xfer_end(x);
        }
        if ((r = xfer_step(x)) < 0) {
            return say(s->err, sizeof(s->err), r, "%s: libcurl failed", x->what);
        }
    }
    k = x->pend.len - x->off < n ? x->pend.len - x->off : n;
    memcpy(buf, x->pend.data + x->off, k);
    x->off += k;
    return (ssize_t)k;
}

static void xfer_close(struct img_stream *s) {
    struct reg_xfer *x = (struct reg_xfer *)s;
    struct curl_slist *h;

    if (x->multi && x->easy) {
        curl_multi_remove_handle(x->multi, x->easy);
    }
    curl_easy_cleanup(x->easy);
    curl_multi_cleanup(x->multi);
    for (h = x->hdrs; h; h = h->next) {
        explicit_bzero(h->data, strlen(h->data)); /* the Authorization */
    }
    curl_slist_free_all(x->hdrs);
    kbuf_free(&x->pend);
    free(x);
}

struct reg_req {
    const char *path;   /* "/v2/REPO/manifests/REF" */
    const char *accept; /* an Accept header line, or NULL */
    const char *what;   /* names the request in errors */
    const char *ref;    /* the tag or digest asked for, for a 404 */
    bool blob;
    int64_t expect;
    uint64_t cap;
};

static int xfer_new(const struct reg_source *s, const struct reg_req *q, bool plain,
                    const char *authz, struct reg_xfer **ret) {
    struct reg_xfer *x = calloc(1, sizeof(*x));
    struct curl_slist *h;
    char url[REG_HOST_MAX + REG_REPO_MAX + 512];

    if (!x) {
        return -ENOMEM;
    }
    x->s.read = xfer_read;
    x->s.close = xfer_close;
    kbuf_init(&x->pend, PEND_MAX);
    snprintf(x->what, sizeof(x->what), "%s", q->what);
    x->expect = q->expect;
    x->cap = q->cap;
    x->timeout_s = s->limits.timeout_s;
    x->multi = curl_multi_init();
    x->easy = curl_easy_init();
    if (!x->multi || !x->easy) {
        xfer_close(&x->s);
        return -ENOMEM;
    }
    for (int i = 0; i < 2; i++) {
        const char *line = i == 0 ? q->accept : authz;
        if (line && !(h = curl_slist_append(x->hdrs, line))) {
            xfer_close(&x->s);
            return -ENOMEM;
        } else if (line) {
            x->hdrs = h;
        }
    }
    snprintf(url, sizeof(url), "%s://%s%s", plain ? "http" : "https", s->host, q->path);
    reg_easy_setup(s, x->easy, x->errbuf);
    curl_easy_setopt(x->easy, CURLOPT_URL, url);
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(x->easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(x->easy, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
    /* No CURLOPT_MAXFILESIZE: it would also cut an error's body short and
     * hide its status; length_check() and on_body() hold the caps. */
    if (curl_multi_add_handle(x->multi, x->easy) != CURLM_OK) {
        xfer_close(&x->s);
        return -ENOMEM;
    }
    *ret = x;
    return 0;
}

/* Drive the transfer until the final response's headers are in (or it
 * ended without them). */
static int xfer_wait_headers(struct reg_xfer *x) {
    int r;

    while (!x->headers_done && !x->done) {
        if ((r = xfer_step(x)) < 0) {
            return r;
        }
    }
    return 0;
}

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
        return img_error_set(err, -ENOENT, "%s: blob %s not found in %s (HTTP 404)", q->what,
                             q->ref, s->repo);
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
        r = xfer_new(s, q, plain, authz, &x);
    }
    reg_secret_free(authz);
    if (r < 0 || (r = xfer_wait_headers(x)) < 0) {
        img_stream_close(x ? &x->s : NULL);
        return img_error_set(err, r, "%s: %s", q->what,
                             r == -ENOMEM ? "out of memory" : "libcurl failed");
    }
    if (!x->headers_done) { /* no answer */
        bool fallback = s->insecure && !known && !plain && x->result == CURLE_SSL_CONNECT_ERROR;
        r = xfer_curl_error(x, msg, sizeof(msg));
        xfer_close(&x->s);
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
            xfer_close(&x->s);
            return r;
        }
        *ret = x;
        return 0;
    }
    if (x->status == 401 && a->auth_tries++ == 0) {
        r = reg_authenticate(s, x->challenge, gen, q->what, err);
        xfer_close(&x->s);
        return r < 0 ? r : 1;
    }
    if (x->status == 429) {
        bool again = rate_wait(x, a->rate_tries++, &a->waited);
        xfer_close(&x->s);
        return again ? 1
                     : img_error_set(err, -EBUSY,
                                     "%s: rate limited by the registry (HTTP 429; gave up after "
                                     "%d tries and %u s of waiting)",
                                     q->what, a->rate_tries, a->waited);
    }
    r = status_error(s, q, x->status, err);
    xfer_close(&x->s);
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
    char what[WHAT_MAX], path[REG_REPO_MAX + 256], said[160], dg[160];
    struct reg_xfer *x = NULL;
    bool by_digest;
    int r;

    if (!body || !media_type || !digest) {
        return -EINVAL;
    }
    ref = ref ? ref : "latest";
    by_digest = img_digest_valid(ref);
    say(what, sizeof(what), 0, "%s%s%.200s", s->base.name, by_digest ? "@" : ":", ref);
    if (!by_digest && !tag_valid(ref)) {
        return img_error_set(err, -EINVAL, "%s: not a tag or a sha256/sha512 digest", what);
    }
    snprintf(path, sizeof(path), "/v2/%s/manifests/%s", s->repo, ref);
    struct reg_req q = {path, ACCEPT_MANIFESTS, what, ref, false, -1, s->limits.max_manifest};
    if ((r = reg_request(s, &q, &x, err)) < 0) {
        return r;
    }
    if ((r = media_type_of(x, media_type, media_type_size, err)) < 0) {
        xfer_close(&x->s);
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
    char what[WHAT_MAX], path[REG_REPO_MAX + 256];
    struct reg_xfer *x = NULL;
    int r;

    if (!ret) {
        return -EINVAL;
    }
    if (!img_digest_valid(digest)) {
        return img_error_set(err, -EINVAL, "%s: blob \"%.160s\": not a sha256/sha512 digest",
                             s->base.name, digest ? digest : "");
    }
    say(what, sizeof(what), 0, "%s: blob %s", s->base.name, digest);
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
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        return img_error_set(err, -EIO, "libcurl cannot start: %s",
                             curl_easy_strerror(curl_init_rc));
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
