/* SPDX-License-Identifier: Apache-2.0 */
/* kimactl policy generate|merge|diff (and check, in cmd-policy-check.c):
 * the command lines and exit codes; the work is in policies/. */
#include <errno.h>
#include <getopt.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "generate.h"
#include "kimactl.h"
#include "log.h"
#include "parse.h"
#include "policy-doc.h"

#define FILTERS_MAX    256
#define FILTER_LEN_MAX 1024
#define LABELS_MAX     64
#define SOURCES_MAX    64
#define MERGE_MAX      64

static void policy_usage(FILE *f) {
    fprintf(f, "Usage: kimactl policy generate [OPTIONS] SOURCE...\n"
               "       kimactl policy merge [-o FILE] [--name NAME] POLICY POLICY...\n"
               "       kimactl policy diff OLD NEW\n"
               "       kimactl policy check --policy FILE ... (kimactl policy check --help)\n"
               "\n"
               "Golden policies from container images and file systems.\n"
               "\n"
               "generate: one policy of the files of all SOURCEs (an image's executables and\n"
               "shared objects, under the paths the kernel logs), pinned to the images' digests.\n"
               "SOURCE is one of\n"
               "  oci:DIR[:TAG|:DIGEST]            an OCI image layout (skopeo, umoci)\n"
               "  oci-archive:FILE[:TAG|:DIGEST]   a tar of one (uncompressed)\n"
               "  docker-archive:FILE[:REPO:TAG]   docker save / podman save output\n"
               "  docker://HOST[:PORT]/REPO[:TAG|@DIGEST]  a registry\n"
               "  rootfs:DIR                       a directory as it is\n"
               "  deb:FILE                         a Debian package's files (for --node)\n"
               "  -o, --output FILE    write FILE atomically (default: standard output)\n"
               "  --name NAME          the policy's name (default: the first SOURCE's\n"
               "                       repository or file name)\n"
               "  --node               a NodePolicy; otherwise a PodPolicy matching\n"
               "  --namespace NS       pods of this namespace\n"
               "  --label KEY=VALUE    pods with this label (repeat for more)\n"
               "  --platform OS/ARCH[/VARIANT]  from a multi-platform image (linux/amd64)\n"
               "  --hash ALG           sha256 (default), sha384, sha512 or sha1\n"
               "  --all                every regular file, not only executables and ELF files\n"
               "  --include REGEX      also every regular file whose path matches (repeat)\n"
               "  --exclude REGEX      leave out files whose path matches (repeat)\n"
               "  --authfile FILE      registry credentials (containers auth.json format)\n"
               "  --cacert PEM         CA bundle for registries (default: the system's)\n"
               "  --insecure           allow registries over plain http\n"
               "  --timeout SECONDS    a registry that sends nothing for this long fails (60)\n"
               "  --max-bytes N        caps on all layers' uncompressed bytes (64 GiB),\n"
               "  --max-entries N      tar entries (2000000), bytes of a path (4096) and of a\n"
               "  --max-path N         manifest, index or config (4 MiB)\n"
               "  --max-manifest N\n"
               "  --max-meta-bytes N   cap on the memory of entry paths and link targets, 64\n"
               "                       bytes an entry more (all layers together), and on the\n"
               "                       file tree's (128 MiB)\n"
               "  --max-walk N         cap on the path components walked to resolve parent\n"
               "                       directories and links, per image (128000000)\n"
               "  --threads N          layers read and hashed at once (default: one per CPU)\n"
               "\n"
               "merge: the union of the digests per path, the images and the excludes of\n"
               "policies of one kind, name (unless --name), namespace and labels.\n"
               "diff: the paths, digests, images and match fields added (+), removed (-)\n"
               "and changed (~) from OLD to NEW.\n"
               "\n"
               "Exit codes: 0 done (diff: the same); 1 diff: they differ; 2 malformed or\n"
               "hostile input, a digest that does not match; 64 usage; 66 an input not\n"
               "readable; 69 a registry not reachable; 70 internal error; 73 the output\n"
               "cannot be written.\n");
}

/* Negative errno to exit code. A registry's refusals are its being
 * unavailable to us; a local file's are its not being readable. */
