/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <string.h>

#include "options.h"

/* A program with one option of each kind, and two that share a help line. */
struct cfg {
    const char *name, *dir, *other;
    uint64_t count, zero_default;
    bool loud;
};

static const struct option_spec specs[] = {
        OPTION_STRING_SPEC(struct cfg, name, "name", "T_NAME", "dflt", "  --name N    [T_NAME]\n"),
        OPTION_STRING_SPEC(struct cfg, dir, "dir", "T_DIR", NULL,
                           "  --dir D, --other O  [T_DIR]\n"),
        OPTION_STRING_SPEC(struct cfg, other, "other", NULL, "o", NULL),
        OPTION_UNSIGNED_SPEC(struct cfg, count, "count", "T_COUNT", 2000, 100, 3600000,
                             "  --count N   (2000)  [T_COUNT]\n"),
        OPTION_UNSIGNED_SPEC(struct cfg, zero_default, "zero", "T_ZERO", 0, 16, 64,
                             "  --zero N    [T_ZERO]\n"),
        OPTION_FLAG_SPEC(struct cfg, loud, "loud", "T_LOUD", "  --loud      [T_LOUD=1]\n"),
};

static const struct options_program prog = {
        .name = "test-prog",
        .help_head = "Usage: test-prog [OPTIONS]\n\n",
        .help_tail = "\nThe end.\n",
        .specs = specs,
        .n_specs = ARRAY_SIZE(specs),
};

static int clear_env(void **state) {
    (void)state;
    unsetenv("T_NAME");
    unsetenv("T_DIR");
    unsetenv("T_COUNT");
    unsetenv("T_ZERO");
    unsetenv("T_LOUD");
    return 0;
}

/* Parse a NULL-terminated list of arguments after the program name. */
#define PARSE(c, ...) parse_args((c), (const char *[]){"test-prog", __VA_ARGS__, NULL})

static char errbuf[256];
static int last_optind;

static int parse_args(struct cfg *c, const char **args) {
    static char *argv[16];
    int argc = 0;

    while (args[argc]) {
        assert_true(argc < 15);
        argv[argc] = (char *)args[argc];
        argc++;
    }
    argv[argc] = NULL;
    memset(c, 0xa5, sizeof(*c));
    errbuf[0] = 0;
    last_optind = -1;
    return options_parse(&prog, argc, argv, c, &last_optind, errbuf, sizeof(errbuf));
}

static void test_defaults(void **state) {
    struct cfg c;
    (void)state;

    assert_int_equal(PARSE(&c, NULL), 0);
    assert_string_equal(c.name, "dflt");
    assert_null(c.dir);
    assert_string_equal(c.other, "o");
    assert_int_equal(c.count, 2000);
    assert_int_equal(c.zero_default, 0); /* a default need not be within bounds */
    assert_false(c.loud);
    assert_int_equal(last_optind, 1);
}

static void test_env_then_flag(void **state) {
    struct cfg c;
    (void)state;

    setenv("T_NAME", "from-env", 1);
    setenv("T_COUNT", "500", 1);
    setenv("T_LOUD", "true", 1);
    assert_int_equal(PARSE(&c, NULL), 0);
    assert_string_equal(c.name, "from-env");
    assert_int_equal(c.count, 500);
    assert_true(c.loud);

    /* The command line wins over the environment; the last flag wins. */
    assert_int_equal(PARSE(&c, "--name", "a", "--count", "700", "--name=b"), 0);
    assert_string_equal(c.name, "b");
    assert_int_equal(c.count, 700);

    /* An empty variable is no variable. */
    setenv("T_NAME", "", 1);
    setenv("T_COUNT", "", 1);
    assert_int_equal(PARSE(&c, NULL), 0);
    assert_string_equal(c.name, "dflt");
    assert_int_equal(c.count, 2000);
}

static void test_env_flag_values(void **state) {
    const char *on[] = {"1", "true"}, *off[] = {"0", "yes", "TRUE", "false"};
    struct cfg c;
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(on); i++) {
        setenv("T_LOUD", on[i], 1);
        assert_int_equal(PARSE(&c, NULL), 0);
        assert_true(c.loud);
    }
    for (size_t i = 0; i < ARRAY_SIZE(off); i++) {
        setenv("T_LOUD", off[i], 1);
        assert_int_equal(PARSE(&c, NULL), 0);
        assert_false(c.loud);
        assert_int_equal(PARSE(&c, "--loud"), 0);
        assert_true(c.loud);
    }
}

