/* SPDX-License-Identifier: Apache-2.0 */
/* kimactl policy check: a dry run of a policy before it is applied. The
 * measurements come from the live verifier (each pod's kept (path, digest)
 * pairs, GET /v1/pods/{ns}/{name}/measurements) or from a recorded IMA
 * list split by pod cgroup; each is judged by policy_judge(), the function
 * the verifier's judge uses, so the answer is the verifier's. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "api-client.h"
#include "cgroup.h"
#include "fields.h"
#include "fileio.h"
#include "hex.h"
#include "json-util.h"
#include "kimactl.h"
#include "list-reader.h"
#include "log.h"
#include "parse.h"
#include "policy.h"
#include "verify.h"

/* Reasons shown a pod by default (the rest are counted), and at most. */
#define CHECK_REASONS_DEFAULT 10
#define CHECK_REASONS_MAX     1000
/* Pods (or containers) of one list judged apart; past it the list is
 * refused (a node runs a few hundred pods). */
#define CHECK_SUBJECTS_MAX 4096
#define CHECK_PATH_SHOWN   1024 /* bytes of a path a reason shows */

struct check_args {
    const char *policy_path, *list_path, *pod;
    bool json, ascii;
    uint32_t digest_len;
    unsigned max_reasons;
    struct api api;
};

/* One pod (or container, or the node's host processes) judged. */
struct subject {
    char what[300]; /* "open5gs/upf-0", "pod <uid>", "container <id>", "node" */
    char uid[80];
    uint64_t judged, failed, excluded, dropped;
    bool incomplete; /* the verifier could not keep all its measurements */
    json_t *reasons; /* at most max_reasons {"path","digest","result","reason"} */
};

struct check {
    struct check_args a;
    struct policy *policy;
    struct subject *v;
    size_t n, alloc;
};

static void check_usage(FILE *f) {
    fprintf(f,
            "Usage: kimactl [CONNECTION] policy check --policy FILE [--pod NAMESPACE/NAME]\n"
            "                                        [--max-reasons N] [--json]\n"
            "       kimactl policy check --policy FILE --list FILE [--pod UID] [--ascii]\n"
            "                            [--digest-size N] [--max-reasons N] [--json]\n"
            "\n"
            "Judge measurements by a policy before it is applied, with the verifier's own\n"
            "judgement. With CONNECTION (kimactl --help): every pod the verifier knows\n"
            "that the policy would match (namespace, labels, images), or the one --pod,\n"
            "each with the (path, digest) pairs the verifier has kept for it. With --list:\n"
            "an IMA measurement list (binary, or --ascii), split by pod cgroup; a list\n"
            "names pods by UID only, so every pod in it is judged by a PodPolicy (--pod\n"
            "UID: only that one), and the host's entries by a NodePolicy.\n"
            "\n"
            "Each pod gets one line, \"would stay trusted\" or \"would turn untrusted\" (or\n"
            "\"would turn unknown\": the verifier could not keep all its measurements),\n"
            "with at most --max-reasons (default %d) failing measurements shown and the\n"
            "rest counted.\n"
            "Exit codes: 0 no pod would turn untrusted, 1 some would (or could not be\n"
            "judged whole), 2 malformed policy, list or answer, 64 usage, 66 unreadable\n"
            "file or unknown pod, 69 verifier unreachable or refusing.\n",
            CHECK_REASONS_DEFAULT);
}

/* -1 to go on, else the exit code (help printed, or a usage error). */
static int parse_args(struct check_args *a, int argc, char **argv) {
    static const struct option opts[] = {
            {"policy", required_argument, NULL, 'P'},
            {"list", required_argument, NULL, 'L'},
            {"pod", required_argument, NULL, 'p'},
            {"json", no_argument, NULL, 'j'},
            {"ascii", no_argument, NULL, 'A'},
            {"digest-size", required_argument, NULL, 'd'},
            {"max-reasons", required_argument, NULL, 'm'},
            {"help", no_argument, NULL, 'h'},
            {0},
    };
    uint64_t v;
    int c;

    a->max_reasons = CHECK_REASONS_DEFAULT;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'P':
            a->policy_path = optarg;
            break;
        case 'L':
            a->list_path = optarg;
            break;
        case 'p':
            a->pod = optarg;
            break;
        case 'j':
            a->json = true;
            break;
        case 'A':
            a->ascii = true;
            break;
        case 'd':
            if (parse_u64_range(optarg, 20, 64, &v) < 0 ||
                (v != 20 && v != 32 && v != 48 && v != 64)) {
                fprintf(stderr, "kimactl policy check: --digest-size takes 20, 32, 48 or 64\n");
                return EXIT_USAGE;
            }
            a->digest_len = (uint32_t)v;
            break;
        case 'm':
            if (parse_u64_range(optarg, 0, CHECK_REASONS_MAX, &v) < 0) {
                fprintf(stderr, "kimactl policy check: --max-reasons takes 0 to %d\n",
                        CHECK_REASONS_MAX);
                return EXIT_USAGE;
            }
            a->max_reasons = (unsigned)v;
            break;
        case 'h':
            check_usage(stdout);
            return EXIT_OK;
        default:
            check_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc || !a->policy_path) {
        fprintf(stderr, "kimactl policy check: --policy FILE is required, and no other "
                        "arguments (see --help)\n");
        return EXIT_USAGE;
    }
    api_from_env(&a->api);
    return -1;
}

