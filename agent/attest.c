/* SPDX-License-Identifier: Apache-2.0 */
#include "attest.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <tss2/tss2_mu.h>

#include "base64.h"
#include "credential.h"
#include "hex.h"
#include "json-util.h"
#include "list.h"
#include "log.h"
#include "quote.h"
#include "time-util.h"
#include "token.h"

/* One client per verifier URL; the first one in use. */
static int open_clients(struct agent *a) {
    const struct agent_config *cfg = a->cfg;
    char err[256];
    int r = verifier_urls_parse(cfg->verifier, &a->urls, err, sizeof(err));

    if (r < 0) {
        log_error("%s", err);
        return r;
    }
    if (cfg->token_file) {
        const char *token;
        agent_token_init(&a->token, cfg->token_file);
        /* Said now when it is wrong; tried again at each request. */
        agent_token_get(&a->token, time_mono_ms(), &token);
    }
    for (size_t i = 0; i < a->urls.n; i++) {
        r = client_new(a->urls.url[i], cfg->cert, cfg->key, cfg->cacert, &a->clients[i]);
        if (r < 0) {
            return r;
        }
        a->n_clients = i + 1;
        if (cfg->token_file) {
            client_set_token(a->clients[i], &a->token);
        }
    }
    a->current = 0;
    a->client = a->clients[0];
    return 0;
}

int agent_open(const struct agent_config *cfg, struct agent *a, bool *ret_registered) {
    enum tpm_key_type ak_type = strcmp(cfg->ak_alg, "ecc") == 0 ? TPM_KEY_ECC : TPM_KEY_RSA;
    char blob[4400], boot_id[80];
    int r;

    *a = (struct agent){.cfg = cfg,
                        .ek = TPM_KEY_INIT,
                        .ak = TPM_KEY_INIT,
                        .switch_log = RATELIMIT_INIT(60000, 10)};
    position_init(&a->pos, cfg->securityfs);
    snprintf(blob, sizeof(blob), "%s/ak.blob", cfg->state_dir);
    if (tpm_open(cfg->tcti, &a->tpm) < 0 || tpm_ek_load(a->tpm, TPM_KEY_RSA, &a->ek) < 0) {
        log_error("no usable TPM at %s", cfg->tcti);
        agent_close(a);
        return -ENODEV;
    }
    r = tpm_ak_load(a->tpm, &a->ek, blob, &a->ak);
    if (r == -ENOENT) {
        r = tpm_ak_create(a->tpm, &a->ek, ak_type, blob, &a->ak);
    } else if (r == 0) {
        *ret_registered = true; /* a known AK: the verifier has the node already */
    }
    if (r < 0 || open_clients(a) < 0) {
        log_error("cannot set up the AK (%s) or the HTTPS client", blob);
        agent_close(a);
        return r < 0 ? r : -EIO;
    }
    position_boot_id(cfg->boot_id_file, boot_id, sizeof(boot_id));
    position_load(&a->pos, cfg->state_dir, boot_id);
    return 0;
}

void agent_close(struct agent *a) {
    tpm_key_release(a->tpm, &a->ak);
    tpm_key_release(a->tpm, &a->ek);
    tpm_close(a->tpm);
    a->tpm = NULL;
    for (size_t i = 0; i < a->n_clients; i++) {
        client_free(a->clients[i]);
        a->clients[i] = NULL;
    }
    a->n_clients = 0;
    a->client = NULL;
    verifier_urls_free(&a->urls);
    position_free(&a->pos);
    agent_token_free(&a->token);
}

/* The string `key` of the verifier's answer for a log line: "no answer"
 * without one, `missing` when the answer has no such string. */
static const char *answer_text(const json_t *resp, const char *key, const char *missing) {
    const char *v = resp ? json_string_value(json_object_get(resp, key)) : NULL;
    return !resp ? "no answer" : v ? v : missing;
}

/* POST body to /v1/nodes/<node>/<what>, as client_post(), and whether the
 * verifier was unavailable into a->unavailable. A node name no verifier
 * takes is -ENAMETOOLONG, sent nowhere. */
