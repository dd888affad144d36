/* SPDX-License-Identifier: Apache-2.0 */
#include "policy.h"
#include "policy-internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "fileio.h"
#include "hash-alg.h"
#include "hex.h"
#include "json-util.h"
#include "log.h"

/* One file's parse: where it came from, what it may load, where its
 * warnings and its error go. */
struct parser {
    const char *file;
    const struct policy_load_options *opts;
    bool keylime; /* a Keylime runtime policy: bare hex digests, any digests key */
    struct kbuf *warnings;
    char *err;
    size_t errsz;
};

/* Every parse failure ends here: the message, naming the field, goes to the
 * parser's err and `r` comes back for the caller to return. */
_printf_(3, 4) static int parse_fail(const struct parser *ps, int r, const char *fmt, ...) {
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(ps->err, ps->errsz, fmt, ap);
    va_end(ap);
    return r;
}

static uint64_t fnv1a(const void *p, size_t n, uint64_t h) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * 0x100000001b3ull;
    }
    return h;
}

static uint64_t key_hash(const char *path, size_t plen, const char *digest) {
    uint64_t h = fnv1a(path, plen, 0xcbf29ce484222325ull);
    h = fnv1a("\x1f", 1, h);
    return fnv1a(digest, strlen(digest), h);
}

static bool key_equal(const char *slot, const char *path, size_t plen, const char *digest) {
    return strncmp(slot, path, plen) == 0 && slot[plen] == '\x1f' &&
           strcmp(slot + plen + 1, digest) == 0;
}

void policy_free(struct policy *p) {
    if (!p || --p->refs > 0) {
        return;
    }
    free(p->name);
    free(p->file);
    free(p->ns);
    for (size_t i = 0; i < p->nimages; i++) {
        free(p->images[i]);
    }
    free(p->images);
    for (size_t i = 0; i < p->nlabels; i++) {
        free(p->labels[i].key);
        free(p->labels[i].value);
    }
    free(p->labels);
    for (size_t i = 0; i < p->nslots; i++) {
        free(p->slots[i]);
    }
    free(p->slots);
    for (size_t i = 0; i < p->nexcludes; i++) {
        regfree(&p->excludes[i]);
    }
    free(p->excludes);
    free(p);
}

DEFINE_CLEANUP_FUNC(struct policy, policy_free)

static int insert(struct policy *p, const char *path, const char *digest) {
    size_t plen = strlen(path);
    uint64_t h = key_hash(path, plen, digest);

    for (size_t i = 0; i < p->nslots; i++) {
        size_t k = (h + i) & (p->nslots - 1);
        if (!p->slots[k]) {
            size_t n = plen + 1 + strlen(digest) + 1;
            p->slots[k] = malloc(n);
            if (!p->slots[k]) {
                return -ENOMEM;
            }
            snprintf(p->slots[k], n, "%s\x1f%s", path, digest);
            p->ndigests++;
            return 0;
        }
        if (key_equal(p->slots[k], path, plen, digest)) {
            return 0;
        }
    }
    return -E2BIG;
}

/* An all-zero digest: the file could not be measured. It never passes,
 * not even on an excluded path. */
static bool zero_digest(const char *digest) {
    const char *hex = strchr(digest, ':');
    bool zero = true;

    for (const char *c = hex ? hex + 1 : digest; *c; c++) {
        zero &= *c == '0';
    }
    return zero;
}

/* Is the digest listed for the path or for "*"? */
static bool lists(const struct policy *p, const char *path, size_t path_len, const char *digest) {
    for (int pass = 0; pass < 2 && p->nslots; pass++) {
        const char *k = pass ? "*" : path;
        size_t klen = pass ? 1 : path_len;
        uint64_t h = key_hash(k, klen, digest);
        for (size_t i = 0; i < p->nslots; i++) {
            const char *s = p->slots[(h + i) & (p->nslots - 1)];
            if (!s) {
                break;
            }
            if (key_equal(s, k, klen, digest)) {
                return true;
            }
        }
    }
    return false;
}

bool policy_allows(const struct policy *p, const char *path, size_t path_len, const char *digest) {
    return !zero_digest(digest) &&
           (lists(p, path, path_len, digest) || policy_excludes(p, path, path_len));
}

