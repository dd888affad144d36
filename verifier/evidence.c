/* SPDX-License-Identifier: Apache-2.0 */
/* Judging evidence, as a pipeline of named steps: parse (before any lock)
 * -> admit (the node known and activated, the nonce taken) -> quote check
 * -> IMA position (reboots, the expected index) -> incremental replay ->
 * judge the entries -> settle the pods' and the node's states -> commit
 * (store and audit together). A failure of the node ends the pipeline at
 * commit; a refusal (unknown node, bad nonce, wrong index) ends it with an
 * answer and nothing recorded. With shared nonces (several verifiers on
 * one store) the nonce's single use is recorded first in the writer's
 * savepoint, and the node is written over the version the round read: a
 * round that lost either (another writer first) is rolled back whole and
 * answered 409 (lost()). */
#include "evidence.h"

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
#include "template.h"
#include "verify.h"

/* The PCR values the agent reports ("pcrs": {"sha256": {"10": "<hex>"}}):
 * any of PCRs 0-23 in up to four banks, not only PCR 10 and not only the
 * selection. Whether they are the quoted ones is the quote check's to say
 * (the pcrDigest over the selection); the replay takes PCR 10 from them. */
static int read_pcrs(const json_t *req, struct tpm_pcr_values *vals, char *err, size_t errsz) {
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
    return 0;
}

void evidence_free(struct evidence *ev) {
    free(ev->nonce);
    free(ev->attest);
    free(ev->sig);
    free(ev->ima);
    memset(ev, 0, sizeof(*ev));
}

int evidence_parse(const json_t *req, size_t ima_max, struct evidence *ev, char *err,
                   size_t errsz) {
    const json_t *q = json_object_get(req, "quote"), *im = json_object_get(req, "ima");
    const char *boot_id = "";
    uint64_t digest_size = 20;
    int r;

    memset(ev, 0, sizeof(*ev));
    if ((r = json_get_base64(req, "nonce", 64, &ev->nonce, &ev->nonce_len, err, errsz)) < 0 ||
        (r = json_get_base64(q, "attest", sizeof(TPMS_ATTEST), &ev->attest, &ev->attest_len, err,
                             errsz)) < 0 ||
        (r = json_get_base64(q, "signature", sizeof(TPMT_SIGNATURE), &ev->sig, &ev->sig_len, err,
                             errsz)) < 0 ||
        (r = read_pcrs(req, &ev->pcrs, err, errsz)) < 0 ||
        (r = json_get_u64(im, "from", UINT32_MAX, &ev->from, err, errsz)) < 0 ||
        (r = json_get_base64(im, "entries", ima_max, &ev->ima, &ev->ima_len, err, errsz)) < 0) {
        return r == -E2BIG ? -E2BIG : -EBADMSG;
    }
    r = json_get_u64(im, "digest_size", 64, &digest_size, err, errsz);
    if ((r < 0 && r != -ENOENT) ||
        (digest_size != 20 && digest_size != 32 && digest_size != 48 && digest_size != 64)) {
        snprintf(err, errsz, "\"ima.digest_size\" is not 20, 32, 48 or 64");
        return -EBADMSG;
    }
    ev->digest_size = (uint32_t)digest_size;
    r = json_get_string(req, "boot_id", 64, &boot_id, err, errsz);
    if (r < 0 && r != -ENOENT) {
        return -EBADMSG;
    }
    snprintf(ev->boot_id, sizeof(ev->boot_id), "%s", boot_id);
    return 0;
}

bool evidence_is_reboot(const struct tpm_quote_result *qr) {
    return qr->reset;
}

