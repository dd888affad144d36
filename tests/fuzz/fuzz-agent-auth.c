/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: what the agents' tokens bring in from outside. The
 * same input is taken as a token file (agent/token.c agent_token_parse), as
 * the token whose JWT payload's exp is read without trusting it
 * (verifier/agent-auth.c agent_auth_jwt_exp), and as a TokenReview answer
 * of the Kubernetes API (agent_auth_judge). The seeds in
 * corpus/agent-auth are TokenReview answers of the fake API server
 * (tests/helpers/fake-kube-api.py: a valid token, an expired one, one
 * without the node claim), a projected token's file and a JWT. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent-auth.h"
#include "engine.h"
#include "token.h"

#define SECRET "tok-secret"
#define SA     "system:serviceaccount:kima-system:kima-agent"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void judge(const uint8_t *data, size_t size) {
    json_t *answer = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    struct agent_auth_verdict v;

    agent_auth_judge(201, answer, "kima", SA, SECRET, &v);
    /* Accepted: one valid node name, and only from an object that says
     * authenticated. A reason never holds the token, but for the node name
     * the API vouched for (a JWT is never a node name: it has capitals and
     * is longer). */
    if (strlen(v.reason) >= sizeof(v.reason) ||
        (strstr(v.reason, SECRET) && !strstr(v.node, SECRET)) ||
        (v.result == AGENT_AUTH_OK &&
         (!engine_valid_node_name(v.node) ||
          !json_is_true(json_object_get(json_object_get(answer, "status"), "authenticated"))))) {
        abort();
    }
    json_decref(answer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[160], *token = NULL;
    int64_t exp;

    if (agent_token_parse(data, size, &token, err, sizeof(err)) == 0) {
        size_t n = strlen(token);
        if (n == 0 || n > AGENT_TOKEN_MAX || strpbrk(token, " \t\r\n")) {
            abort();
        }
        if (n <= AGENT_AUTH_TOKEN_MAX && agent_auth_jwt_exp(token, &exp) == 0 && exp <= 0) {
            abort();
        }
        free(token);
    }
    judge(data, size);
    return 0;
}