static void test_bounds(void **state) {
    struct cfg c;
    (void)state;

    assert_int_equal(PARSE(&c, "--count", "100"), 0);
    assert_int_equal(c.count, 100);
    assert_int_equal(PARSE(&c, "--count", "3600000"), 0);
    assert_int_equal(c.count, 3600000);

    assert_int_equal(PARSE(&c, "--count", "99"), -ERANGE);
    assert_string_equal(errbuf, "--count takes a number from 100 to 3600000, not \"99\"");
    assert_int_equal(PARSE(&c, "--count", "3600001"), -ERANGE);
    assert_non_null(strstr(errbuf, "--count"));
    assert_int_equal(PARSE(&c, "--count", "1e3"), -ERANGE);
    assert_int_equal(PARSE(&c, "--count", "-5"), -ERANGE);
    assert_int_equal(PARSE(&c, "--count", ""), -ERANGE);
    assert_int_equal(PARSE(&c, "--zero", "8"), -ERANGE);
    assert_string_equal(errbuf, "--zero takes a number from 16 to 64, not \"8\"");
    assert_int_equal(last_optind, -1); /* untouched on failure */

    /* A bad variable is named as such... */
    setenv("T_COUNT", "12", 1);
    assert_int_equal(PARSE(&c, NULL), -ERANGE);
    assert_string_equal(errbuf,
                        "--count (from T_COUNT) takes a number from 100 to 3600000, not \"12\"");
    /* ...and a flag given after all replaces it unchecked. */
    assert_int_equal(PARSE(&c, "--count", "150"), 0);
    assert_int_equal(c.count, 150);
}

static void test_unknown_and_missing(void **state) {
    struct cfg c;
    (void)state;

    assert_int_equal(PARSE(&c, "--bogus"), -EINVAL);
    assert_int_equal(PARSE(&c, "-x"), -EINVAL);
    assert_int_equal(PARSE(&c, "--name"), -EINVAL);   /* no argument */
    assert_int_equal(PARSE(&c, "--loud=1"), -EINVAL); /* a flag takes none */
    /* getopt starts over for each parse. */
    assert_int_equal(PARSE(&c, "--name", "x"), 0);
    assert_string_equal(c.name, "x");
}

static void test_help_version_operands(void **state) {
    struct cfg c;
    (void)state;

    assert_int_equal(PARSE(&c, "--help"), OPTIONS_HELP);
    assert_int_equal(PARSE(&c, "-h"), OPTIONS_HELP);
    assert_int_equal(PARSE(&c, "--version"), OPTIONS_VERSION);
    /* The first one getopt meets decides, as before any check. */
    assert_int_equal(PARSE(&c, "--help", "--bogus"), OPTIONS_HELP);
    assert_int_equal(PARSE(&c, "--bogus", "--help"), -EINVAL);
    setenv("T_COUNT", "bad", 1);
    assert_int_equal(PARSE(&c, "--version"), OPTIONS_VERSION);
    unsetenv("T_COUNT");

    /* Operands are left to the caller: getopt moves them to the end. */
    assert_int_equal(PARSE(&c, "extra", "--name", "n"), 0);
    assert_int_equal(last_optind, 3);
    assert_string_equal(c.name, "n");
}

static void test_help_text(void **state) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    (void)state;

    assert_non_null(f);
    options_print_help(&prog, f);
    assert_int_equal(fclose(f), 0);
    assert_string_equal(text, "Usage: test-prog [OPTIONS]\n\n"
                              "  --name N    [T_NAME]\n"
                              "  --dir D, --other O  [T_DIR]\n"
                              "  --count N   (2000)  [T_COUNT]\n"
                              "  --zero N    [T_ZERO]\n"
                              "  --loud      [T_LOUD=1]\n"
                              "\nThe end.\n");
    /* Every option and every variable of the table is in it. */
    for (size_t i = 0; i < ARRAY_SIZE(specs); i++) {
        char flag[64];
        snprintf(flag, sizeof(flag), "--%s", specs[i].name);
        assert_non_null(strstr(text, flag));
        if (specs[i].env) {
            assert_non_null(strstr(text, specs[i].env));
        }
    }
    free(text);
}

static void test_too_many(void **state) {
    static struct option_spec many[OPTIONS_MAX + 1];
    struct options_program p = prog;
    struct cfg c;
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(many); i++) {
        many[i] = specs[0];
    }
    p.specs = many;
    p.n_specs = ARRAY_SIZE(many);
    assert_int_equal(options_parse(&p, 0, NULL, &c, NULL, NULL, 0), -EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup(test_defaults, clear_env),
            cmocka_unit_test_setup(test_env_then_flag, clear_env),
            cmocka_unit_test_setup(test_env_flag_values, clear_env),
            cmocka_unit_test_setup(test_bounds, clear_env),
            cmocka_unit_test_setup(test_unknown_and_missing, clear_env),
            cmocka_unit_test_setup(test_help_version_operands, clear_env),
            cmocka_unit_test_setup(test_help_text, clear_env),
            cmocka_unit_test_setup(test_too_many, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
