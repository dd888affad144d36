/* SPDX-License-Identifier: Apache-2.0 */
/* The TokenReview call of agent-auth.c, through the verifier's Kubernetes
 * client: its own file so that the token's path through the client is
 * short to read. The token is in the request body only; kube_request
 * logs the method and path of a failed request, never its body. */
#include "kube.h"
#include "kube-internal.h"

#include "agent-auth.h"

#define TOKENREVIEWS_PATH "/apis/authentication.k8s.io/v1/tokenreviews"

int kube_token_review(void *ud, const json_t *body, json_t **ret) {
    struct kube *k = ud;

    return kube_request_capped(k, "POST", TOKENREVIEWS_PATH, "application/json", body,
                               AGENT_AUTH_REVIEW_TIMEOUT_MS, AGENT_AUTH_ANSWER_MAX, ret);
}