static int exit_code(int r, bool registry) {
    switch (-r) {
    case EBADMSG:
    case E2BIG:
    case EFBIG:
    case ELOOP:
    case EILSEQ:
    case EOVERFLOW:
    case ERANGE:
    case EOPNOTSUPP:
        return EXIT_MALFORMED;
    case EACCES:
    case EPERM:
        return registry ? EXIT_UNAVAILABLE : EXIT_NOINPUT;
    case ENOENT:
    case EISDIR:
    case ENOTDIR:
    case ENAMETOOLONG:
        return EXIT_NOINPUT;
    case ECONNREFUSED:
    case ECONNRESET:
    case ECONNABORTED:
    case EHOSTUNREACH:
    case EHOSTDOWN:
    case ENETUNREACH:
    case ENETDOWN:
    case ETIMEDOUT:
    case EAGAIN:
    case EBUSY:
    case EPROTO:
    case EIO:
        return registry ? EXIT_UNAVAILABLE : r == -EIO ? EXIT_NOINPUT : EXIT_MALFORMED;
    default:
        return EXIT_SOFTWARE;
    }
}

/* The error on one line: its control bytes (from names in the input)
 * written as \xNN. */
static void report(const char *cmd, const struct img_error *err) {
    char esc[IMG_ERROR_MAX * 4];
    size_t n = 0;

    for (const unsigned char *c = (const unsigned char *)err->msg; *c && n + 5 < sizeof(esc); c++) {
        n += (size_t)(*c < 0x20 || *c == 0x7f ? snprintf(esc + n, 5, "\\x%02x", *c)
                                              : snprintf(esc + n, 2, "%c", *c));
    }
    esc[n] = 0;
    fprintf(stderr, "kimactl policy %s: %s\n", cmd, n ? esc : "failed");
}

static int usage_error(const char *cmd, const char *why) {
    fprintf(stderr, "kimactl policy %s: %s (see kimactl policy --help)\n", cmd, why);
    return EXIT_USAGE;
}

/* ---- generate ---- */

struct gen_args {
    struct gen_config cfg;
    struct gen_meta meta;
    const char *output;
    json_t *labels;
    regex_t includes[FILTERS_MAX], excludes[FILTERS_MAX];
    struct gen_spec *specs;
    size_t nspecs;
};

static void gen_args_free(struct gen_args *a) {
    for (size_t i = 0; i < a->cfg.nincludes; i++) {
        regfree(&a->includes[i]);
    }
    for (size_t i = 0; i < a->cfg.nexcludes; i++) {
        regfree(&a->excludes[i]);
    }
    json_decref(a->labels);
    free(a->specs);
    free(a);
}

static int add_filter(regex_t *v, size_t *n, const char *re, const char *opt) {
    char why[200];

    if (*n == FILTERS_MAX || strlen(re) > FILTER_LEN_MAX ||
        regcomp(&v[*n], re, REG_EXTENDED | REG_NOSUB) != 0) {
        snprintf(why, sizeof(why),
                 "%s takes a POSIX extended regex of at most %d bytes, at "
                 "most %d times",
                 opt, FILTER_LEN_MAX, FILTERS_MAX);
        return usage_error("generate", why);
    }
    (*n)++;
    return 0;
}

static int add_label(struct gen_args *a, const char *kv) {
    const char *eq = strchr(kv, '=');
    char key[254];

    if (!eq || eq == kv || eq - kv > 253 || strlen(eq + 1) > 63 ||
        strspn(kv, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-/=") !=
                strlen(kv) ||
        strchr(eq + 1, '=') || json_object_size(a->labels) >= LABELS_MAX) {
        return usage_error("generate", "--label takes KEY=VALUE (a Kubernetes label), at most "
                                       "64 times");
    }
    snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
    if (json_object_get(a->labels, key)) {
        return usage_error("generate", "--label: a key given twice");
    }
    return json_object_set_new(a->labels, key, json_string(eq + 1)) < 0 ? EXIT_SOFTWARE : 0;
}

static int set_number(uint64_t min, uint64_t max, const char *opt, uint64_t *ret) {
    char why[120];

    if (parse_u64_range(optarg, min, max, ret) < 0) {
        snprintf(why, sizeof(why), "%s takes a number from %llu to %llu", opt,
                 (unsigned long long)min, (unsigned long long)max);
        return usage_error("generate", why);
    }
    return 0;
}

enum {
    OPT_NAME = 256,
    OPT_NODE,
    OPT_NAMESPACE,
    OPT_LABEL,
    OPT_PLATFORM,
    OPT_HASH,
    OPT_ALL,
    OPT_INCLUDE,
    OPT_EXCLUDE,
    OPT_AUTHFILE,
    OPT_CACERT,
    OPT_INSECURE,
    OPT_TIMEOUT,
    OPT_MAX_BYTES,
    OPT_MAX_ENTRIES,
    OPT_MAX_PATH,
    OPT_MAX_MANIFEST,
    OPT_MAX_META_BYTES,
    OPT_MAX_WALK,
    OPT_THREADS,
};

static const struct option gen_opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"name", required_argument, NULL, OPT_NAME},
        {"node", no_argument, NULL, OPT_NODE},
        {"namespace", required_argument, NULL, OPT_NAMESPACE},
        {"label", required_argument, NULL, OPT_LABEL},
        {"platform", required_argument, NULL, OPT_PLATFORM},
        {"hash", required_argument, NULL, OPT_HASH},
        {"all", no_argument, NULL, OPT_ALL},
        {"include", required_argument, NULL, OPT_INCLUDE},
        {"exclude", required_argument, NULL, OPT_EXCLUDE},
        {"authfile", required_argument, NULL, OPT_AUTHFILE},
        {"cacert", required_argument, NULL, OPT_CACERT},
        {"insecure", no_argument, NULL, OPT_INSECURE},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"max-bytes", required_argument, NULL, OPT_MAX_BYTES},
        {"max-entries", required_argument, NULL, OPT_MAX_ENTRIES},
        {"max-path", required_argument, NULL, OPT_MAX_PATH},
        {"max-manifest", required_argument, NULL, OPT_MAX_MANIFEST},
        {"max-meta-bytes", required_argument, NULL, OPT_MAX_META_BYTES},
        {"max-walk", required_argument, NULL, OPT_MAX_WALK},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"help", no_argument, NULL, 'h'},
        {0},
};

