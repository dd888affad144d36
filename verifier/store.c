/* SPDX-License-Identifier: Apache-2.0 */
/* The store's interface: the backend chosen from the spec at store_open,
 * every call passed on to it (store-internal.h). */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "kima-config.h"
#include "log.h"
#include "store-internal.h"

enum store_kind store_spec_kind(const char *spec) {
    size_t k;

    if (strncmp(spec, "postgres://", 11) == 0 || strncmp(spec, "postgresql://", 13) == 0) {
        return STORE_POSTGRESQL;
    }
    /* libpq's key=value form: a keyword, optional blanks, '='. */
    k = strspn(spec, "abcdefghijklmnopqrstuvwxyz_");
    if (k > 0) {
        size_t b = k + strspn(spec + k, " \t");
        if (spec[b] == '=') {
            return STORE_POSTGRESQL;
        }
    }
    return STORE_SQLITE;
}

/* The password file: at most STORE_PASSWORD_MAX bytes, one trailing
 * newline (or CRLF) stripped, no NUL, not empty. */
static int password_read(const char *path, char *ret, size_t retsz) {
    struct stat st;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

    if (fd < 0) {
        int r = -errno;
        log_error("store: cannot open the database password file %s: %s", path, strerror(errno));
        return r;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        log_error("store: the database password file %s is not a regular file", path);
        close(fd);
        return -EINVAL;
    }
    if (st.st_mode & 077) {
        log_warn("store: the database password file %s is readable by its group or others "
                 "(mode %03o): chmod 600 it",
                 path, (unsigned)(st.st_mode & 0777));
    }
    n = read(fd, ret, retsz);
    close(fd);
    if (n < 0 || (size_t)n >= retsz) {
        if (n < 0) {
            log_error("store: cannot read the database password file %s: %s", path,
                      strerror(errno));
        } else {
            log_error("store: the database password file %s is longer than %d bytes", path,
                      STORE_PASSWORD_MAX);
        }
        return n < 0 ? -EIO : -E2BIG;
    }
    ret[n] = 0;
    if (n > 0 && ret[n - 1] == '\n') {
        ret[--n] = 0;
        if (n > 0 && ret[n - 1] == '\r') {
            ret[--n] = 0;
        }
    }
    if (n == 0 || strlen(ret) != (size_t)n) {
        log_error("store: the database password file %s is empty or holds a NUL byte", path);
        return -EINVAL;
    }
    return 0;
}

extern char **environ;

/* The variable `name` taken out of the environment: its value overwritten
 * where it lies, then unset. unsetenv alone leaves the bytes in the
 * process's first environment block, which /proc/PID/environ shows. */
static void env_wipe(const char *name) {
    size_t nlen = strlen(name);

    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, name, nlen) == 0 && (*e)[nlen] == '=') {
            OPENSSL_cleanse(*e + nlen + 1, strlen(*e + nlen + 1));
        }
    }
    unsetenv(name);
}

/* The password from password_file, or else from KIMA_DB_PASSWORD (wiped
 * from the environment in either case): 1 when there is one, 0 when none. */
static int password_get(const char *password_file, char *ret, size_t retsz) {
    const char *env;
    size_t n;

    if (password_file) {
        int r = password_read(password_file, ret, retsz);
        env_wipe("KIMA_DB_PASSWORD"); /* not used, but not left readable either */
        return r < 0 ? r : 1;
    }
    env = getenv("KIMA_DB_PASSWORD");
    if (!env) {
        return 0;
    }
    n = strlen(env);
    if (n == 0 || n >= retsz) {
        log_error("store: KIMA_DB_PASSWORD is empty or longer than %zu bytes", retsz - 1);
        env_wipe("KIMA_DB_PASSWORD");
        return -EINVAL;
    }
    memcpy(ret, env, n + 1);
    env_wipe("KIMA_DB_PASSWORD");
    return 1;
}

int store_open_with(const char *spec, const char *password_file, struct store **ret) {
    char pw[STORE_PASSWORD_MAX + 1];
    int r;

    if (!spec || !*spec || !ret) {
        return -EINVAL;
    }
    if (store_spec_kind(spec) == STORE_SQLITE) {
        if (password_file) {
            log_warn("store: --db-password-file is for PostgreSQL; %s is an SQLite file", spec);
        }
        return store_sqlite_open(spec, ret);
    }
#ifdef HAVE_LIBPQ
    r = password_get(password_file, pw, sizeof(pw));
    if (r >= 0) {
        r = store_pg_open(spec, r > 0 ? pw : NULL, ret);
    }
    OPENSSL_cleanse(pw, sizeof(pw));
    return r;
#else
    (void)pw;
    (void)r;
    (void)password_get;
    log_error("store: %s names a PostgreSQL database, but this verifier was built without "
              "libpq (meson -Dpostgresql=enabled)",
              "--db");
    return -ENOTSUP;
#endif
}

int store_open(const char *spec, struct store **ret) {
    return store_open_with(spec, NULL, ret);
}

int store_open_reader(struct store *writer, struct store **ret) {
    return writer->ops->open_reader(writer, ret);
}

const char *store_backend(const struct store *s) {
    return s->ops->name;
}

void store_close(struct store *s) {
    if (s) {
        s->ops->close(s);
    }
}

int store_begin(struct store *s) {
    return s->ops->begin(s);
}

int store_commit(struct store *s) {
    return s->ops->commit(s);
}

void store_rollback(struct store *s) {
    s->ops->rollback(s);
}

int store_savepoint(struct store *s) {
    return s->ops->savepoint(s);
}

