/* SPDX-License-Identifier: Apache-2.0 */
/* Judging evidence: the quote, the incremental IMA replay against it, and
 * every newly covered measurement against its pod's or the node's policy. */
#include "engine-internal.h"

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

#define IMA_PCR     10
#define CHANGED_MAX 256

struct verdict {
    struct engine *e;
    struct node_record *n;
    json_t *changed; /* pods whose state changed */
    bool node_failed;
    char node_reason[STORE_REASON_MAX];
};

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

static void pod_changed(struct verdict *v, const struct pod_record *p) {
    if (json_array_size(v->changed) < CHANGED_MAX) {
        json_array_append_new(v->changed,
                              json_pack("{s:s,s:s,s:s,s:s,s:s}", "uid", p->uid, "namespace", p->ns,
                                        "name", p->name, "state", p->state, "reason", p->reason));
    }
}

/* Move a pod to `state` (untrusted is sticky) and audit the change. */
static int set_pod_state(struct verdict *v, struct pod_record *p, const char *state,
                         const char *reason) {
    json_t *d;
    int r;

    if (strcmp(p->state, state) == 0 || strcmp(p->state, "untrusted") == 0) {
        return 0;
    }
    d = json_pack("{s:s,s:s,s:s}", "from", p->state, "to", state, "reason", reason);
    snprintf(p->state, sizeof(p->state), "%s", state);
    snprintf(p->reason, sizeof(p->reason), "%s", reason);
    p->since_ms = engine_now_ms();
    r = engine_audit(v->e, "state-change", v->n->name, p, d);
    json_decref(d);
    if (r == 0) {
        r = store_pod_put(v->e->store, p);
    }
    pod_changed(v, p);
    return r;
}

/* Pods seen in this round, so each is looked up once. */
struct seen_pod {
    struct pod_record rec;
    const struct policy *policy;
    bool known, failed;
};

struct round {
    struct seen_pod *pods;
    size_t n, alloc;
};

static struct seen_pod *find_pod(struct verdict *v, struct round *rd,
                                 const struct ima_pod_ref *ref) {
    struct pod_info info;
    struct seen_pod *sp;
    int found;

    for (size_t i = 0; i < rd->n; i++) {
        if ((ref->scope == IMA_SCOPE_POD && strcmp(rd->pods[i].rec.uid, ref->pod_uid) == 0)) {
            return &rd->pods[i];
        }
    }
    if (ref->scope == IMA_SCOPE_POD) {
        found = inventory_lookup_uid(v->e->inv, ref->pod_uid, &info);
    } else {
        found = inventory_lookup_container(v->e->inv, ref->container_id, &info);
        if (found == 0) {
            for (size_t i = 0; i < rd->n; i++) {
                if (strcmp(rd->pods[i].rec.uid, info.uid) == 0) {
                    json_decref(info.labels);
                    json_decref(info.images);
                    return &rd->pods[i];
                }
            }
        }
    }
    if (ref->scope == IMA_SCOPE_CONTAINER && found < 0) {
        return NULL; /* a container of no known pod: judged as the node's */
    }
    if (rd->n == rd->alloc) {
        size_t na = rd->alloc ? rd->alloc * 2 : 16;
        struct seen_pod *np = realloc(rd->pods, na * sizeof(*np));
        if (!np) {
            if (found == 0) {
                json_decref(info.labels);
                json_decref(info.images);
            }
            return NULL;
        }
        rd->pods = np;
        rd->alloc = na;
    }
    sp = &rd->pods[rd->n++];
    memset(sp, 0, sizeof(*sp));
    if (store_pod_get(v->e->store, found == 0 ? info.uid : ref->pod_uid, &sp->rec) < 0) {
        snprintf(sp->rec.uid, sizeof(sp->rec.uid), "%s", found == 0 ? info.uid : ref->pod_uid);
        snprintf(sp->rec.state, sizeof(sp->rec.state), "unknown");
        snprintf(sp->rec.reason, sizeof(sp->rec.reason), "no verdict yet");
        sp->rec.since_ms = engine_now_ms();
    }
    snprintf(sp->rec.node, sizeof(sp->rec.node), "%s", v->n->name);
    if (found == 0) {
        sp->known = true;
        snprintf(sp->rec.ns, sizeof(sp->rec.ns), "%s", info.ns);
        snprintf(sp->rec.name, sizeof(sp->rec.name), "%s", info.name);
        sp->policy = policy_set_match_pod(v->e->policies, info.ns, info.labels, info.images);
        json_decref(info.labels);
        json_decref(info.images);
    }
    return sp;
}

