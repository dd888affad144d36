/* SPDX-License-Identifier: Apache-2.0 */
/* Registry authentication: the containers auth file, WWW-Authenticate
 * challenges, and Bearer tokens from a realm.
 *
 * What must stay true: credentials and tokens are never written into an
 * error, a log or anything else; the only credentials ever sent are the
 * registry's own (its auth file entry, host AND port compared), to the
 * registry or to the token realm its challenge names, never the entry of
 * the realm's host; a token is asked for pull on the repository being read
 * only, whatever scope the challenge asks for; a realm is https unless the
 * source is insecure. */
#include "image-registry-internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "fileio.h"
#include "json-util.h"

#define AUTH_ENTRY_MAX 4096 /* decoded "user:pass" */
#define AUTH_VALUES    100000

void reg_secret_free(char *p) {
    if (p) {
        explicit_bzero(p, strlen(p));
        free(p);
    }
}

/* ---- challenges ---- */

static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    return p;
}

/* A parameter value: a quoted string (backslash escapes) or a token, into
 * out. Returns the position after it, or NULL when malformed or too long. */
static const char *param_value(const char *p, char *out, size_t outsz) {
    size_t n = 0;
    bool quoted = *p == '"';

    p += quoted;
    while (*p && (quoted ? *p != '"' : (*p != ',' && *p != ' ' && *p != '\t'))) {
        if (quoted && *p == '\\' && p[1]) {
            p++;
        }
        if ((unsigned char)*p < 0x20 || *p == 0x7f || n + 1 >= outsz) {
            return NULL;
        }
        out[n++] = *p++;
    }
    if (quoted && *p++ != '"') {
        return NULL;
    }
    out[n] = 0;
    return p;
}

int reg_challenge_parse(const char *value, struct reg_challenge *ret) {
    struct reg_challenge c = {0};
    const char *p = skip_ws(value);
    char key[32], scratch[1024];

    if (strncasecmp(p, "Bearer", 6) == 0 && (p[6] == ' ' || p[6] == 0)) {
        c.scheme = REG_SCHEME_BEARER;
        p += 6;
    } else if (strncasecmp(p, "Basic", 5) == 0 && (p[5] == ' ' || p[5] == 0)) {
        c.scheme = REG_SCHEME_BASIC;
        p += 5;
    } else {
        return -EBADMSG;
    }
    for (p = skip_ws(p); *p; p = skip_ws(p)) {
        size_t k = 0;
        char *dst = scratch;
        size_t dstsz = sizeof(scratch);

        while (isalnum((unsigned char)*p) || *p == '_' || *p == '-') {
            if (k + 1 >= sizeof(key)) {
                return -EBADMSG;
            }
            key[k++] = *p++;
        }
        key[k] = 0;
        if (k == 0 || *p++ != '=') {
            return -EBADMSG;
        }
        if (strcasecmp(key, "realm") == 0) {
            dst = c.realm, dstsz = sizeof(c.realm);
        } else if (strcasecmp(key, "service") == 0) {
            dst = c.service, dstsz = sizeof(c.service);
        } else if (strcasecmp(key, "scope") == 0) {
            dst = c.scope, dstsz = sizeof(c.scope);
        }
        if (!(p = param_value(p, dst, dstsz))) {
            return -EBADMSG;
        }
        p = skip_ws(p);
        if (*p == ',') {
            p++;
        } else if (*p) {
            return -EBADMSG;
        }
    }
    if (c.scheme == REG_SCHEME_BEARER && !c.realm[0]) {
        return -EBADMSG;
    }
    *ret = c;
    return 0;
}

/* ---- the auth file ---- */

/* An auth file key as a "host[/path]" to compare: "https://HOST/v1/" (the
 * docker legacy form) is HOST, and index.docker.io is docker.io. */
