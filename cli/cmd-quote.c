/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "hash.h"
#include "hex.h"
#include "json-writer.h"
#include "kimactl.h"
#include "log.h"
#include "parse.h"
#include "pubkey.h"
#include "quote-verify.h"

#define QUOTE_FILE_MAX (64u * 1024)

static void quote_usage(FILE *f) {
    fprintf(f,
            "Usage: kimactl quote verify --ak AKPUB --nonce HEX --attest FILE --signature FILE\n"
            "                            [--pcr BANK:INDEX=HEX ...] [--json]\n"
            "       kimactl quote show --attest FILE [--json]\n"
            "\n"
            "Check a TPM 2.0 quote without a TPM, as the kima verifier does.\n"
            "\n"
            "  --ak AKPUB           the attestation key: a TPM2B_PUBLIC (tpm2_createak -u) or a\n"
            "                       PEM public key; a TPM2B_PUBLIC must also have the AK\n"
            "                       attributes (restricted, sign only, fixedTPM, fixedParent,\n"
            "                       sensitiveDataOrigin) and fixes the signature scheme\n"
            "  --nonce HEX          the qualifying data the quote must carry\n"
            "  --attest FILE        the signed TPMS_ATTEST (tpm2_quote -m)\n"
            "  --signature FILE     the TPMT_SIGNATURE (tpm2_quote -s)\n"
            "  --pcr BANK:INDEX=HEX a PCR value the quote covers; repeat for each. The quote's\n"
            "                       selection must be exactly these PCRs and its pcrDigest\n"
            "                       their hash. Without --pcr, neither is checked.\n"
            "  --json               print JSON\n"
            "\n"
            "verify exit codes: 0 valid; 1 invalid, naming the failed check (magic, type,\n"
            "signature-scheme, signature, nonce, pcr-selection, pcr-values, pcr-digest,\n"
            "ak-attributes); 2 malformed input; 64 usage; 66 unreadable file.\n"
            "show exit codes: 0 decoded, 2 malformed, 64 usage, 66 unreadable file.\n");
}

static int read_input(const char *what, const char *path, uint8_t **ret, size_t *ret_len) {
    char esc[300];
    int r = read_file_capped(path, QUOTE_FILE_MAX, ret, ret_len);

    if (r < 0) {
        log_escape(path, strlen(path), esc, sizeof(esc));
        log_error("%s %s: %s", what, esc, r == -EFBIG ? "larger than 64 KiB" : strerror(-r));
        return r == -EFBIG ? EXIT_MALFORMED : EXIT_NOINPUT;
    }
    return 0;
}

/* tpm2_quote -m writes the bare TPMS_ATTEST; accept a TPM2B_ATTEST too. */
static void strip_tpm2b(uint8_t **data, size_t *len) {
    if (*len > 2 && ((size_t)(*data)[0] << 8 | (*data)[1]) == *len - 2 &&
        !((*data)[2] == 0xff && (*data)[3] == 'T')) {
        memmove(*data, *data + 2, *len - 2);
        *len -= 2;
    }
}

static void write_attest_text(FILE *f, const TPMS_ATTEST *a) {
    char hex[2 * sizeof(TPMU_HA) + 1], sel[256];
    char signer[2 * sizeof(a->qualifiedSigner.name) + 1];

    fprintf(f, "magic: 0x%08" PRIx32 "\ntype: 0x%04x (quote)\n", a->magic, a->type);
    fprintf(f, "qualifiedSigner: %s\n",
            hex_encode(a->qualifiedSigner.name, a->qualifiedSigner.size, signer));
    fprintf(f, "extraData: %s\n", hex_encode(a->extraData.buffer, a->extraData.size, hex));
    fprintf(f, "clock: %" PRIu64 "\nresetCount: %" PRIu32 "\nrestartCount: %" PRIu32 "\nsafe: %u\n",
            a->clockInfo.clock, a->clockInfo.resetCount, a->clockInfo.restartCount,
            a->clockInfo.safe);
    fprintf(f, "firmwareVersion: 0x%016" PRIx64 "\n", a->firmwareVersion);
    fprintf(f, "pcrSelect: %s\n",
            tpm_pcr_selection_format(&a->attested.quote.pcrSelect, sel, sizeof(sel)));
    fprintf(f, "pcrDigest: %s\n",
            hex_encode(a->attested.quote.pcrDigest.buffer, a->attested.quote.pcrDigest.size, hex));
}

