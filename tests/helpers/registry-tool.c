/* SPDX-License-Identifier: Apache-2.0 */
/* Reads an image from a registry with kima's docker:// source, for
 * tests/integration/test-registry.sh: the manifest (through an index to its
 * linux/amd64 manifest), then the config and every layer through a digest
 * check. Prints "manifest DIGEST MEDIATYPE" for each manifest read and
 * "blob DIGEST SIZE ok" for each blob; on an error its sentence on stderr
 * and exit 1.
 * Usage: registry-tool [--authfile F] [--cacert F] [--insecure]
 *        [--timeout S] HOST[:PORT] REPO REF */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "json-util.h"
#include "parse.h"

static int read_blob(struct img_source *s, const json_t *desc, struct img_error *err) {
    const char *digest = json_string_value(json_object_get(desc, "digest"));
    json_int_t size = json_integer_value(json_object_get(desc, "size"));
    struct img_stream *raw = NULL, *v = NULL;
    char buf[65536];
    ssize_t k;
    int r;

    if (!digest) {
        return img_error_set(err, -EBADMSG, "a descriptor without a digest");
    }
    if ((r = s->ops->blob(s, digest, size, &raw, err)) < 0) {
        return r;
    }
    if ((r = img_stream_verified(raw, digest, size, &v)) < 0) {
        return img_error_set(err, r, "blob %s: bad digest", digest);
    }
    while ((k = v->read(v, buf, sizeof(buf))) > 0) {
    }
    if (k < 0) {
        img_error_set(err, (int)k, "blob %s: %s", digest, v->err);
    } else {
        printf("blob %s %lld ok\n", digest, (long long)size);
    }
    img_stream_close(v);
    return (int)k;
}

/* The manifest `ref`; an index is followed to its linux/amd64 entry. */
static int read_manifest(struct img_source *s, const char *ref, json_t **ret,
                         struct img_error *err) {
    struct kbuf body = KBUF_INIT(8u << 20);
    char mt[256], digest[160], perr[256];
    json_t *root = NULL, *m;
    size_t i;
    int r;

    r = s->ops->manifest(s, ref, &body, mt, sizeof(mt), digest, sizeof(digest), err);
    if (r == 0 && json_parse_bounded((const char *)body.data, body.len, 32, 100000, &root, perr,
                                     sizeof(perr)) < 0) {
        r = img_error_set(err, -EBADMSG, "manifest %s: %s", digest, perr);
    }
    kbuf_free(&body);
    if (r < 0) {
        return r;
    }
    printf("manifest %s %s\n", digest, mt);
    json_array_foreach(json_object_get(root, "manifests"), i, m) {
        json_t *p = json_object_get(m, "platform");
        const char *d = json_string_value(json_object_get(m, "digest"));
        if (d && !strcmp(json_string_value(json_object_get(p, "os")) ?: "", "linux") &&
            !strcmp(json_string_value(json_object_get(p, "architecture")) ?: "", "amd64")) {
            char sub[160];
            snprintf(sub, sizeof(sub), "%s", d);
            json_decref(root);
            return read_manifest(s, sub, ret, err);
        }
    }
    *ret = root;
    return 0;
}

static int run(struct img_source *s, const char *ref, struct img_error *err) {
    _cleanup_json_ json_t *man = NULL;
    json_t *l;
    size_t i;
    int r;

    if ((r = read_manifest(s, ref, &man, err)) < 0) {
        return r;
    }
    if ((r = read_blob(s, json_object_get(man, "config"), err)) < 0) {
        return r;
    }
    json_array_foreach(json_object_get(man, "layers"), i, l) {
        if ((r = read_blob(s, l, err)) < 0) {
            return r;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
            {"authfile", required_argument, NULL, 'a'},
            {"cacert", required_argument, NULL, 'c'},
            {"insecure", no_argument, NULL, 'i'},
            {"timeout", required_argument, NULL, 't'},
            {0},
    };
    struct img_source_config cfg = {0};
    struct img_source *s = NULL;
    struct img_error err = {0};
    int c, r;

    img_limits_default(&cfg.limits);
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'a') {
            cfg.authfile = optarg;
        } else if (c == 'c') {
            cfg.cacert = optarg;
        } else if (c == 'i') {
            cfg.insecure = true;
        } else if (c == 't') {
            uint32_t t;
            if (parse_u32(optarg, &t) < 0 || t == 0) {
                fprintf(stderr, "registry-tool: --timeout takes seconds, not \"%s\"\n", optarg);
                return 2;
            }
            cfg.limits.timeout_s = t;
        } else {
            return 2;
        }
    }
    if (argc - optind != 3) {
        fprintf(stderr, "usage: registry-tool [--authfile F] [--cacert F] [--insecure] "
                        "[--timeout S] HOST REPO REF\n");
        return 2;
    }
    r = img_registry_open(argv[optind], argv[optind + 1], &cfg, &s, &err);
    if (r == 0) {
        r = run(s, argv[optind + 2], &err);
    }
    img_source_free(s);
    if (r < 0) {
        fprintf(stderr, "%s\n", err.msg[0] ? err.msg : strerror(-r));
        return 1;
    }
    return 0;
}
