/* SPDX-License-Identifier: Apache-2.0 */
/* kimactl's operator commands: nodes, pods, resets, deletes over the
 * verifier's API; audit log verification and listing from files. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/pem.h>

#include "api-client.h"
#include "audit-deploy.h"
#include "audit.h"
#include "fileio.h"
#include "json-util.h"
#include "kimactl.h"
#include "log.h"

struct ops_args {
    struct api api;
    bool json;
    bool server_given;        /* --server after the command */
    bool allow_unsigned_tail; /* audit verify */
    const char *state, *reason, *key, *pod, *node, *since;
    /* audit verify over a deployment */
    const char *chains[AUDIT_DEPLOY_CHAINS_MAX + 1];
    size_t nchains;
    const char *deployment, *expect_replicas;
};

static void ops_usage(FILE *f) {
    fprintf(f,
            "Usage: kimactl [CONNECTION] nodes [--json]\n"
            "       kimactl [CONNECTION] node delete NAME\n"
            "       kimactl [CONNECTION] pods [--state trusted|untrusted|unknown] [--json]\n"
            "       kimactl [CONNECTION] pod NAMESPACE/NAME [--json]\n"
            "       kimactl [CONNECTION] pod reset UID --reason TEXT\n"
            "       kimactl audit verify --key PUBKEY [--server URL] [--allow-unsigned-tail]\n"
            "                            FILE...\n"
            "       kimactl audit verify [--chain PUBKEY:FILE[,FILE...][:HEAD]]...\n"
            "                            [--deployment DIR] [--expect-replicas N|NAME,...]\n"
            "                            [--allow-unsigned-tail]\n"
            "       kimactl audit show [--pod NAME|UID] [--node NAME] [--since RFC3339] FILE...\n"
            "\n"
            "CONNECTION (each also from the environment):\n"
            "  --server URL    the verifier, e.g. https://kima-verifier:8443   [KIMA_SERVER]\n"
            "  --cert PEM      operator client certificate (OU kima-operator) [KIMA_CERT]\n"
            "  --key PEM       its private key                                [KIMA_KEY]\n"
            "  --cacert PEM    CA of the verifier's certificate               [KIMA_CACERT]\n"
            "\n"
            "audit verify takes the rotated files oldest first, then the live one, and\n"
            "checks the hash chain and every checkpoint signature with --key PUBKEY (the\n"
            "verifier's audit.key.pub). Records after the last checkpoint are an unsigned\n"
            "tail: they could be cut or rewritten undetected, so it fails on one unless\n"
            "--allow-unsigned-tail. With --server URL (given after \"audit verify\";\n"
            "KIMA_SERVER alone does not do it) it also fetches the verifier's signed head\n"
            "(GET /v1/audit/head, operator certificate; --key is the audit key here, so the\n"
            "client key comes from KIMA_KEY or \"kimactl --key PEM audit verify ...\"),\n"
            "checks its signature with PUBKEY and reads the files again: they must reach\n"
            "the head's seq, with its hash there; records up to the head count as signed.\n"
            "It prints one line:\n"
            "  intact: ...          the chain holds, every record is signed (exit 0)\n"
            "  unsigned tail: ...   the last records are signed by nothing (exit 1; with\n"
            "                       --allow-unsigned-tail: intact: ..., exit 0)\n"
            "  truncated: ...       the files end before the verifier's head (exit 1)\n"
            "  tampered: ...        the first bad record and why (exit 1)\n"
            "  untrusted head: ...  the head's signature does not verify (exit 1)\n"
            "\n"
            "Several replicas (one chain each, its own key): give each chain with --chain\n"
            "PUBKEY:FILES[:HEAD] (FILES comma-separated, rotated oldest first, then the\n"
            "live one; HEAD a saved GET /v1/audit/head answer of that replica), or\n"
            "--deployment DIR with DIR/<replica>/audit.key.pub, audit.log.<seq>...,\n"
            "audit.log and optionally audit.head.json (at most 64 chains). Each chain is\n"
            "verified alone and reported: its replica (\"-\" for a log that names none),\n"
            "records, first and last seq, last signed seq, and every GAP (records\n"
            "deleted, a rotated file missing, a prev-hash break, an edited record, an\n"
            "unsigned tail, files that end before the head). Then across chains: two\n"
            "chains claiming one replica, one key used by two, a directory that holds\n"
            "another replica's chain, and with --expect-replicas a replica without a\n"
            "chain, are PROBLEMs. The last line is \"deployment intact: N chains, M\n"
            "records\" (exit 0) or \"deployment NOT intact: ...\" (exit 1).\n"
            "Exit codes: 0 success, 1 the verifier refused or the audit log is tampered,\n"
            "truncated or has an unsigned tail, 2 malformed answer or file, 64 usage,\n"
            "66 unreadable file, 69 verifier unreachable.\n");
}