static void write_attest_json(struct json_writer *w, const TPMS_ATTEST *a) {
    char sel[256];

    jw_object_begin(w);
    jw_key(w, "magic");
    jw_uint(w, a->magic);
    jw_key(w, "type");
    jw_uint(w, a->type);
    jw_key(w, "qualified_signer");
    jw_hex(w, a->qualifiedSigner.name, a->qualifiedSigner.size);
    jw_key(w, "extra_data");
    jw_hex(w, a->extraData.buffer, a->extraData.size);
    jw_key(w, "clock");
    jw_uint(w, a->clockInfo.clock);
    jw_key(w, "reset_count");
    jw_uint(w, a->clockInfo.resetCount);
    jw_key(w, "restart_count");
    jw_uint(w, a->clockInfo.restartCount);
    jw_key(w, "safe");
    jw_bool(w, a->clockInfo.safe == TPM2_YES);
    jw_key(w, "firmware_version");
    jw_uint(w, a->firmwareVersion);
    jw_key(w, "pcr_select");
    jw_string(w, tpm_pcr_selection_format(&a->attested.quote.pcrSelect, sel, sizeof(sel)));
    jw_key(w, "pcr_digest");
    jw_hex(w, a->attested.quote.pcrDigest.buffer, a->attested.quote.pcrDigest.size);
    jw_object_end(w);
}

static int print_json(struct kbuf *b) {
    kbuf_putc(b, '\n');
    return write_full(STDOUT_FILENO, b->data, b->len) < 0 ? EXIT_SOFTWARE : 0;
}

static int do_show(const char *attest_path, bool json) {
    _cleanup_free_ uint8_t *data = NULL;
    TPMS_ATTEST a;
    const char *why = "";
    size_t len;
    int code;

    code = read_input("attestation", attest_path, &data, &len);
    if (code) {
        return code;
    }
    strip_tpm2b(&data, &len);
    if (tpm_attest_decode(data, len, &a, &why) != TPM_QUOTE_OK) {
        log_error("attestation: %s", why);
        return EXIT_MALFORMED;
    }
    if (json) {
        _cleanup_kbuf_ struct kbuf b = KBUF_INIT(1 << 20);
        struct json_writer w;
        jw_init(&w, &b);
        write_attest_json(&w, &a);
        return jw_error(&w) ? EXIT_SOFTWARE : print_json(&b);
    }
    write_attest_text(stdout, &a);
    return EXIT_OK;
}

struct verify_args {
    const char *ak, *nonce, *attest, *sig;
    bool json;
    TPML_PCR_SELECTION sel;
    struct tpm_pcr_values pcrs;
};

/* "sha256:10=<hex>": add the value and its PCR to the selection. */
static int add_pcr(struct verify_args *a, const char *arg) {
    const char *colon = strchr(arg, ':'), *eq = strchr(arg, '=');
    enum ima_hash_alg alg;
    uint8_t digest[64];
    uint64_t pcr;
    uint16_t tpm_alg;
    TPMS_PCR_SELECTION *bank = NULL;
    int n;

    if (!colon || !eq || eq < colon || ima_hash_from_name(arg, (size_t)(colon - arg), &alg) < 0 ||
        parse_u64_n(colon + 1, (size_t)(eq - colon - 1), &pcr) < 0 || pcr >= TPM_PCR_COUNT ||
        strlen(eq + 1) != 2 * ima_hash_size(alg) ||
        (n = hex_decode(eq + 1, strlen(eq + 1), digest, sizeof(digest))) < 0) {
        return -EINVAL;
    }
    tpm_alg = ima_hash_tpm_alg(alg);
    if (tpm_pcr_values_set(&a->pcrs, tpm_alg, (unsigned)pcr, digest, (size_t)n) < 0) {
        return -EINVAL;
    }
    for (uint32_t i = 0; i < a->sel.count; i++) {
        if (a->sel.pcrSelections[i].hash == tpm_alg) {
            bank = &a->sel.pcrSelections[i];
        }
    }
    if (!bank) {
        bank = &a->sel.pcrSelections[a->sel.count++];
        bank->hash = tpm_alg;
        bank->sizeofSelect = 3;
    }
    bank->pcrSelect[pcr / 8] |= (uint8_t)(1u << (pcr % 8));
    return 0;
}

static int report(const struct verify_args *a, bool valid, const char *check, const char *why,
                  const struct tpm_quote_result *res) {
    if (a->json) {
        _cleanup_kbuf_ struct kbuf b = KBUF_INIT(1 << 20);
        struct json_writer w;
        jw_init(&w, &b);
        jw_object_begin(&w);
        jw_key(&w, "valid");
        jw_bool(&w, valid);
        jw_key(&w, "check");
        jw_string(&w, check);
        jw_key(&w, "reason");
        jw_string(&w, why);
        jw_key(&w, "pcrs_checked");
        jw_bool(&w, a->sel.count > 0);
        if (res && res->decoded) {
            jw_key(&w, "attest");
            write_attest_json(&w, &res->attest);
        }
        jw_object_end(&w);
        if (jw_error(&w) || print_json(&b)) {
            return EXIT_SOFTWARE;
        }
    } else if (valid) {
        printf("valid: signature, nonce, %s and clock checks passed\n",
               a->sel.count ? "PCR selection, pcrDigest" : "(PCRs not checked: no --pcr)");
    } else {
        printf("invalid: %s: %s\n", check, why);
    }
    return valid ? EXIT_OK : EXIT_MISMATCH;
}

