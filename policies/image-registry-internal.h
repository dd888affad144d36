/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_POLICIES_IMAGE_REGISTRY_INTERNAL_H
#define KIMA_POLICIES_IMAGE_REGISTRY_INTERNAL_H

/* Shared between image-registry.c (requests, manifests, blobs) and
 * image-registry-auth.c (auth files, challenges, tokens). */

#include <pthread.h>
#include <stdbool.h>

#include <curl/curl.h>
#include <jansson.h>

#include "image.h"

#define REG_HOST_MAX      256   /* host[:port] */
#define REG_REPO_MAX      256   /* repository path */
#define REG_AUTHZ_MAX     16384 /* an Authorization header, "Bearer <token>" included */
#define REG_TOKEN_MAX     (REG_AUTHZ_MAX - 64)
#define REG_TOKEN_BODY    (64u << 10) /* a token endpoint's answer */
#define REG_CHALLENGE_MAX 2048        /* a WWW-Authenticate header */

struct reg_source {
    struct img_source base;
    char host[REG_HOST_MAX];      /* where requests go: host[:port] */
    char auth_host[REG_HOST_MAX]; /* the host as the auth file names it */
    char repo[REG_REPO_MAX];
    char *cacert;
    bool insecure;
    struct img_limits limits;
    json_t *auths;             /* the auth file's "auths" object, or NULL; read-only */
    char *basic;               /* base64 "user:pass" for auth_host/repo (from auths), or
                                  NULL: the only credentials ever sent */
    pthread_mutex_t lock;      /* guards the fields below */
    pthread_mutex_t auth_lock; /* one token request at a time */
    bool scheme_known;
    bool plain_http;    /* only with insecure: the registry does not speak TLS */
    char *authz;        /* "Authorization: ..." that worked last, or NULL */
    unsigned authz_gen; /* bumped whenever authz changes */
};

/* A parsed WWW-Authenticate challenge. */
enum reg_scheme {
    REG_SCHEME_NONE,
    REG_SCHEME_BASIC,
    REG_SCHEME_BEARER,
};

struct reg_challenge {
    enum reg_scheme scheme;
    char realm[1024];
    char service[256];
    char scope[512];
};

/* Parse one WWW-Authenticate header value: "Bearer realm=\"...\",
 * service=\"...\",scope=\"...\"" or "Basic realm=\"...\"". 0, or -EBADMSG
 * for a malformed or unknown one. */
int reg_challenge_parse(const char *value, struct reg_challenge *ret);

/* Load the auth file (cfg->authfile, or the default places when NULL) into
 * s->auths and the credentials for s->auth_host/s->repo into s->basic. A
 * missing default file is no error; a missing --authfile is. */
int reg_auth_load(struct reg_source *s, const char *authfile, struct img_error *err);

/* Base64 "user:pass" the auth file holds for `host` (and, most specific
 * first, `repo` under it) into *ret (caller frees with reg_secret_free()),
 * or NULL when it holds none. A key matches when its host (case aside),
 * its port (443 when none is written) and its path are the same.
 * -EBADMSG for an entry that is not base64 of "user:pass". */
int reg_auth_lookup(const json_t *auths, const char *host, const char *repo, char **ret,
                    struct img_error *err);

/* Answer a 401's challenge: set s->authz (Basic from the auth file, or a
 * Bearer token from the realm) unless another thread already changed it
 * since generation `gen`. `what` names the request in errors. 0, or
 * -EACCES with the reason in err. */
int reg_authenticate(struct reg_source *s, const char *challenge, unsigned gen, const char *what,
                     struct img_error *err);

/* The options every request of `s` shares: TLS verification, the CA,
 * protocols, redirects, timeouts. */
void reg_easy_setup(const struct reg_source *s, CURL *c, char *errbuf);

/* libcurl's global init, once for the process (thread-safe). */
CURLcode reg_curl_init(void);

#define REG_WHAT_MAX 800

/* One GET (image-registry-http.c): a stream of the final response's body
 * once reg_xfer_wait_headers() saw its headers. */
struct reg_xfer {
    struct img_stream s;
    CURLM *multi;
    CURL *easy;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
    char what[REG_WHAT_MAX];
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

struct reg_req {
    const char *path;   /* "/v2/REPO/manifests/REF" */
    const char *accept; /* an Accept header line, or NULL */
    const char *what;   /* names the request in errors */
    const char *ref;    /* the tag or digest asked for, for a 404 */
    bool blob;
    int64_t expect;
    uint64_t cap;
};

/* A transfer of q's path from s (plain http when `plain`), with the
 * Authorization header line `authz` (or NULL). 0 or -ENOMEM. Closed with
 * reg_xfer_close() (also its img_stream's close). */
int reg_xfer_new(const struct reg_source *s, const struct reg_req *q, bool plain, const char *authz,
                 struct reg_xfer **ret);
/* Drive it until the final response's headers are in (or it ended
 * without them). */
int reg_xfer_wait_headers(struct reg_xfer *x);
void reg_xfer_close(struct img_stream *s);
/* The sentence for a transfer that curl failed, into out; its errno. */
int reg_xfer_curl_error(const struct reg_xfer *x, char *out, size_t outsz);
/* A sentence into a buffer (cut when long). Returns rc. */
int reg_say(char *out, size_t outsz, int rc, const char *fmt, ...) _printf_(4, 5);

/* Overwrite and free a string holding a secret. NULL is fine. */
void reg_secret_free(char *p);

#endif