static int parse(struct ops_args *a, int argc, char **argv) {
    static const struct option opts[] = {
            {"server", required_argument, NULL, 's'},
            {"cert", required_argument, NULL, 'c'},
            {"key", required_argument, NULL, 'k'},
            {"cacert", required_argument, NULL, 'a'},
            {"json", no_argument, NULL, 'j'},
            {"state", required_argument, NULL, 'S'},
            {"reason", required_argument, NULL, 'r'},
            {"pod", required_argument, NULL, 'p'},
            {"node", required_argument, NULL, 'n'},
            {"since", required_argument, NULL, 't'},
            {"allow-unsigned-tail", no_argument, NULL, 'u'},
            {"chain", required_argument, NULL, 'C'},
            {"deployment", required_argument, NULL, 'D'},
            {"expect-replicas", required_argument, NULL, 'E'},
            {"help", no_argument, NULL, 'h'},
            {0},
    };
    int o;

    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 's':
            a->api.server = optarg;
            a->server_given = true;
            break;
        case 'c':
            a->api.cert = optarg;
            break;
        case 'k':
            a->key = optarg;
            a->api.key = optarg;
            break;
        case 'a':
            a->api.cacert = optarg;
            break;
        case 'j':
            a->json = true;
            break;
        case 'S':
            a->state = optarg;
            break;
        case 'r':
            a->reason = optarg;
            break;
        case 'p':
            a->pod = optarg;
            break;
        case 'n':
            a->node = optarg;
            break;
        case 't':
            a->since = optarg;
            break;
        case 'u':
            a->allow_unsigned_tail = true;
            break;
        case 'C':
            if (a->nchains >= AUDIT_DEPLOY_CHAINS_MAX) {
                fprintf(stderr, "kimactl: more than %d --chain\n", AUDIT_DEPLOY_CHAINS_MAX);
                return -1;
            }
            a->chains[a->nchains++] = optarg;
            break;
        case 'D':
            a->deployment = optarg;
            break;
        case 'E':
            a->expect_replicas = optarg;
            break;
        case 'h':
            ops_usage(stdout);
            return 1;
        default:
            ops_usage(stderr);
            return -1;
        }
    }
    api_from_env(&a->api);
    return 0;
}

/* Print the answer: JSON as is, or the error; returns the exit code. */
static int answer(int status, json_t *resp, bool json, void (*table)(const json_t *)) {
    if (status < 0) {
        json_decref(resp);
        return EXIT_UNAVAILABLE;
    }
    if (status >= 300) {
        fprintf(stderr, "kimactl: %d %s: %s\n", status,
                json_string_value(json_object_get(resp, "error")) ?: "error",
                json_string_value(json_object_get(resp, "detail")) ?: "");
        json_decref(resp);
        return status == 404 || status == 409 || status == 403 ? EXIT_MISMATCH : EXIT_MISMATCH;
    }
    if (json || !table) {
        char *s = json_dumps(resp, JSON_INDENT(2));
        printf("%s\n", s ? s : "{}");
        free(s);
    } else {
        table(resp);
    }
    json_decref(resp);
    return EXIT_OK;
}

