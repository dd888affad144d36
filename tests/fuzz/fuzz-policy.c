/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: one golden policy file's bytes through policy_parse(),
 * with the default options and with match-all excludes allowed. What must
 * hold whatever the bytes: a refusal carries a reason and leaves the result
 * and the warnings alone; what loads without the option loads the same with
 * it; a loaded policy answers for any path without crashing. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FILE_NAME "/etc/kima/policies/fuzz.json"

static const char *const probes[] = {
        "/", "/usr/bin/bash", "/tmp/x", "/opt/evil/tmp/miner", "boot_aggregate", "*", "",
};

static void check(bool ok) {
    if (!ok) {
        abort();
    }
}

/* Parse once; on success, exercise the policy and return its digest count
 * (or -1 when refused). */
static long parse(const uint8_t *data, size_t size, bool allow_match_all, enum policy_kind *kind) {
    struct policy_load_options opts = {.allow_match_all_excludes = allow_match_all};
    struct kbuf warnings = KBUF_INIT(1 << 20);
    struct policy *p = NULL;
    char err[512] = "";
    long n;
    int r;

    r = policy_parse((const char *)data, size, FILE_NAME, &opts, &p, &warnings, err, sizeof(err));
    if (r < 0) {
        check(!p && warnings.len == 0 && err[0] != 0 && memchr(err, 0, sizeof(err)));
        kbuf_free(&warnings);
        return -1;
    }
    check(p && strcmp(policy_file(p), FILE_NAME) == 0 && strstr(policy_id(p), "@sha256:"));
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        size_t len = strlen(probes[i]);
        policy_excludes(p, probes[i], len);
        policy_allows(p, probes[i], len,
                      "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        /* A zero digest never passes, excluded path or not. */
        check(!policy_allows(p, probes[i], len, "sha1:0000000000000000000000000000000000000000"));
    }
    *kind = policy_kind(p);
    n = (long)policy_digest_count(p);
    policy_free(p);
    kbuf_free(&warnings);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    enum policy_kind kind = POLICY_POD, kind_allowed = POLICY_POD;
    long n = parse(data, size, false, &kind);
    long allowed = parse(data, size, true, &kind_allowed);

    /* The option only lets more files load. */
    check(n < 0 || (allowed == n && kind_allowed == kind));
    return 0;
}