/* The options that set a limit or a number. */
static int gen_number_option(struct gen_args *a, int o) {
    struct img_limits *l = &a->cfg.img.limits;
    uint64_t v = 0;
    int r;

    switch (o) {
    case OPT_TIMEOUT:
        r = set_number(1, 86400, "--timeout", &v);
        l->timeout_s = (unsigned)v;
        return r;
    case OPT_MAX_BYTES:
        return set_number(1, UINT64_MAX, "--max-bytes", &l->max_bytes);
    case OPT_MAX_ENTRIES:
        return set_number(1, UINT64_MAX, "--max-entries", &l->max_entries);
    case OPT_MAX_META_BYTES:
        return set_number(4096, UINT64_MAX, "--max-meta-bytes", &l->max_meta_bytes);
    case OPT_MAX_WALK:
        return set_number(1, UINT64_MAX, "--max-walk", &l->max_walk);
    case OPT_MAX_PATH:
        r = set_number(256, 1 << 20, "--max-path", &v);
        l->max_path = (size_t)v;
        return r;
    case OPT_MAX_MANIFEST:
        r = set_number(4096, 1u << 30, "--max-manifest", &v);
        l->max_manifest = (size_t)v;
        return r;
    default:
        r = set_number(0, 1024, "--threads", &v);
        a->cfg.img.threads = (unsigned)v;
        return r;
    }
}

static int gen_option(struct gen_args *a, int o) {
    enum hash_alg alg;

    switch (o) {
    case 'o':
        a->output = optarg;
        return 0;
    case OPT_NAME:
        a->meta.name = optarg;
        return strlen(optarg) && strlen(optarg) <= GEN_NAME_MAX
                       ? 0
                       : usage_error("generate", "--name takes 1 to 253 bytes");
    case OPT_NODE:
        a->meta.node = true;
        return 0;
    case OPT_NAMESPACE:
        a->meta.ns = optarg;
        return strlen(optarg) && strlen(optarg) <= 253
                       ? 0
                       : usage_error("generate", "--namespace takes 1 to 253 bytes");
    case OPT_LABEL:
        return add_label(a, optarg);
    case OPT_PLATFORM: {
        char os[64], arch[64], variant[64];
        a->cfg.source.platform = optarg;
        return img_platform_parse(optarg, os, arch, variant) == 0
                       ? 0
                       : usage_error("generate", "--platform takes OS/ARCH[/VARIANT]");
    }
    case OPT_HASH:
        if (hash_alg_from_name(optarg, strlen(optarg), &alg) < 0 || !hash_alg_is_bank(alg)) {
            return usage_error("generate", "--hash takes sha256, sha384, sha512 or sha1");
        }
        a->cfg.img.hash = alg;
        return 0;
    case OPT_ALL:
        a->cfg.img.select = IMG_SELECT_ALL;
        return 0;
    case OPT_INCLUDE:
        return add_filter(a->includes, &a->cfg.nincludes, optarg, "--include");
    case OPT_EXCLUDE:
        return add_filter(a->excludes, &a->cfg.nexcludes, optarg, "--exclude");
    case OPT_AUTHFILE:
        a->cfg.source.authfile = optarg;
        return 0;
    case OPT_CACERT:
        a->cfg.source.cacert = optarg;
        return 0;
    case OPT_INSECURE:
        a->cfg.source.insecure = true;
        return 0;
    default:
        return gen_number_option(a, o);
    }
}

