/* SPDX-License-Identifier: Apache-2.0 */
#include "engine-internal.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <tss2/tss2_mu.h>

#include "base64.h"
#include "credential.h"
#include "ekcert.h"
#include "fileio.h"
#include "hex.h"
#include "keys.h"
#include "json-util.h"
#include "log.h"
#include "pcr.h"
#include "pubkey.h"
#include "time-util.h"

int64_t engine_now_ms(void) {
    return time_wall_ms();
}

void engine_config_default(struct engine_config *c) {
    memset(c, 0, sizeof(*c));
    c->interval_ms = 2000;
    c->nonce_ttl_ms = 30000;
    c->min_challenge_ms = 100;
    c->ima_max_bytes = 64u << 20;
    c->attribution_grace_ms = 10000;
    c->allow_match_all_excludes = false;
    tpm_pcr_selection_parse("sha256:10", &c->selection);
}

bool engine_valid_node_name(const char *s) {
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > STORE_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !((c == '-' || c == '.') && i > 0 && i < n - 1)) {
            return false;
        }
    }
    return true;
}

enum engine_status engine_error(json_t **resp, enum engine_status status, const char *error,
                                const char *detail) {
    *resp = json_pack("{s:s,s:s}", "error", error, "detail", detail ? detail : "");
    return status;
}

enum engine_status engine_node_unreadable(json_t **resp, int r, const char *detail) {
    if (r == -ENOENT) {
        return engine_error(resp, ENGINE_NOT_FOUND, "unknown node", detail);
    }
    return engine_error(resp, ENGINE_FAILED, "store", "the node could not be read; try again");
}

int engine_audit(struct engine *e, const char *type, const char *node, const struct pod_record *pod,
                 json_t *details) {
    struct audit_pod ap = {0};
    uint64_t seq;
    int r;

    if (!e->audit) {
        return 0;
    }
    if (pod) {
        ap = (struct audit_pod){pod->ns[0] ? pod->ns : NULL, pod->name[0] ? pod->name : NULL,
                                pod->uid};
    }
    r = audit_append(e->audit, type, node, pod ? &ap : NULL, details, &seq);
    if (r == 0 && e->writing) {
        e->batch_audit_seq = seq; /* synced by the batch's leader */
    } else if (r == 0) {
        r = audit_sync(e->audit, seq);
    }
    return r;
}

struct missing_fp {
    char (*names)[STORE_NAME_MAX + 1];
    size_t n, alloc;
};

static int collect_missing_fp(const struct node_record *n, void *ud) {
    struct missing_fp *m = ud;

    if (n->ek_fp[0]) {
        return 0;
    }
    if (m->n == m->alloc) {
        size_t na = m->alloc ? 2 * m->alloc : 16;
        char(*nv)[STORE_NAME_MAX + 1] = realloc(m->names, na * sizeof(*nv));
        if (!nv) {
            return -ENOMEM;
        }
        m->names = nv;
        m->alloc = na;
    }
    snprintf(m->names[m->n++], STORE_NAME_MAX + 1, "%s", n->name);
    return 0;
}

/* The slot of a (type, node) pair in the noisy-record limiter. */
static struct noisy_slot *noisy_slot(struct engine *e, const char *key) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *c = key; *c; c++) {
        h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
    }
    return &e->noisy[h % NOISY_SLOTS];
}

int engine_audit_noisy(struct engine *e, const char *type, const char *node,
                       const struct pod_record *pod, json_t *details) {
    char key[sizeof(((struct noisy_slot *)0)->key)];
    int64_t now = engine_now_ms();
    struct noisy_slot *s;

    snprintf(key, sizeof(key), "%s/%s", type, node ? node : "");
    s = noisy_slot(e, key);
    if (strcmp(s->key, key) != 0 || now - s->window_ms >= NOISY_INTERVAL_MS) {
        if (strcmp(s->key, key) == 0 && s->suppressed) {
            json_object_set_new(details, "suppressed_before",
                                json_integer((json_int_t)s->suppressed));
        }
        snprintf(s->key, sizeof(s->key), "%s", key);
        s->window_ms = now;
        s->count = 0;
        s->suppressed = 0;
    }
    if (s->count >= NOISY_BURST) {
        if (s->suppressed++ == 0) {
            log_warn("audit: more than %d %s records for node %s within %d s: the next are "
                     "counted, not written, until the interval ends",
                     NOISY_BURST, type, node ? node : "-", NOISY_INTERVAL_MS / 1000);
        }
        e->m.audit_suppressed++;
        return 0;
    }
    s->count++;
    return engine_audit(e, type, node, pod, details);
}

