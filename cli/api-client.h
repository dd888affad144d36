/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_CLI_API_CLIENT_H
#define KIMA_CLI_API_CLIENT_H

#include <stdbool.h>

#include <jansson.h>

/* kimactl's HTTPS client of the verifier's operator API (libcurl, one handle,
 * peer and host verified, client certificate). CURLcode is converted here. */

struct api {
    const char *server; /* https://host:port */
    const char *cert, *key, *cacert;
};

/* Fill from --server/--cert/--key/--cacert or KIMA_SERVER, KIMA_CERT,
 * KIMA_KEY, KIMA_CACERT. */
void api_from_env(struct api *a);

/* One request; the response body is parsed as JSON (at most 64 MiB).
 * Returns the HTTP status, or a negative errno when no answer came (the
 * reason is logged). */
int api_call(const struct api *a, const char *method, const char *path, const json_t *body,
             json_t **ret);

#endif