/* The policy file, parsed as the verifier parses it. */
static int load_policy(struct check *c) {
    _cleanup_free_ uint8_t *data = NULL;
    char err[512], esc[300];
    size_t len;
    int r;

    log_escape(c->a.policy_path, strlen(c->a.policy_path), esc, sizeof(esc));
    r = read_file_capped(c->a.policy_path, POLICY_FILE_MAX, &data, &len);
    if (r < 0) {
        log_error("%s: cannot read the policy: %s", esc, strerror(-r));
        return r == -E2BIG ? EXIT_MALFORMED : EXIT_NOINPUT;
    }
    r = policy_parse((const char *)data, len, c->a.policy_path, NULL, &c->policy, NULL, err,
                     sizeof(err));
    if (r < 0) {
        log_error("%s: not a valid policy: %s", esc, err);
        return r == -ENOMEM ? EXIT_SOFTWARE : EXIT_MALFORMED;
    }
    return -1;
}

/* A new subject named `what` (and `uid`), or NULL when there are too many
 * or memory ran out. */
static struct subject *subject_add(struct check *c, const char *what, const char *uid) {
    struct subject *s;

    if (c->n == c->alloc) {
        size_t na = c->alloc ? 2 * c->alloc : 16;
        struct subject *nv;
        if (c->n >= CHECK_SUBJECTS_MAX || !(nv = realloc(c->v, na * sizeof(*nv)))) {
            return NULL;
        }
        c->v = nv;
        c->alloc = na;
    }
    s = &c->v[c->n];
    memset(s, 0, sizeof(*s));
    snprintf(s->what, sizeof(s->what), "%s", what);
    snprintf(s->uid, sizeof(s->uid), "%s", uid);
    if (!(s->reasons = json_array())) {
        return NULL;
    }
    c->n++;
    return s;
}

/* One measurement judged by the policy; a failure is kept as a reason
 * while there is room, counted always. */
static int judge_one(struct check *c, struct subject *s, const char *path, size_t path_len,
                     const char *digest, bool violation) {
    enum policy_result res = policy_judge(c->policy, path, path_len, digest, violation);
    char esc[CHECK_PATH_SHOWN + 64], reason[CHECK_PATH_SHOWN + 300];

    s->judged++;
    if (res == POLICY_RESULT_PASS) {
        return 0;
    }
    if (res == POLICY_RESULT_EXCLUDED) {
        s->excluded++;
        return 0;
    }
    s->failed++;
    if (json_array_size(s->reasons) >= c->a.max_reasons) {
        return 0;
    }
    log_escape(path, path_len < CHECK_PATH_SHOWN ? path_len : CHECK_PATH_SHOWN, esc, sizeof(esc));
    if (res == POLICY_RESULT_NOT_LISTED) {
        snprintf(reason, sizeof(reason), "%s %s not in policy", esc, digest);
    } else if (res == POLICY_RESULT_VIOLATION) {
        snprintf(reason, sizeof(reason), "IMA violation (ToMToU or open-writers) on %s", esc);
    } else {
        snprintf(reason, sizeof(reason), "%s: the entry carries no file digest", esc);
    }
    return json_array_append_new(s->reasons,
                                 json_pack("{s:s,s:s,s:s,s:s}", "path", esc, "digest",
                                           digest ? digest : "", "result", policy_result_name(res),
                                           "reason", reason)) == 0
                   ? 0
                   : -ENOMEM;
}

static const char *verdict(const struct subject *s) {
    return s->failed ? "untrusted" : s->incomplete ? "unknown" : "trusted";
}