static void normalize_key(const char *key, char *out, size_t outsz) {
    const char *p = key;
    size_t n;

    if (strncmp(p, "https://", 8) == 0 || strncmp(p, "http://", 7) == 0) {
        p = strstr(p, "://") + 3;
        n = strcspn(p, "/");
    } else {
        n = strlen(p);
    }
    snprintf(out, outsz, "%.*s", (int)n, p);
    if (strncmp(out, "index.docker.io", 15) == 0 && (out[15] == 0 || out[15] == '/')) {
        memmove(out, out + 6, strlen(out + 6) + 1);
    }
}

/* The base64 "auth" of one entry, decoded and checked, encoded again. */
static int entry_basic(const json_t *entry, const char *key, char **ret, struct img_error *err) {
    uint8_t dec[AUTH_ENTRY_MAX];
    const char *auth;
    char *out;
    int n;

    auth = json_string_value(json_object_get(entry, "auth"));
    if (!auth || !auth[0]) {
        *ret = NULL; /* an identity token or a helper: not supported, anonymous */
        return 0;
    }
    n = base64_decode(auth, strlen(auth), dec, sizeof(dec));
    if (n < 0 || !memchr(dec, ':', (size_t)n) || memchr(dec, 0, (size_t)n)) {
        explicit_bzero(dec, sizeof(dec));
        return img_error_set(
                err, -EBADMSG,
                "the auth file's entry for \"%.200s\" is not base64 of \"user:password\"", key);
    }
    out = malloc(base64_encoded_len((size_t)n) + 1);
    if (out) {
        base64_encode(dec, (size_t)n, out);
    }
    explicit_bzero(dec, sizeof(dec));
    if (!out) {
        return img_error_set(err, -ENOMEM, "out of memory");
    }
    *ret = out;
    return 0;
}

/* The length of the host part of "host[:port][/path]" and its port (443
 * when none is written); -EBADMSG for a port that is not a number. */
static int host_port_split(const char *hp, size_t *ret_len, unsigned long *ret_port) {
    size_t end = strcspn(hp, "/"), n;
    const char *colon;
    unsigned long port = 443;

    if (hp[0] == '[') {
        const char *close = memchr(hp, ']', end);
        if (!close) {
            return -EBADMSG;
        }
        n = (size_t)(close - hp) + 1;
        colon = n < end && hp[n] == ':' ? hp + n : NULL;
        if (!colon && n != end) {
            return -EBADMSG;
        }
    } else {
        colon = memchr(hp, ':', end);
        n = colon ? (size_t)(colon - hp) : end;
    }
    if (colon) {
        size_t digits = end - (size_t)(colon + 1 - hp);
        port = 0;
        if (digits == 0 || digits > 5) {
            return -EBADMSG;
        }
        for (size_t i = 0; i < digits; i++) {
            if (!isdigit((unsigned char)colon[1 + i])) {
                return -EBADMSG;
            }
            port = port * 10 + (unsigned long)(colon[1 + i] - '0');
        }
    }
    *ret_len = n;
    *ret_port = port;
    return 0;
}

/* Whether two "host[:port][/path]" name the same host (case aside), the
 * same port (443 when none is written) and the same path. */
static bool same_host_port_path(const char *a, const char *b) {
    size_t la, lb;
    unsigned long pa, pb;

    if (host_port_split(a, &la, &pa) < 0 || host_port_split(b, &lb, &pb) < 0) {
        return false;
    }
    return la == lb && pa == pb && strncasecmp(a, b, la) == 0 &&
           strcmp(a + strcspn(a, "/"), b + strcspn(b, "/")) == 0;
}

int reg_auth_lookup(const json_t *auths, const char *host, const char *repo, char **ret,
                    struct img_error *err) {
    char want[REG_HOST_MAX + REG_REPO_MAX + 2], norm[REG_HOST_MAX + REG_REPO_MAX + 2];
    const char *key;
    json_t *entry;

    *ret = NULL;
    if (!auths) {
        return 0;
    }
    /* Most specific first: host/a/b/c, host/a/b, host/a, host. */
    snprintf(want, sizeof(want), "%s%s%s", host, repo && repo[0] ? "/" : "", repo ? repo : "");
    for (;;) {
        json_object_foreach((json_t *)auths, key, entry) {
            normalize_key(key, norm, sizeof(norm));
            if (same_host_port_path(norm, want) && json_is_object(entry)) {
                return entry_basic(entry, key, ret, err);
            }
        }
        char *slash = strrchr(want, '/');
        if (!slash) {
            return 0;
        }
        *slash = 0;
    }
}

