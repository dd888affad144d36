/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ascii.h"
#include "buf.h"
#include "fileio.h"
#include "hex.h"
#include "ima-pods.h"
#include "json-writer.h"
#include "kimactl.h"
#include "list-reader.h"
#include "log.h"
#include "parse.h"
#include "replay.h"
#include "verify.h"

#define OUT_FLUSH_AT (64u * 1024)
#define WANT_MAX     (IMA_HASH_COUNT * IMA_PCR_COUNT)

struct ima_cmd {
    const char *path;
    uint32_t digest_len;
    bool json;
    bool ascii;
    bool no_verify;
    unsigned banks;
    size_t nwant;
    struct ima_pcr_value want[WANT_MAX];
    struct kbuf out;
    struct json_writer jw;
};

static void ima_usage(FILE *f) {
    fprintf(f, "Usage: kimactl ima COMMAND [OPTIONS] FILE\n"
               "\n"
               "Read a Linux IMA measurement list: binary_runtime_measurements[_<bank>] (or,\n"
               "with --ascii, its ascii_runtime_measurements form). FILE \"-\" is stdin.\n"
               "\n"
               "Commands:\n"
               "  dump     print the list as the kernel's ascii_runtime_measurements would\n"
               "  replay   print the PCR values the list replays to, one line per PCR index:\n"
               "           <index> <bank>:<hex>\n"
               "  check    exit 0 when a prefix of the list replays to every --pcr value\n"
               "           (and say how many entries), 1 when none does\n"
               "  pods     count entries per pod UID and container ID, node-scope entries and\n"
               "           unplaced ones (under kubepods, in no pod)\n"
               "\n"
               "Options (every command):\n"
               "  --digest-size N      template digest width 20, 32, 48 or 64; default: the\n"
               "                       file name's _sha1/_sha256/_sha384/_sha512 suffix, else\n"
               "                       the width at which the list parses and verifies\n"
               "  --ascii              FILE is the ASCII form of the list\n"
               "  --json               print JSON instead of text\n"
               "  -h, --help           this help\n"
               "replay:\n"
               "  --bank BANK          sha1, sha256, sha384 or sha512; repeatable (default: all)\n"
               "check:\n"
               "  --pcr BANK:INDEX=HEX the value a PCR must have; repeatable, at least one\n"
               "dump:\n"
               "  --no-verify          print entries whose template digest does not verify\n"
               "\n"
               "Every template digest is verified (H over the template data; for the `ima`\n"
               "template over d and the name padded to 256 bytes). Replay follows Linux >= 5.8:\n"
               "each bank is extended with its own hash of the template data, and violations\n"
               "(all-zero digests) extend 0xff.\n"
               "\n"
               "Exit codes: 0 success, 1 check found no matching prefix, 2 malformed list or\n"
               "a template digest that does not verify (the error names the entry index and\n"
               "byte offset), 64 usage error, 66 FILE not readable, 70 internal error.\n");
}

static int out_flush(struct ima_cmd *c) {
    int r;

    if (c->out.len == 0) {
        return 0;
    }
    r = write_full(STDOUT_FILENO, c->out.data, c->out.len);
    kbuf_reset(&c->out);
    return r;
}

/* Flush when the buffer is large; entries are written whole before this. */
static int out_maybe_flush(struct ima_cmd *c) {
    if (jw_error(&c->jw)) {
        return jw_error(&c->jw);
    }
    return c->out.len >= OUT_FLUSH_AT ? out_flush(c) : 0;
}

static int parse_bank(const char *s, size_t len, enum ima_hash_alg *ret) {
    return ima_hash_from_name(s, len, ret);
}

/* "sha256:10=<hex>" */
static int parse_want(const char *arg, struct ima_pcr_value *ret) {
    const char *colon = strchr(arg, ':'), *eq = strchr(arg, '=');
    char idx[16];
    uint32_t pcr;
    size_t hexlen;

    if (!colon || !eq || eq < colon || (size_t)(eq - colon - 1) >= sizeof(idx)) {
        return -EINVAL;
    }
    if (parse_bank(arg, (size_t)(colon - arg), &ret->alg) < 0) {
        return -EINVAL;
    }
    memcpy(idx, colon + 1, (size_t)(eq - colon - 1));
    idx[eq - colon - 1] = 0;
    if (parse_u32(idx, &pcr) < 0 || pcr >= IMA_PCR_COUNT) {
        return -EINVAL;
    }
    ret->pcr = pcr;
    hexlen = strlen(eq + 1);
    if (hexlen != 2 * ima_hash_size(ret->alg) ||
        hex_decode(eq + 1, hexlen, ret->digest, sizeof(ret->digest)) < 0) {
        return -EINVAL;
    }
    return 0;
}

