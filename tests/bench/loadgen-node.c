/* SPDX-License-Identifier: Apache-2.0 */
/* The TPM side of a simulated node: its keys (cached on disk when they are
 * RSA), its certificate, the IMA entries it appends and the bodies of its
 * requests. No I/O but the key cache and the ack log. */
#include "loadgen.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <tss2/tss2_mu.h>

#include "base64.h"
#include "credential.h"
#include "hex.h"
#include "json-util.h"
#include "pcr.h"
#include "pubkey.h"

struct lg_shared lg_shared = {.ack_lock = PTHREAD_MUTEX_INITIALIZER};

double lg_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --rsa-keys pool: RSA-2048 keys as products of two primes of a pool, so
 * 10,000 nodes get distinct moduli in seconds instead of the half hour
 * 15,000 key generations take here. Keys that share primes are no keys at
 * all (a GCD factors them): for load on a verifier, which only needs them
 * distinct, and nothing else. */
static struct {
    BIGNUM **p;
    size_t n;
} pool;

int lg_rsa_pool_init(size_t keys) {
    BIGNUM *e = BN_new(), *rem = BN_new();
    BN_CTX *bc = BN_CTX_new();
    size_t m = 2;
    int r = 0;

    while (m * (m - 1) / 2 < keys) {
        m++;
    }
    pool.p = calloc(m, sizeof(*pool.p));
    if (!pool.p || !e || !rem || !bc || !BN_set_word(e, 65537)) {
        r = -ENOMEM;
    }
    while (r == 0 && pool.n < m) {
        BIGNUM *p = BN_new();
        /* 1024-bit primes with their top two bits set (a 2048-bit n), and
         * p - 1 prime to e */
        if (!p || !BN_generate_prime_ex2(p, 1024, 0, NULL, NULL, NULL, bc) ||
            !BN_mod(rem, p, e, bc)) {
            BN_free(p);
            r = -ENOMEM;
        } else if (BN_is_one(rem)) {
            BN_free(p);
        } else {
            pool.p[pool.n++] = p;
        }
    }
    BN_free(e);
    BN_free(rem);
    BN_CTX_free(bc);
    return r;
}

void lg_rsa_pool_free(void) {
    for (size_t i = 0; i < pool.n; i++) {
        BN_free(pool.p[i]);
    }
    free(pool.p);
    pool.p = NULL;
    pool.n = 0;
}

/* The k-th pair (i < j) of the pool. */
static void pool_pair(size_t k, size_t *ret_i, size_t *ret_j) {
    size_t i = 0;

    while (k >= pool.n - 1 - i) {
        k -= pool.n - 1 - i;
        i++;
    }
    *ret_i = i;
    *ret_j = i + 1 + k;
}

/* The RSA key n = p q with e = 65537 and its CRT parameters. */
static EVP_PKEY *pool_key(size_t k) {
    BN_CTX *bc = BN_CTX_new();
    BIGNUM *n = BN_new(), *d = BN_new(), *p1 = BN_new(), *q1 = BN_new(), *phi = BN_new(),
           *dp = BN_new(), *dq = BN_new(), *qi = BN_new(), *e = BN_new();
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *c = NULL;
    EVP_PKEY *key = NULL;
    const BIGNUM *p, *q;
    size_t i, j;

    if (k >= pool.n * (pool.n - 1) / 2 || !bc || !n || !d || !p1 || !q1 || !phi || !dp || !dq ||
        !qi || !e || !b) {
        goto out;
    }
    pool_pair(k, &i, &j);
    p = pool.p[j]; /* CRT: p > q is not needed, iqmp = q^-1 mod p */
    q = pool.p[i];
    if (BN_set_word(e, 65537) && BN_mul(n, p, q, bc) && BN_sub(p1, p, BN_value_one()) &&
        BN_sub(q1, q, BN_value_one()) && BN_mul(phi, p1, q1, bc) && BN_mod_inverse(d, e, phi, bc) &&
        BN_mod(dp, d, p1, bc) && BN_mod(dq, d, q1, bc) && BN_mod_inverse(qi, q, p, bc) &&
        BN_num_bits(n) == 2048 && OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, n) &&
        OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, e) &&
        OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_D, d) &&
        OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_FACTOR1, p) &&
        OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_FACTOR2, q) &&
        OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_EXPONENT1, dp) &&
        OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_EXPONENT2, dq) &&
        OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, qi) &&
        (params = OSSL_PARAM_BLD_to_param(b)) &&
        (c = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) && EVP_PKEY_fromdata_init(c) > 0) {
        EVP_PKEY_fromdata(c, &key, EVP_PKEY_KEYPAIR, params);
    }