static void print_subject(const struct subject *s, unsigned max_reasons) {
    size_t shown = json_array_size(s->reasons), i;
    json_t *r;

    if (!s->failed && !s->incomplete) {
        printf("%s: would stay trusted (%" PRIu64 " measurements judged, %" PRIu64 " excluded)\n",
               s->what, s->judged, s->excluded);
        return;
    }
    if (!s->failed) {
        printf("%s: would turn unknown: %" PRIu64 " of its measurements were not kept by the "
               "verifier, so no policy can judge it whole\n",
               s->what, s->dropped);
        return;
    }
    printf("%s: would turn untrusted: %" PRIu64 " of %" PRIu64 " measurements fail\n", s->what,
           s->failed, s->judged);
    json_array_foreach(s->reasons, i, r) {
        printf("  %s\n", json_string_value(json_object_get(r, "reason")));
    }
    if (s->failed > shown) {
        printf("  (and %" PRIu64 " more%s)\n", s->failed - shown,
               max_reasons < CHECK_REASONS_MAX ? "; --max-reasons shows more" : "");
    }
}

/* Every subject's verdict, as text or JSON; the exit code. */
static int report(struct check *c) {
    size_t bad = 0;
    json_t *doc = NULL, *arr = NULL;

    if (c->a.json) {
        arr = json_array();
        doc = json_pack("{s:s,s:s,s:o}", "policy", policy_id(c->policy), "kind",
                        policy_kind(c->policy) == POLICY_POD ? "PodPolicy" : "NodePolicy", "pods",
                        arr);
    }
    for (size_t i = 0; i < c->n; i++) {
        struct subject *s = &c->v[i];
        bad += s->failed || s->incomplete;
        if (!c->a.json) {
            print_subject(s, c->a.max_reasons);
            continue;
        }
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:O}", "pod", s->what,
                                             "uid", s->uid, "would_be", verdict(s), "judged",
                                             (json_int_t)s->judged, "failed", (json_int_t)s->failed,
                                             "excluded", (json_int_t)s->excluded, "dropped",
                                             (json_int_t)s->dropped, "reasons", s->reasons));
    }
    if (c->a.json) {
        json_object_set_new(doc, "would_not_stay_trusted", json_integer((json_int_t)bad));
        json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(doc);
    } else {
        printf("policy %s: %zu checked, %zu would stay trusted, %zu would not\n",
               policy_id(c->policy), c->n, c->n - bad, bad);
    }
    return bad ? EXIT_MISMATCH : EXIT_OK;
}

/* A verifier answer that is not 200: the exit code, said once. */
static int api_failure(int status, json_t *resp, const char *what) {
    if (status < 0) {
        log_error("the verifier could not be reached (%s)", what);
        return EXIT_UNAVAILABLE;
    }
    log_error("%s: %d %s: %s", what, status,
              json_string_value(json_object_get(resp, "error")) ?: "error",
              json_string_value(json_object_get(resp, "detail")) ?: "");
    return status == 404 ? EXIT_NOINPUT : EXIT_UNAVAILABLE;
}

/* "/v1/pods/{ns}/{name}{suffix}", each part escaped. */
static void pod_path(const char *ns, const char *name, const char *suffix, char *ret,
                     size_t retsz) {
    char *e1 = curl_easy_escape(NULL, ns, 0), *e2 = curl_easy_escape(NULL, name, 0);

    snprintf(ret, retsz, "/v1/pods/%s/%s%s", e1 ? e1 : "", e2 ? e2 : "", suffix);
    curl_free(e1);
    curl_free(e2);
}

/* The verifier judges a pod by the first policy that matches it, in file
 * name order: a pod judged today by a policy of another name may keep
 * being judged by that one, whatever this check says of the new file. */
static void warn_other_policy(const struct check *c, const char *what, const char *current) {
    const char *mine = policy_name(c->policy), *at;

    if (!current) {
        return;
    }
    at = strrchr(current, '@');
    if (at && (size_t)(at - current) == strlen(mine) && strncmp(current, mine, strlen(mine)) == 0) {
        return;
    }
    log_warn("%s is judged today by policy %s: the verifier takes the first policy that matches "
             "a pod, in file-name order, so %s applies to it only if its file sorts before that "
             "one's or replaces it",
             what, current, mine);
}

