/* SPDX-License-Identifier: Apache-2.0 */
/* Judging evidence: the quote, the incremental IMA replay against it, and
 * every newly covered measurement against its pod's or the node's policy. */
#include "engine-internal.h"
#include "judge.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "base64.h"
#include "cgroup.h"
#include "hex.h"
#include "json-util.h"
#include "log.h"
#include "parse.h"
#include "pubkey.h"
#include "quote-verify.h"
#include "replay.h"
#include "verify.h"

#define IMA_PCR 10

/* Take a nonce: it must have been issued to this node and not expired; it is
 * gone afterwards either way. */
static bool take_nonce(struct engine *e, const char *node, const uint8_t *nonce, size_t len) {
    int64_t now = engine_now_ms();

    for (size_t i = 0; i < NONCE_SLOTS; i++) {
        struct nonce_slot *s = &e->nonces[i];
        if (s->node[0] && len == NONCE_LEN && CRYPTO_memcmp(s->nonce, nonce, NONCE_LEN) == 0 &&
            strcmp(s->node, node) == 0) {
            bool fresh = s->expires_ms > now;
            s->node[0] = 0;
            return fresh;
        }
    }
    return false;
}

/* The PCR values the agent reports ("pcrs": {"sha256": {"10": "<hex>"}}):
 * any of PCRs 0-23 in up to four banks, not only PCR 10 and not only the
 * selection. Whether they are the quoted ones is the quote check's to say
 * (the pcrDigest over the selection); the replay takes PCR 10 from them. */
static int read_pcrs(const json_t *req, const TPML_PCR_SELECTION *sel, struct tpm_pcr_values *vals,
                     char *err, size_t errsz) {
    json_t *pcrs = json_object_get(req, "pcrs"), *bank;
    const char *bname;

    memset(vals, 0, sizeof(*vals));
    if (!json_is_object(pcrs) || json_object_size(pcrs) > 4) {
        snprintf(err, errsz, "\"pcrs\" is not an object of at most 4 banks");
        return -EBADMSG;
    }
    json_object_foreach(pcrs, bname, bank) {
        enum ima_hash_alg alg;
        const char *idx;
        json_t *val;
        if (ima_hash_from_name(bname, strlen(bname), &alg) < 0 || !json_is_object(bank) ||
            json_object_size(bank) > TPM_PCR_COUNT) {
            snprintf(err, errsz, "\"pcrs.%.16s\" is not a bank of PCR values", bname);
            return -EBADMSG;
        }
        json_object_foreach(bank, idx, val) {
            uint8_t d[64];
            uint64_t i;
            if (parse_u64(idx, &i) < 0 || i >= TPM_PCR_COUNT || !json_is_string(val) ||
                json_string_length(val) != 2 * ima_hash_size(alg) ||
                hex_decode(json_string_value(val), json_string_length(val), d, sizeof(d)) < 0 ||
                tpm_pcr_values_set(vals, ima_hash_tpm_alg(alg), (unsigned)i, d,
                                   ima_hash_size(alg)) < 0) {
                snprintf(err, errsz, "\"pcrs.%s.%.8s\" is not a PCR index with a hex value", bname,
                         idx);
                return -EBADMSG;
            }
        }
    }
    (void)sel;
    return 0;
}

static void observe(struct engine *e, int64_t us) {
    static const int64_t edges[] = {1000, 5000, 10000, 50000, 100000, 500000, 1000000};
    size_t b = 0;

    while (b < 7 && us > edges[b]) {
        b++;
    }
    e->m.verify_us_buckets[b]++;
    e->m.verify_us_sum += (uint64_t)us;
    e->m.verify_count++;
}

