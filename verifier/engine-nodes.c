/* SPDX-License-Identifier: Apache-2.0 */
/* The per-node state the engine keeps in memory: a stripe lock that
 * serialises the rounds of one node, its outstanding nonces and its AK as
 * an OpenSSL key, parsed once (engine-internal.h, struct node_table). */
#include "engine-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "pcr.h"

#define NODE_BUCKETS_MIN 1024
/* A bucket holds the entries of one stripe only (the bucket count doubles
 * from NODE_BUCKETS_MIN): engine_nodes_live_nonces() relies on it. */
_Static_assert(NODE_BUCKETS_MIN % ENGINE_NODE_STRIPES == 0, "buckets per stripe");

static uint64_t name_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;

    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

int engine_nodes_init(struct node_table *t) {
    memset(t, 0, sizeof(*t));
    t->buckets = calloc(NODE_BUCKETS_MIN, sizeof(*t->buckets));
    if (!t->buckets) {
        return -ENOMEM;
    }
    t->nbuckets = NODE_BUCKETS_MIN;
    pthread_mutex_init(&t->lock, NULL);
    for (size_t i = 0; i < ENGINE_NODE_STRIPES; i++) {
        pthread_mutex_init(&t->stripes[i], NULL);
    }
    return 0;
}

static void entry_free(struct node_entry *ent) {
    if (!ent) {
        return;
    }
    if (ent->ak) {
        tpm_verify_key_free(ent->ak);
        free(ent->ak);
    }
    OPENSSL_cleanse(ent->nonces, sizeof(ent->nonces));
    free(ent);
}

void engine_nodes_free(struct node_table *t) {
    if (!t->buckets) {
        return;
    }
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct node_entry *ent = t->buckets[i], *next;
        for (; ent; ent = next) {
            next = ent->next;
            entry_free(ent);
        }
    }
    free(t->buckets);
    t->buckets = NULL;
    pthread_mutex_destroy(&t->lock);
    for (size_t i = 0; i < ENGINE_NODE_STRIPES; i++) {
        pthread_mutex_destroy(&t->stripes[i]);
    }
}

void engine_node_lock(struct engine *e, const char *node) {
    pthread_mutex_lock(&e->nodes.stripes[name_hash(node) % ENGINE_NODE_STRIPES]);
}

void engine_node_unlock(struct engine *e, const char *node) {
    pthread_mutex_unlock(&e->nodes.stripes[name_hash(node) % ENGINE_NODE_STRIPES]);
}

/* Twice the buckets once there are more entries than buckets; a failed
 * allocation leaves longer chains, nothing worse. Table lock held. */
