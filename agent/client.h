/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_AGENT_CLIENT_H
#define KIMA_AGENT_CLIENT_H

#include <jansson.h>

/* The agent's HTTPS client of the verifier, on OpenSSL's libssl (client.c):
 * one TLS connection kept alive across rounds and opened again once when the
 * server has closed it. The peer's certificate and host name (or IP address)
 * are verified; the client certificate is the node's. */

/* The largest answer body taken (after de-chunking); a larger one is
 * refused. */
#define CLIENT_RESPONSE_MAX (1u << 20)

struct client;

int client_new(const char *base_url, const char *cert, const char *key, const char *cacert,
               struct client **ret);
void client_free(struct client *c);

/* POST body (may be NULL) to base_url + path. Returns the HTTP status with
 * the parsed answer in *ret (an object, never NULL on success), or a
 * negative errno when no answer came (the reason is logged). OpenSSL's
 * errors are converted here and nowhere else. */
int client_post(struct client *c, const char *path, const json_t *body, json_t **ret);

#endif