enum engine_status engine_evidence(struct engine *e, const char *node, const json_t *req,
                                   json_t **resp) {
    _cleanup_free_ struct node_record *n = calloc(1, sizeof(*n));
    _cleanup_free_ uint8_t *nonce = NULL, *attest = NULL, *sig = NULL, *ima = NULL;
    struct tpm_pcr_values *vals = calloc(1, sizeof(*vals));
    struct ima_replay *rp = calloc(1, sizeof(*rp));
    struct judgement j = {0};
    struct tpm_verify_key key = {0};
    struct tpm_quote_result qr;
    struct tpm_clock_state prev;
    size_t nonce_len, alen, slen, ilen = 0;
    uint64_t from = 0, digest_size = 20;
    const char *boot_id = "";
    bool rebooted = false;
    char err[300];
    struct timespec t0, t1;
    enum engine_status status;
    int r;
    TPM2B_PUBLIC ak;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!n || !vals || !rp || judgement_init(&j, e, n) < 0) {
        status = engine_error(resp, ENGINE_FAILED, "internal", "out of memory");
        goto done;
    }
    json_t *q = json_object_get(req, "quote"), *im = json_object_get(req, "ima");
    if ((r = json_get_base64(req, "nonce", 64, &nonce, &nonce_len, err, sizeof(err))) < 0 ||
        (r = json_get_base64(q, "attest", sizeof(TPMS_ATTEST), &attest, &alen, err, sizeof(err))) <
                0 ||
        (r = json_get_base64(q, "signature", sizeof(TPMT_SIGNATURE), &sig, &slen, err,
                             sizeof(err))) < 0 ||
        (r = read_pcrs(req, &e->cfg.selection, vals, err, sizeof(err))) < 0 ||
        (r = json_get_u64(im, "from", UINT32_MAX, &from, err, sizeof(err))) < 0 ||
        (r = json_get_base64(im, "entries", e->cfg.ima_max_bytes, &ima, &ilen, err, sizeof(err))) <
                0) {
        e->m.evidence_rejected++;
        status = engine_error(resp, r == -E2BIG ? ENGINE_TOO_LARGE : ENGINE_MALFORMED,
                              "malformed evidence", err);
        goto done;
    }
    r = json_get_u64(im, "digest_size", 64, &digest_size, err, sizeof(err));
    if (r == -ENOENT) {
        digest_size = 20;
    } else if (r < 0 ||
               (digest_size != 20 && digest_size != 32 && digest_size != 48 && digest_size != 64)) {
        status = engine_error(resp, ENGINE_MALFORMED, "malformed evidence",
                              "\"ima.digest_size\" is not 20, 32, 48 or 64");
        goto done;
    }
    r = json_get_string(req, "boot_id", 64, &boot_id, err, sizeof(err));
    if (r < 0 && r != -ENOENT) {
        status = engine_error(resp, ENGINE_MALFORMED, "malformed evidence", err);
        goto done;
    }
    /* One stat: a pod created a moment ago should be known before its first
     * measurements are judged. Policies are reloaded by the service's 1 s
     * tick, not on this path (a directory scan per evidence). */
    inventory_refresh(e->inv);

    pthread_mutex_lock(&e->lock);
    if (store_node_get(e->store, node, n) < 0) {
        status = engine_error(resp, ENGINE_NOT_FOUND, "unknown node", "register first");
        goto out;
    }
    if (!n->activated) {
        status = engine_error(resp, ENGINE_REFUSED, "not activated", "activate first");
        goto out;
    }
    if (!take_nonce(e, node, nonce, nonce_len)) {
        json_t *d = json_pack("{s:s}", "reason", "nonce not issued to this node, used or expired");
        engine_audit_noisy(e, "evidence-rejected", node, NULL, d);
        json_decref(d);
        e->m.evidence_rejected++;
        status = engine_error(resp, ENGINE_CONFLICT, "bad nonce",
                              "the nonce was not issued to this node, was used or expired");
        goto out;
    }

    /* The quote. */
    if (tpm_public_unmarshal(n->ak_pub, n->ak_pub_len, &ak) < 0 ||
        tpm_verify_key_from_public(&ak.publicArea, &key) < 0) {
        status = engine_error(resp, ENGINE_FAILED, "store", "the stored AK is unusable");
        goto out;
    }
    prev = (struct tpm_clock_state){n->clock, n->reset_count, n->restart_count};
    struct tpm_quote_expect x = {.nonce = nonce,
                                 .nonce_len = nonce_len,
                                 .selection = &e->cfg.selection,
                                 .pcrs = vals,
                                 .previous = n->has_clock ? &prev : NULL};
    tpm_quote_verify(&key, attest, alen, sig, slen, &x, &qr);
    tpm_verify_key_free(&key);
    store_begin(e->store);
    if (qr.failed != TPM_QUOTE_OK) {
        char reason[STORE_REASON_MAX];
        snprintf(reason, sizeof(reason), "quote refused (%s): %s", tpm_quote_check_name(qr.failed),
                 qr.why);
        r = judge_node_failure(&j, reason);
        goto judged;
    }
    /* A reboot (reset count or boot id changed): replay starts over. */
    if (qr.reset || (n->boot_id[0] && strcmp(n->boot_id, boot_id) != 0)) {
        json_t *d = json_pack("{s:s,s:s,s:b,s:I}", "previous_boot_id", n->boot_id, "boot_id",
                              boot_id, "clock_safe", !qr.unsafe, "reset_count",
                              (json_int_t)qr.clock.reset_count);
        judge_audit(&j, "reboot", NULL, d);
        n->ima_index = n->ima_offset = 0;
        memset(n->pcr10, 0, sizeof(n->pcr10));
        rebooted = true;
    }
    n->has_clock = true;
    n->clock = qr.clock.clock;
    n->reset_count = qr.clock.reset_count;
    n->restart_count = qr.clock.restart_count;
    snprintf(n->boot_id, sizeof(n->boot_id), "%s", boot_id);

    if (from != n->ima_index) {
        char reason[STORE_REASON_MAX];
        snprintf(reason, sizeof(reason),
                 "IMA entries start at index %" PRIu64 ", the verifier expects %" PRIu64, from,
                 n->ima_index);
        if (rebooted) {
            /* The quote is genuine and shows a reboot: keep that (the next
             * challenge asks for entry 0) but judge nothing. */
            if (store_node_put(e->store, n) < 0 || judge_commit(&j) < 0) {
                store_rollback(e->store);
                status = engine_error(resp, ENGINE_FAILED, "store",
                                      "the reboot could not be recorded");
                goto out;
            }
        } else {
            store_rollback(e->store);
        }
        status = engine_error(resp, ENGINE_CONFLICT, "wrong IMA index", reason);
        json_object_set_new(*resp, "ima_next_index", json_integer((json_int_t)n->ima_index));
        goto out;
    }

    /* Incremental replay from the stored PCR 10 to the quoted one. */
    {
        struct ima_parser p;
        struct ima_replay_result res;
        struct ima_pcr_value want[4];
        size_t nwant = 0, off = 0;
        unsigned banks = 0;
        struct ima_entry ent;

        for (size_t i = 0; i < vals->n; i++) {
            enum ima_hash_alg alg;
            if (vals->v[i].pcr == IMA_PCR && ima_hash_from_tpm_alg(vals->v[i].alg, &alg) == 0) {
                want[nwant].alg = alg;
                want[nwant].pcr = IMA_PCR;
                memcpy(want[nwant].digest, vals->v[i].digest, vals->v[i].size);
                banks |= IMA_BANK(alg);
                nwant++;
            }
        }
        if (nwant == 0) {
            r = judge_node_failure(&j, "the quote does not cover PCR 10");
            goto judged;
        }
        ima_replay_init(rp, banks);
        for (int b = 0; b < IMA_HASH_COUNT; b++) {
            memcpy(rp->pcr[b][IMA_PCR], n->pcr10[b], IMA_DIGEST_MAX);
        }
        ima_parser_init(&p, (uint32_t)digest_size);
        ima_parser_seek(&p, n->ima_index, n->ima_offset);
        r = ima_replay_list(rp, &p, ima, ilen, want, nwant, &res);
        if (r < 0) {
            char reason[STORE_REASON_MAX], msg[256];
            snprintf(reason, sizeof(reason), "bad IMA log: %s",
                     ima_error_format(&p.err, msg, sizeof(msg)));
            r = judge_node_failure(&j, reason);
            goto judged;
        }
        if (!res.matched) {
            r = judge_node_failure(&j, "the IMA log does not replay to the quoted PCR 10");
            goto judged;
        }
        /* Measurements that waited for their pod first, then the entries
         * the quote now covers. */
        r = n->pending ? judge_waiting(&j, (int64_t)e->cfg.attribution_grace_ms) : 0;
        ima_parser_init(&p, (uint32_t)digest_size);
        ima_parser_seek(&p, n->ima_index, n->ima_offset);
        while (off < res.bytes && r == 0) {
            char reason[STORE_REASON_MAX];
            struct measurement m;
            int k = ima_parser_next(&p, ima + off, res.bytes - off, &ent);
            if (k <= 0) {
                break;
            }
            if (ent.pcr != IMA_PCR) {
                snprintf(reason, sizeof(reason),
                         "IMA entry %" PRIu64 " extends PCR %u, which no quote covers", ent.index,
                         ent.pcr);
                r = judge_node_failure(&j, reason);
                goto judged;
            }
            if (measurement_from_entry(&ent, &m, reason, sizeof(reason)) < 0) {
                r = judge_node_failure(&j, reason);
                goto judged;
            }
            r = judge_measurement(&j, &m);
            off += (size_t)k;
        }
        e->m.entries_checked += res.entries;
        n->ima_index += res.entries;
        n->ima_offset += res.bytes;
        for (int b = 0; b < IMA_HASH_COUNT; b++) {
            if (banks & IMA_BANK(b)) {
                memcpy(n->pcr10[b], rp->pcr[b][IMA_PCR], IMA_DIGEST_MAX);
            }
        }
    }
    if (r == 0 && j.node_failed) {
        r = judge_node_failure(&j, j.node_reason);
        goto judged;
    }
    if (r == 0) {
        r = judge_settle_pods(&j);
    }
    if (r == 0 && n->state != NODE_UNTRUSTED) {
        if (n->state != NODE_TRUSTED) {
            json_t *d = json_pack("{s:s,s:s}", "from", node_state_name(n->state), "to", "trusted");
            r = judge_audit(&j, "state-change", NULL, d);
        }
        n->state = NODE_TRUSTED;
        snprintf(n->reason, sizeof(n->reason), "quote and IMA log verified");
    }
judged:
    n->last_attested_ms = engine_now_ms();
    n->attestations++;
    if (r == 0) {
        r = store_node_put(e->store, n);
    }
    if (r < 0 || judge_commit(&j) < 0) {
        if (r < 0) {
            store_rollback(e->store);
        }
        status = engine_error(resp, ENGINE_FAILED, "store", "the verdict could not be recorded");
        goto out;
    }
    if (n->state == NODE_UNTRUSTED) {
        e->m.evidence_failed++;
    } else {
        e->m.evidence_ok++;
    }
    *resp = json_pack("{s:s,s:s,s:s,s:O,s:I}", "verdict",
                      n->state == NODE_UNTRUSTED ? "untrusted" : "trusted", "node_state",
                      node_state_name(n->state), "reason", n->reason, "pods", j.changed,
                      "ima_next_index", (json_int_t)n->ima_index);
    status = ENGINE_OK;
out:
    pthread_mutex_unlock(&e->lock);
    if (status == ENGINE_OK && json_array_size(j.changed) > 0) {
        engine_notify(e);
    }
done:
    clock_gettime(CLOCK_MONOTONIC, &t1);
    observe(e, (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000);
    judgement_free(&j);
    free(vals);
    free(rp);
    return status;
}
