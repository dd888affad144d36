/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "http-limits.h"

static struct http_addr v4(uint32_t host_order) {
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(host_order)};
    struct http_addr a;
    assert_int_equal(http_addr_from_sockaddr((struct sockaddr *)&in, sizeof(in), &a), 0);
    return a;
}

static void test_addr(void **state) {
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    struct sockaddr sa = {.sa_family = AF_UNIX};
    struct http_addr a = v4(0x7f000002);
    char text[64];
    (void)state;

    http_addr_format(&a, text, sizeof(text));
    assert_string_equal(text, "127.0.0.2");
    inet_pton(AF_INET6, "2001:db8::1", &in6.sin6_addr);
    assert_int_equal(http_addr_from_sockaddr((struct sockaddr *)&in6, sizeof(in6), &a), 0);
    http_addr_format(&a, text, sizeof(text));
    assert_string_equal(text, "2001:db8::1");
    assert_int_equal(http_addr_from_sockaddr(&sa, sizeof(sa), &a), -EAFNOSUPPORT);
    /* A short length is not read past. */
    assert_int_equal(http_addr_from_sockaddr((struct sockaddr *)&in6, 8, &a), -EAFNOSUPPORT);
}

static void test_caps(void **state) {
    struct http_unauth *u = NULL;
    struct http_addr a = v4(0x7f000002), b = v4(0x7f000003), c = v4(0x7f000004);
    (void)state;

    assert_int_equal(http_unauth_new(0, 1, &u), -EINVAL);
    assert_int_equal(http_unauth_new(5, 2, &u), 0);
    /* One address gets its share, no more; the others still get in. */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(http_unauth_admit(u, &a), HTTP_UNAUTH_OK);
        assert_int_equal(http_unauth_add(u, &a), 0);
    }
    assert_int_equal(http_unauth_admit(u, &a), HTTP_UNAUTH_ADDRESS_FULL);
    assert_int_equal(http_unauth_admit(u, &b), HTTP_UNAUTH_OK);
    assert_int_equal(http_unauth_add(u, &b), 0);
    assert_int_equal(http_unauth_add(u, &b), 0);
    assert_int_equal(http_unauth_add(u, &c), 0);
    /* Five in all: full for everyone, also an address with none. */
    assert_int_equal(http_unauth_count(u), 5);
    assert_int_equal(http_unauth_admit(u, &c), HTTP_UNAUTH_FULL);
    assert_int_equal(http_unauth_admit(u, &(struct http_addr){{0}}), HTTP_UNAUTH_FULL);
    /* One of a's authenticates: a may open one again. */
    http_unauth_del(u, &a);
    assert_int_equal(http_unauth_count_addr(u, &a), 1);
    assert_int_equal(http_unauth_admit(u, &a), HTTP_UNAUTH_OK);
    http_unauth_del(u, &a);
    http_unauth_del(u, &b);
    http_unauth_del(u, &b);
    http_unauth_del(u, &c);
    assert_int_equal(http_unauth_count(u), 0);
    assert_int_equal(http_unauth_count_addr(u, &b), 0);
    http_unauth_free(u);
}

/* Many addresses in a small table, added and removed in a mixed order,
 * against a plain array: deletion must keep every other address findable. */
static void test_table_model(void **state) {
    enum { MAX = 40, ADDRS = 64 };
    struct http_unauth *u = NULL;
    unsigned model[ADDRS] = {0}, total = 0;
    unsigned rnd = 12345;
    (void)state;

    assert_int_equal(http_unauth_new(MAX, MAX, &u), 0);
    for (int step = 0; step < 20000; step++) {
        unsigned k;
        struct http_addr a;

        rnd = rnd * 1103515245u + 12345u;
        k = (rnd >> 8) % ADDRS;
        a = v4(0x0a000000u + k * 977u);
        if (((rnd >> 20) & 1) && total < MAX) {
            assert_int_equal(http_unauth_add(u, &a), 0);
            model[k]++;
            total++;
        } else if (model[k] > 0) {
            http_unauth_del(u, &a);
            model[k]--;
            total--;
        }
        if (step % 97 == 0) {
            for (unsigned j = 0; j < ADDRS; j++) {
                struct http_addr b = v4(0x0a000000u + j * 977u);
                assert_int_equal(http_unauth_count_addr(u, &b), model[j]);
            }
        }
        assert_int_equal(http_unauth_count(u), total);
    }
    http_unauth_free(u);
}