/* Nodes registered before the store kept EK fingerprints (schema 1) get
 * theirs, so that "one TPM, one node" holds for them too. */
static void fill_ek_fingerprints(struct engine *e) {
    struct node_record *n = calloc(1, sizeof(*n));
    struct missing_fp m = {0};

    store_node_foreach(e->store, collect_missing_fp, &m);
    for (size_t i = 0; n && i < m.n; i++) {
        TPM2B_PUBLIC ek;
        if (store_node_get(e->store, m.names[i], n) == 0 &&
            tpm_public_unmarshal(n->ek_pub, n->ek_pub_len, &ek) == 0 &&
            tpm_public_key_fingerprint(&ek.publicArea, n->ek_fp) == 0) {
            store_node_put(e->store, n);
        }
    }
    free(m.names);
    free(n);
}

int engine_new(const struct engine_config *cfg, struct store *store, struct audit_log *audit,
               struct inventory *inv, const char *policy_dir, struct engine **ret) {
    struct engine *e = calloc(1, sizeof(*e));

    if (!e) {
        return -ENOMEM;
    }
    e->noisy = calloc(NOISY_SLOTS, sizeof(*e->noisy));
    if (!e->noisy || engine_nodes_init(&e->nodes) < 0) {
        free(e->noisy);
        free(e);
        return -ENOMEM;
    }
    e->cfg = *cfg;
    e->store = store;
    e->audit = audit;
    e->inv = inv;
    pthread_mutex_init(&e->lock, NULL);
    pthread_mutex_init(&e->read_lock, NULL);
    pthread_cond_init(&e->batch_cond, NULL);
    kbuf_init(&e->policy_errors, 64 * 1024);
    if (policy_dir) {
        e->policy_dir = strdup(policy_dir);
        engine_reload_policies(e);
    }
    e->shared_nonces = cfg->shared_nonces || store_shared(store);
    if (e->shared_nonces) {
        int r = store_secret(store, "nonce-key", e->nonce_key, sizeof(e->nonce_key));
        if (r < 0) {
            log_error("cannot read the store's nonce key: %s", strerror(-r));
            engine_free(e);
            return r;
        }
    }
    fill_ek_fingerprints(e);
    *ret = e;
    return 0;
}

void engine_set_reader(struct engine *e, struct store *reader) {
    e->reader = reader;
}

void engine_set_listener(struct engine *e, void (*fn)(void *ud), void *ud) {
    pthread_mutex_lock(&e->lock);
    e->listener = fn;
    e->listener_ud = ud;
    pthread_mutex_unlock(&e->lock);
}

void engine_notify(struct engine *e) {
    void (*fn)(void *ud);
    void *ud;

    pthread_mutex_lock(&e->lock);
    fn = e->listener;
    ud = e->listener_ud;
    pthread_mutex_unlock(&e->lock);
    if (fn) {
        fn(ud);
    }
}

void engine_free(struct engine *e) {
    if (!e) {
        return;
    }
    policy_set_free(e->policies);
    free(e->noisy);
    kbuf_free(&e->policy_errors);
    free(e->policy_dir);
    engine_nodes_free(&e->nodes);
    OPENSSL_cleanse(e->nonce_key, sizeof(e->nonce_key));
    pthread_cond_destroy(&e->batch_cond);
    pthread_mutex_destroy(&e->lock);
    pthread_mutex_destroy(&e->read_lock);
    free(e);
}

/* The newest modification time of the directory and its files. */
static struct timespec dir_mtime(const char *dir) {
    struct timespec t = {0};
    struct stat st;