static int auth_file_path(const char *given, char *path, size_t pathsz) {
    const char *env = getenv("REGISTRY_AUTH_FILE");

    if (given) {
        snprintf(path, pathsz, "%s", given);
        return 1;
    }
    if (env && env[0]) {
        snprintf(path, pathsz, "%s", env);
        if (access(path, F_OK) == 0) {
            return 1;
        }
    }
    if ((env = getenv("XDG_RUNTIME_DIR")) && env[0]) {
        snprintf(path, pathsz, "%s/containers/auth.json", env);
        if (access(path, F_OK) == 0) {
            return 1;
        }
    }
    if ((env = getenv("HOME")) && env[0]) {
        snprintf(path, pathsz, "%s/.docker/config.json", env);
        if (access(path, F_OK) == 0) {
            return 1;
        }
    }
    return 0;
}

int reg_auth_load(struct reg_source *s, const char *authfile, struct img_error *err) {
    _cleanup_free_ uint8_t *data = NULL;
    _cleanup_json_ json_t *root = NULL;
    char path[4096], perr[256];
    size_t len = 0;
    json_t *auths;
    int r;

    if (!auth_file_path(authfile, path, sizeof(path))) {
        return 0;
    }
    r = read_file_capped(path, s->limits.max_manifest, &data, &len);
    if (r < 0) {
        return img_error_set(err, r, "auth file %.300s: %s", path,
                             r == -EFBIG ? "larger than the manifest limit" : strerror(-r));
    }
    r = json_parse_bounded((const char *)data, len, (int)s->limits.max_json_depth, AUTH_VALUES,
                           &root, perr, sizeof(perr));
    explicit_bzero(data, len);
    if (r < 0 || !json_is_object(root)) {
        return img_error_set(err, -EBADMSG, "auth file %.300s: not a JSON object%s%s", path,
                             r < 0 ? ": " : "", r < 0 ? perr : "");
    }
    auths = json_object_get(root, "auths");
    if (!auths) {
        return 0;
    }
    if (!json_is_object(auths)) {
        return img_error_set(err, -EBADMSG, "auth file %.300s: \"auths\" is not an object", path);
    }
    r = reg_auth_lookup(auths, s->auth_host, s->repo, &s->basic, err);
    if (r < 0) {
        img_error_prefix(err, "auth file %.300s", path);
        return r;
    }
    s->auths = json_incref(auths);
    return 0;
}

/* ---- tokens ---- */

/* The host[:port] of an http(s) URL into out, checked to be a plain host
 * name or address (no user info). */
static int url_host(const char *url, char *out, size_t outsz) {
    const char *p = strstr(url, "://");
    size_t n;

    if (!p) {
        return -EBADMSG;
    }
    p += 3;
    n = strcspn(p, "/?#");
    if (n == 0 || n >= outsz) {
        return -EBADMSG;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)p[i]) && !strchr(".-:[]_", p[i])) {
            return -EBADMSG;
        }
    }
    memcpy(out, p, n);
    out[n] = 0;
    return 0;
}

/* The credentials a token request carries: the registry's own (s->basic:
 * the auth file's entry for HOST[:PORT]/REPO or HOST[:PORT]) whatever host
 * the realm is on, as docker and containers/image do. Never the auth
 * file's entry for the realm's host: the registry chooses the realm, and
 * would otherwise have the user's credentials for another service turned
 * into a token that it receives. */
static int realm_basic(const struct reg_source *s, char **ret, struct img_error *err) {
    *ret = NULL;
    if (!s->basic) {
        return 0;
    }
    *ret = strdup(s->basic);
    return *ret ? 0 : img_error_set(err, -ENOMEM, "out of memory");
}