int evidence_replay(const struct evidence *ev, const struct node_record *n,
                    struct evidence_replay *ret, char *reason, size_t reasonsz) {
    _cleanup_free_ struct ima_replay *rp = calloc(1, sizeof(*rp));
    struct ima_pcr_value want[4];
    struct ima_parser p;
    size_t nwant = 0;
    char msg[256];

    memset(ret, 0, sizeof(*ret));
    if (!rp) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < ev->pcrs.n && nwant < 4; i++) {
        enum ima_hash_alg alg;
        if (ev->pcrs.v[i].pcr == EVIDENCE_PCR &&
            ima_hash_from_tpm_alg(ev->pcrs.v[i].alg, &alg) == 0) {
            want[nwant] = (struct ima_pcr_value){.alg = alg, .pcr = EVIDENCE_PCR};
            memcpy(want[nwant].digest, ev->pcrs.v[i].digest, ev->pcrs.v[i].size);
            ret->banks |= IMA_BANK(alg);
            nwant++;
        }
    }
    if (nwant == 0) {
        snprintf(reason, reasonsz, "the quote does not cover PCR 10");
        return -EBADMSG;
    }
    ima_replay_init(rp, ret->banks);
    for (int b = 0; b < IMA_HASH_COUNT; b++) {
        memcpy(rp->pcr[b][EVIDENCE_PCR], n->pcr10[b], IMA_DIGEST_MAX);
    }
    ima_parser_init(&p, ev->digest_size);
    ima_parser_seek(&p, n->ima_index, n->ima_offset);
    if (ima_replay_list(rp, &p, ev->ima, ev->ima_len, want, nwant, &ret->res) < 0) {
        snprintf(reason, reasonsz, "bad IMA log: %s", ima_error_format(&p.err, msg, sizeof(msg)));
        return -EBADMSG;
    }
    if (!ret->res.matched) {
        snprintf(reason, reasonsz, "the IMA log does not replay to the quoted PCR 10");
        return -EBADMSG;
    }
    for (int b = 0; b < IMA_HASH_COUNT; b++) {
        memcpy(ret->pcr10[b], ret->banks & IMA_BANK(b) ? rp->pcr[b][EVIDENCE_PCR] : n->pcr10[b],
               IMA_DIGEST_MAX);
    }
    return 0;
}

bool evidence_template_accepted(const struct ima_entry *ent, const char *custom) {
    const char *at = custom;

    if (ima_template_builtin_fmt(ent->name, ent->name_len)) {
        return true;
    }
    if (!ent->known || !custom) {
        return false;
    }
    while (*at) {
        size_t n = strcspn(at, ",");
        if (n == ent->name_len && memcmp(at, ent->name, n) == 0) {
            return true;
        }
        at += n + (at[n] == ',');
    }
    return false;
}

/* Entries decoded before the store lock is taken, at most this many a
 * round (the rest are decoded under it): bounds a round's memory. */
#define ROUND_DECODE_MAX 1024

/* One round: what the steps below share. */
struct round {
    struct engine *e;
    const char *node;
    struct evidence ev;
    struct node_record *n; /* the node, changed as the round goes */
    struct judgement j;
    int r; /* a store or audit failure: nothing is recorded */
    /* A node failure found outside the store lock (quote, replay): judged
     * and recorded by the writer's section. */
    bool failed;
    char reason[STORE_REASON_MAX];
    struct evidence_replay *rep; /* what the replay covered, or NULL */
    struct measurement *ms;      /* the first covered entries, decoded */
    size_t nms;
    bool bad; /* entry nms is refused, for bad_reason */
    char bad_reason[STORE_REASON_MAX];
    int64_t nonce_expires_ms; /* shared nonces: until when its single-use record is kept */
    bool stale;               /* older than a quote judged since its nonce: stale_round() */
};

/* How a step ended: go on to the next, go straight to commit (the node
 * failed, or a store write failed), or stop with the answer given. */
enum step {
    STEP_NEXT,
    STEP_COMMIT,
    STEP_ANSWERED,
};

/* A node failure found outside the store lock: recorded at commit. */
static enum step fail_later(struct round *rd, const char *reason) {
    rd->failed = true;
    snprintf(rd->reason, sizeof(rd->reason), "%s", reason);
    return STEP_COMMIT;
}

/* A node failure found under the store lock: judged now, recorded at commit. */
static enum step node_failed(struct round *rd, const char *reason) {
    rd->r = judge_node_failure(&rd->j, reason);
    return STEP_COMMIT;
}

/* A refused round: answered 409 `error` with `detail`, audited as a
 * refusal (noisy), nothing else recorded. e->lock held. */