    if (stat(dir, &st) == 0) {
        t = st.st_mtim;
    }
    {
        struct dirent **names = NULL;
        int n = scandir(dir, &names, NULL, NULL);
        for (int i = 0; i < n; i++) {
            char path[PATH_MAX];
            snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
            /* "." is the directory itself (above), ".." its parent: not ours. */
            if (names[i]->d_name[0] != '.' && stat(path, &st) == 0 &&
                (st.st_mtim.tv_sec > t.tv_sec ||
                 (st.st_mtim.tv_sec == t.tv_sec && st.st_mtim.tv_nsec > t.tv_nsec))) {
                t = st.st_mtim;
            }
            free(names[i]);
        }
        free(names);
    }
    return t;
}

/* SHA-256 over the names and contents of the files policy_set_load reads:
 * whether anything changed, whatever the file times say. */
static void dir_fingerprint(const char *dir, uint8_t out[32]) {
    struct dirent **names = NULL;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned int len = 32;
    int n = scandir(dir, &names, NULL, alphasort);

    memset(out, 0, 32);
    if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
        n = n < 0 ? 0 : n;
    }
    for (int i = 0; i < n; i++) {
        const char *nm = names[i]->d_name;
        size_t nl = strlen(nm);
        if (c && nm[0] != '.' && nl > 5 && strcmp(nm + nl - 5, ".json") == 0) {
            _cleanup_free_ uint8_t *data = NULL;
            char path[PATH_MAX];
            size_t dl = 0;
            snprintf(path, sizeof(path), "%s/%s", dir, nm);
            int r = read_file_capped(path, POLICY_FILE_MAX, &data, &dl);
            EVP_DigestUpdate(c, nm, nl + 1);
            EVP_DigestUpdate(c, &r, sizeof(r));
            EVP_DigestUpdate(c, &dl, sizeof(dl));
            if (r == 0) {
                EVP_DigestUpdate(c, data, dl);
            }
        }
        free(names[i]);
    }
    free(names);
    if (c) {
        EVP_DigestFinal_ex(c, out, &len);
    }
    EVP_MD_CTX_free(c);
}

/* The ids of the loaded policies ("<name>@sha256:<canonical hex>"), in
 * file order: the policy-change record says which versions judge from now. */
static json_t *policy_ids(const struct policy_set *s) {
    json_t *a = json_array();

    for (size_t i = 0; a && i < policy_set_count(s); i++) {
        json_array_append_new(a, json_string(policy_id(policy_set_get(s, i))));
    }
    return a;
}

int engine_reload_policies(struct engine *e) {
    struct policy_load_options lo = {.allow_match_all_excludes = e->cfg.allow_match_all_excludes};
    struct policy_set *s = NULL;
    struct timespec t, now;
    uint8_t fp[32];
    bool same;
    int r;

    if (!e->policy_dir) {
        return 0;
    }
    t = dir_mtime(e->policy_dir);
    pthread_mutex_lock(&e->lock);
    same = e->policies && t.tv_sec == e->policy_mtime.tv_sec &&
           t.tv_nsec == e->policy_mtime.tv_nsec;
    pthread_mutex_unlock(&e->lock);
    if (same) {
        return 0;
    }
    /* File times are coarse (a kernel tick): a change in the same tick as
     * the last one read would look unchanged, so until the directory has
     * been quiet for a while its content decides. */
    dir_fingerprint(e->policy_dir, fp);
    clock_gettime(CLOCK_REALTIME, &now);
    pthread_mutex_lock(&e->lock);
    e->policy_mtime = now.tv_sec - t.tv_sec >= POLICY_QUIET_S ? t : (struct timespec){0};
    if (e->policies && memcmp(fp, e->policy_fp, sizeof(fp)) == 0) {
        pthread_mutex_unlock(&e->lock);
        return 0;
    }
    memcpy(e->policy_fp, fp, sizeof(fp));
    e->policy_generation++;
    kbuf_reset(&e->policy_errors);
    r = policy_set_load(e->policy_dir, e->policies, &lo, &s, &e->policy_errors);
    if (r == 0) {
        json_t *d = json_pack("{s:s,s:i,s:o}", "directory", e->policy_dir, "policies",
                              (int)policy_set_count(s), "loaded", policy_ids(s));
        if (e->policy_errors.len) {
            log_error("policy errors:\n%s", (char *)e->policy_errors.data);
            json_object_set_new(d, "errors", json_string((char *)e->policy_errors.data));
        }
        policy_set_free(e->policies);
        e->policies = s;
        log_info("loaded %zu policies from %s", policy_set_count(s), e->policy_dir);
        engine_audit(e, "policy-change", NULL, NULL, d);
        json_decref(d);
    } else {
        log_error("cannot read the policy directory %s: %s", e->policy_dir, strerror(-r));
    }
    pthread_mutex_unlock(&e->lock);
    return r;
}