static size_t token_write(char *p, size_t size, size_t n, void *ud) {
    return kbuf_append(ud, p, size * n) == 0 ? size * n : 0;
}

static int token_url(const struct reg_source *s, const struct reg_challenge *c, char *url,
                     size_t urlsz) {
    char scope[REG_REPO_MAX + 32];
    char *esvc, *escope;
    int n;

    /* Our own scope, never the challenge's: a registry could ask for push
     * rights, or for another repository, on the user's behalf. */
    snprintf(scope, sizeof(scope), "repository:%s:pull", s->repo);
    esvc = curl_easy_escape(NULL, c->service, 0);
    escope = curl_easy_escape(NULL, scope, 0);
    n = -1;
    if (esvc && escope) {
        n = snprintf(url, urlsz, "%s%sservice=%s&scope=%s", c->realm,
                     strchr(c->realm, '?') ? "&" : "?", esvc, escope);
    }
    curl_free(esvc);
    curl_free(escope);
    return n < 0 || (size_t)n >= urlsz ? -E2BIG : 0;
}

/* GET the token URL (with basic credentials when there are some) into body;
 * the HTTP status in *ret_status. */
static int token_get(const struct reg_source *s, const char *url, const char *basic,
                     struct kbuf *body, long *ret_status, const char *what, struct img_error *err) {
    char errbuf[CURL_ERROR_SIZE] = "", authz[REG_AUTHZ_MAX];
    struct curl_slist *h = NULL, *h2;
    CURLcode rc;
    CURL *c = curl_easy_init();

    if (!c) {
        return img_error_set(err, -ENOMEM, "out of memory");
    }
    reg_easy_setup(s, c, errbuf);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, token_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    if (basic) {
        snprintf(authz, sizeof(authz), "Authorization: Basic %s", basic);
        h2 = curl_slist_append(h, authz);
        explicit_bzero(authz, sizeof(authz));
        if (!h2) {
            curl_easy_cleanup(c);
            return img_error_set(err, -ENOMEM, "out of memory");
        }
        h = h2;
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    }
    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, ret_status);
    curl_easy_cleanup(c);
    for (h2 = h; h2; h2 = h2->next) {
        explicit_bzero(h2->data, strlen(h2->data));
    }
    curl_slist_free_all(h);
    if (rc != CURLE_OK) {
        return img_error_set(err, -EACCES, "%s: the token request failed: %s", what,
                             rc == CURLE_WRITE_ERROR
                                     ? "the answer is too large"
                                     : (errbuf[0] ? errbuf : curl_easy_strerror(rc)));
    }
    return 0;
}

/* "token" or "access_token" of the token endpoint's JSON answer, checked
 * to be header-safe, as "Authorization: Bearer <token>" in *ret. */
static int token_parse(const struct reg_source *s, const struct kbuf *body, const char *what,
                       char **ret, struct img_error *err) {
    _cleanup_json_ json_t *root = NULL;
    char perr[256];
    const char *tok = NULL;
    size_t n;

    if (json_parse_bounded((const char *)body->data, body->len, (int)s->limits.max_json_depth, 1000,
                           &root, perr, sizeof(perr)) < 0 ||
        !json_is_object(root)) {
        return img_error_set(err, -EACCES, "%s: the token endpoint's answer is not JSON", what);
    }
    if (json_get_string(root, "token", REG_TOKEN_MAX, &tok, perr, sizeof(perr)) < 0 || !tok[0]) {
        tok = NULL;
        if (json_get_string(root, "access_token", REG_TOKEN_MAX, &tok, perr, sizeof(perr)) < 0) {
            tok = NULL;
        }
    }
    if (!tok || !tok[0]) {
        return img_error_set(err, -EACCES,
                             "%s: the token endpoint's answer has no usable \"token\" or "
                             "\"access_token\" (missing, empty or over %d bytes)",
                             what, REG_TOKEN_MAX);
    }
    n = strlen(tok);
    for (size_t i = 0; i < n; i++) {
        if (tok[i] < 0x21 || tok[i] > 0x7e) {
            return img_error_set(err, -EACCES,
                                 "%s: the token endpoint's token holds characters a header "
                                 "cannot carry",
                                 what);
        }
    }
    if (asprintf(ret, "Authorization: Bearer %s", tok) < 0) {
        return img_error_set(err, -ENOMEM, "out of memory");
    }
    return 0;
}

