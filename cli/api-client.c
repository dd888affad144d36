/* SPDX-License-Identifier: Apache-2.0 */
#include "api-client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "buf.h"
#include "json-util.h"
#include "log.h"

void api_from_env(struct api *a) {
    a->server = a->server ? a->server : getenv("KIMA_SERVER");
    a->cert = a->cert ? a->cert : getenv("KIMA_CERT");
    a->key = a->key ? a->key : getenv("KIMA_KEY");
    a->cacert = a->cacert ? a->cacert : getenv("KIMA_CACERT");
}

static size_t on_data(char *p, size_t size, size_t n, void *ud) {
    struct kbuf *b = ud;
    return kbuf_append(b, p, size * n) == 0 ? size * n : 0;
}

int api_call(const struct api *a, const char *method, const char *path, const json_t *body,
             json_t **ret) {
    _cleanup_kbuf_ struct kbuf resp = KBUF_INIT(64u << 20);
    struct curl_slist *hdr = NULL;
    char url[2048], err[CURL_ERROR_SIZE] = "", perr[256];
    char *text = NULL;
    long status = 0;
    CURLcode rc;
    CURL *c;

    if (!a->server) {
        log_error("no verifier: give --server URL or set KIMA_SERVER");
        return -EINVAL;
    }
    snprintf(url, sizeof(url), "%s%s", a->server, path);
    c = curl_easy_init();
    if (!c) {
        return -ENOMEM;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (a->cacert) {
        curl_easy_setopt(c, CURLOPT_CAINFO, a->cacert);
    }
    if (a->cert) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, a->cert);
    }
    if (a->key) {
        curl_easy_setopt(c, CURLOPT_SSLKEY, a->key);
    }
    if (body) {
        text = json_dumps(body, JSON_COMPACT);
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, text ? text : "{}");
    }
    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdr);
    free(text);
    if (rc != CURLE_OK) {
        log_error("%s %s: %s", method, url, err[0] ? err : curl_easy_strerror(rc));
        return -EIO;
    }
    if (resp.len && json_parse_bounded((const char *)resp.data, resp.len, 32, 1u << 23, ret, perr,
                                       sizeof(perr)) < 0) {
        *ret = json_pack("{s:s,s:s}", "error", "not JSON", "detail", perr);
    } else if (!resp.len) {
        *ret = json_object();
    }
    return (int)status;
}
