/* SPDX-License-Identifier: Apache-2.0 */
#include "client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "buf.h"
#include "json-util.h"
#include "log.h"

#define RESPONSE_MAX (1u << 20)

struct client {
    CURL *curl;
    struct curl_slist *headers;
    char *base;
    struct kbuf resp;
};

static size_t on_data(char *p, size_t size, size_t n, void *ud) {
    struct kbuf *b = ud;
    return kbuf_append(b, p, size * n) == 0 ? size * n : 0;
}

int client_new(const char *base_url, const char *cert, const char *key, const char *cacert,
               struct client **ret) {
    struct client *c = calloc(1, sizeof(*c));

    if (!c) {
        return -ENOMEM;
    }
    c->curl = curl_easy_init();
    c->base = strdup(base_url);
    kbuf_init(&c->resp, RESPONSE_MAX);
    if (!c->curl || !c->base) {
        client_free(c);
        return -ENOMEM;
    }
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &c->resp);
    curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    if (cert) {
        curl_easy_setopt(c->curl, CURLOPT_SSLCERT, cert);
    }
    if (key) {
        curl_easy_setopt(c->curl, CURLOPT_SSLKEY, key);
    }
    if (cacert) {
        curl_easy_setopt(c->curl, CURLOPT_CAINFO, cacert);
    }
    *ret = c;
    return 0;
}

void client_free(struct client *c) {
    if (!c) {
        return;
    }
    if (c->curl) {
        curl_easy_cleanup(c->curl);
    }
    curl_slist_free_all(c->headers);
    kbuf_free(&c->resp);
    free(c->base);
    free(c);
}

int client_post(struct client *c, const char *path, const json_t *body, json_t **ret) {
    char url[2048], err[CURL_ERROR_SIZE] = "", perr[256];
    char *text = body ? json_dumps(body, JSON_COMPACT) : strdup("{}");
    long status = 0;
    CURLcode rc;

    if (!text) {
        return -ENOMEM;
    }
    snprintf(url, sizeof(url), "%s%s", c->base, path);
    kbuf_reset(&c->resp);
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
    rc = curl_easy_perform(c->curl);
    free(text);
    if (rc != CURLE_OK) {
        log_warn("POST %s: %s", url, err[0] ? err : curl_easy_strerror(rc));
        return -EIO;
    }
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    *ret = NULL;
    if (!c->resp.data ||
        json_parse_bounded((const char *)c->resp.data, c->resp.len, 16, ret, perr, sizeof(perr)) <
                0 ||
        !json_is_object(*ret)) {
        json_decref(*ret);
        *ret = NULL;
        log_warn("POST %s: %ld with an answer that is not a JSON object", url, status);
        return -EBADMSG;
    }
    return (int)status;
}