static const char *str(const json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void nodes_table(const json_t *r) {
    size_t i;
    json_t *n;
    printf("%-24s %-10s %-10s %-12s %s\n", "NODE", "STATE", "IMA", "ATTESTATIONS", "REASON");
    json_array_foreach(json_object_get(r, "nodes"), i, n) {
        printf("%-24s %-10s %-10" JSON_INTEGER_FORMAT " %-12" JSON_INTEGER_FORMAT " %s\n",
               str(n, "name"), str(n, "state"),
               json_integer_value(json_object_get(n, "ima_next_index")),
               json_integer_value(json_object_get(n, "attestations")), str(n, "reason"));
    }
}

static void pods_table(const json_t *r) {
    size_t i;
    json_t *p, *arr = json_object_get(r, "pods");
    if (!arr) {
        arr = json_pack("[O]", r);
    } else {
        json_incref(arr);
    }
    printf("%-16s %-24s %-16s %-10s %s\n", "NAMESPACE", "NAME", "NODE", "STATE", "REASON");
    json_array_foreach(arr, i, p) {
        printf("%-16s %-24s %-16s %-10s %s\n", str(p, "namespace"), str(p, "name"), str(p, "node"),
               str(p, "state"), str(p, "reason"));
    }
    json_decref(arr);
}

static EVP_PKEY *read_pubkey(const char *path, int *ret_code) {
    EVP_PKEY *pub;
    FILE *f = fopen(path, "r");

    if (!f) {
        fprintf(stderr, "kimactl: cannot read %s\n", path);
        *ret_code = EXIT_NOINPUT;
        return NULL;
    }
    pub = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (!pub) {
        fprintf(stderr, "kimactl: %s is not a PEM public key\n", path);
        *ret_code = EXIT_MALFORMED;
    }
    return pub;
}

/* GET /v1/audit/head with its signature checked: 0 or the exit code. */
static int fetch_head(const struct api *api, EVP_PKEY *pub, const char *pubpath,
                      struct audit_head *ret) {
    json_t *resp = NULL;
    char err[256];
    int status = api_call(api, "GET", "/v1/audit/head", NULL, &resp), r;

    if (status < 0) {
        json_decref(resp);
        return EXIT_UNAVAILABLE;
    }
    if (status != 200) {
        fprintf(stderr, "kimactl: GET /v1/audit/head: %d %s: %s\n", status,
                json_string_value(json_object_get(resp, "error")) ?: "error",
                json_string_value(json_object_get(resp, "detail")) ?: "");
        json_decref(resp);
        return EXIT_MISMATCH;
    }
    r = audit_head_from_json(resp, ret, err, sizeof(err));
    json_decref(resp);
    if (r < 0) {
        fprintf(stderr, "kimactl: the verifier's audit head is malformed: %s\n", err);
        return EXIT_MALFORMED;
    }
    if (!audit_head_signature_ok(ret, pub)) {
        printf("untrusted head: the verifier's head (seq %" PRIu64 ") is not signed by %s\n",
               ret->seq, pubpath);
        return EXIT_MISMATCH;
    }
    return 0;
}

/* The verdict as one line; returns the exit code. */
static int audit_report(const struct audit_verify_result *res, const struct audit_head *head,
                        bool allow_unsigned_tail) {
    char ckpt[96], tail[160] = "";

    if (res->checkpoints) {
        snprintf(ckpt, sizeof(ckpt), "seq %" PRIu64 " at %s", res->last_checkpoint_seq,
                 res->last_checkpoint_time);
    } else {
        snprintf(ckpt, sizeof(ckpt), "none");
    }
    if (res->unsigned_tail) {
        /* The tail runs to the last record: nothing signed follows it. */
        snprintf(tail, sizeof(tail),
                 "%" PRIu64 " records (seq %" PRIu64 "-%" PRIu64 ", the first at %s)",
                 res->unsigned_tail, res->last_seq - res->unsigned_tail + 1, res->last_seq,
                 res->first_unsigned_time);
    }
    switch (audit_verify_verdict(res)) {
    case AUDIT_TAMPERED:
        printf("tampered: %s\n", res->first_bad);
        return EXIT_MISMATCH;
    case AUDIT_TRUNCATED:
        printf("truncated: the verifier's head is seq %" PRIu64 ", the files end at seq %" PRIu64
               "\n",
               head->seq, res->last_seq);
        return EXIT_MISMATCH;
    case AUDIT_UNSIGNED_TAIL:
        if (!allow_unsigned_tail) {
            printf("unsigned tail: %s follow the last signed checkpoint (%s)%s: they could be cut "
                   "or rewritten undetected; the chain of %" PRIu64 " records holds "
                   "(--allow-unsigned-tail accepts it, --server checks it against the verifier's "
                   "head)\n",
                   tail, ckpt, head ? " and the verifier's signed head" : "", res->records);
            return EXIT_MISMATCH;
        }
        break;
    case AUDIT_INTACT:
        break;
    }
    printf("intact: %" PRIu64 " records, %" PRIu64 " signed checkpoints (the last: %s)",
           res->records, res->checkpoints, ckpt);
    if (head) {
        printf("; the verifier's signed head (seq %" PRIu64 " at %s) matches", head->seq,
               head->time);
    }
    if (res->unsigned_tail) {
        printf("; unsigned tail: %s (accepted: --allow-unsigned-tail)", tail);
    }
    printf("\n");
    return EXIT_OK;
}

/* kimactl audit verify: read the files; with --server fetch the signed head
 * and read them again against it (records may have been appended after the
 * first read; files that still end before the head are truncated). */
static int audit_verify_cmd(struct ops_args *a, int nfiles, char **files) {
    const char *const *paths = (const char *const *)files;
    struct audit_verify_result res;
    struct audit_head head;
    EVP_PKEY *pub;
    int r, code = EXIT_OK;

    if (a->nchains || a->deployment || a->expect_replicas) {
        struct audit_deploy_args d = {.chains = a->chains,
                                      .nchains = a->nchains,
                                      .deployment = a->deployment,
                                      .expect = a->expect_replicas,
                                      .allow_unsigned_tail = a->allow_unsigned_tail};
        if (nfiles > 0 || a->key || a->server_given || (!a->nchains && !a->deployment)) {
            fprintf(stderr, "kimactl audit verify: --chain or --deployment take the place of "
                            "--key, --server and FILE (see --help)\n");
            return EXIT_USAGE;
        }
        return audit_deploy_verify(&d);
    }
    if (!a->key || nfiles < 1) {
        fprintf(stderr, "kimactl audit verify: --key PUBKEY and at least one FILE needed\n");
        return EXIT_USAGE;
    }
    pub = read_pubkey(a->key, &code);
    if (!pub) {
        return code;
    }
    r = audit_verify(paths, (size_t)nfiles, pub, &res);
    if (r == 0 && res.intact && a->server_given) {
        struct api api = a->api;
        api.key = getenv("KIMA_KEY"); /* --key is the audit key here */
        curl_global_init(CURL_GLOBAL_DEFAULT);
        code = fetch_head(&api, pub, a->key, &head);
        if (code == 0) {
            r = audit_verify_head(paths, (size_t)nfiles, pub, &head, &res);
        }
    }
    EVP_PKEY_free(pub);
    if (r < 0) {
        fprintf(stderr, "kimactl: cannot read the audit log: %s\n", strerror(-r));
        return EXIT_NOINPUT;
    }
    if (code != EXIT_OK) {
        return code;
    }
    return audit_report(&res, a->server_given && res.intact ? &head : NULL, a->allow_unsigned_tail);
}

static int audit_cmd(struct ops_args *a, int argc, char **argv) {
    if (argc < 1) {
        ops_usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[0], "verify") == 0) {
        return audit_verify_cmd(a, argc - 1, argv + 1);
    }
    if (strcmp(argv[0], "show") == 0) {
        for (int i = 1; i < argc; i++) {
            _cleanup_free_ uint8_t *data = NULL;
            size_t len, off = 0;
            if (read_file_capped(argv[i], SIZE_MAX / 2, &data, &len) < 0) {
                fprintf(stderr, "kimactl: cannot read %s\n", argv[i]);
                return EXIT_NOINPUT;
            }
            while (off < len) {
                char *l = (char *)data + off, *nl = memchr(l, '\n', len - off);
                size_t ll = nl ? (size_t)(nl - l) : len - off;
                json_auto_t *j = json_loadb(l, ll, 0, NULL);
                off += ll + 1;
                json_t *pod = json_object_get(j, "pod");
                if (!j || (a->node && strcmp(str(j, "node"), a->node) != 0) ||
                    (a->pod && strcmp(str(pod, "name"), a->pod) != 0 &&
                     strcmp(str(pod, "uid"), a->pod) != 0) ||
                    (a->since && strcmp(str(j, "time"), a->since) < 0)) {
                    continue;
                }
                if (a->json) {
                    fwrite(l, 1, ll, stdout);
                    putchar('\n');
                } else {
                    char *d = json_dumps(json_object_get(j, "details"), JSON_COMPACT);
                    printf("%-8" JSON_INTEGER_FORMAT " %s %-14s %-12s %-24s %s\n",
                           json_integer_value(json_object_get(j, "seq")), str(j, "time"),
                           str(j, "type"), str(j, "node"), str(pod, "name"), d ? d : "");
                    free(d);
                }
            }
        }
        return EXIT_OK;
    }
    ops_usage(stderr);
    return EXIT_USAGE;
}

