/* SPDX-License-Identifier: Apache-2.0 */
/* A stand-in for `kimactl policy check` until its real implementation
 * replaces this file. */
#include <stdio.h>

#include "kimactl.h"

int cmd_policy_check(int argc, char **argv) {
    (void)argc, (void)argv;
    fprintf(stderr, "kimactl policy check: not built yet\n");
    return EXIT_SOFTWARE;
}