static enum engine_status refused(struct round *rd, json_t **resp, const char *error,
                                  const char *detail) {
    struct engine *e = rd->e;
    json_t *d = json_pack("{s:s,s:s}", "error", error, "reason", detail);

    engine_audit_noisy(e, "evidence-rejected", rd->node, NULL, d);
    e->m.evidence_rejected++;
    json_decref(d);
    return engine_error(resp, ENGINE_CONFLICT, error, detail);
}

/* The nonce, as this verifier can tell without the store: one of its own
 * outstanding nonces of this node (taken: gone afterwards whatever
 * happens), or with shared nonces one any verifier of the store made for
 * this node, unexpired (taken from this verifier's table too when it
 * issued it). NULL, or why it is refused. */
static const char *nonce_admit(struct round *rd) {
    struct engine *e = rd->e;
    int64_t now = engine_now_ms();
    struct node_entry *ent = engine_node_entry(e, rd->node, false);
    bool ours = engine_nonce_take(ent, rd->ev.nonce, rd->ev.nonce_len, now);
    int r;

    if (!e->shared_nonces) {
        return ours ? NULL : "the nonce was not issued to this node, was used or expired";
    }
    r = engine_nonce_check(e, rd->node, rd->ev.nonce, rd->ev.nonce_len, now, &rd->nonce_expires_ms);
    switch (r) {
    case 0:
        return NULL;
    case -EMSGSIZE:
        return "the nonce is not 32 bytes long";
    case -EBADMSG:
        return "the nonce was not issued to this node by a verifier of this deployment";
    case -ETIME:
        return "the nonce expired";
    default:
        return "the nonce could not be checked";
    }
}

/* Admit: the node is known and activated, and the nonce passes
 * nonce_admit() (with shared nonces, that it is unused is known when the
 * round writes). The node's lock is held: nobody else on this verifier
 * changes the node until the round ends. */
static enum step admit(struct round *rd, enum engine_status *status, json_t **resp) {
    struct engine *e = rd->e;
    const char *why;
    int r;

    pthread_mutex_lock(&e->lock);
    r = store_node_get(e->store, rd->node, rd->n);
    pthread_mutex_unlock(&e->lock);
    if (r < 0) {
        *status = engine_node_unreadable(resp, r, "register first");
        return STEP_ANSWERED;
    }
    if (!rd->n->activated) {
        *status = engine_error(resp, ENGINE_REFUSED, "not activated", "activate first");
        return STEP_ANSWERED;
    }
    why = nonce_admit(rd);
    if (why) {
        pthread_mutex_lock(&e->lock);
        *status = refused(rd, resp, "bad nonce", why);
        pthread_mutex_unlock(&e->lock);
        return STEP_ANSWERED;
    }
    return STEP_NEXT;
}

/* Shared nonces: the round's nonce recorded as used, in the open
 * savepoint (so with the round's writes, or not at all). 0, -EEXIST when
 * some verifier of the store used it already, or a negative errno. */
static int nonce_use(struct round *rd) {
    struct engine *e = rd->e;

    if (!e->shared_nonces) {
        return 0;
    }
    return store_nonce_use(e->store, rd->ev.nonce, rd->ev.nonce_len, rd->nonce_expires_ms);
}

#define STALE_ROUND                                                                           \
    "a newer quote of this node was judged (at this or another verifier) after this round's " \
    "challenge was issued; nothing of the round was recorded: start a new round"

/* With shared nonces, a quote that is genuine and answers a fresh nonce but
 * is older than the stored one (its clock, restart or reset count behind)
 * while the stored one was judged after this round's nonce was issued: two
 * rounds of the node ran at once (at two verifiers), the newer one judged
 * first. Not a replay (the nonce is fresh and used once): refused, not a
 * failure of the node. The stored quote judged before the nonce was
 * issued, an older quote is what no honest TPM makes: the node fails. */