/* One pod of the verifier: its kept measurements judged. */
static int check_server_pod(struct check *c, const json_t *pod) {
    const char *ns = json_string_value(json_object_get(pod, "namespace"));
    const char *name = json_string_value(json_object_get(pod, "name"));
    const char *uid = json_string_value(json_object_get(pod, "uid"));
    _cleanup_json_ json_t *resp = NULL;
    char path[1200], what[300];
    struct subject *s;
    json_t *m;
    size_t i;
    int status;

    if (!ns || !name || !uid) {
        log_error("the verifier's pod list has a pod without namespace, name or uid");
        return EXIT_MALFORMED;
    }
    pod_path(ns, name, "/measurements", path, sizeof(path));
    status = api_call(&c->a.api, "GET", path, NULL, &resp);
    if (status != 200) {
        return api_failure(status, resp, path);
    }
    snprintf(what, sizeof(what), "%.140s/%.140s", ns, name);
    warn_other_policy(c, what, json_string_value(json_object_get(pod, "policy")));
    if (!(s = subject_add(c, what, uid))) {
        return EXIT_SOFTWARE;
    }
    s->dropped = (uint64_t)json_integer_value(json_object_get(resp, "dropped"));
    s->incomplete = json_is_false(json_object_get(resp, "complete"));
    json_array_foreach(json_object_get(resp, "measurements"), i, m) {
        const char *p = json_string_value(json_object_get(m, "path"));
        const char *d = json_string_value(json_object_get(m, "digest"));
        if (!p || !d) {
            log_error("%s: a measurement without path or digest", path);
            return EXIT_MALFORMED;
        }
        if (judge_one(c, s, p, strlen(p), d, json_is_true(json_object_get(m, "ima_violation"))) <
            0) {
            return EXIT_SOFTWARE;
        }
    }
    return -1;
}

/* The pods to check: --pod NS/NAME, or every pod the policy matches. */
static int check_server(struct check *c) {
    _cleanup_json_ json_t *resp = NULL;
    const json_t *pods;
    json_t *pod;
    char path[1200];
    size_t i;
    int status, r;

    if (policy_kind(c->policy) != POLICY_POD) {
        log_error("a NodePolicy judges host processes, which the verifier does not keep per "
                  "pod: check it with --list");
        return EXIT_USAGE;
    }
    if (c->a.pod) {
        const char *slash = strchr(c->a.pod, '/');
        char ns[256];
        if (!slash || slash == c->a.pod || !slash[1] || slash - c->a.pod >= (long)sizeof(ns)) {
            log_error("--pod takes NAMESPACE/NAME with a server");
            return EXIT_USAGE;
        }
        snprintf(ns, sizeof(ns), "%.*s", (int)(slash - c->a.pod), c->a.pod);
        pod_path(ns, slash + 1, "", path, sizeof(path));
    } else {
        snprintf(path, sizeof(path), "/v1/pods");
    }
    status = api_call(&c->a.api, "GET", path, NULL, &resp);
    if (status != 200) {
        return api_failure(status, resp, path);
    }
    pods = c->a.pod ? NULL : json_object_get(resp, "pods");
    if (!c->a.pod && !json_is_array(pods)) {
        log_error("%s: the answer has no \"pods\" array", path);
        return EXIT_MALFORMED;
    }
    if (c->a.pod) {
        if (!policy_matches_pod(c->policy, json_string_value(json_object_get(resp, "namespace")),
                                json_object_get(resp, "labels"), json_object_get(resp, "images"))) {
            log_warn("the policy does not match %s (namespace, labels or images): the verifier "
                     "would not judge it with this policy",
                     c->a.pod);
        }
        r = check_server_pod(c, resp);
        return r >= 0 ? r : report(c);
    }
    json_array_foreach(pods, i, pod) {
        if (policy_matches_pod(c->policy, json_string_value(json_object_get(pod, "namespace")),
                               json_object_get(pod, "labels"), json_object_get(pod, "images")) &&
            (r = check_server_pod(c, pod)) >= 0) {
            return r;
        }
    }
    return report(c);
}

/* The path and file digest of an entry, as the verifier decodes them
 * (judge.c measurement_from_entry): no digest field, no digest. */
static void entry_measurement(const struct ima_entry *e, const char **ret_path, size_t *ret_len,
                              char *digest, size_t digestsz) {
    const struct ima_field *d = ima_entry_field(e, e->legacy ? IMA_FIELD_D : IMA_FIELD_D_NG);
    const struct ima_field *nm = ima_entry_field(e, e->legacy ? IMA_FIELD_N : IMA_FIELD_N_NG);
    struct ima_digest_field df;
    char hex[2 * 64 + 1];

    *ret_path = "";
    *ret_len = 0;
    digest[0] = 0;
    if (!d) {
        d = ima_entry_field(e, IMA_FIELD_D_NGV2);
    }
    if (!d || !nm || ima_field_decode_digest(d, &df, NULL) < 0 || df.digest_len > 64) {
        return;
    }
    snprintf(digest, digestsz, "%.*s:%s", (int)df.algo_len, df.algo,
             hex_encode(df.digest, df.digest_len, hex));
    if (e->legacy) {
        *ret_path = (const char *)nm->data;
        *ret_len = nm->len;
    } else {
        ima_field_string(nm, ret_path, ret_len);
    }
}

