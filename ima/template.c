/* SPDX-License-Identifier: Apache-2.0 */
#include "template.h"

#include <errno.h>
#include <string.h>

static const struct {
    const char *name;
    enum ima_field_fmt fmt;
} fields[IMA_FIELD__COUNT] = {
        [IMA_FIELD_UNKNOWN] = {"?", IMA_FMT_HEX},
        [IMA_FIELD_D] = {"d", IMA_FMT_DIGEST},
        [IMA_FIELD_N] = {"n", IMA_FMT_STRING},
        [IMA_FIELD_D_NG] = {"d-ng", IMA_FMT_DIGEST_WITH_ALGO},
        [IMA_FIELD_D_NGV2] = {"d-ngv2", IMA_FMT_DIGEST_WITH_TYPE_ALGO},
        [IMA_FIELD_D_MODSIG] = {"d-modsig", IMA_FMT_DIGEST_WITH_ALGO},
        [IMA_FIELD_N_NG] = {"n-ng", IMA_FMT_STRING},
        [IMA_FIELD_SIG] = {"sig", IMA_FMT_HEX},
        [IMA_FIELD_BUF] = {"buf", IMA_FMT_HEX},
        [IMA_FIELD_MODSIG] = {"modsig", IMA_FMT_HEX},
        [IMA_FIELD_EVMSIG] = {"evmsig", IMA_FMT_HEX},
        [IMA_FIELD_IUID] = {"iuid", IMA_FMT_UINT},
        [IMA_FIELD_IGID] = {"igid", IMA_FMT_UINT},
        [IMA_FIELD_IMODE] = {"imode", IMA_FMT_UINT},
        [IMA_FIELD_XATTRNAMES] = {"xattrnames", IMA_FMT_STRING},
        [IMA_FIELD_XATTRLENGTHS] = {"xattrlengths", IMA_FMT_HEX},
        [IMA_FIELD_XATTRVALUES] = {"xattrvalues", IMA_FMT_HEX},
        [IMA_FIELD_DEP] = {"dep", IMA_FMT_STRING},
        [IMA_FIELD_CG_PATH] = {"cg-path", IMA_FMT_STRING},
        [IMA_FIELD_CGN] = {"cgn", IMA_FMT_STRING},
};

static const struct {
    const char *name;
    const char *fmt;
} builtins[] = {
        {"ima", "d|n"},
        {"ima-ng", "d-ng|n-ng"},
        {"ima-ngv2", "d-ngv2|n-ng"},
        {"ima-sig", "d-ng|n-ng|sig"},
        {"ima-sigv2", "d-ngv2|n-ng|sig"},
        {"ima-buf", "d-ng|n-ng|buf"},
        {"ima-modsig", "d-ng|n-ng|sig|d-modsig|modsig"},
        {"evm-sig", "d-ng|n-ng|evmsig|xattrnames|xattrlengths|xattrvalues|iuid|igid|imode"},
        {"ima-cgpath", "dep|cg-path|d-ng|n-ng"},
        {"ima-dep-cgn", "dep|cgn|d-ng|n-ng"},
};

const char *ima_field_name(enum ima_field_id id) {
    return (unsigned)id < IMA_FIELD__COUNT ? fields[id].name : "?";
}

enum ima_field_fmt ima_field_fmt(enum ima_field_id id) {
    return (unsigned)id < IMA_FIELD__COUNT ? fields[id].fmt : IMA_FMT_HEX;
}

int ima_field_from_name(const char *s, size_t len, enum ima_field_id *ret_id) {
    for (int i = 1; i < IMA_FIELD__COUNT; i++) {
        if (strlen(fields[i].name) == len && memcmp(fields[i].name, s, len) == 0) {
            *ret_id = (enum ima_field_id)i;
            return 0;
        }
    }
    return -ENOENT;
}

const char *ima_template_builtin_fmt(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++) {
        if (strlen(builtins[i].name) == len && memcmp(builtins[i].name, name, len) == 0) {
            return builtins[i].fmt;
        }
    }
    return NULL;
}

/* Parse "a|b|c" into field ids. -ENOENT when any part is not a known field. */
static int parse_fmt(const char *fmt, size_t len, struct ima_template *t) {
    size_t start = 0;

    t->nfields = 0;
    for (size_t i = 0; i <= len; i++) {
        enum ima_field_id id;
        if (i < len && fmt[i] != '|') {
            continue;
        }
        if (i == start || i - start > IMA_FIELD_ID_MAX || t->nfields == IMA_FIELDS_MAX) {
            return -ENOENT;
        }
        if (ima_field_from_name(fmt + start, i - start, &id) < 0) {
            return -ENOENT;
        }
        t->fields[t->nfields++] = (uint8_t)id;
        start = i + 1;
    }
    return 0;
}

int ima_template_resolve(const char *name, size_t len, struct ima_template *ret) {
    struct ima_template t = {0};
    const char *fmt;
    int r;

    if (!name || !ret || len == 0 || len > IMA_TEMPLATE_NAME_MAX) {
        return -EINVAL;
    }
    fmt = ima_template_builtin_fmt(name, len);
    if (fmt) {
        r = parse_fmt(fmt, strlen(fmt), &t);
        t.legacy = len == 3 && memcmp(name, "ima", 3) == 0;
    } else {
        r = parse_fmt(name, len, &t);
    }
    if (r < 0) {
        memset(&t, 0, sizeof(t));
        t.known = false;
    } else {
        t.known = true;
    }
    *ret = t;
    return 0;
}