out:
    EVP_PKEY_CTX_free(c);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(b);
    BN_CTX_free(bc);
    BN_free(n);
    BN_clear_free(d);
    BN_free(p1);
    BN_free(q1);
    BN_clear_free(phi);
    BN_clear_free(dp);
    BN_clear_free(dq);
    BN_free(qi);
    BN_free(e);
    return key;
}

/* A key of `kind` ("ek" or "ak") for node idx: from the cache when it has
 * one, else made (and cached when it is RSA: 10,000 RSA keys take minutes). */
static EVP_PKEY *node_key(const char *cache_dir, const char *kind, unsigned idx, bool ecc) {
    char path[4096];
    EVP_PKEY *k = NULL;
    FILE *f;

    if (ecc) {
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    }
    if (pool.n) {
        /* EKs take the pairs 0..N-1, AKs the next ones */
        return pool_key((idx - 1) * 2u + (strcmp(kind, "ak") == 0));
    }
    if (cache_dir && snprintf(path, sizeof(path), "%s/%s-rsa-%05u.pem", cache_dir, kind, idx) <
                             (int)sizeof(path)) {
        if ((f = fopen(path, "r"))) {
            k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
            fclose(f);
            if (k && EVP_PKEY_is_a(k, "RSA") && EVP_PKEY_get_bits(k) == 2048) {
                return k;
            }
            EVP_PKEY_free(k); /* a damaged cache entry: made again */
        }
    }
    k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    if (k && cache_dir) {
        char tmp[4200];
        snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
        if ((f = fopen(tmp, "w"))) {
            int ok = PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
            if (fclose(f) == 0 && ok) {
                rename(tmp, path);
            } else {
                unlink(tmp);
            }
        }
    }
    return k;
}

int lg_node_init(struct lg_node *n, unsigned idx, const struct lg_config *cfg,
                 const struct test_pki *ca) {
    bool ak_ecc = cfg->ak_mode == 1 || (cfg->ak_mode == 2 && idx % 2 == 0);
    EVP_PKEY *ek, *ak;
    unsigned a = cfg->sources ? (idx - 1) % cfg->sources : idx - 1;

    memset(n, 0, sizeof(*n));
    n->idx = idx;
    n->fd = -1;
    snprintf(n->name, sizeof(n->name), "load-%05u", idx);
    kbuf_init(&n->out, LG_RESPONSE_MAX + LG_LIST_MAX);
    kbuf_init(&n->in, LG_RESPONSE_MAX);
    ima_gen_init(&n->g, 32, LG_LIST_MAX);
    n->clock = 1000000;
    /* node i -> 127.1.(i/250).(i%250+1): its own address, as real nodes */
    n->src.sin_family = AF_INET;
    n->src.sin_addr.s_addr = htonl(0x7f010000u | ((a / 250) & 0xff) << 8 | (a % 250 + 1));
    ek = node_key(cfg->cache_dir, "ek", idx, cfg->ek_ecc);
    if (!ek || soft_ek_from_key(&n->ek, ek) < 0) {
        return -ENOMEM;
    }
    ak = node_key(cfg->cache_dir, "ak", idx, ak_ecc);
    if (!ak || fake_ak_from_key(&n->ak, ak) < 0 || tpm_public_name(&n->ak.pub, &n->ak_name) < 0) {
        return -ENOMEM;
    }
    if (test_pki_issue(&n->cert, "kima-agent", n->name, ca, "clientAuth", NULL) < 0) {
        return -ENOMEM;
    }
    return 0;
}