static int parse_args(struct ima_cmd *c, int argc, char **argv) {
    static const struct option opts[] = {
            {"digest-size", required_argument, NULL, 'd'},
            {"json", no_argument, NULL, 'j'},
            {"ascii", no_argument, NULL, 'a'},
            {"bank", required_argument, NULL, 'b'},
            {"pcr", required_argument, NULL, 'p'},
            {"no-verify", no_argument, NULL, 'n'},
            {"help", no_argument, NULL, 'h'},
            {0},
    };
    const char *cmd = argv[0];
    int o;

    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'd': {
            uint32_t v;
            enum ima_hash_alg alg;
            if (parse_u32(optarg, &v) < 0 || ima_hash_from_size(v, &alg) < 0) {
                fprintf(stderr, "kimactl ima: --digest-size must be 20, 32, 48 or 64\n");
                return -EINVAL;
            }
            c->digest_len = v;
            break;
        }
        case 'j':
            c->json = true;
            break;
        case 'a':
            c->ascii = true;
            break;
        case 'b': {
            enum ima_hash_alg alg;
            if (strcmp(cmd, "replay") != 0 || parse_bank(optarg, strlen(optarg), &alg) < 0) {
                fprintf(stderr, "kimactl ima: --bank takes sha1, sha256, sha384 or sha512 "
                                "(replay only)\n");
                return -EINVAL;
            }
            c->banks |= IMA_BANK(alg);
            break;
        }
        case 'p':
            if (strcmp(cmd, "check") != 0 || c->nwant == WANT_MAX ||
                parse_want(optarg, &c->want[c->nwant]) < 0) {
                fprintf(stderr,
                        "kimactl ima: --pcr takes BANK:INDEX=HEX, e.g. sha256:10=<64 hex digits> "
                        "(check only)\n");
                return -EINVAL;
            }
            c->banks |= IMA_BANK(c->want[c->nwant].alg);
            c->nwant++;
            break;
        case 'n':
            if (strcmp(cmd, "dump") != 0) {
                fprintf(stderr, "kimactl ima: --no-verify is a dump option\n");
                return -EINVAL;
            }
            c->no_verify = true;
            break;
        case 'h':
            ima_usage(stdout);
            return 1;
        default:
            ima_usage(stderr);
            return -EINVAL;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "kimactl ima %s: exactly one FILE is needed (see kimactl ima --help)\n",
                cmd);
        return -EINVAL;
    }
    if (strcmp(cmd, "check") == 0 && c->nwant == 0) {
        fprintf(stderr, "kimactl ima check: at least one --pcr BANK:INDEX=HEX is needed\n");
        return -EINVAL;
    }
    c->path = argv[optind];
    return 0;
}

/* Report a list error, naming the entry and byte offset; returns the exit code. */
static int report_list_error(struct ima_cmd *c, const struct list_reader *lr, int r) {
    char msg[256], esc[300];

    log_escape(c->path, strlen(c->path), esc, sizeof(esc));
    if (r == -EBADMSG || r == -E2BIG) {
        log_error("%s: %s", esc, ima_error_format(&lr->parser.err, msg, sizeof(msg)));
        return EXIT_MALFORMED;
    }
    log_error("%s: read failed: %s", esc, strerror(-r));
    return r == -ENOMEM ? EXIT_SOFTWARE : EXIT_NOINPUT;
}

static int digest_mismatch(struct ima_cmd *c, const struct ima_entry *e) {
    char esc[300];

    log_escape(c->path, strlen(c->path), esc, sizeof(esc));
    log_error("%s: entry %" PRIu64 " at byte offset %" PRIu64
              ": template digest does not match the template data",
              esc, e->index, e->offset);
    return EXIT_MALFORMED;
}

static void json_entry(struct json_writer *w, const struct ima_entry *e, bool digest_ok,
                       struct kbuf *scratch) {
    jw_object_begin(w);
    jw_key(w, "index");
    jw_uint(w, e->index);
    jw_key(w, "offset");
    jw_uint(w, e->offset);
    jw_key(w, "pcr");
    jw_uint(w, e->pcr);
    jw_key(w, "template_digest");
    jw_hex(w, e->digest, e->digest_len);
    jw_key(w, "template");
    jw_string_n(w, e->name, e->name_len);
    jw_key(w, "violation");
    jw_bool(w, e->violation);
    jw_key(w, "digest_ok");
    jw_bool(w, digest_ok);
    jw_key(w, "fields");
    jw_array_begin(w);
    for (unsigned i = 0; i < e->nfields; i++) {
        kbuf_reset(scratch);
        jw_object_begin(w);
        jw_key(w, "id");
        jw_string(w, ima_field_name(e->fields[i].id));
        jw_key(w, "value");
        if (ima_field_format_ascii(&e->fields[i], e->legacy, scratch) == 0) {
            jw_string_n(w, scratch->data ? scratch->data : (const uint8_t *)"", scratch->len);
        } else {
            jw_null(w);
        }
        jw_object_end(w);
    }
    jw_array_end(w);
    jw_object_end(w);
}