static void grow(struct node_table *t) {
    size_t nb = t->nbuckets * 2;
    struct node_entry **b = calloc(nb, sizeof(*b));

    if (!b) {
        return;
    }
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct node_entry *ent = t->buckets[i], *next;
        for (; ent; ent = next) {
            next = ent->next;
            ent->next = b[ent->hash % nb];
            b[ent->hash % nb] = ent;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = nb;
}

struct node_entry *engine_node_entry(struct engine *e, const char *node, bool create) {
    struct node_table *t = &e->nodes;
    uint64_t h = name_hash(node);
    size_t len = strnlen(node, STORE_NAME_MAX + 1);
    struct node_entry *ent;

    if (len > STORE_NAME_MAX) {
        return NULL;
    }
    pthread_mutex_lock(&t->lock);
    for (ent = t->buckets[h % t->nbuckets]; ent; ent = ent->next) {
        if (ent->hash == h && strcmp(ent->name, node) == 0) {
            break;
        }
    }
    if (!ent && create && (ent = calloc(1, sizeof(*ent) + len + 1))) {
        ent->hash = h;
        memcpy(ent->name, node, len + 1);
        if (t->count >= t->nbuckets) {
            grow(t);
        }
        ent->next = t->buckets[h % t->nbuckets];
        t->buckets[h % t->nbuckets] = ent;
        t->count++;
    }
    pthread_mutex_unlock(&t->lock);
    return ent;
}

void engine_node_forget(struct engine *e, const char *node) {
    struct node_table *t = &e->nodes;
    uint64_t h = name_hash(node);
    struct node_entry **at, *ent = NULL;

    pthread_mutex_lock(&t->lock);
    for (at = &t->buckets[h % t->nbuckets]; *at; at = &(*at)->next) {
        if ((*at)->hash == h && strcmp((*at)->name, node) == 0) {
            ent = *at;
            *at = ent->next;
            t->count--;
            break;
        }
    }
    pthread_mutex_unlock(&t->lock);
    entry_free(ent);
}

void engine_node_drop_key(struct engine *e, const char *node) {
    struct node_entry *ent = engine_node_entry(e, node, false);

    if (ent && ent->ak) {
        tpm_verify_key_free(ent->ak);
        free(ent->ak);
        ent->ak = NULL;
    }
}

int engine_node_ak(struct node_entry *ent, const struct node_record *n,
                   const struct tpm_verify_key **ret) {
    unsigned char fp[32];
    unsigned int fplen = sizeof(fp);
    TPM2B_PUBLIC ak;

    if (EVP_Digest(n->ak_pub, n->ak_pub_len, fp, &fplen, EVP_sha256(), NULL) != 1) {
        return -ENOMEM;
    }
    if (ent->ak && memcmp(fp, ent->ak_fp, sizeof(fp)) == 0) {
        *ret = ent->ak;
        return 0;
    }
    if (ent->ak) {
        tpm_verify_key_free(ent->ak);
        free(ent->ak);
        ent->ak = NULL;
    }
    ent->ak = calloc(1, sizeof(*ent->ak));
    if (!ent->ak) {
        return -ENOMEM;
    }
    if (tpm_public_unmarshal(n->ak_pub, n->ak_pub_len, &ak) < 0 ||
        tpm_verify_key_from_public(&ak.publicArea, ent->ak) < 0) {
        free(ent->ak);
        ent->ak = NULL;
        return -EBADMSG;
    }
    memcpy(ent->ak_fp, fp, sizeof(fp));
    *ret = ent->ak;
    return 0;
}

int engine_nonce_issue(struct engine *e, struct node_entry *ent, int64_t now,
                       uint8_t out[NONCE_LEN]) {
    struct node_nonce *slot = NULL, *oldest = NULL;
    int64_t expires;

    for (size_t i = 0; i < NONCES_PER_NODE; i++) {
        struct node_nonce *s = &ent->nonces[i];
        if (s->expires_ms && s->expires_ms <= now) {
            s->expires_ms = 0;
        }
        /* The newest outstanding nonce tells when this node last asked. */
        if (s->expires_ms && e->cfg.min_challenge_ms &&
            s->expires_ms - (int64_t)e->cfg.nonce_ttl_ms + (int64_t)e->cfg.min_challenge_ms > now) {
            return -EAGAIN;
        }
        if (!s->expires_ms) {
            slot = slot ? slot : s;
        } else if (!oldest || s->expires_ms < oldest->expires_ms) {
            oldest = s;
        }
    }
    slot = slot ? slot : oldest; /* all NONCES_PER_NODE outstanding: the oldest goes */
    expires = now + (int64_t)e->cfg.nonce_ttl_ms;
    if (e->shared_nonces ? engine_nonce_make(e, ent->name, expires, slot->nonce) < 0
                         : RAND_bytes(slot->nonce, NONCE_LEN) != 1) {
        slot->expires_ms = 0;
        return -EIO;
    }
    slot->expires_ms = expires;
    memcpy(out, slot->nonce, NONCE_LEN);
    return 0;
}

bool engine_nonce_take(struct node_entry *ent, const uint8_t *nonce, size_t len, int64_t now) {
    if (!ent || len != NONCE_LEN) {
        return false;
    }
    for (size_t i = 0; i < NONCES_PER_NODE; i++) {
        struct node_nonce *s = &ent->nonces[i];
        if (s->expires_ms && CRYPTO_memcmp(s->nonce, nonce, NONCE_LEN) == 0) {
            bool fresh = s->expires_ms > now;
            s->expires_ms = 0;
            return fresh;
        }
    }
    return false;
}

/* Stripe by stripe: its lock, then the table's (the order of
 * engine_node_entry()), then the buckets that hold its entries only. */
uint64_t engine_nodes_live_nonces(struct engine *e, int64_t now) {
    struct node_table *t = &e->nodes;
    uint64_t live = 0;

    for (size_t i = 0; i < ENGINE_NODE_STRIPES; i++) {
        pthread_mutex_lock(&t->stripes[i]);
        pthread_mutex_lock(&t->lock);
        for (size_t b = i; b < t->nbuckets; b += ENGINE_NODE_STRIPES) {
            for (struct node_entry *ent = t->buckets[b]; ent; ent = ent->next) {
                for (size_t k = 0; k < NONCES_PER_NODE; k++) {
                    struct node_nonce *s = &ent->nonces[k];
                    if (s->expires_ms && s->expires_ms <= now) {
                        s->expires_ms = 0;
                    }
                    live += s->expires_ms != 0;
                }
            }
        }
        pthread_mutex_unlock(&t->lock);
        pthread_mutex_unlock(&t->stripes[i]);
    }
    return live;
}
