/* SPDX-License-Identifier: Apache-2.0 */
/* Test stand-in for the node agent's TPM side, one step a call, so a shell
 * test can drive the verifier's HTTP protocol with curl and a real TPM:
 *
 *   agent-tool TCTI DIR init                      -> registration JSON
 *   agent-tool TCTI DIR activate NODE RESP.json   -> activation JSON
 *   agent-tool TCTI DIR evidence CHALLENGE.json LIST FROM_INDEX BOOT_ID [DROP]
 *       -> evidence JSON with the entries of LIST from entry FROM_INDEX on
 *          (DROP: leave out the last DROP entries)
 *
 * DIR keeps the AK blob between calls. tests/helpers/ima-writer plays the
 * kernel (writes LIST and extends PCR 10). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tss2/tss2_mu.h>

#include "base64.h"
#include "credential.h"
#include "fileio.h"
#include "hex.h"
#include "json-util.h"
#include "keys.h"
#include "list.h"
#include "quote.h"
#include "verify.h"

static json_t *public_b64(const TPM2B_PUBLIC *p) {
    uint8_t buf[sizeof(*p)];
    size_t off = 0;
    Tss2_MU_TPM2B_PUBLIC_Marshal(p, buf, sizeof(buf), &off);
    return json_base64(buf, off);
}

static int print(json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT);
    printf("%s\n", s);
    free(s);
    json_decref(j);
    return 0;
}

static json_t *load_json(const char *path) {
    uint8_t *data;
    size_t len;
    json_t *j = NULL;
    char err[200];
    if (read_file_capped(path, 1 << 20, &data, &len) < 0 ||
        json_parse_bounded((const char *)data, len, 16, 1u << 16, &j, err, sizeof(err)) < 0) {
        fprintf(stderr, "agent-tool: %s is not JSON\n", path);
        exit(2);
    }
    free(data);
    return j;
}

int main(int argc, char **argv) {
    struct tpm *t = NULL;
    struct tpm_key ek = TPM_KEY_INIT, ak = TPM_KEY_INIT;
    char blob[4096];
    int code = 64;

    if (argc < 4) {
        fprintf(stderr, "usage: see the comment at the top of agent-tool.c\n");
        return 64;
    }
    setenv("TSS2_LOG", "all+none", 0);
    snprintf(blob, sizeof(blob), "%s/ak.blob", argv[2]);
    if (tpm_open(argv[1], &t) < 0 || tpm_ek_load(t, TPM_KEY_RSA, &ek) < 0) {
        return 1;
    }
    if (strcmp(argv[3], "init") == 0) {
        if (tpm_ak_create(t, &ek, TPM_KEY_RSA, blob, &ak) < 0) {
            return 1;
        }
        code = print(json_pack("{s:o,s:o}", "ek_pub", public_b64(&ek.public), "ak_pub",
                               public_b64(&ak.public)));
    } else if (tpm_ak_load(t, &ek, blob, &ak) < 0) {
        return 1;
    } else if (strcmp(argv[3], "activate") == 0 && argc == 6) {
        json_t *r = load_json(argv[5]);
        uint8_t *bl, *se, cred[64], proof[TPM_ACTIVATION_PROOF_SIZE];
        size_t bll, sel, cl, off = 0;
        char err[200];
        TPM2B_ID_OBJECT id = {0};
        TPM2B_ENCRYPTED_SECRET es = {0};
        if (json_get_base64(r, "credential_blob", 4096, &bl, &bll, err, sizeof(err)) < 0 ||
            json_get_base64(r, "secret", 4096, &se, &sel, err, sizeof(err)) < 0 ||
            Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(bl, bll, &off, &id) != TSS2_RC_SUCCESS ||
            (off = 0, Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(se, sel, &off, &es)) !=
                    TSS2_RC_SUCCESS ||
            tpm_activate_credential(t, &ak, &ek, &id, &es, cred, &cl) < 0) {
            return 1;
        }
        free(bl);
        free(se);
        json_decref(r);
        if (tpm_activation_proof(cred, cl, argv[4], ak.name.name, ak.name.size, proof) < 0) {
            return 1;
        }
        code = print(json_pack("{s:o}", "proof", json_base64(proof, sizeof(proof))));
    } else if (strcmp(argv[3], "evidence") == 0 && argc >= 8) {
        json_t *c = load_json(argv[4]);
        const char *nb = json_string_value(json_object_get(c, "nonce"));
        uint8_t nonce[64], *list;
        size_t llen, off = 0, start = 0;
        int nl = nb ? base64_decode(nb, strlen(nb), nonce, sizeof(nonce)) : -1;
        uint64_t from = strtoull(argv[6], NULL, 10),
                 drop = argc > 8 ? strtoull(argv[8], NULL, 10) : 0;
        size_t ends[100000], nent = 0;
        struct tpm_quote q;
        TPML_PCR_SELECTION sel;
        struct ima_parser p;
        struct ima_entry e;
        char hex[65];

        if (nl < 0 || read_file_capped(argv[5], 1 << 26, &list, &llen) < 0) {
            return 2;
        }
        ima_parser_init(&p, 20);
        while (off < llen && nent < 100000) {
            int n = ima_parser_next(&p, list + off, llen - off, &e);
            if (n <= 0) {
                break;
            }
            off += (size_t)n;
            ends[nent++] = off;
            if (nent == from) {
                start = off;
            }
        }
        if (from == 0) {
            start = 0;
        }
        if (drop && drop <= nent) {
            llen = nent - drop > 0 ? ends[nent - drop - 1] : 0;
        }
        tpm_pcr_selection_parse("sha256:10", &sel);
        if (tpm_quote(t, &ak, nonce, (size_t)nl, &sel, &q) < 0) {
            return 1;
        }
        code = print(json_pack(
                "{s:s,s:{s:o,s:o},s:{s:{s:s}},s:{s:I,s:o},s:s}", "nonce", nb, "quote", "attest",
                json_base64(q.attest, q.attest_len), "signature", json_base64(q.sig, q.sig_len),
                "pcrs", "sha256", "10", hex_encode(q.pcrs.v[0].digest, 32, hex), "ima", "from",
                (json_int_t)from, "entries",
                json_base64(list + start, llen > start ? llen - start : 0), "boot_id", argv[7]));
        free(list);
        json_decref(c);
    }
    tpm_key_release(t, &ak);
    tpm_key_release(t, &ek);
    tpm_close(t);
    return code;
}