static bool stale_round(const struct round *rd, const struct tpm_quote_result *qr) {
    const struct engine *e = rd->e;

    if (!e->shared_nonces || !rd->n->has_clock ||
        (qr->failed != TPM_QUOTE_CLOCK_BACK && qr->failed != TPM_QUOTE_RESTART_BACK &&
         qr->failed != TPM_QUOTE_RESET_BACK)) {
        return false;
    }
    return rd->n->last_attested_ms >= rd->nonce_expires_ms - (int64_t)e->cfg.nonce_ttl_ms;
}

/* The quote, by every rule of docs/tpm.md, against the stored AK (parsed
 * once per node) and the previous quote's clock. A refused quote fails the
 * node. No store lock. */
static enum step check_quote(struct round *rd, struct tpm_quote_result *qr,
                             enum engine_status *status, json_t **resp) {
    struct node_record *n = rd->n;
    struct node_entry *ent = engine_node_entry(rd->e, rd->node, true);
    const struct tpm_verify_key *key = NULL;
    struct tpm_clock_state prev = {n->clock, n->reset_count, n->restart_count};
    char reason[STORE_REASON_MAX];
    int r = ent ? engine_node_ak(ent, n, &key) : -ENOMEM;

    if (r < 0) {
        *status = engine_error(resp, ENGINE_FAILED, r == -ENOMEM ? "internal" : "store",
                               r == -ENOMEM ? "out of memory" : "the stored AK is unusable");
        return STEP_ANSWERED;
    }
    struct tpm_quote_expect x = {.nonce = rd->ev.nonce,
                                 .nonce_len = rd->ev.nonce_len,
                                 .selection = &rd->e->cfg.selection,
                                 .pcrs = &rd->ev.pcrs,
                                 .previous = n->has_clock ? &prev : NULL};
    tpm_quote_verify(key, rd->ev.attest, rd->ev.attest_len, rd->ev.sig, rd->ev.sig_len, &x, qr);
    /* Refused at the write, once the nonce is known unused there: a
     * replayed evidence is told so, not taken for a stale round. */
    rd->stale = stale_round(rd, qr);
    if (qr->failed != TPM_QUOTE_OK) {
        snprintf(reason, sizeof(reason), "quote refused (%s): %s", tpm_quote_check_name(qr->failed),
                 qr->why);
        return fail_later(rd, reason);
    }
    return STEP_NEXT;
}

#define NODE_CHANGED                                                                           \
    "another verifier or an operator wrote the node while this round was checked; nothing of " \
    "the round was recorded: start a new round"

/* A round that lost at the store (r): another writer (a verifier of the
 * store, an operator) changed the node since the round read it
 * (-ESTALE), or used its nonce first (-EEXIST). Its writes were rolled
 * back; after a lost node its nonce is recorded used on its own, so that
 * the agent's evidence cannot be taken elsewhere: it starts a new round.
 * Answered 409, audited as a refusal. e->lock held, as a writer. */
static enum engine_status lost(struct round *rd, int r, json_t **resp) {
    struct engine *e = rd->e;
    struct engine_write w;

    if (r == -EEXIST) {
        return refused(rd, resp, "bad nonce",
                       "the nonce was used already, at this verifier or another");
    }
    if (r == -EALREADY) {
        return refused(rd, resp, "stale round", STALE_ROUND);
    }
    if (!e->shared_nonces) {
        return refused(rd, resp, "node changed", NODE_CHANGED);
    }
    r = engine_write_begin(e, &w);
    r = r == 0 ? nonce_use(rd) : r;
    r = engine_write_end(e, &w, r == -EEXIST ? 0 : r);
    if (r < 0) {
        log_warn("node %s: the nonce of a round that lost its node could not be recorded: %s",
                 rd->node, strerror(-r));
    }
    return refused(rd, resp, "node changed", NODE_CHANGED);
}

/* A round that judges nothing (its entries start at the wrong index): its
 * nonce recorded as used (shared nonces), and a reboot its quote shows, as
 * one writer. True when recorded (or nothing was to be), else answered. */