enum policy_result policy_judge(const struct policy *p, const char *path, size_t path_len,
                                const char *digest, bool violation) {
    if (!digest || !digest[0]) {
        return POLICY_RESULT_NO_DIGEST;
    }
    if (violation) {
        return policy_excludes(p, path, path_len) ? POLICY_RESULT_EXCLUDED
                                                  : POLICY_RESULT_VIOLATION;
    }
    if (zero_digest(digest)) {
        return POLICY_RESULT_NOT_LISTED;
    }
    if (lists(p, path, path_len, digest)) {
        return POLICY_RESULT_PASS;
    }
    return policy_excludes(p, path, path_len) ? POLICY_RESULT_EXCLUDED : POLICY_RESULT_NOT_LISTED;
}

const char *policy_result_name(enum policy_result r) {
    switch (r) {
    case POLICY_RESULT_PASS:
        return "pass";
    case POLICY_RESULT_EXCLUDED:
        return "excluded";
    case POLICY_RESULT_NOT_LISTED:
        return "fail";
    case POLICY_RESULT_NO_DIGEST:
        return "no-digest";
    case POLICY_RESULT_VIOLATION:
        return "violation";
    }
    return "fail";
}

bool policy_excludes(const struct policy *p, const char *path, size_t path_len) {
    char pathz[PATH_MAX];

    /* A path the regex could not see whole (too long, or cut short by a NUL)
     * is never excluded. */
    if (p->nexcludes && path_len < sizeof(pathz) && !memchr(path, 0, path_len)) {
        memcpy(pathz, path, path_len);
        pathz[path_len] = 0;
        for (size_t i = 0; i < p->nexcludes; i++) {
            if (policy_exclude_matches(&p->excludes[i], pathz)) {
                return true;
            }
        }
    }
    return false;
}

/* "sha256:<hex>" (or bare hex for Keylime policies) to lowercase "algo:hex". */
int policy_normalize_digest(const char *in, bool keylime, char *out, size_t outsz) {
    const char *colon = strchr(in, ':'), *hex = colon ? colon + 1 : in;
    size_t hexlen = strlen(hex);

    for (int i = 0; i < HASH_ALG_COUNT; i++) {
        enum hash_alg alg = (enum hash_alg)i;
        const char *name = hash_alg_name(alg);
        bool named = colon && (size_t)(colon - in) == strlen(name) &&
                     strncmp(in, name, strlen(name)) == 0;
        /* A bare Keylime digest is sha1 .. sha512 by its length. */
        bool implied = !colon && keylime && hash_alg_is_bank(alg);
        if ((named || implied) && hexlen == 2 * hash_alg_size(alg)) {
            int n = snprintf(out, outsz, "%s:", name);
            for (size_t k = 0; k < hexlen; k++) {
                char c = hex[k];
                if (c >= 'A' && c <= 'F') {
                    c = (char)(c - 'A' + 'a');
                }
                if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) ||
                    (size_t)n + k + 1 >= outsz) {
                    return -EINVAL;
                }
                out[n + (int)k] = c;
            }
            out[(size_t)n + hexlen] = 0;
            return 0;
        }
    }
    return -EINVAL;
}

/* At most this many warnings a file, so one file cannot crowd the others'
 * errors out of the capped error text. */
#define POLICY_WARNINGS_MAX 8

/* Refuse an exclude that matches every path (unless allowed), and warn about
 * one that matches where code can be written and run. Warnings are lines
 * "<file>: warning: ..." in `warnings`, written only when the file loads. */
static int check_excludes(const struct policy *p, const json_t *excludes, const struct parser *ps) {
    const char *file = ps->file;
    struct kbuf *warnings = ps->warnings;
    size_t nwarn = 0;
    char esc[160];

    for (size_t i = 0; i < p->nexcludes && !ps->opts->allow_match_all_excludes; i++) {
        if (policy_exclude_matches_every_path(&p->excludes[i])) {
            const char *x = json_string_value(json_array_get(excludes, i));
            log_escape(x, strlen(x), esc, sizeof(esc));
            return parse_fail(ps, -EBADMSG,
                              "\"excludes[%zu]\" (\"%s\") matches every path: nothing would be "
                              "judged (refused; --allow-match-all-excludes loads it)",
                              i, esc);
        }
    }
    for (size_t i = 0; i < p->nexcludes && warnings; i++) {
        const char *x = json_string_value(json_array_get(excludes, i)), *probe = NULL;
        if (!policy_exclude_matches_every_path(&p->excludes[i]) &&
            !(probe = policy_exclude_writable_match(&p->excludes[i])) &&
            !(probe = policy_exclude_writable_prefix(x))) {
            continue;
        }
        log_escape(x, strlen(x), esc, sizeof(esc));
        if (nwarn++ == POLICY_WARNINGS_MAX) {
            kbuf_printf(warnings, "%s: warning: more excludes match where code can run\n", file);
            break;
        }
        if (!probe) {
            kbuf_printf(warnings,
                        "%s: warning: \"excludes[%zu]\" (\"%s\") matches every path: nothing "
                        "this policy covers is judged (allowed by --allow-match-all-excludes)\n",
                        file, i, esc);
        } else {
            kbuf_printf(warnings,
                        "%s: warning: \"excludes[%zu]\" (\"%s\") matches %s or below, where code "
                        "can be written and run: a binary run from there is not judged\n",
                        file, i, esc, probe);
        }
    }
    return 0;
}