static int decode_public(const json_t *req, const char *key, uint8_t *out, size_t *out_len,
                         TPM2B_PUBLIC *pub, char *err, size_t errsz) {
    _cleanup_free_ uint8_t *raw = NULL;
    size_t len;
    int r = json_get_base64(req, key, sizeof(TPM2B_PUBLIC), &raw, &len, err, errsz);

    if (r < 0) {
        return r;
    }
    if (len > 1024 || tpm_public_unmarshal(raw, len, pub) < 0) {
        snprintf(err, errsz, "\"%s\" is not a marshalled TPM2B_PUBLIC", key);
        return -EBADMSG;
    }
    memcpy(out, raw, len);
    *out_len = len;
    return 0;
}

static void keep_across_registration(struct node_record *n, const struct node_record *old) {
    n->version = old->version; /* written over what was read, or not at all */
    n->has_clock = old->has_clock;
    n->clock = old->clock;
    n->reset_count = old->reset_count;
    n->restart_count = old->restart_count;
    memcpy(n->boot_id, old->boot_id, sizeof(n->boot_id));
    n->ima_index = old->ima_index;
    n->ima_offset = old->ima_offset;
    memcpy(n->pcr10, old->pcr10, sizeof(n->pcr10));
    n->attestations = old->attestations;
    n->last_attested_ms = old->last_attested_ms;
    n->pending = old->pending;
    if (old->state != NODE_REGISTERED) {
        n->state = old->state;
    }
    if (old->state == NODE_UNTRUSTED) {
        snprintf(n->reason, sizeof(n->reason), "%s", old->reason);
    } else if (old->last_attested_ms) {
        snprintf(n->reason, sizeof(n->reason), "registered again: not attested since");
    }
}

/* A registration request, decoded and checked (no lock needed). */
struct registration {
    struct node_record *n; /* the node as it will be stored */
    TPM2B_PUBLIC ek, ak;
    TPM2B_NAME ak_name;
    uint8_t *cert;
    size_t cert_len;
    bool cert_ok;
    char why[256]; /* what the EK certificate check said */
};

/* The request: the node name, both public keys (an AK with the AK
 * attributes, an RSA EK), the EK certificate if any and its check. ENGINE_OK
 * to go on, else the refusal in *resp. */