static bool record_position(struct round *rd, bool rebooted, enum engine_status *status,
                            json_t **resp) {
    struct engine *e = rd->e;
    struct engine_write w;
    int r;

    if (!rebooted && !e->shared_nonces) {
        return true;
    }
    engine_write_lock(e);
    r = engine_write_begin(e, &w);
    r = r == 0 ? nonce_use(rd) : r;
    if (r == 0 && rebooted) {
        r = store_node_put(e->store, rd->n);
    }
    if (r == 0 && rebooted) {
        r = judge_write_audits(&rd->j);
    }
    r = engine_write_end(e, &w, r);
    if (r == -EEXIST || r == -ESTALE) {
        *status = lost(rd, r, resp);
    } else if (r < 0) {
        *status = engine_error(resp, ENGINE_FAILED, "store",
                               rebooted ? "the reboot could not be recorded"
                                        : "the nonce's use could not be recorded");
    }
    engine_write_unlock(e);
    return r == 0;
}

/* Where the list stands: a reboot (recorded) starts it over from entry 0;
 * the entries must start where the verifier expects. A wrong index is 409
 * with the index to send from; a reboot found on the way is kept. */
static enum step position(struct round *rd, const struct tpm_quote_result *qr,
                          enum engine_status *status, json_t **resp) {
    struct node_record *n = rd->n;
    bool rebooted = evidence_is_reboot(qr);
    char reason[STORE_REASON_MAX];

    if (rebooted) {
        json_t *d = json_pack("{s:s,s:s,s:b,s:I}", "previous_boot_id", n->boot_id, "boot_id",
                              rd->ev.boot_id, "clock_safe", !qr->unsafe, "reset_count",
                              (json_int_t)qr->clock.reset_count);
        /* An untrusted node's reboots change nothing: noisy. */
        rd->r = n->state == NODE_UNTRUSTED ? judge_audit_noisy(&rd->j, "reboot", NULL, d)
                                           : judge_audit(&rd->j, "reboot", NULL, d);
        n->ima_index = n->ima_offset = 0;
        memset(n->pcr10, 0, sizeof(n->pcr10));
    }
    n->has_clock = true;
    n->clock = qr->clock.clock;
    n->reset_count = qr->clock.reset_count;
    n->restart_count = qr->clock.restart_count;
    snprintf(n->boot_id, sizeof(n->boot_id), "%s", rd->ev.boot_id);
    if (rd->r < 0) {
        return STEP_COMMIT;
    }
    if (rd->ev.from == n->ima_index) {
        return STEP_NEXT;
    }
    /* The quote is genuine: a reboot it shows is kept (the next challenge
     * asks for entry 0), and nothing is judged. */
    if (!record_position(rd, rebooted, status, resp)) {
        return STEP_ANSWERED;
    }
    snprintf(reason, sizeof(reason),
             "IMA entries start at index %" PRIu64 ", the verifier expects %" PRIu64, rd->ev.from,
             n->ima_index);
    *status = engine_error(resp, ENGINE_CONFLICT, "wrong IMA index", reason);
    json_object_set_new(*resp, "ima_next_index", json_integer((json_int_t)n->ima_index));
    return STEP_ANSWERED;
}

/* PCR 10 after the first `bytes` of the evidence's entries, replayed from
 * the node's stored value in the banks of `banks` (the others kept). 0 or
 * a negative errno. */
static int replay_prefix(const struct evidence *ev, const struct node_record *n, size_t bytes,
                         unsigned banks, uint8_t pcr10[IMA_HASH_COUNT][IMA_DIGEST_MAX]) {
    _cleanup_free_ struct ima_replay *rp = calloc(1, sizeof(*rp));
    struct ima_parser p;
    struct ima_entry ent;
    size_t off = 0;

    if (!rp) {
        return -ENOMEM;
    }
    ima_replay_init(rp, banks);
    memcpy(pcr10, n->pcr10, sizeof(n->pcr10));
    for (int b = 0; b < IMA_HASH_COUNT; b++) {
        memcpy(rp->pcr[b][EVIDENCE_PCR], n->pcr10[b], IMA_DIGEST_MAX);
    }
    ima_parser_init(&p, ev->digest_size);
    ima_parser_seek(&p, n->ima_index, n->ima_offset);
    while (off < bytes) {
        int k = ima_parser_next(&p, ev->ima + off, bytes - off, &ent);
        if (k <= 0 || ima_replay_entry(rp, &ent) < 0) {
            return -EBADMSG; /* replayed whole before: cannot happen */
        }
        off += (size_t)k;
    }
    for (int b = 0; b < IMA_HASH_COUNT; b++) {
        if (banks & IMA_BANK(b)) {
            memcpy(pcr10[b], rp->pcr[b][EVIDENCE_PCR], IMA_DIGEST_MAX);
        }
    }
    return 0;
}

