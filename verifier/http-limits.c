/* SPDX-License-Identifier: Apache-2.0 */
#include "http-limits.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

int http_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct http_addr *ret) {
    if (!sa) {
        return -EINVAL;
    }
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        memset(ret->b, 0, 10);
        ret->b[10] = 0xff;
        ret->b[11] = 0xff;
        memcpy(ret->b + 12, &in->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        memcpy(ret->b, &in6->sin6_addr, 16);
        return 0;
    }
    return -EAFNOSUPPORT;
}

void http_addr_format(const struct http_addr *a, char *out, size_t outsz) {
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char text[INET6_ADDRSTRLEN];
    bool v4 = memcmp(a->b, v4mapped, sizeof(v4mapped)) == 0;

    if (!inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? a->b + 12 : a->b, text, sizeof(text))) {
        snprintf(text, sizeof(text), "?");
    }
    snprintf(out, outsz, "%s", text);
}

/* Open addressing with linear probing; count 0 marks a free slot. Deletion
 * shifts the following entries back, so there are no tombstones and a probe
 * stops at the first free slot. The table holds at least twice the cap, so
 * probes stay short. */
struct slot {
    struct http_addr addr;
    unsigned count;
};

struct http_unauth {
    unsigned max, per_address, total;
    size_t mask; /* slots - 1, slots a power of 2 */
    uint64_t seed;
    struct slot *slots;
};

/* FNV-1a, keyed with a seed the peer cannot guess, so that it cannot
 * choose addresses or names that all land in one run of slots. */
static uint64_t hash_bytes(uint64_t seed, const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull ^ seed;

    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

/* A seed from getrandom(); without one the tables still work. */
static uint64_t random_seed(void) {
    uint64_t seed;

    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
        seed = 0;
    }
    return seed;
}

static size_t hash(const struct http_unauth *u, const struct http_addr *a) {
    return (size_t)hash_bytes(u->seed, a->b, sizeof(a->b)) & u->mask;
}

int http_unauth_new(unsigned max, unsigned per_address, struct http_unauth **ret) {
    struct http_unauth *u;
    size_t slots = 16;

    if (max == 0 || per_address == 0 || max > (1u << 24)) {
        return -EINVAL;
    }
    while (slots < 2 * (size_t)max) {
        slots *= 2;
    }
    u = calloc(1, sizeof(*u));
    if (!u) {
        return -ENOMEM;
    }
    u->slots = calloc(slots, sizeof(*u->slots));
    if (!u->slots) {
        free(u);
        return -ENOMEM;
    }
    u->max = max;
    u->per_address = per_address;
    u->mask = slots - 1;
    u->seed = random_seed();
    *ret = u;
    return 0;
}

void http_unauth_free(struct http_unauth *u) {
    if (u) {
        free(u->slots);
        free(u);
    }
}

/* The slot holding a, or the free slot where it would go; NULL when the
 * table is full and a is not in it. */
static struct slot *find(const struct http_unauth *u, const struct http_addr *a) {
    size_t i = hash(u, a);

    for (size_t n = 0; n <= u->mask; n++, i = (i + 1) & u->mask) {
        struct slot *s = &u->slots[i];
        if (s->count == 0 || memcmp(&s->addr, a, sizeof(*a)) == 0) {
            return s;
        }
    }
    return NULL;
}

enum http_unauth_verdict http_unauth_admit(const struct http_unauth *u, const struct http_addr *a) {
    if (u->total >= u->max) {
        return HTTP_UNAUTH_FULL;
    }
    if (http_unauth_count_addr(u, a) >= u->per_address) {
        return HTTP_UNAUTH_ADDRESS_FULL;
    }
    return HTTP_UNAUTH_OK;
}

int http_unauth_add(struct http_unauth *u, const struct http_addr *a) {
    struct slot *s = find(u, a);

    if (!s) {
        return -ENOSPC;
    }
    if (s->count == 0) {
        s->addr = *a;
    }
    s->count++;
    u->total++;
    return 0;
}

void http_unauth_del(struct http_unauth *u, const struct http_addr *a) {
    struct slot *s = find(u, a);
    size_t hole, i;

    assert(s && s->count > 0);
    if (!s || s->count == 0) {
        return;
    }
    u->total--;
    if (--s->count > 0) {
        return;
    }
    /* Backward shift: move up every later entry of the run whose home slot
     * is not between the hole and itself (cyclically). */
    hole = (size_t)(s - u->slots);
    for (i = (hole + 1) & u->mask; u->slots[i].count != 0; i = (i + 1) & u->mask) {
        size_t home = hash(u, &u->slots[i].addr);
        bool stays = hole <= i ? (hole < home && home <= i) : (hole < home || home <= i);
        if (!stays) {
            u->slots[hole] = u->slots[i];
            u->slots[i].count = 0;
            hole = i;
        }
    }
}

unsigned http_unauth_count(const struct http_unauth *u) {
    return u->total;
}

unsigned http_unauth_count_addr(const struct http_unauth *u, const struct http_addr *a) {
    const struct slot *s = find(u, a);
    return s ? s->count : 0;
}