/* The file digest as "algo:hex" and the path of an entry. */
static bool entry_measurement(const struct ima_entry *e, char *digest, size_t dsz,
                              const char **path, size_t *path_len) {
    const struct ima_field *d = ima_entry_field(e, e->legacy ? IMA_FIELD_D : IMA_FIELD_D_NG);
    const struct ima_field *nm = ima_entry_field(e, e->legacy ? IMA_FIELD_N : IMA_FIELD_N_NG);
    struct ima_digest_field df;
    char hex[2 * 64 + 1];

    if (!d) {
        d = ima_entry_field(e, IMA_FIELD_D_NGV2);
    }
    if (!d || !nm || ima_field_decode_digest(d, &df, NULL) < 0 || df.digest_len > 64) {
        return false;
    }
    snprintf(digest, dsz, "%.*s:%s", (int)df.algo_len, df.algo,
             hex_encode(df.digest, df.digest_len, hex));
    if (e->legacy) {
        *path = (const char *)nm->data;
        *path_len = nm->len;
    } else {
        ima_field_string(nm, path, path_len);
    }
    return true;
}

/* Judge one covered entry. Returns a negative errno on a store/audit failure. */
static int judge(struct verdict *v, struct round *rd, const struct ima_entry *e) {
    struct ima_pod_ref ref;
    struct seen_pod *sp = NULL;
    const struct policy *p;
    char digest[160], reason[STORE_REASON_MAX], esc[300];
    const char *path;
    size_t plen;
    bool ok;

    ima_entry_attribute(e, &ref);
    if (ref.scope != IMA_SCOPE_NODE) {
        sp = find_pod(v, rd, &ref);
    }
    if (!entry_measurement(e, digest, sizeof(digest), &path, &plen)) {
        snprintf(reason, sizeof(reason), "entry %" PRIu64 " (template %.*s) carries no file digest",
                 e->index, (int)e->name_len, e->name);
        ok = false;
        path = "";
        plen = 0;
    } else {
        ok = !e->violation;
        if (e->violation) {
            snprintf(reason, sizeof(reason), "IMA violation (ToMToU or open-writers) on %s",
                     log_escape(path, plen, esc, sizeof(esc)));
        }
    }
    if (sp) {
        if (sp->failed) {
            return 0;
        }
        if (!sp->known) {
            sp->rec.unjudged = true;
            return 0;
        }
        p = sp->policy;
        if (!p) {
            return 0; /* no policy: decided at the end of the round */
        }
        if (e->violation && policy_excludes(p, path, plen)) {
            return 0; /* a violation on an excluded path */
        }
        if (ok && !policy_allows(p, path, plen, digest)) {
            snprintf(reason, sizeof(reason), "%s %s is not in policy %s",
                     log_escape(path, plen, esc, sizeof(esc)), digest, policy_name(p));
            ok = false;
        }
        if (!ok) {
            json_t *d = json_pack("{s:s%,s:s,s:s,s:I,s:b}", "path", path, plen, "digest", digest,
                                  "policy", policy_name(p), "entry", (json_int_t)e->index,
                                  "ima_violation", e->violation);
            int r = engine_audit(v->e, "violation", v->n->name, &sp->rec, d);
            json_decref(d);
            sp->failed = true;
            return r < 0 ? r : set_pod_state(v, &sp->rec, "untrusted", reason);
        }
        return 0;
    }
    /* Node scope. */
    p = policy_set_node(v->e->policies);
    if (!p || v->node_failed) {
        return 0;
    }
    if (e->violation && policy_excludes(p, path, plen)) {
        return 0;
    }
    if (ok && !policy_allows(p, path, plen, digest)) {
        snprintf(reason, sizeof(reason), "node-scope %s %s is not in policy %s",
                 log_escape(path, plen, esc, sizeof(esc)), digest, policy_name(p));
        ok = false;
    }
    if (!ok) {
        json_t *d = json_pack("{s:s%,s:s,s:s,s:I,s:b}", "path", path, plen, "digest", digest,
                              "policy", policy_name(p), "entry", (json_int_t)e->index,
                              "ima_violation", e->violation);
        int r = engine_audit(v->e, "violation", v->n->name, NULL, d);
        json_decref(d);
        v->node_failed = true;
        snprintf(v->node_reason, sizeof(v->node_reason), "%s", reason);
        return r;
    }
    return 0;
}

/* Every pod of the node becomes untrusted (a node failure). */
struct fail_all {
    struct verdict *v;
    const char *reason;
    int r;
};