static enum engine_status registration_parse(struct engine *e, const char *node, const json_t *req,
                                             struct registration *rg, json_t **resp) {
    struct node_record *n = rg->n;
    const char *reason = NULL;
    char err[256];
    int r;

    if (!engine_valid_node_name(node)) {
        return engine_error(resp, ENGINE_MALFORMED, "bad node name", "not a DNS-1123 subdomain");
    }
    if (decode_public(req, "ek_pub", n->ek_pub, &n->ek_pub_len, &rg->ek, err, sizeof(err)) < 0 ||
        decode_public(req, "ak_pub", n->ak_pub, &n->ak_pub_len, &rg->ak, err, sizeof(err)) < 0) {
        return engine_error(resp, ENGINE_MALFORMED, "malformed registration", err);
    }
    if (tpm_ak_public_check(&rg->ak.publicArea, &reason) < 0) {
        return engine_error(resp, ENGINE_MALFORMED, "unacceptable AK", reason);
    }
    /* The agent uses the RSA EK of template L-1. A TPM has other
     * endorsement keys, some with certificates of their own (ECC, the
     * high-range RSA templates): accepting them would let one TPM register
     * as two nodes (one TPM, one node). */
    if (tpm_ek_public_check(&rg->ek.publicArea, &reason) < 0) {
        return engine_error(resp, ENGINE_MALFORMED, "unacceptable EK", reason);
    }
    r = json_get_base64(req, "ek_cert", STORE_BLOB_MAX, &rg->cert, &rg->cert_len, err, sizeof(err));
    if (r < 0 && r != -ENOENT) {
        return engine_error(resp, ENGINE_MALFORMED, "malformed registration", err);
    }
    if (rg->cert && e->cfg.ek_store) {
        rg->cert_ok = tpm_ekcert_verify(e->cfg.ek_store, rg->cert, rg->cert_len, &rg->ek.publicArea,
                                        rg->why, sizeof(rg->why)) == 0;
    } else {
        snprintf(rg->why, sizeof(rg->why), "%s",
                 rg->cert ? "no trusted EK CAs configured" : "no EK certificate");
    }
    if (e->cfg.require_ek_cert && !rg->cert_ok) {
        json_t *d = json_pack("{s:s}", "reason", rg->why);
        pthread_mutex_lock(&e->lock);
        engine_audit_noisy(e, "registration-refused", node, NULL, d);
        json_decref(d);
        pthread_mutex_unlock(&e->lock);
        return engine_error(resp, ENGINE_REFUSED, "EK certificate refused", rg->why);
    }
    if (tpm_public_name(&rg->ak.publicArea, &rg->ak_name) < 0) {
        return engine_error(resp, ENGINE_MALFORMED, "unacceptable AK",
                            "its name cannot be computed");
    }
    if (tpm_public_key_fingerprint(&rg->ek.publicArea, n->ek_fp) < 0) {
        return engine_error(resp, ENGINE_MALFORMED, "unacceptable EK", "its key cannot be read");
    }
    return ENGINE_OK;
}

/* Identity (under the lock): a name bound to another EK or AK, or an EK
 * bound to another name, is 409 until an operator deletes that node (one
 * TPM, one node: keys are compared, not their encoding, so an RSA exponent
 * of 0 or 65537 is the same key). *ret_old is 1 with the stored node in
 * old when the name is registered with these keys already. */
static enum engine_status registration_identity(struct engine *e, const char *node,
                                                const struct registration *rg,
                                                struct node_record *old, bool *ret_old,
                                                json_t **resp) {
    const struct node_record *n = rg->n;
    char other[STORE_NAME_MAX + 1], detail[STORE_NAME_MAX + 160];
    int r = store_node_get(e->store, node, old);
    json_t *d;

    *ret_old = r == 0;
    if (r < 0 && r != -ENOENT) {
        return engine_error(resp, ENGINE_FAILED, "store", "cannot read the node");
    }
    if (r == 0 &&
        (old->ek_pub_len != n->ek_pub_len || memcmp(old->ek_pub, n->ek_pub, n->ek_pub_len) != 0 ||
         old->ak_pub_len != n->ak_pub_len || memcmp(old->ak_pub, n->ak_pub, n->ak_pub_len) != 0)) {
        d = json_pack("{s:s}", "reason", "node name bound to another EK or AK");
        engine_audit_noisy(e, "registration-refused", node, NULL, d);
        json_decref(d);
        return engine_error(resp, ENGINE_CONFLICT, "identity conflict",
                            "this node name is bound to another TPM or AK; an operator must "
                            "delete the node first");
    }
    if (store_node_with_ek_fp(e->store, n->ek_fp, node, other) == 0) {
        d = json_pack("{s:s,s:s}", "reason", "EK bound to another node name", "other_node", other);
        engine_audit_noisy(e, "registration-refused", node, NULL, d);
        json_decref(d);
        snprintf(detail, sizeof(detail),
                 "this TPM (EK) is registered as node %s; an operator must delete that node first",
                 other);
        return engine_error(resp, ENGINE_CONFLICT, "identity conflict", detail);
    }
    return ENGINE_OK;
}

