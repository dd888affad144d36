/* SPDX-License-Identifier: Apache-2.0 */
#include "health.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void agent_heartbeat(const char *state_dir) {
    char path[4200];
    int fd;

    snprintf(path, sizeof(path), "%s/heartbeat", state_dir);
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
        futimens(fd, NULL);
        close(fd);
    }
}

int agent_probe_from_string(const char *s, enum agent_probe *ret) {
    if (strcmp(s, "live") == 0) {
        *ret = AGENT_PROBE_LIVE;
    } else if (strcmp(s, "ready") == 0) {
        *ret = AGENT_PROBE_READY;
    } else {
        return -EINVAL;
    }
    return 0;
}

int agent_health_check(const char *state_dir, enum agent_probe probe, uint64_t interval_ms,
                       time_t now, char *path, size_t pathsz) {
    bool live = probe == AGENT_PROBE_LIVE;
    int64_t max_ms = live ? 60000 : 3 * (int64_t)interval_ms + 10000;
    struct stat st;

    snprintf(path, pathsz, "%s/%s", state_dir, live ? "heartbeat" : "position");
    if (stat(path, &st) < 0) {
        return -errno;
    }
    if ((int64_t)now * 1000 - (int64_t)st.st_mtime * 1000 > max_ms) {
        return -ESTALE;
    }
    return 0;
}