/* One entry's checks before it is judged: its template is one this
 * verifier reads, it extends PCR 10 (the only one quoted), its fields
 * decode. -EBADMSG with the node failure's reason. */
static int entry_checks(struct round *rd, const struct ima_entry *ent, struct measurement *m,
                        char *reason, size_t reasonsz) {
    char name[80];

    if (!evidence_template_accepted(ent, rd->e->cfg.ima_templates)) {
        log_escape(ent->name, ent->name_len, name, sizeof(name));
        snprintf(reason, reasonsz,
                 "IMA entry %" PRIu64 " has the template \"%s\", which is neither built in nor "
                 "listed by --ima-templates",
                 ent->index, name);
        return -EBADMSG;
    }
    if (ent->pcr != EVIDENCE_PCR) {
        snprintf(reason, reasonsz, "IMA entry %" PRIu64 " extends PCR %u, which no quote covers",
                 ent->index, ent->pcr);
        return -EBADMSG;
    }
    return measurement_from_entry(ent, m, reason, reasonsz) < 0 ? -EBADMSG : 0;
}

/* The replay and the decoding of the first ROUND_DECODE_MAX entries it
 * covers, before the store lock: the costly, pure part of a round. */
static enum step replay_and_decode(struct round *rd) {
    struct ima_parser p;
    struct ima_entry ent;
    size_t off = 0, max;
    int r;

    rd->rep = calloc(1, sizeof(*rd->rep));
    if (!rd->rep) {
        rd->r = -ENOMEM;
        return STEP_COMMIT;
    }
    r = evidence_replay(&rd->ev, rd->n, rd->rep, rd->reason, sizeof(rd->reason));
    if (r == -EBADMSG) {
        rd->failed = true;
        return STEP_COMMIT;
    }
    if (r < 0) {
        rd->r = r;
        return STEP_COMMIT;
    }
    max = rd->rep->res.entries < ROUND_DECODE_MAX ? rd->rep->res.entries : ROUND_DECODE_MAX;
    rd->ms = max ? calloc(max, sizeof(*rd->ms)) : NULL;
    if (max && !rd->ms) {
        rd->r = -ENOMEM;
        return STEP_COMMIT;
    }
    ima_parser_init(&p, rd->ev.digest_size);
    ima_parser_seek(&p, rd->n->ima_index, rd->n->ima_offset);
    while (rd->nms < max && off < rd->rep->res.bytes) {
        int k = ima_parser_next(&p, rd->ev.ima + off, rd->rep->res.bytes - off, &ent);
        if (k <= 0) {
            break;
        }
        if (entry_checks(rd, &ent, &rd->ms[rd->nms], rd->bad_reason, sizeof(rd->bad_reason)) < 0) {
            rd->bad = true;
            break;
        }
        off += (size_t)k;
        rd->nms++;
    }
    return STEP_NEXT;
}

/* Judge the measurements that waited for their pod, then each entry the
 * quote now covers (decoded before, or now past ROUND_DECODE_MAX); the
 * node's list position and PCR 10 move past them. When the node's waiting
 * list fills up, the round stops before the entry that found it full: what
 * was judged counts, the node sends the rest again, and it is marked as
 * behind (stale once it stays behind). Store lock held. */
static enum step judge_entries(struct round *rd) {
    const struct evidence_replay *rep = rd->rep;
    struct node_record *n = rd->n;
    struct ima_parser p;
    struct ima_entry ent;
    char reason[STORE_REASON_MAX];
    uint64_t done = 0;
    size_t off = 0;
    bool full = false;