/* A fresh activation secret and the credential that carries it to the TPM
 * of this EK, for this AK only; marshalled into the answer. */
static enum engine_status registration_credential(struct registration *rg, json_t **resp) {
    TPM2B_ID_OBJECT blob;
    TPM2B_ENCRYPTED_SECRET secret;
    uint8_t mblob[sizeof(blob)], msecret[sizeof(secret)];
    size_t boff = 0, soff = 0;
    struct node_record *n = rg->n;

    if (RAND_bytes(n->secret, sizeof(n->secret)) != 1 ||
        tpm_make_credential(&rg->ek.publicArea, &rg->ak_name, n->secret, sizeof(n->secret), &blob,
                            &secret) < 0 ||
        Tss2_MU_TPM2B_ID_OBJECT_Marshal(&blob, mblob, sizeof(mblob), &boff) != TSS2_RC_SUCCESS ||
        Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal(&secret, msecret, sizeof(msecret), &soff) !=
                TSS2_RC_SUCCESS) {
        return engine_error(resp, ENGINE_FAILED, "internal", "MakeCredential failed");
    }
    n->has_secret = true;
    *resp = json_pack("{s:o,s:o,s:b}", "credential_blob", json_base64(mblob, boff), "secret",
                      json_base64(msecret, soff), "ek_cert_valid", rg->cert_ok);
    return ENGINE_CREATED;
}

/* The node as stored: registered, awaiting activation; the same node again
 * (same TPM, same AK: an agent restart) keeps what it was (below). Audited
 * and stored; 0 or a negative errno. */
static int registration_record(struct engine *e, const char *node, struct registration *rg,
                               const struct node_record *old) {
    struct node_record *n = rg->n;
    char akhex[2 * 66 + 1];
    json_t *d;
    int r;

    snprintf(n->name, sizeof(n->name), "%s", node);
    memcpy(n->ak_name, rg->ak_name.name, rg->ak_name.size);
    n->ak_name_len = rg->ak_name.size;
    if (rg->cert) {
        memcpy(n->ek_cert, rg->cert, rg->cert_len);
        n->ek_cert_len = rg->cert_len;
    }
    n->activated = false;
    n->state = NODE_REGISTERED;
    snprintf(n->reason, sizeof(n->reason), "awaiting activation");
    n->registered_ms = engine_now_ms();
    if (old) {
        /* "Not attested since registering" must hold even within one ms. */
        if (n->registered_ms <= old->last_attested_ms) {
            n->registered_ms = old->last_attested_ms + 1;
        }
        /* The same node keeps its replay state, its verdict (an untrusted
         * node stays untrusted until an operator deletes it), its last
         * attestation and its waiting measurements. Registering takes only
         * the agent certificate and public data, so it must change no
         * verdict: until the node attests again it reads stale and no pod
         * of it trusted. */
        keep_across_registration(n, old);
    }
    d = json_pack("{s:s,s:b,s:s}", "ak_name", hex_encode(n->ak_name, n->ak_name_len, akhex),
                  "ek_cert_valid", rg->cert_ok, "ek_cert", rg->why);
    /* Registering again with the same keys is only an agent restart: at
     * most a few records a minute, however often it comes. */
    /* The node first: a registration that lost the node to another
     * writer (-ESTALE) leaves no record. */
    r = store_node_put(e->store, n);
    if (r == 0) {
        r = old ? engine_audit_noisy(e, "registration", node, NULL, d)
                : engine_audit(e, "registration", node, NULL, d);
    }
    json_decref(d);
    return r;
}

