/* SPDX-License-Identifier: Apache-2.0 */
#include "kube-config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "base64.h"
#include "fileio.h"
#include "macro.h"

#define KUBECONFIG_MAX (1u << 20)
#define YAML_DEPTH_MAX 32
#define SA_DIR         "/var/run/secrets/kubernetes.io/serviceaccount"

static int fail(char *err, size_t errsz, int r, const char *fmt, ...) {
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
    return r;
}

void kube_config_free(struct kube_config *c) {
    if (!c) {
        return;
    }
    free(c->server);
    free(c->ca_file);
    free(c->ca_data);
    free(c->token);
    free(c->token_file);
    free(c->cert_file);
    free(c->key_file);
    free(c->cert_data);
    free(c->key_data);
    free(c->namespace);
    free(c->holder);
    memset(c, 0, sizeof(*c));
}

/* Attach v to the container on top of the stack (under key for a mapping). */
static int attach(json_t **stack, char **keys, int depth, json_t *v) {
    json_t *top = stack[depth - 1];

    if (json_is_array(top)) {
        return json_array_append_new(top, v);
    }
    if (!keys[depth - 1]) {
        /* v is a key: only scalars can be keys */
        if (!json_is_string(v)) {
            json_decref(v);
            return -1;
        }
        keys[depth - 1] = strdup(json_string_value(v));
        json_decref(v);
        return keys[depth - 1] ? 0 : -1;
    }
    json_object_set_new(top, keys[depth - 1], v);
    free(keys[depth - 1]);
    keys[depth - 1] = NULL;
    return 0;
}

