/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: everything the verifier parses from outside. The first
 * byte picks: 0 registration, 1 evidence, 2 activation (request JSON through
 * the engine), 3 a policy file's bytes (9: with match-all excludes
 * allowed), 4 an audit log (also against signed heads, and as a head
 * answer), 5 a pods file. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "engine.h"
#include "http.h"
#include "inventory.h"
#include "json-util.h"
#include "log.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static const char *write_tmp(const char *name, const uint8_t *data, size_t size) {
    static char path[128];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (!f) {
        abort();
    }
    fwrite(data, 1, size, f);
    fclose(f);
    return path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static struct engine *e;
    static struct store *store;
    static struct inventory *inv;
    static EVP_PKEY *key;
    json_t *req = NULL, *resp = NULL;
    char err[256];

    if (!e) {
        struct engine_config cfg;
        setenv("TSS2_LOG", "all+none", 0);
        log_set_stream(fopen("/dev/null", "w"));
        snprintf(dir, sizeof(dir), "/tmp/kima-fuzz-verifier-%d", (int)getpid());
        mkdir(dir, 0700);
        engine_config_default(&cfg);
        cfg.min_challenge_ms = 0;
        if (store_open(":memory:", &store) < 0 || inventory_open_file(NULL, &inv) < 0 ||
            engine_new(&cfg, store, NULL, inv, NULL, &e) < 0) {
            abort();
        }
        key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    }
    if (size < 1) {
        return 0;
    }
    switch (data[0] % 6) {
    case 0:
    case 1:
    case 2:
        if (json_parse_bounded((const char *)data + 1, size - 1, JSON_DEPTH_MAX,
                               HTTP_JSON_VALUES_MAX, &req, err, sizeof(err)) == 0) {
            enum engine_status status =
                    data[0] % 6 == 0   ? engine_registration(e, "node-1", req, &resp)
                    : data[0] % 6 == 1 ? engine_evidence(e, "node-1", req, &resp)
                                       : engine_activation(e, "node-1", req, &resp);
            if (status > ENGINE_FAILED || !resp) {
                abort();
            }
            json_decref(resp);
            json_decref(req);
        }
        break;
    case 3: {
        /* 3 parses with the default options, 9 allows match-all excludes
         * (fuzz-policy is the policy parser's own target). */
        struct policy_load_options lo = {.allow_match_all_excludes = data[0] == 9};
        struct policy *p = NULL;
        struct kbuf warnings = KBUF_INIT(1 << 20);
        if (policy_parse((const char *)data + 1, size - 1, "/p/p.json", &lo, &p, &warnings, err,
                         sizeof(err)) == 0) {
            policy_allows(p, "/usr/bin/x", 10, "sha256:00");
            policy_excludes(p, "/opt/evil/tmp/miner", 19);
            policy_free(p);
        }
        kbuf_free(&warnings);
        break;
    }
    case 4: {
        /* The same bytes as a log, checked alone and against heads before,
         * at and after its end, and as a head answer. */
        struct audit_verify_result res;
        struct audit_head head = {.seq = 1};
        const char *paths[1] = {write_tmp("audit.log", data + 1, size - 1)};
        audit_verify(paths, 1, key, &res);
        memset(head.hash, '0', 64);
        for (uint64_t d = 0; d < 3; d++) {
            struct audit_verify_result hres;
            head.seq = res.last_seq + d > 0 ? res.last_seq + d - 1 : 0;
            if (audit_verify_head(paths, 1, key, &head, &hres) == 0) {
                audit_verify_verdict(&hres);
            }
        }
        if (json_parse_bounded((const char *)data + 1, size - 1, JSON_DEPTH_MAX,
                               HTTP_JSON_VALUES_MAX, &req, err, sizeof(err)) == 0) {
            if (audit_head_from_json(req, &head, err, sizeof(err)) == 0) {
                audit_head_signature_ok(&head, key);
            }
            json_decref(req);
        }
        break;
    }
    case 5: {
        struct inventory *i = NULL;
        struct pod_info info;
        if (inventory_open_file(write_tmp("pods.json", data + 1, size - 1), &i) == 0) {
            if (inventory_lookup_uid(i, "1a2b3c4d-0000-4111-8222-933344445555", "node-1", &info) ==
                0) {
                json_decref(info.labels);
                json_decref(info.images);
            }
            if (inventory_lookup_container(
                        i, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                        "node-1", &info) == 0) {
                json_decref(info.labels);
                json_decref(info.images);
            }
            inventory_free(i);
        }
        break;
    }
    }
    return 0;
}