static int fail_pod(const struct pod_record *p, void *ud) {
    struct fail_all *f = ud;
    struct pod_record copy = *p;

    if (strcmp(p->node, f->v->n->name) == 0 && f->r == 0) {
        f->r = set_pod_state(f->v, &copy, "untrusted", f->reason);
    }
    return 0;
}

static int node_failure(struct verdict *v, const char *reason) {
    struct fail_all f = {v, reason, 0};
    json_t *d = json_pack("{s:s}", "reason", reason);
    int r;

    r = engine_audit(v->e, "node-failure", v->n->name, NULL, d);
    json_decref(d);
    if (strcmp(v->n->state, "untrusted") != 0) {
        snprintf(v->n->state, sizeof(v->n->state), "untrusted");
    }
    snprintf(v->n->reason, sizeof(v->n->reason), "%s", reason);
    store_pod_foreach(v->e->store, fail_pod, &f);
    return r < 0 ? r : f.r;
}

/* The quoted PCR 10 values by bank. */
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

int engine_evidence(struct engine *e, const char *node, const json_t *req, json_t **resp) {
    _cleanup_free_ struct node_record *n = calloc(1, sizeof(*n));
    _cleanup_free_ uint8_t *nonce = NULL, *attest = NULL, *sig = NULL, *ima = NULL;
    struct tpm_pcr_values *vals = calloc(1, sizeof(*vals));
    struct ima_replay *rp = calloc(1, sizeof(*rp));
    struct verdict v = {.e = e, .changed = json_array()};
    struct round rd = {0};
    struct tpm_verify_key key = {0};
    struct tpm_quote_result qr;
    struct tpm_clock_state prev;
    size_t nonce_len, alen, slen, ilen = 0;
    uint64_t from = 0, digest_size = 20;
    const char *boot_id = "";
    bool rebooted = false;
    char err[300];
    struct timespec t0, t1;
    int status, r;
    TPM2B_PUBLIC ak;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!n || !vals || !rp || !v.changed) {
        status = engine_error(resp, 500, "internal", "out of memory");
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
        status = engine_error(resp, r == -E2BIG ? 413 : 400, "malformed evidence", err);
        goto done;
    }
    r = json_get_u64(im, "digest_size", 64, &digest_size, err, sizeof(err));
    if (r == -ENOENT) {
        digest_size = 20;
    } else if (r < 0 ||
               (digest_size != 20 && digest_size != 32 && digest_size != 48 && digest_size != 64)) {
        status = engine_error(resp, 400, "malformed evidence",
                              "\"ima.digest_size\" is not 20, 32, 48 or 64");
        goto done;
    }
    r = json_get_string(req, "boot_id", 64, &boot_id, err, sizeof(err));
    if (r < 0 && r != -ENOENT) {
        status = engine_error(resp, 400, "malformed evidence", err);
        goto done;
    }
    /* One stat: a pod created a moment ago should be known before its first
     * measurements are judged. Policies are reloaded by the service's 1 s
     * tick, not on this path (a directory scan per evidence). */
    inventory_refresh(e->inv);

    pthread_mutex_lock(&e->lock);
    if (store_node_get(e->store, node, n) < 0) {
        status = engine_error(resp, 404, "unknown node", "register first");
        goto out;
    }
    v.n = n;
    if (!n->activated) {
        status = engine_error(resp, 403, "not activated", "activate first");
        goto out;
    }
    if (!take_nonce(e, node, nonce, nonce_len)) {
        json_t *d = json_pack("{s:s}", "reason", "nonce not issued to this node, used or expired");
        engine_audit(e, "evidence-rejected", node, NULL, d);
        json_decref(d);
        e->m.evidence_rejected++;
        status = engine_error(resp, 409, "bad nonce",
                              "the nonce was not issued to this node, was used or expired");
        goto out;
    }

    /* The quote. */
    if (tpm_public_unmarshal(n->ak_pub, n->ak_pub_len, &ak) < 0 ||
        tpm_verify_key_from_public(&ak.publicArea, &key) < 0) {
        status = engine_error(resp, 500, "store", "the stored AK is unusable");
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
        r = node_failure(&v, reason);
        goto judged;
    }
    /* A reboot (reset count or boot id changed): replay starts over. */
    if (qr.reset || (n->boot_id[0] && strcmp(n->boot_id, boot_id) != 0)) {
        json_t *d = json_pack("{s:s,s:s,s:b,s:I}", "previous_boot_id", n->boot_id, "boot_id",
                              boot_id, "clock_safe", !qr.unsafe, "reset_count",
                              (json_int_t)qr.clock.reset_count);
        engine_audit(e, "reboot", node, NULL, d);
        json_decref(d);
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
            if (store_node_put(e->store, n) < 0 || store_commit(e->store) < 0) {
                store_rollback(e->store);
                status = engine_error(resp, 500, "store", "the reboot could not be recorded");
                goto out;
            }
        } else {
            store_rollback(e->store);
        }
        status = engine_error(resp, 409, "wrong IMA index", reason);
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
            r = node_failure(&v, "the quote does not cover PCR 10");
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
            r = node_failure(&v, reason);
            goto judged;
        }
        if (!res.matched) {
            r = node_failure(&v, "the IMA log does not replay to the quoted PCR 10");
            goto judged;
        }
        /* Judge the entries the quote now covers. */
        ima_parser_init(&p, (uint32_t)digest_size);
        ima_parser_seek(&p, n->ima_index, n->ima_offset);
        r = 0;
        while (off < res.bytes && r == 0) {
            int k = ima_parser_next(&p, ima + off, res.bytes - off, &ent);
            if (k <= 0) {
                break;
            }
            if (ent.pcr != IMA_PCR) {
                char reason[STORE_REASON_MAX];
                snprintf(reason, sizeof(reason),
                         "IMA entry %" PRIu64 " extends PCR %u, which no quote covers", ent.index,
                         ent.pcr);
                r = node_failure(&v, reason);
                goto judged;
            }
            r = judge(&v, &rd, &ent);
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
    if (v.node_failed) {
        r = node_failure(&v, v.node_reason);
        goto judged;
    }
    /* Pods seen this round: a clean one with a policy is trusted; one
     * without a policy is unknown (or untrusted if configured); one seen
     * before it was known stays unknown. */
    for (size_t i = 0; i < rd.n && r == 0; i++) {
        struct seen_pod *sp = &rd.pods[i];
        if (sp->failed) {
            continue;
        }
        if (strcmp(n->state, "untrusted") == 0) {
            /* A node that failed stays untrusted until an operator deletes
             * it; nothing it reports can make a pod trusted. */
            r = set_pod_state(&v, &sp->rec, "untrusted", "the node is untrusted");
        } else if (!sp->known || sp->rec.unjudged) {
            r = set_pod_state(&v, &sp->rec, "unknown",
                              "measurements seen while the pod was not in the inventory");
        } else if (!sp->policy) {
            r = set_pod_state(&v, &sp->rec, e->cfg.unknown_untrusted ? "untrusted" : "unknown",
                              "no policy matches the pod");
        } else {
            char reason[STORE_REASON_MAX];
            snprintf(reason, sizeof(reason), "every measurement is in policy %s",
                     policy_name(sp->policy));
            r = set_pod_state(&v, &sp->rec, "trusted", reason);
        }
        if (r == 0) {
            r = store_pod_put(e->store, &sp->rec);
        }
    }
    if (r == 0 && strcmp(n->state, "untrusted") != 0) {
        if (strcmp(n->state, "trusted") != 0) {
            json_t *d = json_pack("{s:s,s:s}", "from", n->state, "to", "trusted");
            r = engine_audit(e, "state-change", node, NULL, d);
            json_decref(d);
        }
        snprintf(n->state, sizeof(n->state), "trusted");
        snprintf(n->reason, sizeof(n->reason), "quote and IMA log verified");
    }
judged:
    n->last_attested_ms = engine_now_ms();
    n->attestations++;
    if (r == 0) {
        r = store_node_put(e->store, n);
    }
    if (r < 0 || store_commit(e->store) < 0) {
        store_rollback(e->store);
        status = engine_error(resp, 500, "store", "the verdict could not be recorded");
        goto out;
    }
    if (strcmp(n->state, "untrusted") == 0) {
        e->m.evidence_failed++;
    } else {
        e->m.evidence_ok++;
    }
    *resp = json_pack("{s:s,s:s,s:s,s:O,s:I}", "verdict",
                      strcmp(n->state, "untrusted") == 0 ? "untrusted" : "trusted", "node_state",
                      n->state, "reason", n->reason, "pods", v.changed, "ima_next_index",
                      (json_int_t)n->ima_index);
    status = 200;
out:
    pthread_mutex_unlock(&e->lock);
    if (status == 200 && json_array_size(v.changed) > 0) {
        engine_notify(e);
    }
done:
    clock_gettime(CLOCK_MONOTONIC, &t1);
    observe(e, (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000);
    json_decref(v.changed);
    free(rd.pods);
    free(vals);
    free(rp);
    return status;
}