int store_sync(struct store *s) {
    return s->ops->sync(s);
}

uint64_t store_checkpoints(struct store *s) {
    return s->ops->checkpoints(s);
}

int store_release(struct store *s) {
    return s->ops->release(s);
}

void store_rollback_to(struct store *s) {
    s->ops->rollback_to(s);
}

bool store_in_transaction(struct store *s) {
    return s->ops->in_transaction(s);
}

int store_node_get(struct store *s, const char *name, struct node_record *ret) {
    return s->ops->node_get(s, name, ret);
}

int store_node_put(struct store *s, struct node_record *n) {
    return s->ops->node_put(s, n);
}

int store_node_delete(struct store *s, const char *name) {
    return s->ops->node_delete(s, name);
}

int store_node_with_ek_fp(struct store *s, const char *ek_fp, const char *name, char *ret) {
    return s->ops->node_with_ek_fp(s, ek_fp, name, ret);
}

int store_node_foreach(struct store *s, int (*fn)(const struct node_record *, void *), void *ud) {
    return s->ops->node_foreach(s, fn, ud);
}

int store_pod_get(struct store *s, const char *uid, struct pod_record *ret) {
    return s->ops->pod_get(s, uid, ret);
}

bool store_pod_same(const struct pod_record *a, const struct pod_record *b) {
    return strcmp(a->uid, b->uid) == 0 && strcmp(a->node, b->node) == 0 &&
           strcmp(a->ns, b->ns) == 0 && strcmp(a->name, b->name) == 0 && a->state == b->state &&
           strcmp(a->reason, b->reason) == 0 && a->since_ms == b->since_ms &&
           a->unjudged == b->unjudged && a->files == b->files &&
           a->files_overflow == b->files_overflow && strcmp(a->policy, b->policy) == 0 &&
           a->files_bytes == b->files_bytes && a->gone_ms == b->gone_ms &&
           a->files_dropped == b->files_dropped;
}

int store_pod_put(struct store *s, const struct pod_record *p) {
    return s->ops->pod_put(s, p);
}

int store_pod_delete_node(struct store *s, const char *node) {
    return s->ops->pod_delete_node(s, node);
}

int store_pod_delete(struct store *s, const char *uid) {
    return s->ops->pod_delete(s, uid);
}

int store_pod_files_delete(struct store *s, const char *uid) {
    return s->ops->pod_files_delete(s, uid);
}

int store_pod_foreach(struct store *s, int (*fn)(const struct pod_record *, void *), void *ud) {
    return s->ops->pod_foreach(s, NULL, fn, ud);
}

int store_pod_foreach_node(struct store *s, const char *node,
                           int (*fn)(const struct pod_record *, void *), void *ud) {
    return s->ops->pod_foreach(s, node, fn, ud);
}

int store_pending_add(struct store *s, const struct pending_record *p) {
    return s->ops->pending_add(s, p);
}

int store_pending_add_marker(struct store *s, const char *node, const char *uid,
                             const char *container, int64_t seen_ms) {
    struct pending_record *p = calloc(1, sizeof(*p));
    int r;

    if (!p) {
        return -ENOMEM;
    }
    snprintf(p->node, sizeof(p->node), "%s", node);
    snprintf(p->uid, sizeof(p->uid), "%s", uid);
    snprintf(p->container, sizeof(p->container), "%s", container);
    snprintf(p->template_name, sizeof(p->template_name), "(dropped)");
    p->seen_ms = seen_ms;
    p->dropped = 1;
    r = store_pending_add(s, p);
    free(p);
    return r < 0 ? r : 1;
}

int store_pending_list(struct store *s, const char *node, int64_t after, struct pending_record *ret,
                       size_t max) {
    return s->ops->pending_list(s, node, after, ret, max);
}

int store_pending_delete(struct store *s, int64_t id) {
    return s->ops->pending_delete(s, id);
}

int store_pending_count_key(struct store *s, const char *node, const char *uid,
                            const char *container, uint64_t *ret) {
    return s->ops->pending_count_key(s, node, uid, container, ret);
}

int store_pending_mark_dropped(struct store *s, const char *node, const char *uid,
                               const char *container, int64_t seen_ms) {
    return s->ops->pending_mark_dropped(s, node, uid, container, seen_ms);
}

int store_pending_delete_node(struct store *s, const char *node) {
    return s->ops->pending_delete_node(s, node);
}

int store_pod_file_add(struct store *s, const char *uid, const struct pod_file *f) {
    return s->ops->pod_file_add(s, uid, f);
}

int store_pod_files_foreach(struct store *s, const char *uid,
                            int (*fn)(const struct pod_file *, void *), void *ud) {
    return s->ops->pod_files_foreach(s, uid, fn, ud);
}

int store_pending_count(struct store *s, uint64_t *ret) {
    return s->ops->pending_count(s, ret);
}

int store_pending_nodes(struct store *s, int (*fn)(const char *node, void *ud), void *ud) {
    return s->ops->pending_nodes(s, fn, ud);
}

int store_nonce_use(struct store *s, const uint8_t *nonce, size_t len, int64_t expires_ms) {
    return s->ops->nonce_use(s, nonce, len, expires_ms);
}

int store_nonce_purge(struct store *s, int64_t now_ms) {
    return s->ops->nonce_purge(s, now_ms);
}

int store_secret(struct store *s, const char *name, uint8_t *ret, size_t len) {
    return s->ops->secret(s, name, ret, len);
}

bool store_shared(const struct store *s) {
    return s->ops->shared;
}