static int bearer_token(struct reg_source *s, const struct reg_challenge *c, const char *what,
                        char **ret, struct img_error *err) {
    _cleanup_kbuf_ struct kbuf body = KBUF_INIT(REG_TOKEN_BODY);
    char url[4096], realm_host[REG_HOST_MAX];
    char *basic = NULL;
    long status = 0;
    int r;

    if (strncmp(c->realm, "https://", 8) != 0 &&
        !(s->insecure && strncmp(c->realm, "http://", 7) == 0)) {
        return img_error_set(err, -EACCES,
                             "%s: the registry's token realm is not an https URL "
                             "(--insecure allows http)",
                             what);
    }
    if (url_host(c->realm, realm_host, sizeof(realm_host)) < 0) {
        return img_error_set(err, -EACCES, "%s: the registry's token realm is not a URL", what);
    }
    if (token_url(s, c, url, sizeof(url)) < 0) {
        return img_error_set(err, -EACCES, "%s: the registry's token realm is too long", what);
    }
    if ((r = realm_basic(s, &basic, err)) < 0) {
        return r;
    }
    r = token_get(s, url, basic, &body, &status, what, err);
    if (r == 0 && status != 200) {
        r = img_error_set(err, -EACCES,
                          status == 401 || status == 403
                                  ? "%s: authentication failed: check --authfile (the token "
                                    "endpoint on %s answered HTTP %ld)"
                                  : "%s: the token endpoint on %s answered HTTP %ld",
                          what, realm_host, status);
    }
    reg_secret_free(basic);
    if (r == 0) {
        r = token_parse(s, &body, what, ret, err);
    }
    explicit_bzero(body.data, body.len);
    return r;
}

static int challenge_answer(struct reg_source *s, const char *challenge, const char *what,
                            char **ret, struct img_error *err) {
    struct reg_challenge c;

    if (!challenge || !challenge[0]) {
        return img_error_set(err, -EACCES,
                             "%s: authentication failed: the registry answered 401 without "
                             "a challenge",
                             what);
    }
    if (reg_challenge_parse(challenge, &c) < 0) {
        return img_error_set(err, -EACCES,
                             "%s: the registry asks for an authentication kima does not "
                             "understand (not Bearer or Basic)",
                             what);
    }
    if (c.scheme == REG_SCHEME_BEARER) {
        return bearer_token(s, &c, what, ret, err);
    }
    if (!s->basic) {
        return img_error_set(err, -EACCES,
                             "%s: authentication failed: check --authfile (%s wants a user "
                             "and password and the auth file has none for it)",
                             what, s->auth_host);
    }
    if (asprintf(ret, "Authorization: Basic %s", s->basic) < 0) {
        return img_error_set(err, -ENOMEM, "out of memory");
    }
    return 0;
}

int reg_authenticate(struct reg_source *s, const char *challenge, unsigned gen, const char *what,
                     struct img_error *err) {
    char *authz = NULL;
    bool stale;
    int r;

    pthread_mutex_lock(&s->auth_lock);
    pthread_mutex_lock(&s->lock);
    stale = s->authz_gen != gen;
    pthread_mutex_unlock(&s->lock);
    if (stale) { /* another thread answered the challenge meanwhile */
        pthread_mutex_unlock(&s->auth_lock);
        return 0;
    }
    r = challenge_answer(s, challenge, what, &authz, err);
    if (r == 0) {
        pthread_mutex_lock(&s->lock);
        reg_secret_free(s->authz);
        s->authz = authz;
        s->authz_gen++;
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&s->auth_lock);
    return r;
}
