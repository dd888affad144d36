/* SPDX-License-Identifier: Apache-2.0 */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

/* getopt_long values: the options' own start past any character value. */
#define VAL_HELP    'h'
#define VAL_VERSION 0x100
#define VAL_SPEC    0x101

/* Where a string option's value came from: its message names it. */
struct raw_value {
    const char *value;
    bool from_env;
};

static void *field(void *cfg, const struct option_spec *s) {
    return (char *)cfg + s->offset;
}

static bool env_true(const char *v) {
    return strcmp(v, "1") == 0 || strcmp(v, "true") == 0;
}

/* Defaults, then the environment (not empty). Numbers are kept as text. */
static void apply_defaults_and_env(const struct options_program *p, void *cfg,
                                   struct raw_value *raw) {
    for (size_t i = 0; i < p->n_specs; i++) {
        const struct option_spec *s = &p->specs[i];
        const char *v = s->env ? getenv(s->env) : NULL;

        if (v && !*v) {
            v = NULL;
        }
        switch (s->kind) {
        case OPTION_FLAG:
            *(bool *)field(cfg, s) = v && env_true(v);
            break;
        case OPTION_STRING:
            *(const char **)field(cfg, s) = v ? v : s->def_string;
            break;
        case OPTION_UNSIGNED:
            *(uint64_t *)field(cfg, s) = s->def_unsigned;
            raw[i] = (struct raw_value){v, v != NULL};
            break;
        }
    }
}

static void build_longopts(const struct options_program *p, struct option *lo) {
    size_t i;

    for (i = 0; i < p->n_specs; i++) {
        lo[i] = (struct option){p->specs[i].name,
                                p->specs[i].kind == OPTION_FLAG ? no_argument : required_argument,
                                NULL, VAL_SPEC + (int)i};
    }
    lo[i++] = (struct option){"help", no_argument, NULL, VAL_HELP};
    lo[i++] = (struct option){"version", no_argument, NULL, VAL_VERSION};
    lo[i] = (struct option){0};
}

/* Convert the numbers, each within its bounds. */
static int convert_numbers(const struct options_program *p, void *cfg, const struct raw_value *raw,
                           char *err, size_t errsz) {
    for (size_t i = 0; i < p->n_specs; i++) {
        const struct option_spec *s = &p->specs[i];

        if (s->kind != OPTION_UNSIGNED || !raw[i].value) {
            continue;
        }
        if (parse_u64_range(raw[i].value, s->min, s->max, (uint64_t *)field(cfg, s)) < 0) {
            if (errsz > 0) {
                snprintf(err, errsz, "--%s%s%s%s takes a number from %llu to %llu, not \"%s\"",
                         s->name, raw[i].from_env ? " (from " : "", raw[i].from_env ? s->env : "",
                         raw[i].from_env ? ")" : "", (unsigned long long)s->min,
                         (unsigned long long)s->max, raw[i].value);
            }
            return -ERANGE;
        }
    }
    return 0;
}

int options_parse(const struct options_program *p, int argc, char **argv, void *cfg,
                  int *ret_optind, char *err, size_t errsz) {
    struct option lo[OPTIONS_MAX + 3];
    struct raw_value raw[OPTIONS_MAX] = {{0}};
    int o, r;

    if (!p || !cfg || p->n_specs > OPTIONS_MAX) {
        return -EINVAL;
    }
    apply_defaults_and_env(p, cfg, raw);
    build_longopts(p, lo);
    optind = 0; /* GNU getopt: start over, as for a new argv */
    while ((o = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        const struct option_spec *s;

        if (o == VAL_HELP) {
            return OPTIONS_HELP;
        }
        if (o == VAL_VERSION) {
            return OPTIONS_VERSION;
        }
        if (o < VAL_SPEC || o >= VAL_SPEC + (int)p->n_specs) {
            return -EINVAL;
        }
        s = &p->specs[o - VAL_SPEC];
        switch (s->kind) {
        case OPTION_FLAG:
            *(bool *)field(cfg, s) = true;
            break;
        case OPTION_STRING:
            *(const char **)field(cfg, s) = optarg;
            break;
        case OPTION_UNSIGNED:
            raw[o - VAL_SPEC] = (struct raw_value){optarg, false};
            break;
        }
    }
    r = convert_numbers(p, cfg, raw, err, errsz);
    if (r < 0) {
        return r;
    }
    if (ret_optind) {
        *ret_optind = optind;
    }
    return 0;
}

void options_print_help(const struct options_program *p, FILE *f) {
    fputs(p->help_head, f);
    for (size_t i = 0; i < p->n_specs; i++) {
        if (p->specs[i].help) {
            fputs(p->specs[i].help, f);
        }
    }
    if (p->help_tail) {
        fputs(p->help_tail, f);
    }
}