/* A required string member: absent is as malformed as mistyped. */
static int need_string(const json_t *j, const char *key, size_t max_len, const char **ret,
                       const struct parser *ps) {
    int r = json_get_string(j, key, max_len, ret, ps->err, ps->errsz);

    return r == -ENOENT ? -EBADMSG : r;
}

/* apiVersion, kind and name of a kima.dev/v1 policy. */
static int parse_native_header(struct policy *p, const json_t *j, const struct parser *ps) {
    const char *s;
    int r;

    if ((r = need_string(j, "apiVersion", 64, &s, ps)) < 0) {
        return r;
    }
    if (strcmp(s, "kima.dev/v1") != 0) {
        return parse_fail(ps, -EBADMSG, "\"apiVersion\" is not kima.dev/v1");
    }
    if ((r = need_string(j, "kind", 32, &s, ps)) < 0) {
        return r;
    }
    if (strcmp(s, "PodPolicy") == 0) {
        p->kind = POLICY_POD;
    } else if (strcmp(s, "NodePolicy") == 0) {
        p->kind = POLICY_NODE;
    } else {
        return parse_fail(ps, -EBADMSG, "\"kind\" is neither PodPolicy nor NodePolicy");
    }
    if ((r = need_string(j, "name", 253, &s, ps)) < 0) {
        return r;
    }
    p->name = strdup(s);
    return p->name ? 0 : parse_fail(ps, -ENOMEM, "\"name\": out of memory");
}

/* The file's format, kind and name. A file with "digests" and no
 * "apiVersion" is a Keylime runtime policy: a NodePolicy named after its
 * file. */
static int parse_header(struct policy *p, const json_t *j, struct parser *ps) {
    const char *base;

    if (!json_is_object(j)) {
        return parse_fail(ps, -EBADMSG, "not a JSON object");
    }
    ps->keylime = !json_object_get(j, "apiVersion") && json_object_get(j, "digests");
    if (!ps->keylime) {
        return parse_native_header(p, j, ps);
    }
    base = strrchr(ps->file, '/');
    p->kind = POLICY_NODE;
    p->name = strdup(base ? base + 1 : ps->file);
    return p->name ? 0 : parse_fail(ps, -ENOMEM, "the name: out of memory");
}

static int hash_chunk(const char *buf, size_t size, void *ud) {
    return EVP_DigestUpdate(ud, buf, size) ? 0 : -1;
}

/* The canonical form's SHA-256 (streamed: the form is never held as text)
 * into p->digest and p->id, "<name>@sha256:<hex>". The form itself goes to
 * *ret_canonical when that is not NULL. */
static int make_id(struct policy *p, const json_t *j, const struct parser *ps,
                   json_t **ret_canonical) {
    _cleanup_json_ json_t *c = NULL;
    EVP_MD_CTX *ctx = NULL;
    uint8_t md[32];
    char hex[65];
    unsigned int mdlen = 0;
    int r = policy_canonical_build(j, ps->keylime, p->kind, p->name, &c);

    if (r < 0) {
        return parse_fail(ps, r, "the canonical form: %s",
                          r == -ENOMEM ? "out of memory" : "a digest does not normalise");
    }
    ctx = EVP_MD_CTX_new();
    r = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
                        json_dump_callback(c, hash_chunk, ctx, POLICY_CANONICAL_DUMP_FLAGS) == 0 &&
                        EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen == sizeof(md)
                ? 0
                : -ENOMEM;
    EVP_MD_CTX_free(ctx);
    if (r < 0) {
        return parse_fail(ps, r, "cannot hash the canonical form");
    }
    snprintf(p->digest, sizeof(p->digest), "sha256:%s", hex_encode(md, sizeof(md), hex));
    snprintf(p->id, sizeof(p->id), "%.240s@%s", p->name, p->digest);
    if (ret_canonical) {
        *ret_canonical = TAKE_PTR(c);
    }
    return 0;
}