int cmd_ops(int argc, char **argv) {
    struct ops_args a = {0};
    const char *cmd = argv[0];
    json_t *resp = NULL;
    char path[1024];
    int r, status;

    optind = 0; /* a fresh getopt scan (GNU: also resets its permutation state) */
    r = parse(&a, argc, argv);
    if (r != 0) {
        return r > 0 ? EXIT_OK : EXIT_USAGE;
    }
    argc -= optind;
    argv += optind;
    if (strcmp(cmd, "audit") == 0) {
        return audit_cmd(&a, argc, argv);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (strcmp(cmd, "nodes") == 0 && argc == 0) {
        status = api_call(&a.api, "GET", "/v1/nodes", NULL, &resp);
        return answer(status, resp, a.json, nodes_table);
    }
    if (strcmp(cmd, "node") == 0 && argc == 2 && strcmp(argv[0], "delete") == 0) {
        char *esc = curl_easy_escape(NULL, argv[1], 0);
        snprintf(path, sizeof(path), "/v1/nodes/%s", esc);
        curl_free(esc);
        status = api_call(&a.api, "DELETE", path, NULL, &resp);
        return answer(status, resp, true, NULL);
    }
    if (strcmp(cmd, "pods") == 0 && argc == 0) {
        snprintf(path, sizeof(path), "/v1/pods%s%s", a.state ? "?state=" : "",
                 a.state ? a.state : "");
        status = api_call(&a.api, "GET", path, NULL, &resp);
        return answer(status, resp, a.json, pods_table);
    }
    if (strcmp(cmd, "pod") == 0 && argc == 2 && strcmp(argv[0], "reset") == 0) {
        json_t *body;
        char *esc;
        if (!a.reason || !a.reason[0]) {
            fprintf(stderr, "kimactl pod reset: --reason TEXT is required (it is audited)\n");
            return EXIT_USAGE;
        }
        esc = curl_easy_escape(NULL, argv[1], 0);
        snprintf(path, sizeof(path), "/v1/pods/%s/reset", esc);
        curl_free(esc);
        body = json_pack("{s:s}", "reason", a.reason);
        status = api_call(&a.api, "POST", path, body, &resp);
        json_decref(body);
        return answer(status, resp, true, NULL);
    }
    if (strcmp(cmd, "pod") == 0 && argc == 1 && strchr(argv[0], '/')) {
        char ns[256], *slash = strchr(argv[0], '/');
        char *e1, *e2;
        snprintf(ns, sizeof(ns), "%.*s", (int)(slash - argv[0]), argv[0]);
        e1 = curl_easy_escape(NULL, ns, 0);
        e2 = curl_easy_escape(NULL, slash + 1, 0);
        snprintf(path, sizeof(path), "/v1/pods/%s/%s", e1, e2);
        curl_free(e1);
        curl_free(e2);
        status = api_call(&a.api, "GET", path, NULL, &resp);
        return answer(status, resp, a.json, pods_table);
    }
    ops_usage(stderr);
    return EXIT_USAGE;
}
