/* SPDX-License-Identifier: Apache-2.0 */
#include "verifiers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"

/* At most 60 bytes of an entry for a message, non-printable bytes as '?';
 * not an entry with an '@' (it may hold a password). */
static void entry_text(const char *p, size_t len, char *out, size_t outsz) {
    size_t n = len < 60 ? len : 60, i;

    if (outsz < 64) {
        out[0] = 0;
        return;
    }
    if (memchr(p, '@', len)) {
        snprintf(out, outsz, "not shown: it holds an @");
        return;
    }
    for (i = 0; i < n; i++) {
        out[i] = p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?';
    }
    snprintf(out + i, outsz - i, "%s", len > n ? "..." : "");
}

/* Whether `url` (checked already) names the verifier u does: the host
 * without regard to case, the port (443 when none is given) and the
 * prefix (without its trailing '/'). */
static bool same_verifier(const char *url, const struct client_url *u) {
    struct client_url o;
    char why[128];

    return client_url_parse(url, &o, why, sizeof(why)) == 0 && strcasecmp(o.host, u->host) == 0 &&
           strcmp(o.port, u->port) == 0 && strcmp(o.prefix, u->prefix) == 0;
}

/* Entry `k` (from p, len bytes, blanks trimmed) into v, checked. */
static int add_entry(struct verifier_urls *v, size_t k, const char *p, size_t len, char *err,
                     size_t errsz) {
    struct client_url u;
    char text[64], why[128];

    entry_text(p, len, text, sizeof(text));
    if (len == 0) {
        snprintf(err, errsz, "--verifier: entry %zu is empty", k + 1);
        return -EINVAL;
    }
    if (len > VERIFIER_URL_LEN_MAX) {
        snprintf(err, errsz, "--verifier: entry %zu (%s) is %zu bytes long; at most %d", k + 1,
                 text, len, VERIFIER_URL_LEN_MAX);
        return -E2BIG;
    }
    v->url[k] = strndup(p, len);
    if (!v->url[k]) {
        return -ENOMEM;
    }
    v->n = k + 1;
    if (client_url_parse(v->url[k], &u, why, sizeof(why)) < 0) {
        snprintf(err, errsz, "--verifier: entry %zu (%s): %s", k + 1, text, why);
        return -EINVAL;
    }
    for (size_t i = 0; i < k; i++) {
        if (same_verifier(v->url[i], &u)) {
            snprintf(err, errsz, "--verifier: entry %zu (%s) repeats entry %zu", k + 1, text,
                     i + 1);
            return -EINVAL;
        }
    }
    return 0;
}

int verifier_urls_parse(const char *spec, struct verifier_urls *ret, char *err, size_t errsz) {
    struct verifier_urls v = {0};
    const char *p = spec;
    int r = 0;

    snprintf(err, errsz, "--verifier: out of memory");
    for (size_t k = 0; r == 0; k++) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);

        if (k == VERIFIER_URLS_MAX) {
            snprintf(err, errsz, "--verifier: more than %d URLs", VERIFIER_URLS_MAX);
            r = -E2BIG;
            break;
        }
        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }
        while (end > p && (end[-1] == ' ' || end[-1] == '\t')) {
            end--;
        }
        r = add_entry(&v, k, p, (size_t)(end - p), err, errsz);
        if (!comma) {
            break;
        }
        p = comma + 1;
    }
    if (r < 0) {
        verifier_urls_free(&v);
        return r;
    }
    err[0] = 0;
    *ret = v;
    return 0;
}

void verifier_urls_free(struct verifier_urls *v) {
    for (size_t i = 0; i < v->n && i < VERIFIER_URLS_MAX; i++) {
        free(v->url[i]);
        v->url[i] = NULL;
    }
    v->n = 0;
}

bool verifier_unavailable(int status, const json_t *answer, char *why, size_t whysz) {
    const char *error = answer ? json_string_value(json_object_get(answer, "error")) : NULL;

    if (status < 0) {
        snprintf(why, whysz, "no answer (%s)", strerror(-status));
    } else if (status == 503 && error && strcmp(error, "draining") == 0) {
        snprintf(why, whysz, "draining (HTTP %d)", status);
    } else if (status == 500 || status == 502 || status == 503 || status == 504) {
        /* 500: the verifier failed (its store, its audit log) and recorded
         * nothing; not a verdict, so another verifier may be asked. */
        snprintf(why, whysz, "HTTP %d", status);
    } else {
        return false;
    }
    return true;
}