/* The SOURCEs, parsed before anything is read, and the match. */
static int gen_operands(struct gen_args *a, int argc, char **argv) {
    char why[300];

    if (optind >= argc || argc - optind > SOURCES_MAX) {
        return usage_error("generate", "name 1 to 64 SOURCEs");
    }
    if (a->meta.node ? a->meta.ns || json_object_size(a->labels)
                     : !a->meta.ns && json_object_size(a->labels) == 0) {
        return usage_error("generate", a->meta.node
                                               ? "a NodePolicy has no --namespace or --label"
                                               : "a PodPolicy needs --namespace or --label (or "
                                                 "--node)");
    }
    a->specs = calloc((size_t)(argc - optind), sizeof(*a->specs));
    if (!a->specs) {
        return EXIT_SOFTWARE;
    }
    for (int i = optind; i < argc; i++) {
        if (gen_spec_parse(argv[i], &a->specs[a->nspecs], why, sizeof(why)) < 0) {
            char esc[600], msg[1000];
            log_escape(argv[i], strlen(argv[i]), esc, sizeof(esc));
            snprintf(msg, sizeof(msg), "SOURCE \"%s\": %s", esc, why);
            return usage_error("generate", msg);
        }
        a->nspecs++;
    }
    return 0;
}

static int gen_parse(struct gen_args *a, int argc, char **argv) {
    int o, code;

    img_options_default(&a->cfg.img);
    a->labels = json_object();
    if (!a->labels) {
        return EXIT_SOFTWARE;
    }
    while ((o = getopt_long(argc, argv, "o:h", gen_opts, NULL)) != -1) {
        if (o == 'h') {
            policy_usage(stdout);
            return -1;
        }
        if (o == '?' || o == ':') {
            policy_usage(stderr);
            return EXIT_USAGE;
        }
        if ((code = gen_option(a, o)) != 0) {
            return code;
        }
    }
    a->cfg.includes = a->includes;
    a->cfg.excludes = a->excludes;
    a->cfg.source.limits = a->cfg.img.limits;
    a->meta.labels = a->labels;
    return gen_operands(a, argc, argv);
}

static int gen_run(struct gen_args *a) {
    struct img_error err = {{0}};
    struct gen *g = NULL;
    _cleanup_free_ char *text = NULL;
    int r;

    if (gen_new(&a->cfg, &g) < 0) {
        return EXIT_SOFTWARE;
    }
    for (size_t i = 0; i < a->nspecs; i++) {
        if ((r = gen_add(g, &a->specs[i], &err)) < 0) {
            report("generate", &err);
            gen_free(g);
            return exit_code(r, a->specs[i].kind == GEN_REGISTRY);
        }
    }
    r = gen_policy_text(g, &a->meta, &text, &err);
    if (r == 0 && gen_file_count(g) == 0) {
        fprintf(stderr, "kimactl policy generate: warning: no file was selected\n");
    }
    if (r == 0 && gen_skipped_count(g) > 0) {
        fprintf(stderr,
                "kimactl policy generate: warning: left out %zu file(s) whose path is not "
                "UTF-8, which a policy cannot hold (a measurement of one will not pass)\n",
                gen_skipped_count(g));
        for (size_t i = 0; gen_skipped_path(g, i); i++) {
            fprintf(stderr, "  \"%s\"\n", gen_skipped_path(g, i));
        }
    }
    gen_free(g);
    if (r < 0) {
        report("generate", &err);
        return r == -EINVAL ? EXIT_USAGE : exit_code(r, false);
    }
    if (!a->output) {
        return write_full(STDOUT_FILENO, text, strlen(text)) < 0 ? EXIT_CANTCREAT : EXIT_OK;
    }
    if (gen_write_atomic(a->output, text, strlen(text), &err) < 0) {
        report("generate", &err);
        return EXIT_CANTCREAT;
    }
    return EXIT_OK;
}

static int cmd_generate(int argc, char **argv) {
    struct gen_args *a = calloc(1, sizeof(*a));
    int code;

    if (!a) {
        return EXIT_SOFTWARE;
    }
    code = gen_parse(a, argc, argv);
    if (code == 0) {
        code = gen_run(a);
    }
    gen_args_free(a);
    return code < 0 ? EXIT_OK : code;
}