static int post_node(struct agent *a, const char *what, const json_t *body, json_t **ret) {
    char path[sizeof("/v1/nodes//registration") + AGENT_NODE_NAME_MAX];
    size_t n = strlen(a->cfg->node);
    int status;

    if (n > AGENT_NODE_NAME_MAX || (size_t)snprintf(path, sizeof(path), "/v1/nodes/%s/%s",
                                                    a->cfg->node, what) >= sizeof(path)) {
        log_error("the node name is %zu bytes long; a node name has at most %d", n,
                  AGENT_NODE_NAME_MAX);
        return -ENAMETOOLONG;
    }
    status = client_post(a->client, path, body, ret);
    if (!verifier_unavailable(status, *ret, a->unavailable, sizeof(a->unavailable))) {
        a->unavailable[0] = 0;
    }
    return status;
}

/* EK and AK public areas, and the EK certificate when the TPM has one. */
static json_t *registration_request(struct agent *a) {
    uint8_t ekbuf[sizeof(TPM2B_PUBLIC)], akbuf[sizeof(TPM2B_PUBLIC)];
    size_t eklen = 0, aklen = 0, certlen = 0;
    _cleanup_free_ uint8_t *cert = NULL;
    json_t *req;

    Tss2_MU_TPM2B_PUBLIC_Marshal(&a->ek.public, ekbuf, sizeof(ekbuf), &eklen);
    Tss2_MU_TPM2B_PUBLIC_Marshal(&a->ak.public, akbuf, sizeof(akbuf), &aklen);
    tpm_ek_read_cert(a->tpm, TPM_KEY_RSA, &cert, &certlen);
    req = json_pack("{s:o,s:o}", "ek_pub", json_base64(ekbuf, eklen), "ak_pub",
                    json_base64(akbuf, aklen));
    if (cert) {
        json_object_set_new(req, "ek_cert", json_base64(cert, certlen));
    }
    return req;
}

/* The verifier's MakeCredential: the credential blob and its secret. */
static int registration_answer(const json_t *resp, TPM2B_ID_OBJECT *id,
                               TPM2B_ENCRYPTED_SECRET *es) {
    _cleanup_free_ uint8_t *blob = NULL, *secret = NULL;
    size_t bl, sl, off = 0;
    char err[256];

    if (json_get_base64(resp, "credential_blob", sizeof(TPM2B_ID_OBJECT), &blob, &bl, err,
                        sizeof(err)) < 0 ||
        json_get_base64(resp, "secret", sizeof(TPM2B_ENCRYPTED_SECRET), &secret, &sl, err,
                        sizeof(err)) < 0 ||
        Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(blob, bl, &off, id) != TSS2_RC_SUCCESS ||
        (off = 0, Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(secret, sl, &off, es)) !=
                TSS2_RC_SUCCESS) {
        log_error("the verifier's registration answer is malformed");
        return -EBADMSG;
    }
    return 0;
}

/* ActivateCredential, then POST the proof (tpm_activation_proof(): the
 * verifier computes the same). */
static int activation(struct agent *a, const TPM2B_ID_OBJECT *id,
                      const TPM2B_ENCRYPTED_SECRET *es) {
    uint8_t cred[64], proof[TPM_ACTIVATION_PROOF_SIZE];
    size_t clen;
    json_t *req, *resp = NULL;
    int status, r;

    if (tpm_activate_credential(a->tpm, &a->ak, &a->ek, id, es, cred, &clen) < 0) {
        return -EIO;
    }
    r = tpm_activation_proof(cred, clen, a->cfg->node, a->ak.name.name, a->ak.name.size, proof);
    OPENSSL_cleanse(cred, sizeof(cred));
    if (r < 0) {
        log_error("activation proof: %s", strerror(-r));
        return r;
    }
    req = json_pack("{s:o}", "proof", json_base64(proof, sizeof(proof)));
    status = post_node(a, "activation", req, &resp);
    json_decref(req);
    json_decref(resp);
    if (status != 200) {
        log_error("activation refused: %d", status);
        return status < 0 ? status : -EACCES;
    }
    return 0;
}