/* match.podLabels: at most POLICY_LABELS_MAX labels, each a string. */
static int parse_labels(struct policy *p, const json_t *match, const struct parser *ps) {
    json_t *labels = json_object_get(match, "podLabels"), *v;
    const char *key;

    if (labels && !json_is_object(labels)) {
        return parse_fail(ps, -EBADMSG, "\"match.podLabels\" is not an object");
    }
    if (json_object_size(labels) > POLICY_LABELS_MAX) {
        return parse_fail(ps, -EBADMSG, "\"match.podLabels\" has more than %d labels",
                          POLICY_LABELS_MAX);
    }
    p->labels = calloc(json_object_size(labels) + 1, sizeof(*p->labels));
    if (!p->labels) {
        return parse_fail(ps, -ENOMEM, "\"match.podLabels\": out of memory");
    }
    json_object_foreach(labels, key, v) {
        struct label *l = &p->labels[p->nlabels];
        if (!json_is_string(v)) {
            return parse_fail(ps, -EBADMSG, "\"match.podLabels.%.64s\" is not a string", key);
        }
        /* Counted before it is whole: policy_free() frees what it holds. */
        p->nlabels++;
        l->key = strdup(key);
        l->value = strdup(json_string_value(v));
        if (!l->key || !l->value) {
            return parse_fail(ps, -ENOMEM, "\"match.podLabels.%.64s\": out of memory", key);
        }
    }
    return 0;
}

/* match.images: at most POLICY_IMAGES_MAX image digests, "sha256:<hex>". */
static int parse_images(struct policy *p, const json_t *match, const struct parser *ps) {
    json_t *images = json_object_get(match, "images"), *im;
    size_t i;

    if (images && (!json_is_array(images) || json_array_size(images) > POLICY_IMAGES_MAX)) {
        return parse_fail(ps, -EBADMSG, "\"match.images\" is not an array of at most %d digests",
                          POLICY_IMAGES_MAX);
    }
    p->images = calloc(json_array_size(images) + 1, sizeof(*p->images));
    if (!p->images) {
        return parse_fail(ps, -ENOMEM, "\"match.images\": out of memory");
    }
    json_array_foreach(images, i, im) {
        const char *d = json_string_value(im);
        if (!d || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 71 ||
            strspn(d + 7, "0123456789abcdef") != 64) {
            return parse_fail(ps, -EBADMSG, "\"match.images[%zu]\" is not sha256:<64 hex digits>",
                              i);
        }
        if (!(p->images[p->nimages] = strdup(d))) {
            return parse_fail(ps, -ENOMEM, "\"match.images[%zu]\": out of memory", i);
        }
        p->nimages++;
    }
    return 0;
}

/* A PodPolicy's match, which must narrow it to some pods (a namespace or a
 * label); a NodePolicy has none. */
static int parse_match(struct policy *p, const json_t *j, const struct parser *ps) {
    json_t *match = json_object_get(j, "match");
    const char *s;
    int r;

    if (p->kind == POLICY_NODE) {
        return match ? parse_fail(ps, -EBADMSG, "a NodePolicy has no \"match\"") : 0;
    }
    if (!json_is_object(match)) {
        return parse_fail(ps, -EBADMSG, "\"match\" is missing (a PodPolicy needs one)");
    }
    r = json_get_string(match, "namespace", 253, &s, ps->err, ps->errsz);
    if (r < 0 && r != -ENOENT) {
        return r;
    }
    if (r == 0 && !(p->ns = strdup(s))) {
        return parse_fail(ps, -ENOMEM, "\"match.namespace\": out of memory");
    }
    if ((r = parse_labels(p, match, ps)) < 0 || (r = parse_images(p, match, ps)) < 0) {
        return r;
    }
    if (!p->ns && p->nlabels == 0) {
        return parse_fail(ps, -EBADMSG,
                          "\"match\" names no namespace and no labels: it would match every pod");
    }
    return 0;
}

/* Every "digests" value is an array, and all of them hold at most
 * POLICY_DIGESTS_MAX digests: the count sizes the table. */
