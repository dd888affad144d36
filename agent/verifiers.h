/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_AGENT_VERIFIERS_H
#define KIMA_AGENT_VERIFIERS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* The agent's list of verifier URLs (--verifier A,B,...) and the rule that
 * moves it from one to the next: a verifier that gave no answer (connection
 * refused, TLS failure, timeout), answered 502, 503 or 504, or said it is
 * draining is unavailable; any other answer, a 403 or 409 too, is the
 * verifier's word and is never asked again of another one. */

/* At most this many URLs in the list, each at most this long. */
#define VERIFIER_URLS_MAX    8
#define VERIFIER_URL_LEN_MAX 2048

struct verifier_urls {
    char *url[VERIFIER_URLS_MAX]; /* owned */
    size_t n;
};

/* Split `spec` (one URL or a comma-separated list; blanks around an entry
 * are ignored) into *ret and check every URL (client_url_parse()). 0, or
 * -EINVAL (an empty entry, a bad or repeated URL), -E2BIG (more than
 * VERIFIER_URLS_MAX entries, or one over VERIFIER_URL_LEN_MAX bytes) or
 * -ENOMEM, with a message naming the bad entry in err; *ret is untouched
 * on failure. Release with verifier_urls_free(). */
int verifier_urls_parse(const char *spec, struct verifier_urls *ret, char *err, size_t errsz);
/* Free the URLs; accepts an empty or zeroed list. */
void verifier_urls_free(struct verifier_urls *v);

/* Whether an answer (status as client_post() returned it, answer may be
 * NULL) says the verifier is unavailable, rather than answering: then
 * true with the reason in why. */
bool verifier_unavailable(int status, const json_t *answer, char *why, size_t whysz);

#endif