/* Chained: an identity's entry is allocated when its first connection is
 * counted and freed with its last, so the table holds only identities with
 * connections (at most max_clients: the connection limit). */
struct client_entry {
    struct client_entry *next;
    unsigned count;
    char id[];
};

struct http_clients {
    unsigned max_clients, per_client, size;
    size_t mask; /* buckets - 1, buckets a power of 2 */
    uint64_t seed;
    struct client_entry **buckets;
};

int http_clients_new(unsigned max_clients, unsigned per_client, struct http_clients **ret) {
    struct http_clients *t;
    size_t buckets = 16;

    if (max_clients == 0 || per_client == 0 || max_clients > (1u << 24)) {
        return -EINVAL;
    }
    while (buckets < (size_t)max_clients / 2) {
        buckets *= 2;
    }
    t = calloc(1, sizeof(*t));
    if (!t) {
        return -ENOMEM;
    }
    t->buckets = calloc(buckets, sizeof(*t->buckets));
    if (!t->buckets) {
        free(t);
        return -ENOMEM;
    }
    t->max_clients = max_clients;
    t->per_client = per_client;
    t->mask = buckets - 1;
    t->seed = random_seed();
    *ret = t;
    return 0;
}

void http_clients_free(struct http_clients *t) {
    if (!t) {
        return;
    }
    for (size_t i = 0; i <= t->mask; i++) {
        struct client_entry *e = t->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(t->buckets);
    free(t);
}

/* Where the entry of id is linked (or would be): the pointer to it. */
static struct client_entry **client_slot(const struct http_clients *t, const char *id) {
    struct client_entry **p = &t->buckets[hash_bytes(t->seed, id, strlen(id)) & t->mask];

    while (*p && strcmp((*p)->id, id) != 0) {
        p = &(*p)->next;
    }
    return p;
}

int http_clients_add(struct http_clients *t, const char *id) {
    size_t len = strnlen(id, HTTP_CLIENT_ID_MAX);
    struct client_entry **p, *e;

    if (len == HTTP_CLIENT_ID_MAX) {
        return -EINVAL;
    }
    p = client_slot(t, id);
    if (*p) {
        if ((*p)->count >= t->per_client) {
            return -EBUSY;
        }
        (*p)->count++;
        return 0;
    }
    if (t->size >= t->max_clients) {
        return -ENOSPC;
    }
    e = malloc(sizeof(*e) + len + 1);
    if (!e) {
        return -ENOMEM;
    }
    memcpy(e->id, id, len + 1);
    e->count = 1;
    e->next = NULL;
    *p = e;
    t->size++;
    return 0;
}

void http_clients_del(struct http_clients *t, const char *id) {
    struct client_entry **p = client_slot(t, id), *e = *p;

    assert(e && e->count > 0);
    if (!e) {
        return;
    }
    if (--e->count == 0) {
        *p = e->next;
        free(e);
        t->size--;
    }
}

unsigned http_clients_count(const struct http_clients *t, const char *id) {
    const struct client_entry *e = *client_slot(t, id);
    return e ? e->count : 0;
}

unsigned http_clients_size(const struct http_clients *t) {
    return t->size;
}

void http_conn_limits(unsigned wanted, uint64_t open_files, struct http_conn_limits *ret) {
    uint64_t room = open_files > HTTP_FDS_RESERVED + HTTP_CONNECTIONS_MIN
                            ? open_files - HTTP_FDS_RESERVED
                            : HTTP_CONNECTIONS_MIN;
    uint64_t max = wanted ? wanted : HTTP_CONNECTIONS_DEFAULT;

    ret->clamped = max > room;
    if (max > room) {
        max = room;
    }
    if (max > HTTP_CONNECTIONS_MAX) {
        max = HTTP_CONNECTIONS_MAX;
    }
    ret->max = (unsigned)max;
    ret->unauth_max = (unsigned)((uint64_t)ret->max * HTTP_UNAUTH_SHARE_PERCENT / 100);
    if (ret->unauth_max > HTTP_UNAUTH_MAX) {
        ret->unauth_max = HTTP_UNAUTH_MAX;
    }
    if (ret->unauth_max == 0) {
        ret->unauth_max = 1;
    }
    /* A small pool still leaves room for four addresses. */
    ret->unauth_per_address = ret->unauth_max / 4 ? ret->unauth_max / 4 : 1;
    if (ret->unauth_per_address > HTTP_UNAUTH_PER_ADDRESS) {
        ret->unauth_per_address = HTTP_UNAUTH_PER_ADDRESS;
    }
}

void http_budget_init(struct http_budget *b, uint64_t max) {
    b->max = max;
    atomic_init(&b->used, 0);
}

bool http_budget_take(struct http_budget *b, uint64_t n) {
    uint64_t used = atomic_load(&b->used);

    do {
        if (n > b->max || used > b->max - n) {
            return false;
        }
    } while (!atomic_compare_exchange_weak(&b->used, &used, used + n));
    return true;
}

void http_budget_give(struct http_budget *b, uint64_t n) {
    uint64_t before = atomic_fetch_sub(&b->used, n);
    assert(before >= n);
    (void)before;
}