static int count_digests(json_t *digests, size_t *ret_total, const struct parser *ps) {
    const char *key;
    json_t *v;
    size_t total = 0;

    json_object_foreach(digests, key, v) {
        if (!json_is_array(v)) {
            return parse_fail(ps, -EBADMSG, "\"digests.%.200s\" is not an array", key);
        }
        total += json_array_size(v);
    }
    if (total > POLICY_DIGESTS_MAX) {
        return parse_fail(ps, -EBADMSG, "\"digests\" lists more than %d digests",
                          POLICY_DIGESTS_MAX);
    }
    *ret_total = total;
    return 0;
}

/* One "digests" entry: its key (an absolute path, "*" or "boot_aggregate";
 * any key in a Keylime policy) and each of its digests, into the table. */
static int parse_digest_list(struct policy *p, const char *key, const json_t *list,
                             const struct parser *ps) {
    size_t i;
    json_t *d;
    int r;

    if (key[0] != '/' && strcmp(key, "*") != 0 && strcmp(key, "boot_aggregate") != 0 &&
        !ps->keylime) {
        return parse_fail(ps, -EBADMSG,
                          "\"digests\" key \"%.200s\" is not an absolute path, \"*\" or "
                          "\"boot_aggregate\"",
                          key);
    }
    json_array_foreach(list, i, d) {
        char norm[160];
        if (!json_is_string(d) ||
            policy_normalize_digest(json_string_value(d), ps->keylime, norm, sizeof(norm)) < 0) {
            return parse_fail(ps, -EBADMSG,
                              "\"digests.%.200s[%zu]\" is not "
                              "\"sha1|sha256|sha384|sha512|sm3:<hex>\"",
                              key, i);
        }
        if ((r = insert(p, key, norm)) < 0) {
            return parse_fail(ps, r, "\"digests.%.200s[%zu]\": %s", key, i,
                              r == -ENOMEM ? "out of memory" : "no room in the table");
        }
    }
    return 0;
}

/* "digests": an object of arrays, into an open-addressing table at most half
 * full (so insert() always finds a free slot). */
static int parse_digests(struct policy *p, const json_t *j, const struct parser *ps) {
    json_t *digests = json_object_get(j, "digests"), *v;
    const char *key;
    size_t total = 0, nslots = 16;
    int r;

    if (!json_is_object(digests)) {
        return parse_fail(ps, -EBADMSG, "\"digests\" is missing or not an object");
    }
    if ((r = count_digests(digests, &total, ps)) < 0) {
        return r;
    }
    while (nslots < 2 * total) {
        nslots *= 2;
    }
    p->slots = calloc(nslots, sizeof(*p->slots));
    if (!p->slots) {
        return parse_fail(ps, -ENOMEM, "\"digests\": out of memory");
    }
    p->nslots = nslots;
    json_object_foreach(digests, key, v) {
        if ((r = parse_digest_list(p, key, v, ps)) < 0) {
            return r;
        }
    }
    return 0;
}

/* excludes[i]: its shape bounded, then compiled as the next regex. */
static int compile_exclude(struct policy *p, size_t i, const json_t *x, const struct parser *ps) {
    const char *re = json_string_value(x);
    char why[160];
    int r;
    uint64_t weight = 0;

    if (re && policy_exclude_shape(re, &weight, why, sizeof(why)) < 0) {
        return parse_fail(ps, -EBADMSG, "\"excludes[%zu]\" %s", i, why);
    }
    p->exclude_weight += weight;
    if (p->exclude_weight > POLICY_FILE_EXCLUDE_WEIGHT_MAX) {
        return parse_fail(ps, -EBADMSG,
                          "\"excludes[%zu]\": the excludes expand to more than %d atoms in all", i,
                          POLICY_FILE_EXCLUDE_WEIGHT_MAX);
    }
    /* Without REG_NOSUB: policy_exclude_matches() needs where the match starts. */
    r = re ? regcomp(&p->excludes[p->nexcludes], re, REG_EXTENDED) : REG_BADPAT;
    if (r == REG_ESPACE) {
        return parse_fail(ps, -ENOMEM, "\"excludes[%zu]\": out of memory", i);
    }
    if (r != 0) {
        return parse_fail(ps, -EBADMSG, "\"excludes[%zu]\" is not a valid extended regex", i);
    }
    p->nexcludes++;
    return 0;
}