    rd->r = n->pending ? judge_waiting(&rd->j, (int64_t)rd->e->cfg.attribution_grace_ms) : 0;
    ima_parser_init(&p, rd->ev.digest_size);
    ima_parser_seek(&p, n->ima_index, n->ima_offset);
    while (off < rep->res.bytes && rd->r == 0) {
        struct measurement m, *mp = &m;
        int k = ima_parser_next(&p, rd->ev.ima + off, rep->res.bytes - off, &ent);
        if (k <= 0) {
            break;
        }
        if (done < rd->nms) {
            mp = &rd->ms[done];
        } else if (rd->bad) {
            return node_failed(rd, rd->bad_reason);
        } else if (entry_checks(rd, &ent, &m, reason, sizeof(reason)) < 0) {
            return node_failed(rd, reason);
        }
        rd->r = judge_measurement(&rd->j, mp);
        if (rd->r == -ENOSPC) {
            rd->r = 0;
            full = true;
            break;
        }
        off += (size_t)k;
        done++;
    }
    if (rd->r < 0) {
        return STEP_COMMIT;
    }
    if (full) {
        rd->r = replay_prefix(&rd->ev, n, off, rep->banks, n->pcr10);
        n->behind_ms = n->behind_ms ? n->behind_ms : engine_now_ms();
    } else {
        memcpy(n->pcr10, rep->pcr10, sizeof(n->pcr10));
        n->behind_ms = 0;
    }
    rd->e->m.entries_checked += done;
    n->ima_index += done;
    n->ima_offset += off;
    return rd->r < 0 ? STEP_COMMIT : STEP_NEXT;
}

/* The pods' states, then the node's: a failure found while judging fails
 * it now; else it is trusted (an untrusted node stays untrusted). */
static void settle(struct round *rd) {
    struct node_record *n = rd->n;

    if (rd->j.node_failed) {
        node_failed(rd, rd->j.node_reason);
        return;
    }
    rd->r = judge_settle_pods(&rd->j);
    if (rd->r == 0 && n->state != NODE_UNTRUSTED) {
        if (n->state != NODE_TRUSTED) {
            /* The node's verdict names the NodePolicy that judged its host
             * processes (null: none did). */
            const struct policy *np = policy_set_node(rd->j.e->policies);
            json_t *d =
                    json_pack("{s:s,s:s,s:o}", "from", node_state_name(n->state), "to", "trusted",
                              "policy", np ? json_string(policy_id(np)) : json_null());
            rd->r = judge_audit(&rd->j, "state-change", NULL, d);
        }
        n->state = NODE_TRUSTED;
        snprintf(n->reason, sizeof(n->reason), "quote and IMA log verified");
    }
}

/* The node, the pods and the audit records, in this writer's savepoint;
 * then, once the batch holding them is durable, the answer. */
static enum engine_status commit(struct round *rd, struct engine_write *w, json_t **resp) {
    struct node_record *n = rd->n;
    struct engine *e = rd->e;

    n->last_attested_ms = engine_now_ms();
    n->attestations++;
    if (rd->r == 0) {
        rd->r = store_node_put(e->store, n);
    }
    if (rd->r == 0) {
        rd->r = judge_write_audits(&rd->j);
    }
    /* The audit records go after the node: a round that lost the node
     * (-ESTALE) leaves none saying it was judged. */
    rd->r = engine_write_end(e, w, rd->r);
    if (rd->r == -ESTALE || rd->r == -EEXIST || rd->r == -EALREADY) {
        return lost(rd, rd->r, resp);
    }
    if (rd->r < 0) {
        return engine_error(resp, ENGINE_FAILED, "store", "the verdict could not be recorded");
    }
    if (n->state == NODE_UNTRUSTED) {
        e->m.evidence_failed++;
    } else {
        e->m.evidence_ok++;
    }
    *resp = json_pack("{s:s,s:s,s:s,s:O,s:I}", "verdict",
                      n->state == NODE_UNTRUSTED ? "untrusted" : "trusted", "node_state",
                      node_state_name(n->state), "reason", n->reason, "pods", rd->j.changed,
                      "ima_next_index", (json_int_t)n->ima_index);
    return ENGINE_OK;
}

