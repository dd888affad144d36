/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_IMA_TEMPLATE_H
#define KIMA_IMA_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Template fields and descriptors (docs/formats.md section 2;
 * kernel ima_template.c supported_fields[] and builtin_templates[]). */

#define IMA_FIELDS_MAX        15 /* kernel IMA_TEMPLATE_NUM_FIELDS_MAX */
#define IMA_FIELD_ID_MAX      16 /* kernel IMA_TEMPLATE_FIELD_ID_MAX_LEN */
#define IMA_TEMPLATE_NAME_MAX 255

enum ima_field_id {
    IMA_FIELD_UNKNOWN = 0, /* a field of a template kima does not know */
    IMA_FIELD_D,
    IMA_FIELD_N,
    IMA_FIELD_D_NG,
    IMA_FIELD_D_NGV2,
    IMA_FIELD_D_MODSIG,
    IMA_FIELD_N_NG,
    IMA_FIELD_SIG,
    IMA_FIELD_BUF,
    IMA_FIELD_MODSIG,
    IMA_FIELD_EVMSIG,
    IMA_FIELD_IUID,
    IMA_FIELD_IGID,
    IMA_FIELD_IMODE,
    IMA_FIELD_XATTRNAMES,
    IMA_FIELD_XATTRLENGTHS,
    IMA_FIELD_XATTRVALUES,
    IMA_FIELD_DEP,     /* pod-aware RFC: executable paths of the task and its ancestors */
    IMA_FIELD_CG_PATH, /* pod-aware RFC: cgroup path of the task */
    IMA_FIELD_CGN,     /* pod-aware RFC: cgroup name of the task */
    IMA_FIELD__COUNT
};

/* How the kernel prints a field in the ASCII list (DATA_FMT_*). */
enum ima_field_fmt {
    IMA_FMT_DIGEST,                /* raw bytes, hex */
    IMA_FMT_DIGEST_WITH_ALGO,      /* "algo:\0" digest -> algo:hex */
    IMA_FMT_DIGEST_WITH_TYPE_ALGO, /* "type:algo:\0" digest -> type:algo:hex */
    IMA_FMT_HEX,
    IMA_FMT_STRING, /* NUL-terminated, printed with %s */
    IMA_FMT_UINT,   /* 1, 2, 4 or 8 bytes little-endian, printed in decimal */
};

struct ima_template {
    uint8_t nfields;
    uint8_t fields[IMA_FIELDS_MAX]; /* enum ima_field_id */
    /* The `ima` template: d and n are written without length prefixes. */
    bool legacy;
    /* Every field is known: the field count is fixed by the name. When false
     * (a name kima cannot read as a template), the fields are whatever
     * length-prefixed chunks the template data holds, each IMA_FIELD_UNKNOWN. */
    bool known;
};

const char *ima_field_name(enum ima_field_id id);
enum ima_field_fmt ima_field_fmt(enum ima_field_id id);
/* 0 or -ENOENT. */
int ima_field_from_name(const char *s, size_t len, enum ima_field_id *ret_id);

/* Resolve a template name as the kernel names entries: a built-in template
 * name, or else (custom ima_template_fmt=) the `|`-separated format string
 * itself. A name that is neither is still returned, with known = false.
 * Returns 0, or -EINVAL for an empty or over-long name. */
int ima_template_resolve(const char *name, size_t len, struct ima_template *ret);

/* The format string of a built-in template name, or NULL. */
const char *ima_template_builtin_fmt(const char *name, size_t len);

#endif
