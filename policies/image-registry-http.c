/* SPDX-License-Identifier: Apache-2.0 */
/* One registry transfer: an easy handle in a multi handle of its own,
 * driven from the reader's read(), so that a blob streams through a buffer
 * of a few curl chunks (the transfer pauses while the reader is behind),
 * never whole; and the options every registry request shares.
 *
 * What must stay true: TLS peers and host names are always verified; plain
 * http (also in redirects) only with `insecure`; at most 5 redirects, and
 * curl (>= 7.83) drops our Authorization header when one leaves the host
 * and port; every body is capped (the manifest limit, or the blob's size)
 * whatever Content-Length says; no byte for limits.timeout_s fails. */
#include "image-registry-internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEND_MAX      (4u << 20)   /* bytes buffered between curl and the reader */
#define PEND_PAUSE    (256u << 10) /* above this, the transfer waits for the reader */
#define MAX_REDIRS    5L
#define CONNECT_MAX_S 30

/* ---- libcurl, once ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init(void) {
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

CURLcode reg_curl_init(void) {
    pthread_once(&curl_once, curl_init);
    return curl_init_rc;
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
        /* Unpausing hands curl's held data to on_body() at once; when that
         * refuses it (past the cap), the error comes back here, not from
         * the multi handle. */
        CURLcode rc;

        x->paused = false; /* on_body() may pause again inside */
        rc = curl_easy_pause(x->easy, CURLPAUSE_CONT);
        if (rc != CURLE_OK) {
            x->done = true;
            x->result = rc;
            return 0;
        }
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
int reg_say(char *out, size_t outsz, int rc, const char *fmt, ...) {
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(out, outsz, fmt, ap);
    va_end(ap);
    return rc;
}

/* The sentence for a transfer that failed in curl, into out. */
int reg_xfer_curl_error(const struct reg_xfer *x, char *out, size_t outsz) {
    const char *why = x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->result);
    CURLcode rc = x->result;

    if (x->overflow || rc == CURLE_FILESIZE_EXCEEDED) {
        if (x->expect >= 0) {
            return reg_say(out, outsz, -EBADMSG,
                           "%s: the registry sent more than the %lld bytes its descriptor gives",
                           x->what, (long long)x->expect);
        }
        return reg_say(out, outsz, -EFBIG, "%s: larger than %llu bytes (the limit)", x->what,
                       (unsigned long long)x->cap);
    }
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        return reg_say(out, outsz, -ETIMEDOUT, "%s: the registry stalled: no data for %u s (%s)",
                       x->what, x->timeout_s, why);
    }
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST) {
        return reg_say(out, outsz, rc == CURLE_COULDNT_CONNECT ? -ECONNREFUSED : -EHOSTUNREACH,
                       "%s: cannot connect to the registry: %s", x->what, why);
    }
    if (tls_error(rc)) {
        return reg_say(out, outsz, -EPROTO,
                       "%s: TLS with the registry failed (is --cacert its CA?): %s", x->what, why);
    }
    if (rc == CURLE_UNSUPPORTED_PROTOCOL) {
        return reg_say(out, outsz, -EPROTO,
                       "%s: the registry redirected to a URL that is not https, refused "
                       "(--insecure allows http): %s",
                       x->what, why);
    }
    if (rc == CURLE_TOO_MANY_REDIRECTS) {
        return reg_say(out, outsz, -ELOOP, "%s: more than %ld redirects", x->what, MAX_REDIRS);
    }
    if (rc == CURLE_PARTIAL_FILE) {
        return reg_say(
                out, outsz, -EBADMSG,
                "%s: the registry closed the connection after %llu bytes, before the end its "
                "Content-Length announced",
                x->what, (unsigned long long)x->received);
    }
    return reg_say(out, outsz, -EIO, "%s: %s", x->what, why);
}

/* The end of the body: curl's verdict, then the length. */
static ssize_t xfer_end(struct reg_xfer *x) {
    if (x->result != CURLE_OK) {
        return reg_xfer_curl_error(x, x->s.err, sizeof(x->s.err));
    }
    if (x->expect >= 0 && x->received != (uint64_t)x->expect) {
        return reg_say(x->s.err, sizeof(x->s.err), -EBADMSG,
                       "%s: the registry sent %llu bytes, not the %lld its descriptor gives",
                       x->what, (unsigned long long)x->received, (long long)x->expect);
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
            return reg_say(s->err, sizeof(s->err), r, "%s: libcurl failed", x->what);
        }
    }
    k = x->pend.len - x->off < n ? x->pend.len - x->off : n;
    memcpy(buf, x->pend.data + x->off, k);
    x->off += k;
    return (ssize_t)k;
}

void reg_xfer_close(struct img_stream *s) {
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

int reg_xfer_new(const struct reg_source *s, const struct reg_req *q, bool plain, const char *authz,
                 struct reg_xfer **ret) {
    struct reg_xfer *x = calloc(1, sizeof(*x));
    struct curl_slist *h;
    char url[REG_HOST_MAX + REG_REPO_MAX + 512];

    if (!x) {
        return -ENOMEM;
    }
    x->s.read = xfer_read;
    x->s.close = reg_xfer_close;
    kbuf_init(&x->pend, PEND_MAX);
    snprintf(x->what, sizeof(x->what), "%s", q->what);
    x->expect = q->expect;
    x->cap = q->cap;
    x->timeout_s = s->limits.timeout_s;
    x->multi = curl_multi_init();
    x->easy = curl_easy_init();
    if (!x->multi || !x->easy) {
        reg_xfer_close(&x->s);
        return -ENOMEM;
    }
    for (int i = 0; i < 2; i++) {
        const char *line = i == 0 ? q->accept : authz;
        if (line && !(h = curl_slist_append(x->hdrs, line))) {
            reg_xfer_close(&x->s);
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
        reg_xfer_close(&x->s);
        return -ENOMEM;
    }
    *ret = x;
    return 0;
}

/* Drive the transfer until the final response's headers are in (or it
 * ended without them). */
int reg_xfer_wait_headers(struct reg_xfer *x) {
    int r;

    while (!x->headers_done && !x->done) {
        if ((r = xfer_step(x)) < 0) {
            return r;
        }
    }
    return 0;
}
