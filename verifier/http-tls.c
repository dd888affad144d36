/* SPDX-License-Identifier: Apache-2.0 */
#include "http-tls.h"

#include <errno.h>
#include <stdlib.h>

struct http_tickets {
    gnutls_datum_t key; /* gnutls_session_ticket_key_generate()'s */
};

int http_tickets_new(struct http_tickets **ret) {
    struct http_tickets *t = calloc(1, sizeof(*t));

    if (!t) {
        return -ENOMEM;
    }
    if (gnutls_session_ticket_key_generate(&t->key) < 0) {
        free(t);
        return -EIO;
    }
    *ret = t;
    return 0;
}

void http_tickets_free(struct http_tickets *t) {
    if (!t) {
        return;
    }
    if (t->key.data) {
        gnutls_memset(t->key.data, 0, t->key.size);
        gnutls_free(t->key.data);
    }
    free(t);
}

int http_tickets_enable(const struct http_tickets *t, gnutls_session_t session) {
    if (!t || !session) {
        return -EINVAL;
    }
    /* The ticket lifetime: GnuTLS keeps it per session (the "cache
     * expiration"), and refuses older tickets. */
    gnutls_db_set_cache_expiration(session, HTTP_TICKET_LIFETIME_S);
    if (gnutls_session_ticket_enable_server(session, &t->key) < 0) {
        return -EINVAL;
    }
    return 0;
}