int agent_register(struct agent *a) {
    TPM2B_ID_OBJECT id = {0};
    TPM2B_ENCRYPTED_SECRET es = {0};
    json_t *req, *resp = NULL;
    int status, r;

    req = registration_request(a);
    status = post_node(a, "registration", req, &resp);
    json_decref(req);
    if (status != 201) {
        log_error("registration refused: %d %s", status,
                  answer_text(resp, "detail", "(no detail given)"));
        json_decref(resp);
        return status < 0 ? status : -EACCES;
    }
    r = registration_answer(resp, &id, &es);
    json_decref(resp);
    if (r < 0) {
        return r;
    }
    r = activation(a, &id, &es);
    if (r < 0) {
        return r;
    }
    log_info("node %s registered and activated", a->cfg->node);
    return 0;
}

struct challenge {
    json_t *resp;          /* the answer, which holds nonce_b64 */
    const char *nonce_b64; /* sent back as it came */
    uint8_t nonce[64];
    size_t nonce_len;
    TPML_PCR_SELECTION sel;
    uint64_t next; /* the verifier's next index */
};

/* POST a challenge. 0 with ch->resp to release, or -ENOENT (404 or 403:
 * the verifier does not know the node), -EAGAIN (another status),
 * -EBADMSG, or the client's negative errno. */
static int challenge(struct agent *a, struct challenge *ch) {
    const char *sel_s;
    json_t *resp = NULL;
    int n, status;

    status = post_node(a, "challenges", NULL, &resp);
    if (status == 404 || status == 403) {
        json_decref(resp);
        return -ENOENT;
    }
    if (status != 200) {
        json_decref(resp);
        return status < 0 ? status : -EAGAIN;
    }
    ch->nonce_b64 = json_string_value(json_object_get(resp, "nonce"));
    sel_s = json_string_value(json_object_get(resp, "pcr_selection"));
    ch->next = (uint64_t)json_integer_value(json_object_get(resp, "ima_next_index"));
    n = ch->nonce_b64
                ? base64_decode(ch->nonce_b64, strlen(ch->nonce_b64), ch->nonce, sizeof(ch->nonce))
                : -1;
    if (n <= 0 || !sel_s || tpm_pcr_selection_parse(sel_s, &ch->sel) < 0) {
        json_decref(resp);
        return -EBADMSG;
    }
    ch->nonce_len = (size_t)n;
    ch->resp = resp;
    return 0;
}

/* Where the batch starts: entry *from, or entry 0 when the list is shorter
 * than that (*from is then 0 too). */
static int batch_start(struct list_position *pos, uint64_t *from, uint64_t *ret_offset) {
    int r = position_offset_of(pos, *from, ret_offset);

    if (r == -ERANGE) {
        /* The list is shorter than the verifier's position: the node
         * rebooted and the kernel started a new list. Send it from
         * entry 0; the verifier accepts that only when the quote or the
         * boot id shows the reboot. */
        log_info("the list restarted (reboot?): sending it from entry 0");
        *from = *ret_offset = 0;
        position_restart(pos);
        r = 0;
    }
    return r;
}

/* The quoted PCR values by bank: {"sha256": {"10": "<hex>"}, ...}. */
static void evidence_add_pcrs(json_t *req, const struct tpm_quote *q) {
    for (size_t i = 0; i < q->pcrs.n; i++) {
        enum ima_hash_alg alg;
        char idx[8], hex[129];
        json_t *bank;
        if (ima_hash_from_tpm_alg(q->pcrs.v[i].alg, &alg) < 0) {
            continue;
        }
        bank = json_object_get(json_object_get(req, "pcrs"), ima_hash_name(alg));
        if (!bank) {
            bank = json_object();
            json_object_set_new(json_object_get(req, "pcrs"), ima_hash_name(alg), bank);
        }
        snprintf(idx, sizeof(idx), "%u", q->pcrs.v[i].pcr);
        json_object_set_new(bank, idx,
                            json_string(hex_encode(q->pcrs.v[i].digest, q->pcrs.v[i].size, hex)));
    }
}

static json_t *evidence_request(const struct agent *a, const char *nonce_b64,
                                const struct tpm_quote *q, uint64_t from, const uint8_t *list,
                                size_t len, const char *boot_id) {
    json_t *req = json_pack("{s:s,s:{s:o,s:o},s:{},s:{s:I,s:o,s:I},s:s}", "nonce", nonce_b64,
                            "quote", "attest", json_base64(q->attest, q->attest_len), "signature",
                            json_base64(q->sig, q->sig_len), "pcrs", "ima", "from",
                            (json_int_t)from, "entries", json_base64(list, len), "digest_size",
                            (json_int_t)a->pos.digest_len, "boot_id", boot_id);

    evidence_add_pcrs(req, q);
    return req;
}