static int do_dump(struct ima_cmd *c, struct list_reader *lr) {
    _cleanup_kbuf_ struct kbuf scratch = KBUF_INIT(4 * IMA_TEMPLATE_DATA_MAX);
    struct ima_entry e;
    int r;

    if (c->json) {
        jw_array_begin(&c->jw);
    }
    while ((r = list_reader_next(lr, &e)) > 0) {
        bool ok = ima_entry_verify_digest(&e) == 0;
        if (!ok && !c->no_verify) {
            out_flush(c);
            return digest_mismatch(c, &e);
        }
        if (c->json) {
            json_entry(&c->jw, &e, ok, &scratch);
        } else if (ima_entry_format_ascii(&e, &c->out) < 0) {
            return EXIT_SOFTWARE;
        }
        if (out_maybe_flush(c) < 0) {
            return EXIT_SOFTWARE;
        }
    }
    if (r < 0) {
        out_flush(c);
        return report_list_error(c, lr, r);
    }
    if (c->json) {
        jw_array_end(&c->jw);
        kbuf_putc(&c->out, '\n');
    }
    return EXIT_OK;
}

static int do_replay(struct ima_cmd *c, struct list_reader *lr) {
    struct ima_replay rp;
    struct ima_entry e;
    int r;

    ima_replay_init(&rp, c->banks ? c->banks : IMA_BANKS_ALL);
    while ((r = list_reader_next(lr, &e)) > 0) {
        if (ima_replay_entry(&rp, &e) < 0) {
            return digest_mismatch(c, &e);
        }
    }
    if (r < 0) {
        return report_list_error(c, lr, r);
    }
    if (c->json) {
        jw_object_begin(&c->jw);
        jw_key(&c->jw, "entries");
        jw_uint(&c->jw, rp.entries);
        jw_key(&c->jw, "digest_size");
        jw_uint(&c->jw, lr->parser.digest_len);
        jw_key(&c->jw, "pcrs");
        jw_array_begin(&c->jw);
    }
    for (uint32_t pcr = 0; pcr < IMA_PCR_COUNT; pcr++) {
        if (!(rp.touched & (UINT32_C(1) << pcr))) {
            continue;
        }
        for (int b = 0; b < IMA_HASH_COUNT; b++) {
            const uint8_t *v = ima_replay_get(&rp, (enum ima_hash_alg)b, pcr);
            char hex[2 * IMA_DIGEST_MAX + 1];
            if (!v) {
                continue;
            }
            hex_encode(v, ima_hash_size((enum ima_hash_alg)b), hex);
            if (c->json) {
                jw_object_begin(&c->jw);
                jw_key(&c->jw, "index");
                jw_uint(&c->jw, pcr);
                jw_key(&c->jw, "bank");
                jw_string(&c->jw, ima_hash_name((enum ima_hash_alg)b));
                jw_key(&c->jw, "value");
                jw_string(&c->jw, hex);
                jw_object_end(&c->jw);
            } else {
                kbuf_printf(&c->out, "%u %s:%s\n", pcr, ima_hash_name((enum ima_hash_alg)b), hex);
            }
        }
    }
    if (c->json) {
        jw_array_end(&c->jw);
        jw_object_end(&c->jw);
        kbuf_putc(&c->out, '\n');
    }
    return EXIT_OK;
}

