/* SPDX-License-Identifier: Apache-2.0 */
/* Runs a fuzz target over files and folders of inputs, for builds without
 * libFuzzer: `meson test` replays every corpus this way. Exit 0 when every
 * input ran (a crash or sanitizer finding aborts). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
    uint8_t *data = NULL;
    size_t len;
    int r = read_file_capped(path, 16u << 20, &data, &len);

    if (r < 0) {
        fprintf(stderr, "%s: cannot read (%d)\n", path, r);
        return -1;
    }
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    return 0;
}

int main(int argc, char **argv) {
    unsigned ran = 0;

    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "%s: not found\n", argv[i]);
            return 1;
        }
        if (S_ISDIR(st.st_mode)) {
            struct dirent **names;
            int n = scandir(argv[i], &names, NULL, alphasort);
            if (n < 0) {
                return 1;
            }
            for (int k = 0; k < n; k++) {
                char path[4096];
                if (names[k]->d_name[0] != '.') {
                    snprintf(path, sizeof(path), "%s/%s", argv[i], names[k]->d_name);
                    if (run_file(path) < 0) {
                        return 1;
                    }
                    ran++;
                }
                free(names[k]);
            }
            free(names);
        } else {
            if (run_file(argv[i]) < 0) {
                return 1;
            }
            ran++;
        }
    }
    printf("%u inputs ran\n", ran);
    /* A corpus that ran nothing means the test would prove nothing. */
    return ran > 0 ? 0 : 1;
}
