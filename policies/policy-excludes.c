/* SPDX-License-Identifier: Apache-2.0 */
/* The guards on a policy's excludes: matching from the start of the path as
 * Keylime's re.match does, the probes for an exclude that matches every
 * path or a place where code can be written and run, and the bound on a
 * pattern's shape before regcomp sees it (docs/verifier.md, "Policies"). */
#include <ctype.h>
#include <errno.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy-internal.h"

/* Does the exclude match at the start of `path`, as Python's re.match (which
 * Keylime uses) does? The leftmost match must begin at offset 0: a match
 * exists there exactly when the leftmost one starts there. Wrapping the
 * pattern as "^(...)" instead would let an unbalanced ')', which glibc takes
 * as a literal, close the group early and leave the rest unanchored. */
bool policy_exclude_matches(const regex_t *re, const char *pathz) {
    regmatch_t m[1];

    return regexec(re, pathz, 1, m, 0) == 0 && m[0].rm_so == 0;
}

/* An exclude that matches all of these matches every path: the policy would
 * judge nothing. */
static const char *const every_path_probes[] = {
        "/", "/usr/bin/bash", "/opt/evil/tmp/miner", "/a/b/c", "/tmp/x", "/x",
};

/* Places where code can be written and then run (by the workload itself:
 * logs, caches and state included): a binary run from an excluded path is
 * not judged. */
static const char *const writable_probes[] = {
        "/tmp/x",       "/var/tmp/x", "/dev/shm/x", "/run/x",     "/var/run/x",
        "/home/u/x",    "/root/x",    "/var/log/x", "/var/lib/x", "/var/cache/x",
        "/var/spool/x", "/srv/x",     "/mnt/x",     "/data/x",    "/memfd:x (deleted)",
};

/* A literal start below a writable directory: the probe it is below, or
 * NULL. */
static const char *writable_literal(const char *lit) {
    for (size_t i = 0; i + 1 < sizeof(writable_probes) / sizeof(writable_probes[0]); i++) {
        const char *probe = writable_probes[i];
        size_t dir = (size_t)(strrchr(probe, '/') - probe) + 1; /* "/var/log/" */
        if (strncmp(lit, probe, dir) == 0) {
            return probe;
        }
    }
    return NULL;
}

/* The literal starts of an exclude's alternatives ("^/var/log/open5gs/" ->
 * "/var/log/open5gs/"; "^(/srv/a|/var/lo[g]/b)" -> "/srv/a", "/var/log/b";
 * "^\/tmp\/" -> "/tmp/"), each checked against the writable places: the
 * probes above catch broad patterns, this catches narrow ones below a
 * writable place however they are spelled. A group's alternatives start
 * from the literal before the group; a quantifier ends the literal (and
 * drops the character it makes optional). */
const char *policy_exclude_writable_prefix(const char *re) {
    char lit[POLICY_EXCLUDE_LEN_MAX + 1];
    size_t n = 0, group[16], depth = 0;
    bool open = true; /* still adding to the current literal */
    const char *probe;

    for (const char *c = re; *c; c++) {
        char ch = 0;
        switch (*c) {
        case '^':
            continue;
        case '(':
            if (depth < sizeof(group) / sizeof(group[0])) {
                group[depth++] = open ? n : SIZE_MAX;
            }
            continue;
        case ')':
            depth -= depth > 0;
            continue;
        case '|':
            lit[n] = 0;
            if ((probe = writable_literal(lit))) {
                return probe;
            }
            n = depth ? group[depth - 1] : 0;
            open = n != SIZE_MAX;
            n = open ? n : 0;
            continue;
        case '*':
        case '?':
        case '{':
            n -= open && n > 0;
            open = false;
            continue;
        case '+':
            continue;
        case '[':
            /* One character in brackets is that character. */
            if (c[1] && c[1] != '^' && c[1] != ']' && c[2] == ']') {
                ch = c[1];
                c += 2;
            }
            break;
        case '\\':
            if (c[1] && !isalnum((unsigned char)c[1])) {
                ch = *++c;
            }
            break;
        case '.':
        case '$':
            break;
        default:
            ch = *c;
        }
        if (!ch) {
            open = false;
        } else if (open && n < sizeof(lit) - 1) {
            lit[n++] = ch;
        }
    }
    lit[n] = 0;
    return writable_literal(lit);
}

bool policy_exclude_matches_every_path(const regex_t *re) {
    for (size_t i = 0; i < sizeof(every_path_probes) / sizeof(every_path_probes[0]); i++) {
        if (!policy_exclude_matches(re, every_path_probes[i])) {
            return false;
        }
    }
    return true;
}

const char *policy_exclude_writable_match(const regex_t *re) {
    for (size_t i = 0; i < sizeof(writable_probes) / sizeof(writable_probes[0]); i++) {
        if (policy_exclude_matches(re, writable_probes[i])) {
            return writable_probes[i];
        }
    }
    return NULL;
}

