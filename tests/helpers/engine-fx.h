/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_TESTS_ENGINE_FX_H
#define KIMA_TESTS_ENGINE_FX_H

#include "test-util.h"

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "audit.h"
#include "engine.h"
#include "ima-gen.h"
#include "inventory.h"
#include "keys.h"
#include "store.h"
#include "swtpm.h"

/* The engine with real TPMs (swtpm) and no HTTP (engine-fx.c). */

#define NODE  "node-1"
#define NODE2 "node-2"
#define UID_A "1a2b3c4d-0000-4111-8222-933344445555"
#define UID_B "1a2b3c4d-0000-4111-8222-bbbbbbbbbbbb"
#define UID_C "1a2b3c4d-0000-4111-8222-cccccccccccc"
#define CID_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define GOOD  "1111111111111111111111111111111111111111111111111111111111111111"
#define EVIL  "6666666666666666666666666666666666666666666666666666666666666666"
#define HOST  "/system.slice/containerd.service"

/* A pods-file item: pod `uid` named `name` in open5gs (app=upf) on `node`. */
#define POD(uid, name, node)                                                              \
    "{\"metadata\":{\"uid\":\"" uid "\",\"namespace\":\"open5gs\",\"name\":\"" name "\"," \
    "\"labels\":{\"app\":\"upf\"}},\"spec\":{\"nodeName\":\"" node "\"}}"

/* One simulated node: its own TPM (swtpm), keys and measurement list. */
struct tnode {
    const char *name;
    struct swtpm sw;
    struct tpm *tpm;
    struct tpm_key ek, ak;
    struct ima_gen g; /* the node's whole list so far */
    uint64_t sent;    /* bytes of it the verifier has */
    uint64_t sent_index;
};

struct fx {
    struct tnode nodes[2];
    char dir[300], db[340], audit[340], key[340], pods[340], policies[340];
    struct store *store;
    struct audit_log *log;
    EVP_PKEY *audit_key;
    struct inventory *inv;
    struct engine *e;
    uint64_t grace_ms;
};

/* cmocka setups: node-1 with its TPM, the upf policy (/usr/bin/upfd and
 * /usr/lib/libc.so.6 GOOD), pod A (upf-0) on node-1. setup_no_grace: a
 * measurement waits for its pod no time past the inventory's sync. */
int setup(void **state);
int setup_no_grace(void **state);
int setup_grace(void **state, uint64_t grace_ms);
int teardown(void **state);

void open_engine(struct fx *f);
void close_engine(struct fx *f);
int node_start(struct tnode *t, const char *name);
void node_stop(struct tnode *t);
/* The second node, started on first use (a second swtpm). */
struct tnode *node2(struct fx *f);

void write_text(const char *path, const char *text);
/* The inventory: pod A (upf) on node-1 plus `extra` ("UID NODE", app=upf,
 * named upf-1, upf-2...); or `items` verbatim. The file's mtime moves
 * forward every write, and the inventory is refreshed. */
void write_pods(struct fx *f, const char *const *extra, size_t n);
void write_items(struct fx *f, const char *items);

json_t *public_b64(const TPM2B_PUBLIC *p);
/* Register `ek_pub` and `ak` as `name`, and on 201 activate with t's TPM
 * (a wrong proof first, refused, when asked). Returns the registration's
 * status. */
enum engine_status register_as(struct fx *f, struct tnode *t, const char *name,
                               const TPM2B_PUBLIC *ek_pub, struct tpm_key *ak,
                               bool wrong_proof_first);
void register_node(struct fx *f, struct tnode *t);
void register_and_activate(struct fx *f);

/* The systemd cgroup of a container of pod `uid` (with dashes). */
const char *pod_cgroup(const char *uid, char *buf, size_t bufsz);
/* Append an entry of template `tmpl` (ima-cgpath, ima-dep-cgn) whose cgroup
 * field is `cg`, extending the TPM's PCR 10 when asked, as the kernel does. */
void measure_t(struct tnode *t, const char *tmpl, const char *path, const char *hex, const char *cg,
               bool extend);
void measure_cg(struct tnode *t, const char *path, const char *hex, const char *cg);
void measure_pod(struct tnode *t, const char *uid, const char *path, const char *hex);
/* An entry of pod A (or of the host) on node-1. */
void measure(struct fx *f, const char *path, const char *hex, bool in_pod);

/* One round of node t: challenge, quote, evidence with the entries not yet
 * sent (tamper may change the request). Returns the status; *ret the
 * answer. */
enum engine_status attest_node(struct fx *f, struct tnode *t, json_t **ret,
                               void (*tamper)(json_t *req, uint8_t *ima, size_t n));
enum engine_status attest(struct fx *f, json_t **ret,
                          void (*tamper)(json_t *req, uint8_t *ima, size_t n));
void tamper_signature(json_t *req, uint8_t *ima, size_t n);

/* upf-0's state; a pod's state and node by name ("absent": no record). */
const char *pod_state(struct fx *f);
const char *pod_of(struct fx *f, const char *name, char *node, size_t nodesz);
json_t *node_json(struct fx *f, const char *name);
const char *verdict(json_t *resp);
/* Does the audit log hold `needle`? */
bool audited(struct fx *f, const char *needle);

#endif