/* A 200 answer: keep the verifier's next index as the position; 1 trusted,
 * 0 not. */
static int evidence_answer(struct agent *a, const json_t *resp, const char *boot_id) {
    const char *verdict = json_string_value(json_object_get(resp, "verdict"));
    uint64_t next = (uint64_t)json_integer_value(json_object_get(resp, "ima_next_index"));
    uint64_t offset;
    int r;

    if (position_offset_of(&a->pos, next, &offset) == 0) {
        a->pos.known_index = next;
        a->pos.known_offset = offset;
        position_save(&a->pos, a->cfg->state_dir, boot_id);
    }
    r = verdict && strcmp(verdict, "trusted") == 0;
    log_debug("round: %s, next index %llu", verdict ? verdict : "?", (unsigned long long)next);
    if (!r) {
        log_warn("the verifier says %s: %s", verdict ? verdict : "no verdict",
                 answer_text(resp, "reason", "(no reason given)"));
    }
    return r;
}

/* Read the list of the bank the quote covers: the first bank of the
 * verifier's selection that has PCR 10 (one bank, sha256, by default). */
static void use_quoted_bank(struct agent *a, const TPML_PCR_SELECTION *sel) {
    for (UINT32 i = 0; i < sel->count && i < TPM2_NUM_PCR_BANKS; i++) {
        const TPMS_PCR_SELECTION *s = &sel->pcrSelections[i];
        enum ima_hash_alg alg;
        if (s->sizeofSelect > 1 && (s->pcrSelect[1] & 0x04) &&
            ima_hash_from_tpm_alg(s->hash, &alg) == 0) {
            position_use_bank(&a->pos, a->cfg->securityfs, alg);
            return;
        }
    }
}

int agent_round(struct agent *a) {
    struct challenge ch = {0};
    _cleanup_free_ uint8_t *list = NULL;
    size_t len = 0;
    uint64_t from, offset = 0;
    struct tpm_quote q;
    char boot_id[80];
    json_t *req, *resp = NULL;
    int status, r;

    r = challenge(a, &ch);
    if (r < 0) {
        return r;
    }
    /* Quote first, then read the list: the list then holds at least what
     * the quote covers, and the verifier finds the matching prefix. */
    from = ch.next;
    use_quoted_bank(a, &ch.sel);
    r = tpm_quote(a->tpm, &a->ak, ch.nonce, ch.nonce_len, &ch.sel, &q);
    if (r == 0) {
        r = batch_start(&a->pos, &from, &offset);
    }
    if (r == 0) {
        r = position_read_from(&a->pos, offset, &list, &len);
    }
    if (r < 0) {
        json_decref(ch.resp);
        return r;
    }
    position_boot_id(a->cfg->boot_id_file, boot_id, sizeof(boot_id));
    req = evidence_request(a, ch.nonce_b64, &q, from, list, len, boot_id);
    json_decref(ch.resp);
    position_index_batch(&a->pos, from, offset, list, len);
    status = post_node(a, "evidence", req, &resp);
    json_decref(req);
    if (status != 200) {
        /* 409 "node changed": another verifier of the deployment wrote the
         * node while this one checked the round; 409 "stale round": a newer
         * quote of the node was judged since the challenge. Nothing of the
         * round was recorded either way; a new round, here, goes through. */
        const char *error = resp ? json_string_value(json_object_get(resp, "error")) : NULL;
        bool changed = status == 409 && error &&
                       (strcmp(error, "node changed") == 0 || strcmp(error, "stale round") == 0);
        log_msg(changed ? LOG_LEVEL_INFO : LOG_LEVEL_WARN, "evidence refused: %d %s", status,
                answer_text(resp, "detail", "(no detail given)"));
        json_decref(resp);
        return status == 404 ? -ENOENT : changed ? -ESTALE : status < 0 ? status : -EAGAIN;
    }
    r = evidence_answer(a, resp, boot_id);
    json_decref(resp);
    return r;
}