void lg_node_free(struct lg_node *n) {
    soft_ek_free(&n->ek);
    fake_ak_free(&n->ak);
    test_pki_free(&n->cert);
    ima_gen_free(&n->g);
    kbuf_free(&n->out);
    kbuf_free(&n->in);
    SSL_free(n->ssl);
    SSL_SESSION_free(n->session);
    if (n->fd >= 0) {
        close(n->fd);
    }
}

static char *dump(json_t *j) {
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

char *lg_registration_body(const struct lg_node *n) {
    TPM2B_PUBLIC ek = {.publicArea = n->ek.pub}, ak = {.publicArea = n->ak.pub};
    uint8_t eb[sizeof(TPM2B_PUBLIC)], ab[sizeof(TPM2B_PUBLIC)];
    size_t el = 0, al = 0;

    if (Tss2_MU_TPM2B_PUBLIC_Marshal(&ek, eb, sizeof(eb), &el) != TSS2_RC_SUCCESS ||
        Tss2_MU_TPM2B_PUBLIC_Marshal(&ak, ab, sizeof(ab), &al) != TSS2_RC_SUCCESS) {
        return NULL;
    }
    return dump(
            json_pack("{s:o,s:o}", "ek_pub", json_base64(eb, el), "ak_pub", json_base64(ab, al)));
}

char *lg_activation_body(struct lg_node *n, const char *answer, size_t len) {
    json_t *j = json_loadb(answer, len, 0, NULL);
    uint8_t *blob = NULL, *sec = NULL, cred[64], proof[TPM_ACTIVATION_PROOF_SIZE];
    size_t bl = 0, sl = 0, off = 0, cl = 0;
    TPM2B_ID_OBJECT id = {0};
    TPM2B_ENCRYPTED_SECRET es = {0};
    char err[128], *out = NULL;

    if (j && json_get_base64(j, "credential_blob", sizeof(id), &blob, &bl, err, sizeof(err)) == 0 &&
        json_get_base64(j, "secret", sizeof(es), &sec, &sl, err, sizeof(err)) == 0 &&
        Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(blob, bl, &off, &id) == TSS2_RC_SUCCESS &&
        (off = 0, Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(sec, sl, &off, &es)) ==
                TSS2_RC_SUCCESS &&
        soft_activate_credential(&n->ek, &n->ak_name, &id, &es, cred, &cl) == 0 &&
        tpm_activation_proof(cred, cl, n->name, n->ak_name.name, n->ak_name.size, proof) == 0) {
        out = dump(json_pack("{s:o}", "proof", json_base64(proof, sizeof(proof))));
    }
    json_decref(j);
    free(blob);
    free(sec);
    return out;
}

void lg_pod_uid(unsigned node, unsigned pod, char ret[37]) {
    snprintf(ret, 37, "%08x-%04x-4000-8000-00000000%04x", node, pod & 0xffffu, pod & 0xffffu);
}

static void container_id(unsigned node, unsigned pod, char ret[65]) {
    snprintf(ret, 65, "%08x%08x%048d", node, pod, 0);
}

/* This round's K entries, spread over the node's pods: ima-cgpath with
 * the systemd driver's cgroup path of the pod's container, a digest the
 * policy allows. PCR 10 of every bank extended (ima-gen.c). */
static int add_entries(struct lg_node *n, const struct lg_config *cfg) {
    static const uint8_t fd[32] = {[31] = 1};

    for (unsigned x = 0; x < cfg->entries; x++) {
        unsigned pod = (unsigned)((n->round_no * cfg->entries + x) % cfg->pods);
        char uid[37], cid[65], cg[300], s1[80], s2[300], s3[100];
        uint8_t d[64];
        int r;

        lg_pod_uid(n->idx, pod, uid);
        for (char *p = uid; *p; p++) {
            *p = *p == '-' ? '_' : *p;
        }
        container_id(n->idx, pod, cid);
        snprintf(cg, sizeof(cg),
                 "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod%s.slice/"
                 "cri-containerd-%s.scope",
                 uid, cid);
        snprintf(s3, sizeof(s3), "/usr/lib/python3/dist-packages/m%llu.py",
                 (unsigned long long)n->g.count);
        struct gen_field f[4] = {gen_str(s1, "/usr/bin/python3:/usr/bin/containerd-shim-runc-v2"),
                                 gen_str(s2, cg), gen_dng(d, "sha256:", fd, 32), gen_str(s3, s3)};
        r = ima_gen_add(&n->g, 10, "ima-cgpath", f, 4, false);
        if (r < 0) {
            return r;
        }
    }
    return 0;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Drop the first k unacknowledged entries: a verifier recorded them but
 * its answer never came (it died after its commit); the next challenge
 * says so with its ima_next_index, and the node goes on from there, as
 * the agent does. 0, or -EBADMSG when the list is shorter. */
static int drop_entries(struct lg_node *n, uint64_t k) {
    const uint8_t *p = n->g.list.data;
    size_t off = 0, len = n->g.list.len;

    for (uint64_t i = 0; i < k; i++) {
        uint32_t l;
        if (len - off < 4 + (size_t)n->g.digest_len + 4) {
            return -EBADMSG;
        }
        off += 4 + n->g.digest_len;
        l = le32(p + off);
        off += 4;
        if (len - off < (size_t)l + 4) {
            return -EBADMSG;
        }
        off += l;
        l = le32(p + off);
        off += 4;
        if (len - off < l) {
            return -EBADMSG;
        }
        off += l;
    }
    memmove(n->g.list.data, p + off, len - off);
    n->g.list.len = len - off;
    n->base += k;
    return 0;
}

/* The challenge answer: the nonce (kept as it came), a selection of
 * sha256 PCR 10 (what a node quotes by default), the verifier's
 * ima_next_index (entries before it dropped). 0 or -EBADMSG. */
static int challenge_answer(struct lg_node *n, const char *answer, size_t len, uint8_t *nonce,
                            size_t *ret_nonce_len) {
    json_t *j = json_loadb(answer, len, 0, NULL);
    const char *nb = json_string_value(json_object_get(j, "nonce"));
    const char *sel = json_string_value(json_object_get(j, "pcr_selection"));
    int nl =
            nb && strlen(nb) < sizeof(n->nonce_b64) ? base64_decode(nb, strlen(nb), nonce, 64) : -1;
    int r = -EBADMSG;

    json_t *next = json_object_get(j, "ima_next_index");
    uint64_t nx = json_is_integer(next) ? (uint64_t)json_integer_value(next) : 0;

    if (nx > n->base && nx <= n->g.count && drop_entries(n, nx - n->base) < 0) {
        nl = -1;
    }
    if (nl > 0 && sel && strcmp(sel, "sha256:10") == 0) {
        snprintf(n->nonce_b64, sizeof(n->nonce_b64), "%s", nb);
        *ret_nonce_len = (size_t)nl;
        r = 0;
    }
    json_decref(j);
    return r;
}

char *lg_evidence_body(struct lg_node *n, const struct lg_config *cfg, const char *answer,
                       size_t len) {
    uint8_t nonce[64], attest[sizeof(TPMS_ATTEST)], sig[sizeof(TPMT_SIGNATURE)];
    size_t nl = 0, alen = 0, slen = 0;
    TPML_PCR_SELECTION sel;
    TPMS_ATTEST a;
    char hex[65];
    bool ecc = n->ak.pub.type == TPM2_ALG_ECC;

    if (challenge_answer(n, answer, len, nonce, &nl) < 0 || add_entries(n, cfg) < 0 ||
        tpm_pcr_selection_parse("sha256:10", &sel) < 0) {
        return NULL;
    }
    n->round_no++;
    fake_attest_init(&a, nonce, nl, &sel, n->g.pcr[1][10], 32);
    a.clockInfo.clock = ++n->clock;
    if (fake_quote(&n->ak, &a, NULL, ecc ? TPM2_ALG_ECDSA : TPM2_ALG_RSASSA, TPM2_ALG_SHA256,
                   attest, &alen, sig, &slen) < 0) {
        return NULL;
    }
    return dump(json_pack("{s:s,s:{s:o,s:o},s:{s:{s:s}},s:{s:I,s:o,s:i},s:s}", "nonce",
                          n->nonce_b64, "quote", "attest", json_base64(attest, alen), "signature",
                          json_base64(sig, slen), "pcrs", "sha256", "10",
                          hex_encode(n->g.pcr[1][10], 32, hex), "ima", "from", (json_int_t)n->base,
                          "entries", json_base64(n->g.list.data, n->g.list.len), "digest_size", 32,
                          "boot_id", "loadgen-boot"));
}

int lg_evidence_answer(struct lg_node *n, const char *answer, size_t len) {
    json_t *j = json_loadb(answer, len, 0, NULL);
    const char *verdict = json_string_value(json_object_get(j, "verdict"));
    json_t *next = json_object_get(j, "ima_next_index");
    int r = -EBADMSG;

    if (verdict && json_is_integer(next)) {
        uint64_t nx = (uint64_t)json_integer_value(next);
        if (nx == n->g.count) {
            /* everything taken: what the node keeps is only the PCRs */
            kbuf_reset(&n->g.list);
            n->base = nx;
        }
        if (lg_shared.ack || lg_shared.rounds) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            pthread_mutex_lock(&lg_shared.ack_lock);
            if (lg_shared.ack) {
                fprintf(lg_shared.ack, "%s %llu\n", n->name, (unsigned long long)nx);
                fflush(lg_shared.ack);
            }
            if (lg_shared.rounds) {
                fprintf(lg_shared.rounds, "%lld %s %s %llu\n",
                        (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, n->name, n->nonce_b64,
                        (unsigned long long)nx);
                fflush(lg_shared.rounds);
            }
            pthread_mutex_unlock(&lg_shared.ack_lock);
        }
        r = strcmp(verdict, "trusted") == 0 ? 0 : -EPERM;
    }
    json_decref(j);
    return r;
}

int lg_write_pods(const char *path, unsigned nodes, unsigned pods) {
    FILE *f = fopen(path, "w");
    int r;

    if (!f) {
        return -errno;
    }
    fprintf(f, "{\"apiVersion\":\"v1\",\"kind\":\"PodList\",\"items\":[");
    for (unsigned i = 1; i <= nodes; i++) {
        for (unsigned p = 0; p < pods; p++) {
            char uid[37], cid[65];
            lg_pod_uid(i, p, uid);
            container_id(i, p, cid);
            fprintf(f,
                    "%s\n{\"metadata\":{\"uid\":\"%s\",\"namespace\":\"load\",\"name\":"
                    "\"pod-%05u-%u\",\"labels\":{\"app\":\"load\"}},\"spec\":{\"nodeName\":"
                    "\"load-%05u\"},\"status\":{\"containerStatuses\":[{\"name\":\"c\","
                    "\"containerID\":\"containerd://%s\"}]}}",
                    i == 1 && p == 0 ? "" : ",", uid, i, p, i, cid);
        }
    }
    fprintf(f, "]}\n");
    r = ferror(f) ? -EIO : 0;
    if (fclose(f) != 0) {
        r = -EIO;
    }
    return r;
}