enum engine_status engine_registration(struct engine *e, const char *node, const json_t *req,
                                       json_t **resp) {
    _cleanup_free_ struct node_record *old = calloc(1, sizeof(*old));
    struct registration rg = {.n = calloc(1, sizeof(*rg.n))};
    enum engine_status status = ENGINE_FAILED;
    bool had = false;

    if (!rg.n || !old) {
        free(rg.n);
        return engine_error(resp, ENGINE_FAILED, "internal", "out of memory");
    }
    if (engine_draining(e)) {
        free(rg.n);
        return engine_error(resp, ENGINE_DRAINING, "draining",
                            "this verifier is stopping and takes no new registration; ask "
                            "another one");
    }
    status = registration_parse(e, node, req, &rg, resp);
    if (status == ENGINE_OK) {
        struct engine_write w;
        engine_node_lock(e, node);
        engine_write_lock(e);
        status = registration_identity(e, node, &rg, old, &had, resp);
        if (status == ENGINE_OK) {
            status = registration_credential(&rg, resp);
        }
        if (status == ENGINE_CREATED) {
            int r = engine_write_begin(e, &w);
            if (r == 0) {
                r = registration_record(e, node, &rg, had ? old : NULL);
            }
            r = engine_write_end(e, &w, r);
            if (r < 0) {
                json_decref(*resp);
                status = r == -ESTALE ? engine_error(resp, ENGINE_CONFLICT, "node changed",
                                                     "another verifier registered or changed "
                                                     "the node meanwhile: register again")
                                      : engine_error(resp, ENGINE_FAILED, "store",
                                                     "cannot record the registration");
            }
        }
        engine_write_unlock(e);
        if (status == ENGINE_CREATED) {
            engine_node_drop_key(e, node); /* parsed again from what is stored now */
        }
        engine_node_unlock(e, node);
    }
    if (status == ENGINE_CREATED) {
        log_msg(rg.cert_ok ? LOG_LEVEL_INFO : LOG_LEVEL_WARN,
                "node %s registered (EK certificate: %s)%s", node, rg.cert_ok ? "valid" : rg.why,
                rg.cert_ok ? "" : ": its TPM is bound to the name unverified");
    }
    OPENSSL_cleanse(rg.n->secret, sizeof(rg.n->secret));
    free(rg.n);
    free(rg.cert);
    return status;
}

/* The activation, audited and stored as one writer of a batch: 0 once
 * durable, or a negative errno. */
static int activation_record(struct engine *e, const char *node, struct node_record *n) {
    struct engine_write w;
    int r = engine_write_begin(e, &w);

    if (r == 0) {
        r = store_node_put(e->store, n); /* first: a lost node (-ESTALE) leaves no record */
    }
    if (r == 0) {
        r = engine_audit(e, "activation", node, NULL, NULL);
    }
    return engine_write_end(e, &w, r);
}

enum engine_status engine_activation(struct engine *e, const char *node, const json_t *req,
                                     json_t **resp) {
    _cleanup_free_ struct node_record *n = calloc(1, sizeof(*n));
    uint8_t want[TPM_ACTIVATION_PROOF_SIZE];
    _cleanup_free_ uint8_t *proof = NULL;
    size_t plen;
    char err[256], other[STORE_NAME_MAX + 1];
    enum engine_status status;
    int r;

    if (!n) {
        return engine_error(resp, ENGINE_FAILED, "internal", "out of memory");
    }
    if (json_get_base64(req, "proof", 64, &proof, &plen, err, sizeof(err)) < 0) {
        return engine_error(resp, ENGINE_MALFORMED, "malformed activation", err);
    }
    engine_node_lock(e, node);
    engine_write_lock(e);
    r = store_node_get(e->store, node, n);
    if (r < 0) {
        status = engine_node_unreadable(resp, r, "register first");
        goto out;
    }
    if (!n->has_secret) {
        status = engine_error(resp, ENGINE_CONFLICT, "not awaiting activation", "register again");
        goto out;
    }
    if (tpm_activation_proof(n->secret, sizeof(n->secret), n->name, n->ak_name, n->ak_name_len,
                             want) < 0) {
        status = engine_error(resp, ENGINE_FAILED, "internal", "out of memory");
        goto out;
    }
    if (plen != sizeof(want) || CRYPTO_memcmp(proof, want, sizeof(want)) != 0) {
        json_t *d = json_pack("{s:s}", "reason", "activation proof does not match");
        engine_audit_noisy(e, "activation-refused", node, NULL, d);
        json_decref(d);
        status = engine_error(resp, ENGINE_REFUSED, "activation refused",
                              "the proof does not match: the AK is not in the TPM of this EK");
        goto out;
    }
    /* The EK binds to the name only now that its TPM has shown it holds
     * it: a registration that never activates (anyone with an agent
     * certificate can post another node's public EK) reserves nothing. */
    if (n->ek_fp[0] && store_node_with_ek_fp(e->store, n->ek_fp, node, other) == 0) {
        json_t *d = json_pack("{s:s,s:s}", "reason", "EK bound to another node name", "other_node",
                              other);
        engine_audit_noisy(e, "activation-refused", node, NULL, d);
        json_decref(d);
        status = engine_error(resp, ENGINE_CONFLICT, "identity conflict",
                              "this TPM (EK) is active as another node; an operator must delete "
                              "that node first");
        goto out;
    }
    n->activated = true;
    n->has_secret = false;
    memset(n->secret, 0, sizeof(n->secret));
    /* Activation proves the AK, not the node's integrity: a verdict
     * (trusted or untrusted) stays until the next evidence decides. */
    if (n->state == NODE_REGISTERED) {
        n->state = NODE_ACTIVE;
    }
    if (n->state != NODE_UNTRUSTED) {
        snprintf(n->reason, sizeof(n->reason), "activated, not attested since registration");
    }
    r = activation_record(e, node, n);
    if (r < 0) {
        status = r == -ESTALE ? engine_error(resp, ENGINE_CONFLICT, "node changed",
                                             "another verifier changed the node meanwhile: "
                                             "register again")
                              : engine_error(resp, ENGINE_FAILED, "store",
                                             "cannot record the activation");
        goto out;
    }
    *resp = json_pack("{s:s,s:I}", "state", node_state_name(n->state), "ima_next_index",
                      (json_int_t)n->ima_index);
    status = ENGINE_OK;
out:
    engine_write_unlock(e);
    engine_node_unlock(e, node);
    return status;
}