int kube_yaml_to_json(const uint8_t *data, size_t len, json_t **ret, char *err, size_t errsz) {
    yaml_parser_t parser;
    yaml_event_t ev;
    json_t *stack[YAML_DEPTH_MAX + 1] = {0}, *root = NULL;
    char *keys[YAML_DEPTH_MAX + 1] = {0};
    int depth = 0, r = 0;
    bool done = false;

    if (!yaml_parser_initialize(&parser)) {
        return fail(err, errsz, -ENOMEM, "cannot start the YAML parser");
    }
    yaml_parser_set_input_string(&parser, data, len);
    while (!done && r == 0) {
        json_t *v = NULL;

        if (!yaml_parser_parse(&parser, &ev)) {
            r = fail(err, errsz, -EBADMSG, "YAML error at line %zu: %s",
                     parser.problem_mark.line + 1, parser.problem ? parser.problem : "?");
            break;
        }
        switch (ev.type) {
        case YAML_SCALAR_EVENT:
            v = json_stringn((const char *)ev.data.scalar.value, ev.data.scalar.length);
            if (!v) {
                r = fail(err, errsz, -EBADMSG, "a YAML scalar that is not UTF-8");
            } else if (depth == 0) {
                root = v;
            } else if (attach(stack, keys, depth, v) < 0) {
                r = fail(err, errsz, -EBADMSG, "a YAML mapping key that is not a scalar");
            }
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (depth == YAML_DEPTH_MAX) {
                r = fail(err, errsz, -EBADMSG, "YAML nested deeper than %d", YAML_DEPTH_MAX);
                break;
            }
            v = ev.type == YAML_SEQUENCE_START_EVENT ? json_array() : json_object();
            if (depth > 0 && attach(stack, keys, depth, json_incref(v)) < 0) {
                json_decref(v);
                r = fail(err, errsz, -EBADMSG, "a YAML mapping key that is not a scalar");
                break;
            }
            if (depth == 0) {
                root = json_incref(v);
            }
            stack[depth++] = v;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            json_decref(stack[--depth]);
            free(keys[depth]);
            keys[depth] = NULL;
            break;
        case YAML_ALIAS_EVENT:
            r = fail(err, errsz, -EBADMSG, "YAML aliases are not accepted");
            break;
        case YAML_DOCUMENT_END_EVENT:
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    while (depth > 0) {
        json_decref(stack[--depth]);
        free(keys[depth]);
    }
    yaml_parser_delete(&parser);
    if (r < 0 || !root) {
        json_decref(root);
        return r < 0 ? r : fail(err, errsz, -EBADMSG, "an empty YAML document");
    }
    *ret = root;
    return 0;
}

/* The entry of list `list` named `name`, then its member `member`. */
static json_t *named(json_t *doc, const char *list, const char *name, const char *member) {
    size_t i;
    json_t *it;

    json_array_foreach(json_object_get(doc, list), i, it) {
        const char *n = json_string_value(json_object_get(it, "name"));
        if (n && strcmp(n, name) == 0) {
            return json_object_get(it, member);
        }
    }
    return NULL;
}

static const char *str(json_t *o, const char *k) {
    return json_string_value(json_object_get(o, k));
}

/* A path relative to the kubeconfig's folder. */
static char *resolve(const char *dir, const char *p) {
    char *out;

    if (p[0] == '/' || !dir) {
        return strdup(p);
    }
    if (asprintf(&out, "%s/%s", dir, p) < 0) {
        return NULL;
    }
    return out;
}

static int b64_field(json_t *o, const char *k, uint8_t **ret, size_t *ret_len, char *err,
                     size_t errsz) {
    const char *s = str(o, k);
    size_t max;
    int n;

    if (!s) {
        return 0;
    }
    max = strlen(s) / 4 * 3 + 3;
    *ret = malloc(max + 1);
    if (!*ret) {
        return -ENOMEM;
    }
    n = base64_decode(s, strlen(s), *ret, max);
    if (n < 0) {
        free(*ret);
        *ret = NULL;
        return fail(err, errsz, -EBADMSG, "%s is not base64", k);
    }
    *ret_len = (size_t)n;
    return 0;
}

static int check_server(const char *s, char *err, size_t errsz) {
    if (!s || strncmp(s, "https://", 8) != 0 || strlen(s) < 9 || strlen(s) > 1024) {
        return fail(err, errsz, -EINVAL, "the cluster's server must be an https:// URL (%s)",
                    s ? s : "none");
    }
    return 0;
}

/* A bearer token goes into an HTTP header: printable ASCII only. */
static bool token_ok(const char *t) {
    for (; *t; t++) {
        if (*t <= ' ' || *t >= 0x7f) {
            return false;
        }
    }
    return true;
}

/* The folder of the kubeconfig, against which its relative paths resolve;
 * NULL when the path names none. Caller frees. */
static char *folder_of(const char *path) {
    char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;

    if (!slash) {
        free(dir);
        return NULL;
    }
    *slash = 0;
    return dir;
}

/* A token kept in a file (up to 64 KiB), without its line ends. 0 with
 * *ret_token NULL when out of memory, or read_file_capped()'s error. */
static int read_token_file(const char *path, char **ret_token) {
    uint8_t *t = NULL;
    size_t tl;
    int r = read_file_capped(path, 64 * 1024, &t, &tl);

    if (r < 0) {
        return r;
    }
    while (tl && (t[tl - 1] == '\n' || t[tl - 1] == '\r')) {
        tl--;
    }
    *ret_token = strndup((char *)t, tl);
    free(t);
    return 0;
}

/* The context (the current one unless `context` names one), its cluster,
 * and its user with the user's name (both NULL when the context has none). */
static int pick_context(json_t *doc, const char *context, json_t **ret_cluster, json_t **ret_user,
                        const char **ret_user_name, char *err, size_t errsz) {
    const char *ctx_name = context ? context : str(doc, "current-context"), *cl_name, *u_name;
    json_t *ctx, *cluster, *user;

    if (!ctx_name || !*ctx_name) {
        return fail(err, errsz, -EINVAL, "no current-context");
    }
    ctx = named(doc, "contexts", ctx_name, "context");
    cl_name = str(ctx, "cluster");
    u_name = str(ctx, "user");
    if (!ctx || !cl_name) {
        return fail(err, errsz, -EINVAL, "context \"%s\" is missing or names no cluster", ctx_name);
    }
    cluster = named(doc, "clusters", cl_name, "cluster");
    user = u_name ? named(doc, "users", u_name, "user") : NULL;
    if (!cluster) {
        return fail(err, errsz, -EINVAL, "cluster \"%s\" is missing", cl_name);
    }
    if (u_name && !user) {
        return fail(err, errsz, -EINVAL, "user \"%s\" is missing", u_name);
    }
    *ret_cluster = cluster;
    *ret_user = user;
    *ret_user_name = u_name;
    return 0;
}

/* The cluster's server (c->server stays NULL when out of memory), its
 * certificate authority and insecure-skip-tls-verify. */
static int read_cluster(json_t *cluster, const char *dir, struct kube_config *c, char *err,
                        size_t errsz) {
    const char *s = str(cluster, "server");
    int r = check_server(s, err, errsz);

    if (r < 0) {
        return r;
    }
    c->server = strdup(s);
    while (c->server && strlen(c->server) > 8 && c->server[strlen(c->server) - 1] == '/') {
        c->server[strlen(c->server) - 1] = 0;
    }
    if ((s = str(cluster, "certificate-authority"))) {
        c->ca_file = resolve(dir, s);
    }
    r = b64_field(cluster, "certificate-authority-data", &c->ca_data, &c->ca_len, err, errsz);
    if (r < 0) {
        return r;
    }
    s = str(cluster, "insecure-skip-tls-verify");
    c->insecure = s && strcmp(s, "true") == 0;
    return 0;
}

int kube_config_reread_token(struct kube_config *c) {
    char *t = NULL;
    int r;

    if (!c || !c->token_file) {
        return 0;
    }
    r = read_token_file(c->token_file, &t);
    if (r < 0) {
        return r;
    }
    if (!t) {
        return -ENOMEM;
    }
    if (!*t || !token_ok(t)) {
        free(t);
        return -EBADMSG;
    }
    if (c->token && strcmp(c->token, t) == 0) {
        free(t);
        return 0;
    }
    free(c->token);
    c->token = t;
    return 1;
}

/* The user's credentials: a token (or tokenFile), a client certificate and
 * key (files or data). Plugins (exec, auth-provider) are refused. */
static int read_user(json_t *user, const char *u_name, const char *dir, struct kube_config *c,
                     char *err, size_t errsz) {
    const char *s;
    int r;

    if ((s = str(user, "token"))) {
        c->token = strdup(s);
    } else if ((s = str(user, "tokenFile"))) {
        char *tf = resolve(dir, s);
        if (!tf || read_token_file(tf, &c->token) < 0) {
            free(tf);
            return fail(err, errsz, -EINVAL, "cannot read the user's tokenFile %s", s);
        }
        c->token_file = tf;
    }
    if ((s = str(user, "client-certificate"))) {
        c->cert_file = resolve(dir, s);
    }
    if ((s = str(user, "client-key"))) {
        c->key_file = resolve(dir, s);
    }
    if ((r = b64_field(user, "client-certificate-data", &c->cert_data, &c->cert_len, err, errsz)) <
                0 ||
        (r = b64_field(user, "client-key-data", &c->key_data, &c->key_len, err, errsz)) < 0) {
        return r;
    }
    if (json_object_get(user, "exec") || json_object_get(user, "auth-provider")) {
        return fail(err, errsz, -ENOTSUP,
                    "user \"%s\": exec and auth-provider credentials are not supported; use a "
                    "token or a client certificate",
                    u_name);
    }
    if (!(c->cert_file || c->cert_data) != !(c->key_file || c->key_data)) {
        return fail(err, errsz, -EINVAL, "user \"%s\": a client certificate without its key",
                    u_name);
    }
    return 0;
}

/* The context's namespace, when it names one (*ret NULL when not). */
static int context_namespace(json_t *doc, const char *context, char **ret) {
    const char *ns =
            str(named(doc, "contexts", context ? context : str(doc, "current-context"), "context"),
                "namespace");

    *ret = ns ? strdup(ns) : NULL;
    return ns && !*ret ? -ENOMEM : 0;
}

int kube_config_from_kubeconfig(const char *path, const char *context, struct kube_config *ret,
                                char *err, size_t errsz) {
    _cleanup_free_ uint8_t *data = NULL;
    _cleanup_free_ char *dir = NULL;
    struct kube_config c = {0};
    json_t *doc = NULL, *cluster = NULL, *user = NULL;
    const char *u_name = NULL;
    size_t len;
    int r;

    r = read_file_capped(path, KUBECONFIG_MAX, &data, &len);
    if (r < 0) {
        return fail(err, errsz, r, "cannot read %s: %s", path, strerror(-r));
    }
    r = kube_yaml_to_json(data, len, &doc, err, errsz);
    if (r < 0) {
        return r;
    }
    dir = folder_of(path);
    if ((r = pick_context(doc, context, &cluster, &user, &u_name, err, errsz)) < 0 ||
        (r = read_cluster(cluster, dir, &c, err, errsz)) < 0 ||
        (user && (r = read_user(user, u_name, dir, &c, err, errsz)) < 0)) {
        goto out;
    }
    if (!c.server) {
        r = -ENOMEM;
        goto out;
    }
    if (context_namespace(doc, context, &c.namespace) < 0) {
        r = -ENOMEM;
        goto out;
    }
    if (c.token && !token_ok(c.token)) {
        r = fail(err, errsz, -EINVAL, "the user's token holds control characters or spaces");
        goto out;
    }
    *ret = c;
    memset(&c, 0, sizeof(c));
    r = 0;
out:
    kube_config_free(&c);
    json_decref(doc);
    return r;
}

int kube_config_in_cluster(const char *sa_dir, struct kube_config *ret, char *err, size_t errsz) {
    const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
    struct kube_config c = {0};
    char path[PATH_MAX];
    int r;

    if (!host || !*host || !port || !*port) {
        return fail(err, errsz, -ENOENT, "not in a cluster: KUBERNETES_SERVICE_HOST/PORT unset");
    }
    if (strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 || strlen(host) > 253) {
        return fail(err, errsz, -EINVAL, "bad KUBERNETES_SERVICE_HOST or _PORT");
    }
    sa_dir = sa_dir ? sa_dir : SA_DIR;
    r = asprintf(&c.server, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host, port);
    if (r < 0) {
        return -ENOMEM;
    }
    snprintf(path, sizeof(path), "%s/token", sa_dir);
    r = read_token_file(path, &c.token);
    if (r < 0) {
        kube_config_free(&c);
        return fail(err, errsz, r, "cannot read the service account token %s", path);
    }
    if (c.token && !token_ok(c.token)) {
        kube_config_free(&c);
        return fail(err, errsz, -EINVAL, "the service account token holds control characters");
    }
    /* The service account's namespace: optional (the Lease's default). */
    snprintf(path, sizeof(path), "%s/namespace", sa_dir);
    if (read_token_file(path, &c.namespace) < 0) {
        c.namespace = NULL;
    }
    snprintf(path, sizeof(path), "%s/token", sa_dir);
    c.token_file = strdup(path);
    snprintf(path, sizeof(path), "%s/ca.crt", sa_dir);
    c.ca_file = strdup(path);
    if (!c.token || !c.ca_file || !c.token_file) {
        kube_config_free(&c);
        return -ENOMEM;
    }
    *ret = c;
    return 0;
}