/* "excludes" (optional): at most POLICY_EXCLUDES_MAX regexes, then the
 * checks on what they match. */
static int parse_excludes(struct policy *p, const json_t *j, const struct parser *ps) {
    json_t *excludes = json_object_get(j, "excludes"), *x;
    size_t i;
    int r;

    if (!excludes) {
        return 0;
    }
    if (!json_is_array(excludes) || json_array_size(excludes) > POLICY_EXCLUDES_MAX) {
        return parse_fail(ps, -EBADMSG, "\"excludes\" is not an array of at most %d regexes",
                          POLICY_EXCLUDES_MAX);
    }
    p->excludes = calloc(json_array_size(excludes) + 1, sizeof(regex_t));
    if (!p->excludes) {
        return parse_fail(ps, -ENOMEM, "\"excludes\": out of memory");
    }
    json_array_foreach(excludes, i, x) {
        if ((r = compile_exclude(p, i, x, ps)) < 0) {
            return r;
        }
    }
    return check_excludes(p, excludes, ps);
}

static int parse_policy(const char *buf, size_t len, const char *file,
                        const struct policy_load_options *opts, struct policy **ret,
                        struct kbuf *warnings, char *err, size_t errsz, json_t **ret_canonical) {
    static const struct policy_load_options defaults = {0};
    struct parser ps = {
            .file = file,
            .opts = opts ? opts : &defaults,
            .warnings = warnings,
            .err = err,
            .errsz = errsz,
    };
    _cleanup_(policy_freep) struct policy *p = NULL;
    _cleanup_json_ json_t *j = NULL;
    int r;

    if ((!buf && len > 0) || !file || !ret || !err || errsz == 0) {
        return -EINVAL;
    }
    if (len > POLICY_FILE_MAX) {
        return parse_fail(&ps, -E2BIG, "larger than %u bytes", POLICY_FILE_MAX);
    }
    r = json_parse_bounded(buf, len, JSON_DEPTH_MAX, POLICY_VALUES_MAX, &j, err, errsz);
    if (r < 0) {
        return r;
    }
    p = calloc(1, sizeof(*p));
    if (p) {
        p->refs = 1;
        p->file = strdup(file);
    }
    if (!p || !p->file) {
        return parse_fail(&ps, -ENOMEM, "out of memory");
    }
    /* In the order of the file's description, so that a file with several
     * faults is refused for the same one each time; excludes last, as their
     * warnings are written only for a file that loads. */
    if ((r = parse_header(p, j, &ps)) < 0 || (r = parse_match(p, j, &ps)) < 0 ||
        (r = parse_digests(p, j, &ps)) < 0 || (r = make_id(p, j, &ps, ret_canonical)) < 0 ||
        (r = parse_excludes(p, j, &ps)) < 0) {
        if (ret_canonical) {
            json_decref(*ret_canonical);
            *ret_canonical = NULL;
        }
        return r;
    }
    *ret = TAKE_PTR(p);
    return 0;
}

int policy_parse(const char *buf, size_t len, const char *file,
                 const struct policy_load_options *opts, struct policy **ret, struct kbuf *warnings,
                 char *err, size_t errsz) {
    return parse_policy(buf, len, file, opts, ret, warnings, err, errsz, NULL);
}

int policy_canonical(const char *buf, size_t len, const char *file,
                     const struct policy_load_options *opts, char **ret, char *err, size_t errsz) {
    _cleanup_(policy_freep) struct policy *p = NULL;
    _cleanup_json_ json_t *c = NULL;
    char *text;
    int r;

    if (!ret) {
        return -EINVAL;
    }
    r = parse_policy(buf, len, file, opts, &p, NULL, err, errsz, &c);
    if (r < 0) {
        return r;
    }
    text = json_dumps(c, POLICY_CANONICAL_DUMP_FLAGS);
    if (!text) {
        snprintf(err, errsz, "the canonical form: out of memory");
        return -ENOMEM;
    }
    *ret = text;
    return 0;
}

const char *policy_name(const struct policy *p) {
    return p->name;
}

const char *policy_id(const struct policy *p) {
    return p->id;
}

const char *policy_content_digest(const struct policy *p) {
    return p->digest;
}

const char *policy_file(const struct policy *p) {
    return p->file;
}

enum policy_kind policy_kind(const struct policy *p) {
    return p->kind;
}

size_t policy_digest_count(const struct policy *p) {
    return p->ndigests;
}