/* The subject an entry belongs to under this policy, or NULL when the
 * policy does not judge it (a PodPolicy: host entries and other pods than
 * --pod; a NodePolicy: pods' entries). *ret_full: too many subjects. */
static struct subject *entry_subject(struct check *c, const struct ima_pod_ref *ref,
                                     bool *ret_full) {
    char what[300];
    const char *key;

    if (policy_kind(c->policy) == POLICY_NODE) {
        if (ref->scope != IMA_SCOPE_NODE) {
            return NULL;
        }
        key = "";
        snprintf(what, sizeof(what), "node");
    } else if (ref->scope == IMA_SCOPE_POD) {
        key = ref->pod_uid;
        snprintf(what, sizeof(what), "pod %s", key);
    } else if (ref->scope == IMA_SCOPE_CONTAINER) {
        key = ref->container_id;
        snprintf(what, sizeof(what), "container %s", key);
    } else {
        return NULL;
    }
    if (c->a.pod && strcmp(c->a.pod, key) != 0) {
        return NULL;
    }
    for (size_t i = c->n; i > 0; i--) { /* lists come in runs: the last first */
        if (strcmp(c->v[i - 1].uid, key) == 0) {
            return &c->v[i - 1];
        }
    }
    struct subject *s = subject_add(c, what, key);
    *ret_full = !s;
    return s;
}

/* One entry of the list: verified, attributed, judged. -1 to go on, or the
 * exit code. */
static int check_entry(struct check *c, const struct ima_entry *e) {
    struct ima_pod_ref ref;
    struct subject *s;
    const char *path;
    size_t len;
    char digest[160];
    bool full = false;

    if (ima_entry_verify_digest(e) < 0) {
        log_error("entry %" PRIu64 " at byte offset %" PRIu64
                  ": its template digest does not match its data",
                  e->index, e->offset);
        return EXIT_MALFORMED;
    }
    if (ima_entry_attribute(e, &ref) < 0) {
        log_error("entry %" PRIu64 ": its cgroup field does not read as its template %.*s says",
                  e->index, (int)e->name_len, e->name);
        return EXIT_MALFORMED;
    }
    s = entry_subject(c, &ref, &full);
    if (!s) {
        if (full) {
            log_error("more than %d pods and containers in the list", CHECK_SUBJECTS_MAX);
            return EXIT_MALFORMED;
        }
        return -1;
    }
    entry_measurement(e, &path, &len, digest, sizeof(digest));
    return judge_one(c, s, path, len, digest, e->violation) < 0 ? EXIT_SOFTWARE : -1;
}

static int check_list(struct check *c) {
    struct list_reader lr;
    struct ima_entry e;
    char err[512], msg[256], esc[300];
    int r, code = -1;

    log_escape(c->a.list_path, strlen(c->a.list_path), esc, sizeof(esc));
    r = list_reader_open(&lr, c->a.list_path, c->a.digest_len, c->a.ascii, err, sizeof(err));
    if (r < 0) {
        log_error("%s: %s", esc, err);
        return r == -EBADMSG || r == -E2BIG ? EXIT_MALFORMED
               : r == -ENOMEM               ? EXIT_SOFTWARE
                                            : EXIT_NOINPUT;
    }
    while (code < 0 && (r = list_reader_next(&lr, &e)) > 0) {
        code = check_entry(c, &e);
    }
    if (code < 0 && r < 0) {
        log_error("%s: %s", esc,
                  r == -EBADMSG || r == -E2BIG ? ima_error_format(&lr.parser.err, msg, sizeof(msg))
                                               : strerror(-r));
        code = r == -EBADMSG || r == -E2BIG ? EXIT_MALFORMED : EXIT_NOINPUT;
    }
    list_reader_close(&lr);
    return code >= 0 ? code : report(c);
}

int cmd_policy_check(int argc, char **argv) {
    struct check c = {0};
    int code = parse_args(&c.a, argc, argv);

    if (code >= 0) {
        return code;
    }
    if (!c.a.list_path && !c.a.api.server) {
        fprintf(stderr, "kimactl policy check: --list FILE, or a verifier (kimactl --server URL "
                        "... policy check, or KIMA_SERVER)\n");
        return EXIT_USAGE;
    }
    code = load_policy(&c);
    if (code < 0 && c.a.list_path) {
        code = check_list(&c);
    } else if (code < 0) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        code = check_server(&c);
    }
    for (size_t i = 0; i < c.n; i++) {
        json_decref(c.v[i].reasons);
    }
    free(c.v);
    policy_free(c.policy);
    return code;
}
