/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KIMA_COMMON_OPTIONS_H
#define KIMA_COMMON_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The daemons' command lines. A daemon's main.c holds only its options and
 * its wiring; each program writes its options once, in one table of struct
 * option_spec, and that table drives getopt_long, the KIMA_* environment
 * variables, the defaults and --help. Values land in the program's config
 * struct through field offsets. */

/* Exit codes of kima-agent and kima-verifier (docs/design.md section 11).
 * kimactl keeps its own list in cli/kimactl.h. */
enum kima_exit {
    KIMA_EXIT_OK = 0,      /* SIGTERM or SIGINT; --once: trusted; a probe: healthy */
    KIMA_EXIT_FAILURE = 1, /* start-up failure; --once: not trusted; a probe: not healthy */
    KIMA_EXIT_ERROR = 2,   /* --once: the round failed (no verdict) */
    KIMA_EXIT_USAGE = 64,  /* bad command line or environment (EX_USAGE) */
};

enum option_kind {
    OPTION_FLAG,     /* bool; its variable turns it on when "1" or "true" */
    OPTION_STRING,   /* const char *, borrowed from argv or the environment */
    OPTION_UNSIGNED, /* uint64_t, a decimal number within [min, max] when given */
};

struct option_spec {
    const char *name; /* the long option, without "--" */
    const char *env;  /* its environment variable, or NULL */
    enum option_kind kind;
    size_t offset;          /* of its field in the config struct */
    const char *def_string; /* OPTION_STRING: the default (may be NULL) */
    uint64_t def_unsigned;  /* OPTION_UNSIGNED: the default (need not be within bounds) */
    uint64_t min, max;      /* OPTION_UNSIGNED: bounds, inclusive */
    /* Its lines of --help, verbatim with their newlines, or NULL when the
     * lines of an option before it in the table name it too. */
    const char *help;
};

/* 0 * sizeof(char[1]) when `type`'s `field` has type `want`, else a
 * compile error (a negative array size): the table cannot point an option
 * at a field of the wrong type. */
#define OPTION_FIELD_(type, field, want) \
    (offsetof(type, field) +             \
     0 * sizeof(char[1 -                 \
                     2 * !__builtin_types_compatible_p(__typeof__(((type *)0)->field), want)]))

#define OPTION_FLAG_SPEC(type, field, lname, envname, helptext)        \
    {                                                                  \
        .name = (lname), .env = (envname), .kind = OPTION_FLAG,        \
        .offset = OPTION_FIELD_(type, field, bool), .help = (helptext) \
    }
#define OPTION_STRING_SPEC(type, field, lname, envname, def, helptext)           \
    {                                                                            \
        .name = (lname), .env = (envname), .kind = OPTION_STRING,                \
        .offset = OPTION_FIELD_(type, field, const char *), .def_string = (def), \
        .help = (helptext)                                                       \
    }
#define OPTION_UNSIGNED_SPEC(type, field, lname, envname, def, lo, hi, helptext)            \
    {                                                                                       \
        .name = (lname), .env = (envname), .kind = OPTION_UNSIGNED,                         \
        .offset = OPTION_FIELD_(type, field, uint64_t), .def_unsigned = (def), .min = (lo), \
        .max = (hi), .help = (helptext)                                                     \
    }

/* At most this many options a program (getopt's table lives on the stack). */
#define OPTIONS_MAX 64

struct options_program {
    const char *name;      /* "kima-agent" */
    const char *help_head; /* --help: before the options' lines */
    const char *help_tail; /* and after them (may be NULL) */
    const struct option_spec *specs;
    size_t n_specs;
};

enum {
    OPTIONS_HELP = 1,    /* -h or --help was given */
    OPTIONS_VERSION = 2, /* --version was given */
};

/* Fill `cfg` (a struct of the program's config type): every option's
 * default, then its environment variable when set and not empty, then the
 * command line (the last one given wins). Numbers are converted and checked
 * against their bounds once all are collected, so a flag overrides a
 * malformed variable. -h/--help and --version stop at once, as getopt meets
 * them. Returns:
 *   0                with *ret_optind the index of the first operand (getopt
 *                    moves operands to the end of argv);
 *   OPTIONS_HELP, OPTIONS_VERSION;
 *   -EINVAL          an unknown option or a missing argument (getopt said
 *                    which on stderr), or a table over OPTIONS_MAX;
 *   -ERANGE          a number that is malformed or out of bounds; `err`
 *                    (errsz > 0) names the option, the variable if the value
 *                    came from it, the value and the bounds. The strings and
 *                    flags in `cfg` are set already.
 * Strings stored in `cfg` are borrowed from argv and the environment. The
 * outputs other than `cfg` are untouched unless said. Not thread-safe
 * (getopt's state is global). */
int options_parse(const struct options_program *p, int argc, char **argv, void *cfg,
                  int *ret_optind, char *err, size_t errsz);

/* --help: the head, every option's lines in table order, the tail. */
void options_print_help(const struct options_program *p, FILE *f);

#endif