/* ---- merge and diff ---- */

static int load_all(json_t **docs, char **files, size_t n, const char *cmd) {
    struct img_error err = {{0}};
    int r;

    for (size_t i = 0; i < n; i++) {
        if ((r = policy_doc_load(files[i], &docs[i], &err)) < 0) {
            report(cmd, &err);
            return exit_code(r, false);
        }
    }
    return 0;
}

static int merge_write(const json_t *doc, const char *output) {
    struct img_error err = {{0}};
    _cleanup_free_ char *text = NULL;

    if (policy_doc_text(doc, &text) < 0) {
        return EXIT_SOFTWARE;
    }
    if (!output) {
        return write_full(STDOUT_FILENO, text, strlen(text)) < 0 ? EXIT_CANTCREAT : EXIT_OK;
    }
    if (gen_write_atomic(output, text, strlen(text), &err) < 0) {
        report("merge", &err);
        return EXIT_CANTCREAT;
    }
    return EXIT_OK;
}

static int cmd_merge(int argc, char **argv) {
    static const struct option opts[] = {
            {"output", required_argument, NULL, 'o'},
            {"name", required_argument, NULL, 'n'},
            {"help", no_argument, NULL, 'h'},
            {0},
    };
    json_t *docs[MERGE_MAX] = {0}, *out = NULL;
    const char *output = NULL, *name = NULL;
    struct img_error err = {{0}};
    int o, code, r;
    size_t n;

    while ((o = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        if (o == 'h' || o == '?' || o == ':') {
            policy_usage(o == 'h' ? stdout : stderr);
            return o == 'h' ? EXIT_OK : EXIT_USAGE;
        }
        *(o == 'o' ? &output : &name) = optarg;
    }
    n = (size_t)(argc - optind);
    if (n < 2 || n > MERGE_MAX || (name && (!name[0] || strlen(name) > GEN_NAME_MAX))) {
        return usage_error("merge", "name 2 to 64 policies (and --name of 1 to 253 bytes)");
    }
    code = load_all(docs, argv + optind, n, "merge");
    if (code == 0) {
        r = policy_doc_merge(docs, (const char *const *)(argv + optind), n, name, &out, &err);
        if (r < 0) {
            report("merge", &err);
            code = exit_code(r, false);
        } else {
            code = merge_write(out, output);
        }
    }
    json_decref(out);
    for (size_t i = 0; i < n; i++) {
        json_decref(docs[i]);
    }
    return code;
}

static int cmd_diff(int argc, char **argv) {
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    _cleanup_kbuf_ struct kbuf out = KBUF_INIT(SIZE_MAX / 2);
    json_t *docs[2] = {0};
    bool same = false;
    int o, code;

    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        policy_usage(o == 'h' ? stdout : stderr);
        return o == 'h' ? EXIT_OK : EXIT_USAGE;
    }
    if (argc - optind != 2) {
        return usage_error("diff", "name two policies, OLD and NEW");
    }
    code = load_all(docs, argv + optind, 2, "diff");
    if (code == 0) {
        if (policy_doc_diff(docs[0], docs[1], &out, &same) < 0) {
            code = EXIT_SOFTWARE;
        } else if (out.len && write_full(STDOUT_FILENO, out.data, out.len) < 0) {
            code = EXIT_CANTCREAT;
        } else {
            code = same ? EXIT_OK : EXIT_MISMATCH;
        }
    }
    json_decref(docs[0]);
    json_decref(docs[1]);
    /* diff: any error is 2, as diff(1) has it. */
    return code == EXIT_OK || code == EXIT_MISMATCH || code == EXIT_USAGE ? code : EXIT_MALFORMED;
}

int cmd_policy(int argc, char **argv) {
    const char *cmd;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        policy_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    cmd = argv[1];
    argc--;
    argv++;
    if (strcmp(cmd, "generate") == 0) {
        return cmd_generate(argc, argv);
    }
    if (strcmp(cmd, "merge") == 0) {
        return cmd_merge(argc, argv);
    }
    if (strcmp(cmd, "diff") == 0) {
        return cmd_diff(argc, argv);
    }
    if (strcmp(cmd, "check") == 0) {
        return cmd_policy_check(argc, argv);
    }
    fprintf(stderr, "kimactl policy: unknown command \"%s\" (see kimactl policy --help)\n", cmd);
    return EXIT_USAGE;
}