static int do_check(struct ima_cmd *c, struct list_reader *lr) {
    struct ima_replay rp;
    struct ima_entry e;
    uint32_t want_pcrs = 0;
    uint64_t matched_at = 0, total = 0;
    bool matched;
    int r;

    ima_replay_init(&rp, c->banks);
    for (size_t i = 0; i < c->nwant; i++) {
        want_pcrs |= UINT32_C(1) << c->want[i].pcr;
    }
    matched = ima_replay_matches(&rp, c->want, c->nwant);
    while ((r = list_reader_next(lr, &e)) > 0) {
        total++;
        if (matched) {
            /* The rest is not replayed, but it must still be a valid list. */
            if (ima_entry_verify_digest(&e) < 0) {
                return digest_mismatch(c, &e);
            }
            continue;
        }
        if (ima_replay_entry(&rp, &e) < 0) {
            return digest_mismatch(c, &e);
        }
        if ((want_pcrs & (UINT32_C(1) << e.pcr)) && ima_replay_matches(&rp, c->want, c->nwant)) {
            matched = true;
            matched_at = total;
        }
    }
    if (r < 0) {
        return report_list_error(c, lr, r);
    }
    if (c->json) {
        jw_object_begin(&c->jw);
        jw_key(&c->jw, "matched");
        jw_bool(&c->jw, matched);
        jw_key(&c->jw, "entries_matched");
        jw_uint(&c->jw, matched ? matched_at : 0);
        jw_key(&c->jw, "entries");
        jw_uint(&c->jw, total);
        jw_object_end(&c->jw);
        kbuf_putc(&c->out, '\n');
    } else if (matched) {
        kbuf_printf(&c->out,
                    "match: the first %" PRIu64 " of %" PRIu64
                    " entries replay to the given PCR values\n",
                    matched_at, total);
    } else {
        kbuf_printf(&c->out,
                    "no match: no prefix of the %" PRIu64
                    " entries replays to the given PCR values; the whole list gives:\n",
                    total);
        for (size_t i = 0; i < c->nwant; i++) {
            char hex[2 * IMA_DIGEST_MAX + 1];
            hex_encode(ima_replay_get(&rp, c->want[i].alg, c->want[i].pcr),
                       ima_hash_size(c->want[i].alg), hex);
            kbuf_printf(&c->out, "%u %s:%s\n", c->want[i].pcr, ima_hash_name(c->want[i].alg), hex);
        }
    }
    return matched ? EXIT_OK : EXIT_MISMATCH;
}

static int do_pods(struct ima_cmd *c, struct list_reader *lr) {
    _cleanup_(ima_pods_freep) struct ima_pods *pods = NULL;
    struct ima_entry e;
    int r;

    pods = ima_pods_new();
    if (!pods) {
        return EXIT_SOFTWARE;
    }
    while ((r = list_reader_next(lr, &e)) > 0) {
        if (ima_entry_verify_digest(&e) < 0) {
            return digest_mismatch(c, &e);
        }
        r = ima_pods_add(pods, &e);
        if (r == -EBADMSG) {
            log_error("entry %" PRIu64 ": its cgroup field does not read as its template %.*s "
                      "says (a renamed entry)",
                      e.index, (int)e.name_len, e.name);
            return EXIT_MALFORMED;
        }
        if (r < 0) {
            log_error("too many pods or containers in the list: %s", strerror(-r));
            return r == -ENOMEM ? EXIT_SOFTWARE : EXIT_MALFORMED;
        }
    }
    if (r < 0) {
        return report_list_error(c, lr, r);
    }
    if (c->json) {
        ima_pods_write_json(pods, &c->jw);
        kbuf_putc(&c->out, '\n');
    } else if (ima_pods_write_text(pods, &c->out) < 0) {
        return EXIT_SOFTWARE;
    }
    return EXIT_OK;
}

int cmd_ima(int argc, char **argv) {
    static const struct {
        const char *name;
        int (*run)(struct ima_cmd *c, struct list_reader *lr);
    } cmds[] = {
            {"dump", do_dump},
            {"replay", do_replay},
            {"check", do_check},
            {"pods", do_pods},
    };
    struct ima_cmd *c;
    struct list_reader lr;
    char err[512], esc[300];
    int (*run)(struct ima_cmd *, struct list_reader *) = NULL;
    int r, code;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        ima_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(argv[1], cmds[i].name) == 0) {
            run = cmds[i].run;
        }
    }
    if (!run) {
        fprintf(stderr, "kimactl ima: unknown command \"%s\" (see kimactl ima --help)\n", argv[1]);
        return EXIT_USAGE;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        return EXIT_SOFTWARE;
    }
    kbuf_init(&c->out, 16u << 20);
    jw_init(&c->jw, &c->out);
    r = parse_args(c, argc - 1, argv + 1);
    if (r != 0) {
        free(c);
        return r > 0 ? EXIT_OK : EXIT_USAGE;
    }
    r = list_reader_open(&lr, c->path, c->digest_len, c->ascii, err, sizeof(err));
    if (r < 0) {
        log_escape(c->path, strlen(c->path), esc, sizeof(esc));
        log_error("%s: %s", esc, err);
        code = r == -EBADMSG || r == -E2BIG ? EXIT_MALFORMED
               : r == -ENOMEM               ? EXIT_SOFTWARE
                                            : EXIT_NOINPUT;
    } else {
        code = run(c, &lr);
        if (jw_error(&c->jw) < 0) {
            log_error("output failed: %s", strerror(-jw_error(&c->jw)));
            code = EXIT_SOFTWARE;
        }
        if (out_flush(c) < 0 && code == EXIT_OK) {
            code = EXIT_SOFTWARE;
        }
    }
    list_reader_close(&lr);
    kbuf_free(&c->out);
    free(c);
    return code;
}