/* Admissions that raced past the cap fill the table at worst; then add says
 * so instead of looping or writing past it. */
static void test_table_full(void **state) {
    struct http_unauth *u = NULL;
    unsigned n = 0;
    (void)state;

    assert_int_equal(http_unauth_new(4, 1, &u), 0);
    for (;;) {
        struct http_addr a = v4(0x0b000000u + n);
        int r = http_unauth_add(u, &a);
        if (r < 0) {
            assert_int_equal(r, -ENOSPC);
            break;
        }
        n++;
        assert_true(n <= 64);
    }
    assert_int_equal(n, 16);
    /* Still usable: one goes, another comes. */
    {
        struct http_addr first = v4(0x0b000000u), other = v4(0x0b000000u + 100);
        http_unauth_del(u, &first);
        assert_int_equal(http_unauth_add(u, &other), 0);
        assert_int_equal(http_unauth_count_addr(u, &other), 1);
        assert_int_equal(http_unauth_count_addr(u, &first), 0);
    }
    http_unauth_free(u);
}

/* Authenticated connections by certificate: one identity gets its share
 * from whatever addresses, others are not touched, and a closed connection
 * gives its place back. */
static void test_clients(void **state) {
    struct http_clients *t = NULL;
    char longid[HTTP_CLIENT_ID_MAX + 1];
    (void)state;

    assert_int_equal(http_clients_new(0, 1, &t), -EINVAL);
    assert_int_equal(http_clients_new(4, 0, &t), -EINVAL);
    assert_int_equal(http_clients_new(4, 3, &t), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(http_clients_add(t, "agent:node-2"), 0);
    }
    assert_int_equal(http_clients_add(t, "agent:node-2"), -EBUSY);
    assert_int_equal(http_clients_count(t, "agent:node-2"), 3);
    /* Another node, and an operator with the node's name, are other clients. */
    assert_int_equal(http_clients_add(t, "agent:node-1"), 0);
    assert_int_equal(http_clients_add(t, "operator:node-2"), 0);
    assert_int_equal(http_clients_count(t, "operator:node-2"), 1);
    assert_int_equal(http_clients_size(t), 3);
    /* One of node-2's closes: it may open one again, and only one. */
    http_clients_del(t, "agent:node-2");
    assert_int_equal(http_clients_add(t, "agent:node-2"), 0);
    assert_int_equal(http_clients_add(t, "agent:node-2"), -EBUSY);
    /* The last connection of an identity takes its entry with it. */
    http_clients_del(t, "agent:node-1");
    assert_int_equal(http_clients_count(t, "agent:node-1"), 0);
    assert_int_equal(http_clients_size(t), 2);
    /* At most max_clients identities (the connection limit). */
    assert_int_equal(http_clients_add(t, "agent:node-3"), 0);
    assert_int_equal(http_clients_add(t, "agent:node-4"), 0);
    assert_int_equal(http_clients_add(t, "agent:node-5"), -ENOSPC);
    assert_int_equal(http_clients_count(t, "agent:node-5"), 0);
    memset(longid, 'a', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = 0;
    assert_int_equal(http_clients_add(t, longid), -EINVAL);
    longid[HTTP_CLIENT_ID_MAX - 1] = 0; /* the longest that fits */
    http_clients_del(t, "agent:node-4");
    assert_int_equal(http_clients_add(t, longid), 0);
    assert_int_equal(http_clients_count(t, longid), 1);
    http_clients_free(t); /* with entries left: freed too (ASan) */
    http_clients_free(NULL);
}

/* Many identities added and removed in a mixed order, against an array. */
static void test_clients_model(void **state) {
    enum { IDS = 200, PER = 5 };
    struct http_clients *t = NULL;
    unsigned model[IDS] = {0}, rnd = 777, size = 0;
    (void)state;

    assert_int_equal(http_clients_new(IDS, PER, &t), 0);
    for (int step = 0; step < 20000; step++) {
        char id[32];
        unsigned k;

        rnd = rnd * 1103515245u + 12345u;
        k = (rnd >> 8) % IDS;
        snprintf(id, sizeof(id), "agent:node-%u", k);
        if ((rnd >> 20) & 1) {
            int r = http_clients_add(t, id);
            assert_int_equal(r, model[k] < PER ? 0 : -EBUSY);
            if (r == 0) {
                size += model[k]++ == 0;
            }
        } else if (model[k] > 0) {
            http_clients_del(t, id);
            size -= --model[k] == 0;
        }
        if (step % 101 == 0) {
            for (unsigned j = 0; j < IDS; j++) {
                snprintf(id, sizeof(id), "agent:node-%u", j);
                assert_int_equal(http_clients_count(t, id), model[j]);
            }
        }
        assert_int_equal(http_clients_size(t), size);
    }
    http_clients_free(t);
}

static void test_conn_limits(void **state) {
    struct http_conn_limits l;
    (void)state;

    /* The default holds 10,000 agents with the whole unauthenticated pool
     * taken. */
    http_conn_limits(0, 20000, &l);
    assert_int_equal(l.max, HTTP_CONNECTIONS_DEFAULT);
    assert_int_equal(l.unauth_max, HTTP_UNAUTH_MAX);
    assert_true(l.max - l.unauth_max >= 10000);
    assert_int_equal(l.unauth_per_address, HTTP_UNAUTH_PER_ADDRESS);
    assert_false(l.clamped);
    http_conn_limits(0, HTTP_CONNECTIONS_DEFAULT + HTTP_FDS_RESERVED, &l);
    assert_int_equal(l.max, HTTP_CONNECTIONS_DEFAULT);
    assert_false(l.clamped);
    /* A default soft limit of 1024 leaves room for 960: the default does
     * not fit, which is said. */
    http_conn_limits(0, 1024, &l);
    assert_int_equal(l.max, 1024 - HTTP_FDS_RESERVED);
    assert_int_equal(l.unauth_max, (1024 - HTTP_FDS_RESERVED) / 2);
    assert_true(l.clamped);
    /* The unauthenticated pool stops at its cap however many are allowed. */
    http_conn_limits(100000, UINT64_MAX, &l);
    assert_int_equal(l.max, 100000);
    assert_int_equal(l.unauth_max, HTTP_UNAUTH_MAX);
    assert_false(l.clamped);
    http_conn_limits(5000, 1024, &l);
    assert_int_equal(l.max, 1024 - HTTP_FDS_RESERVED);
    assert_true(l.clamped);
    /* A small limit: one address gets a quarter of the unauthenticated pool. */
    http_conn_limits(100, 20000, &l);
    assert_int_equal(l.max, 100);
    assert_int_equal(l.unauth_max, 50);
    assert_int_equal(l.unauth_per_address, 12);
    http_conn_limits(0, 10, &l);
    assert_int_equal(l.max, HTTP_CONNECTIONS_MIN);
    assert_true(l.unauth_per_address >= 1);
    http_conn_limits(0, UINT64_MAX, &l);
    assert_int_equal(l.max, HTTP_CONNECTIONS_DEFAULT);
}

static void test_budget(void **state) {
    struct http_budget b;
    (void)state;

    http_budget_init(&b, 100);
    assert_true(http_budget_take(&b, 60));
    assert_false(http_budget_take(&b, 41));
    assert_true(http_budget_take(&b, 40));
    assert_false(http_budget_take(&b, 1));
    http_budget_give(&b, 60);
    assert_true(http_budget_take(&b, 60));
    assert_false(http_budget_take(&b, UINT64_MAX));
    http_budget_give(&b, 100);
    assert_int_equal(atomic_load(&b.used), 0);
    assert_true(http_budget_take(&b, 0));
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_addr),        cmocka_unit_test(test_caps),
            cmocka_unit_test(test_table_model), cmocka_unit_test(test_table_full),
            cmocka_unit_test(test_conn_limits), cmocka_unit_test(test_budget),
            cmocka_unit_test(test_clients),     cmocka_unit_test(test_clients_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