enum engine_status engine_challenge(struct engine *e, const char *node, json_t **resp) {
    _cleanup_free_ struct node_record *n = calloc(1, sizeof(*n));
    uint8_t nonce[NONCE_LEN];
    struct node_entry *ent;
    char sel[128], b64[64];
    enum engine_status status;
    int r;

    if (!n) {
        return engine_error(resp, ENGINE_FAILED, "internal", "out of memory");
    }
    engine_node_lock(e, node);
    /* Under the node's lock: see struct engine's `draining`. */
    if (engine_draining(e)) {
        status = engine_error(resp, ENGINE_DRAINING, "draining",
                              "this verifier is stopping and issues no new challenge; ask "
                              "another one");
        goto out;
    }
    pthread_mutex_lock(&e->lock);
    r = store_node_get(e->store, node, n);
    pthread_mutex_unlock(&e->lock);
    if (r < 0) {
        status = engine_node_unreadable(resp, r, "register first");
        goto out;
    }
    if (!n->activated) {
        status = engine_error(resp, ENGINE_REFUSED, "not activated", "activate first");
        goto out;
    }
    /* A registered node only: the table is bounded by the store's nodes. */
    ent = engine_node_entry(e, node, true);
    r = ent ? engine_nonce_issue(e, ent, engine_now_ms(), nonce) : -ENOMEM;
    if (r == -EAGAIN) {
        status = engine_error(resp, ENGINE_TOO_SOON, "too early",
                              "challenges come at most every min_challenge_ms");
        goto out;
    }
    if (r < 0) {
        status = engine_error(resp, ENGINE_FAILED, "internal",
                              r == -ENOMEM ? "out of memory" : "no randomness");
        goto out;
    }
    base64_encode(nonce, NONCE_LEN, b64);
    OPENSSL_cleanse(nonce, sizeof(nonce));
    *resp = json_pack("{s:s,s:I,s:s,s:I}", "nonce", b64, "expires_in_ms",
                      (json_int_t)e->cfg.nonce_ttl_ms, "pcr_selection",
                      tpm_pcr_selection_format(&e->cfg.selection, sel, sizeof(sel)),
                      "ima_next_index", (json_int_t)n->ima_index);
    status = ENGINE_OK;
out:
    engine_node_unlock(e, node);
    return status;
}