/* The steps under the store lock, as one writer of a batch: a failure
 * found before (quote, replay) fails the node; else the entries are
 * judged and the states settled; then commit. */
static enum engine_status run_writer(struct round *rd, enum step st, json_t **resp) {
    struct engine *e = rd->e;
    enum engine_status status;
    struct engine_write w;

    engine_write_lock(e);
    if (engine_write_begin(e, &w) < 0) {
        engine_write_end(e, &w, -EIO);
        engine_write_unlock(e);
        return engine_error(resp, ENGINE_FAILED, "store", "cannot start a transaction");
    }
    if (rd->r == 0) {
        rd->r = nonce_use(rd);
    }
    if (rd->stale && rd->r == 0) {
        rd->r = -EALREADY; /* nothing recorded: a stale round */
    }
    if (rd->failed && rd->r == 0) {
        st = node_failed(rd, rd->reason);
    }
    if (st == STEP_NEXT && rd->r == 0) {
        st = judge_entries(rd);
    }
    if (st == STEP_NEXT && rd->r == 0) {
        settle(rd);
    }
    status = commit(rd, &w, resp);
    engine_write_unlock(e);
    return status;
}

/* The steps of a round, the node's lock held: admit, then the quote check,
 * position, replay and decoding outside the store lock, then the writer. */
static enum engine_status run_round(struct round *rd, json_t **resp) {
    enum engine_status status = ENGINE_OK;
    struct tpm_quote_result qr;
    enum step st = admit(rd, &status, resp);

    if (st == STEP_NEXT) {
        st = check_quote(rd, &qr, &status, resp);
    }
    if (st == STEP_NEXT) {
        st = position(rd, &qr, &status, resp);
    }
    if (st == STEP_NEXT) {
        st = replay_and_decode(rd);
    }
    if (st != STEP_ANSWERED && rd->e->round_hook) { /* set before any round runs */
        rd->e->round_hook(rd->e->round_hook_ud);
    }
    return st == STEP_ANSWERED ? status : run_writer(rd, st, resp);
}

static void observe(struct engine *e, int64_t us) {
    size_t b = 0;

    while (b < ENGINE_LATENCY_BOUNDS && us > engine_latency_bounds_us[b]) {
        b++;
    }
    pthread_mutex_lock(&e->lock);
    e->m.verify_us_buckets[b]++;
    e->m.verify_us_sum += (uint64_t)us;
    e->m.verify_count++;
    pthread_mutex_unlock(&e->lock);
}

enum engine_status engine_evidence(struct engine *e, const char *node, const json_t *req,
                                   json_t **resp) {
    struct round rd = {.e = e, .node = node, .n = calloc(1, sizeof(*rd.n))};
    enum engine_status status;
    struct timespec t0, t1;
    char err[300];
    int r;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!rd.n || judgement_init(&rd.j, e, rd.n) < 0) {
        status = engine_error(resp, ENGINE_FAILED, "internal", "out of memory");
        goto done;
    }
    r = evidence_parse(req, e->cfg.ima_max_bytes, &rd.ev, err, sizeof(err));
    if (r < 0) {
        pthread_mutex_lock(&e->lock);
        e->m.evidence_rejected++;
        pthread_mutex_unlock(&e->lock);
        status = engine_error(resp, r == -E2BIG ? ENGINE_TOO_LARGE : ENGINE_MALFORMED,
                              "malformed evidence", err);
        goto done;
    }
    /* One stat: a pod created a moment ago should be known before its first
     * measurements are judged. Policies are reloaded by the service's 1 s
     * tick, not on this path (a directory scan per evidence). */
    inventory_refresh(e->inv);
    engine_node_lock(e, node);
    status = run_round(&rd, resp);
    engine_node_unlock(e, node);
    if (status == ENGINE_OK && json_array_size(rd.j.changed) > 0) {
        engine_notify(e);
    }
done:
    clock_gettime(CLOCK_MONOTONIC, &t1);
    observe(e, (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000);
    judgement_free(&rd.j);
    evidence_free(&rd.ev);
    free(rd.rep);
    free(rd.ms);
    free(rd.n);
    return status;
}
