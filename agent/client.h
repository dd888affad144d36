/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_AGENT_CLIENT_H
#define KIMA_AGENT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* The agent's HTTPS client of the verifier, on OpenSSL's libssl (client.c):
 * one TLS connection kept alive across rounds and opened again once when the
 * server has closed it. The peer's certificate and host name (or IP address)
 * are verified; the client certificate is the node's, or a bearer token
 * (client_set_token()) stands for the node instead. A new connection
 * offers the session of the previous one (a TLS session ticket), so that a
 * reconnect costs no full handshake while the verifier still knows it. */

/* The largest answer body taken (after de-chunking); a larger one is
 * refused. */
#define CLIENT_RESPONSE_MAX (1u << 20)

/* The longest a TLS session is offered for resumption after it was made;
 * the verifier refuses its tickets after an hour too (verifier/http-tls.h). */
#define CLIENT_SESSION_MAX_S 3600

struct client;

/* A verifier URL taken apart: https://host[:port][/prefix]. */
struct client_url {
    char host[256]; /* without brackets */
    char port[8];
    char prefix[512]; /* path prefix, no trailing '/' */
    bool host_is_ip;
};

/* Check and take apart `url` into *ret. 0, or -EINVAL with what is wrong
 * in err (the URL itself is not repeated there); *ret untouched then. */
int client_url_parse(const char *url, struct client_url *ret, char *err, size_t errsz);

/* Connections made (TLS handshakes that succeeded) and how many of them
 * resumed a session. */
struct client_stats {
    uint64_t connections, resumed;
};

int client_new(const char *base_url, const char *cert, const char *key, const char *cacert,
               struct client **ret);
void client_free(struct client *c);
/* Close the kept-alive connection, if any (the TLS session is kept for the
 * next connect to the same URL). Accepts NULL. */
void client_disconnect(struct client *c);

/* POST body (may be NULL) to base_url + path. Returns the HTTP status with
 * the parsed answer in *ret (an object, never NULL on success; an empty one
 * for a non-2xx answer that is not a JSON object), or a negative errno when
 * no answer came (the reason is logged). OpenSSL's
 * errors are converted here and nowhere else. */
int client_post(struct client *c, const char *path, const json_t *body, json_t **ret);

/* How long one client_post() may take for its writes and reads, whatever
 * each read's own timeout: a server that sends its answer a byte at a time
 * gets -ETIMEDOUT after this (the agent then moves to its next verifier
 * URL). CLIENT_REQUEST_DEADLINE_MS unless set; tests set it shorter. */
#define CLIENT_REQUEST_DEADLINE_MS 60000
void client_set_request_deadline_ms(struct client *c, unsigned ms);

/* Send `Authorization: Bearer` with the token of t (agent/token.h) on every
 * request from now on, read again as it rotates; NULL: none. Borrowed: t
 * outlives c. A token that cannot be read fails the request with its
 * negative errno, nothing sent. */
struct agent_token;
void client_set_token(struct client *c, struct agent_token *t);

void client_get_stats(const struct client *c, struct client_stats *ret);

#endif