/* A counted repetition ("{n}", "{n,}", "{n,m}") opening at re[*i]: how many
 * copies of what it repeats regcomp writes out, and *i moved to its '}'. */
static int repeat_count(const char *re, size_t *i, uint64_t *ret_times, char *why, size_t whysz) {
    char *end;
    unsigned long lo = strtoul(re + *i + 1, &end, 10), hi = lo;

    if (*end == ',') {
        hi = end[1] >= '0' && end[1] <= '9' ? strtoul(end + 1, &end, 10) : lo + 1;
        end += *end == ',' ? 1 : 0;
    }
    if (*end != '}') {
        snprintf(why, whysz, "has a malformed {n,m}");
        return -EBADMSG;
    }
    if (hi > POLICY_EXCLUDE_REPEAT_MAX || lo > POLICY_EXCLUDE_REPEAT_MAX) {
        snprintf(why, whysz, "repeats more than %d times", POLICY_EXCLUDE_REPEAT_MAX);
        return -E2BIG;
    }
    *ret_times = hi > 1 ? hi : 1;
    *i = (size_t)(end - re);
    return 0;
}

/* Where the bracket expression opening at re[i] ends: the index of its ']'
 * (a ']' first, or after '^', is a member; so is a "[:class:]"), or len. */
static size_t bracket_end(const char *re, size_t len, size_t i) {
    size_t k = i + 1 + (i + 1 < len && re[i + 1] == '^');

    k += k < len && re[k] == ']';
    while (k < len && re[k] != ']') {
        if (re[k] == '[' && k + 1 < len &&
            (re[k + 1] == ':' || re[k + 1] == '.' || re[k + 1] == '=')) {
            const char *close = strstr(re + k + 2, (char[]){re[k + 1], ']', 0});
            k = close ? (size_t)(close - re) + 1 : len;
        } else {
            k++;
        }
    }
    return k;
}

/* glibc's regcomp writes out counted repetition ({n,m}: m copies of what
 * it repeats, nested ones multiplied) and grows without bound on stacked
 * operators ("a+++": 170 MB at 18), and back-references make regexec
 * exponential in the path. An exclude comes from a file, so its shape is
 * bounded before regcomp sees it: length, nesting, no stacked operators, no
 * back-references, and the size of its expansion. */
int policy_exclude_shape(const char *re, uint64_t *ret_weight, char *why, size_t whysz) {
    uint64_t outer[POLICY_EXCLUDE_DEPTH_MAX], cur = 0, last = 0;
    size_t len = strlen(re), depth = 0;
    bool after_op = false;

    if (len > POLICY_EXCLUDE_LEN_MAX) {
        snprintf(why, whysz, "is longer than %d bytes", POLICY_EXCLUDE_LEN_MAX);
        return -E2BIG;
    }
    for (size_t i = 0; i < len; i++) {
        char c = re[i];
        uint64_t times = 0;

        if (c == '*' || c == '+' || c == '?') {
            times = 2;
        } else if (c == '{' && i + 1 < len && re[i + 1] >= '0' && re[i + 1] <= '9') {
            int r = repeat_count(re, &i, &times, why, whysz);
            if (r < 0) {
                return r;
            }
        }
        if (times) {
            if (after_op) {
                snprintf(why, whysz,
                         "stacks repetition operators (POSIX has no lazy \"*?\"; write one)");
                return -EBADMSG;
            }
            cur = cur - last + last * times;
            last *= times;
            after_op = true;
        } else {
            after_op = false;
            if (c == '\\') {
                if (i + 1 < len && re[i + 1] >= '1' && re[i + 1] <= '9') {
                    snprintf(why, whysz, "uses a back-reference");
                    return -EBADMSG;
                }
                i++;
                last = 1;
            } else if (c == '[') {
                /* A bracket expression is one atom. */
                i = bracket_end(re, len, i);
                last = 1;
            } else if (c == '(') {
                if (depth == POLICY_EXCLUDE_DEPTH_MAX) {
                    snprintf(why, whysz, "nests groups more than %d deep",
                             POLICY_EXCLUDE_DEPTH_MAX);
                    return -E2BIG;
                }
                outer[depth++] = cur;
                cur = 0;
                continue;
            } else if (c == ')' && depth > 0) {
                last = cur ? cur : 1;
                cur = outer[--depth];
            } else {
                last = 1;
            }
            cur += last;
        }
        if (cur > POLICY_EXCLUDE_WEIGHT_MAX) {
            snprintf(why, whysz, "expands to more than %d atoms", POLICY_EXCLUDE_WEIGHT_MAX);
            return -E2BIG;
        }
    }
    while (depth > 0) { /* unbalanced: regcomp refuses it; count it all */
        cur += outer[--depth];
    }
    *ret_weight = cur;
    return 0;
}