static int do_verify(struct verify_args *a) {
    _cleanup_free_ uint8_t *akbuf = NULL, *attest = NULL, *sig = NULL;
    struct tpm_verify_key key = {0};
    struct tpm_quote_result res;
    uint8_t nonce[64];
    size_t aklen, alen, slen, nlen = strlen(a->nonce);
    const char *why = NULL;
    int n, code;

    n = hex_decode(a->nonce, nlen, nonce, sizeof(nonce));
    if (n < 0) {
        fprintf(stderr, "kimactl quote verify: --nonce takes up to 64 bytes of hex\n");
        return EXIT_USAGE;
    }
    if ((code = read_input("AK", a->ak, &akbuf, &aklen)) ||
        (code = read_input("attestation", a->attest, &attest, &alen)) ||
        (code = read_input("signature", a->sig, &sig, &slen))) {
        return code;
    }
    if (tpm_verify_key_load(akbuf, aklen, &key) < 0) {
        log_error("AK: neither a TPM2B_PUBLIC nor a PEM public key of a usable type");
        return EXIT_MALFORMED;
    }
    if (key.has_public && tpm_ak_public_check(&key.pub, &why) < 0) {
        tpm_verify_key_free(&key);
        return report(a, false, "ak-attributes", why, NULL);
    }
    strip_tpm2b(&attest, &alen);
    struct tpm_quote_expect e = {
            .nonce = nonce,
            .nonce_len = (size_t)n,
            .selection = a->sel.count ? &a->sel : NULL,
            .pcrs = &a->pcrs,
    };
    tpm_quote_verify(&key, attest, alen, sig, slen, &e, &res);
    tpm_verify_key_free(&key);
    if (res.failed == TPM_QUOTE_MALFORMED) {
        log_error("%s", res.why);
        return EXIT_MALFORMED;
    }
    return report(a, res.failed == TPM_QUOTE_OK, tpm_quote_check_name(res.failed), res.why, &res);
}

int cmd_quote(int argc, char **argv) {
    static const struct option opts[] = {
            {"ak", required_argument, NULL, 'k'},     {"nonce", required_argument, NULL, 'n'},
            {"attest", required_argument, NULL, 'a'}, {"signature", required_argument, NULL, 's'},
            {"pcr", required_argument, NULL, 'p'},    {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},         {0},
    };
    struct verify_args *a;
    const char *cmd;
    int o, code;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        quote_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    cmd = argv[1];
    if (strcmp(cmd, "verify") != 0 && strcmp(cmd, "show") != 0) {
        fprintf(stderr, "kimactl quote: unknown command \"%s\" (see kimactl quote --help)\n", cmd);
        return EXIT_USAGE;
    }
    a = calloc(1, sizeof(*a));
    if (!a) {
        return EXIT_SOFTWARE;
    }
    argc--;
    argv++;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'k':
            a->ak = optarg;
            break;
        case 'n':
            a->nonce = optarg;
            break;
        case 'a':
            a->attest = optarg;
            break;
        case 's':
            a->sig = optarg;
            break;
        case 'p':
            if (add_pcr(a, optarg) < 0) {
                fprintf(stderr, "kimactl quote: --pcr takes BANK:INDEX=HEX (sha1, sha256, sha384, "
                                "sha512; index 0-23; the bank's digest size)\n");
                free(a);
                return EXIT_USAGE;
            }
            break;
        case 'j':
            a->json = true;
            break;
        case 'h':
            quote_usage(stdout);
            free(a);
            return EXIT_OK;
        default:
            quote_usage(stderr);
            free(a);
            return EXIT_USAGE;
        }
    }
    if (optind != argc || !a->attest ||
        (strcmp(cmd, "verify") == 0 && (!a->ak || !a->nonce || !a->sig))) {
        fprintf(stderr, "kimactl quote %s: missing or extra arguments (see kimactl quote --help)\n",
                cmd);
        free(a);
        return EXIT_USAGE;
    }
    code = strcmp(cmd, "show") == 0 ? do_show(a->attest, a->json) : do_verify(a);
    free(a);
    return code;
}
