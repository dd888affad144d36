/* SPDX-License-Identifier: Apache-2.0 */
/* Opens the store SPEC names (store_open_with, the verifier's own path:
 * the spec's checks, the password, TLS, the migration), writes and reads
 * back one node, and prints "store BACKEND ok"; on an error the store's
 * log on stderr and exit 1 (2 for a usage error). For tests/integration/
 * test-store-pg-tls.sh.
 * Usage: store-probe SPEC [PASSWORD_FILE] */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store.h"

int main(int argc, char **argv) {
    struct store *s = NULL;
    struct node_record n = {0}, got;
    int r;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: store-probe SPEC [PASSWORD_FILE]\n");
        return 2;
    }
    r = store_open_with(argv[1], argc == 3 ? argv[2] : NULL, &s);
    if (r < 0) {
        fprintf(stderr, "store-probe: cannot open the store: %s\n", strerror(-r));
        return 1;
    }
    snprintf(n.name, sizeof(n.name), "probe");
    n.ek_pub_len = n.ak_pub_len = n.ak_name_len = 1;
    if (store_node_get(s, "probe", &got) == 0) {
        n.version = got.version;
    }
    r = store_node_put(s, &n);
    if (r == 0) {
        r = store_node_get(s, "probe", &got);
    }
    if (r < 0 || got.version != n.version) {
        fprintf(stderr, "store-probe: cannot write and read a node: %s\n", strerror(-r));
        store_close(s);
        return 1;
    }
    printf("store %s ok\n", store_backend(s));
    store_close(s);
    return 0;
}
