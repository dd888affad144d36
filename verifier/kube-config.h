/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_VERIFIER_KUBE_CONFIG_H
#define KIMA_VERIFIER_KUBE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Where the Kubernetes API is and how to authenticate to it: from inside a
 * cluster (service account) or from a kubeconfig file as kubectl writes it.
 * Files are bounded (1 MiB) and every field is checked; errors say which. */

struct kube_config {
    char *server;     /* https://host:port, no trailing '/' */
    char *ca_file;    /* certificate-authority, or NULL */
    uint8_t *ca_data; /* certificate-authority-data, decoded (PEM) */
    size_t ca_len;
    bool insecure; /* insecure-skip-tls-verify: true (refused unless allowed) */
    char *token;   /* bearer token, or NULL */
    /* Where the token came from (the service account's token, a
     * kubeconfig's tokenFile), read again as the kubelet rotates it
     * (kube_config_reread_token()); NULL for a token given inline. */
    char *token_file;
    char *cert_file, *key_file;
    uint8_t *cert_data, *key_data; /* client-certificate-data, client-key-data */
    size_t cert_len, key_len;
    /* The namespace of the kubeconfig's context, or of the service account
     * (its `namespace` file); NULL when neither says. The Lease lives in
     * POD_NAMESPACE when set, else here, else "default" (kube-lease.c). */
    char *namespace;
    /* Who this verifier is to the others (the Lease's holderIdentity): set
     * by the caller (service.c), NULL until then. */
    char *holder;
};

void kube_config_free(struct kube_config *c);

/* A kubeconfig: the current context (or `context` when not NULL), its
 * cluster and user. Relative file paths are relative to the kubeconfig's
 * folder, as kubectl takes them. 0 or a negative errno with a reason. */
int kube_config_from_kubeconfig(const char *path, const char *context, struct kube_config *ret,
                                char *err, size_t errsz);

/* Inside a pod: KUBERNETES_SERVICE_HOST and _PORT, and the service
 * account's token and ca.crt in sa_dir (NULL:
 * /var/run/secrets/kubernetes.io/serviceaccount). */
int kube_config_in_cluster(const char *sa_dir, struct kube_config *ret, char *err, size_t errsz);

/* Reads c->token_file again: 1 when the token changed (c->token replaced),
 * 0 when it is the same or there is no file, or a negative errno (the file
 * cannot be read, or holds no usable token), c->token kept. */
int kube_config_reread_token(struct kube_config *c);

/* YAML (one document) to JSON: mappings to objects, sequences to arrays,
 * scalars to strings. Anchors and aliases are refused. For kubeconfigs. */
int kube_yaml_to_json(const uint8_t *data, size_t len, json_t **ret, char *err, size_t errsz);

#endif
