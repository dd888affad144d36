/* SPDX-License-Identifier: Apache-2.0 */
#include "swtpm.h"
#include "tmpdir.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) {
        return -1;
    }
    fputs(text, f);
    return fclose(f);
}

int test_run_quiet(char *const argv[]) {
    pid_t pid = fork();
    int st;

    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &st, 0) < 0) {
        return -1;
    }
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int provision(struct swtpm *s) {
    char conf[300], lconf[300], opts[300], state[300], text[2048];

    snprintf(s->ca_dir, sizeof(s->ca_dir), "%s/ca", s->dir);
    snprintf(state, sizeof(state), "%s/state", s->dir);
    mkdir(s->ca_dir, 0700);
    snprintf(lconf, sizeof(lconf), "%s/swtpm-localca.conf", s->dir);
    snprintf(opts, sizeof(opts), "%s/swtpm-localca.options", s->dir);
    snprintf(conf, sizeof(conf), "%s/swtpm_setup.conf", s->dir);
    snprintf(text, sizeof(text),
             "statedir = %s\nsigningkey = %s/signkey.pem\nissuercert = %s/issuercert.pem\n"
             "certserial = %s/certserial\n",
             s->ca_dir, s->ca_dir, s->ca_dir, s->ca_dir);
    if (write_text(lconf, text) < 0 ||
        write_text(opts, "--platform-manufacturer kima\n--platform-version 2.1\n"
                         "--platform-model test\n") < 0) {
        return -1;
    }
    snprintf(text, sizeof(text),
             "create_certs_tool = swtpm_localca\ncreate_certs_tool_config = %s\n"
             "create_certs_tool_options = %s\nactive_pcr_banks = sha1,sha256\n",
             lconf, opts);
    if (write_text(conf, text) < 0) {
        return -1;
    }
    char *argv[] = {"swtpm_setup", "--tpm2",      "--tpmstate",       state,
                    "--config",    conf,          "--create-ek-cert", "--create-platform-cert",
                    "--pcr-banks", "sha1,sha256", "--overwrite",      NULL};
    return test_run_quiet(argv);
}

/* Connect a stream socket to the Unix socket `path`. The descriptor or -1. */
static int connect_unix(const char *path) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Does swtpm answer a TPM command on its data socket? TPM2_GetRandom(8)
 * sent raw, as the swtpm TCTI does; any TPM response (tag 0x8001) will do,
 * within a second. Probing with a real round trip, not a connect, makes
 * sure the server has listened, accepted and processed a command before a
 * test's TCTI opens it (a connect alone raced: "tcti:IO failure" under
 * load). */
static bool data_answers(const char *sock) {
    static const unsigned char get_random[] = {0x80, 0x01, 0x00, 0x00, 0x00, 0x0c,
                                               0x00, 0x00, 0x01, 0x7b, 0x00, 0x08};
    unsigned char resp[64];
    struct pollfd pfd;
    size_t got = 0;
    int fd = connect_unix(sock);
    bool ok = false;

    if (fd < 0) {
        return false;
    }
    if (write(fd, get_random, sizeof(get_random)) == (ssize_t)sizeof(get_random)) {
        pfd = (struct pollfd){.fd = fd, .events = POLLIN};
        while (got < 10 && poll(&pfd, 1, 1000) == 1) {
            ssize_t k = read(fd, resp + got, sizeof(resp) - got);
            if (k <= 0) {
                break;
            }
            got += (size_t)k;
        }
        ok = got >= 10 && resp[0] == 0x80 && resp[1] == 0x01;
    }
    close(fd);
    return ok;
}

int swtpm_start(struct swtpm *s, bool ek_certs) {
    char sock[300], ctrl[320], server[340], ctrlarg[340], state[300], statearg[320];
    int r;

    memset(s, 0, sizeof(*s));
    r = test_tmpdir_new("swtpm", s->dir, sizeof(s->dir));
    if (r < 0) {
        fprintf(stderr, "swtpm: no private folder: %s\n", strerror(-r));
        return -1;
    }
    snprintf(state, sizeof(state), "%s/state", s->dir);
    mkdir(state, 0700);
    if (ek_certs && provision(s) < 0) {
        fprintf(stderr, "swtpm_setup failed (is swtpm-tools installed?)\n");
        swtpm_stop(s);
        return -1;
    }
    snprintf(sock, sizeof(sock), "%s/sock", s->dir);
    snprintf(ctrl, sizeof(ctrl), "%s.ctrl", sock);
    snprintf(server, sizeof(server), "type=unixio,path=%s", sock);
    snprintf(ctrlarg, sizeof(ctrlarg), "type=unixio,path=%s", ctrl);
    snprintf(statearg, sizeof(statearg), "dir=%s", state);
    snprintf(s->tcti, sizeof(s->tcti), "swtpm:path=%s", sock);
    s->pid = fork();
    if (s->pid == 0) {
        char *argv[] = {"swtpm",
                        "socket",
                        "--tpm2",
                        "--server",
                        server,
                        "--ctrl",
                        ctrlarg,
                        "--tpmstate",
                        statearg,
                        "--flags",
                        "not-need-init,startup-clear",
                        NULL};
        char log[320];
        int fd;
        snprintf(log, sizeof(log), "%s/swtpm.log", s->dir);
        fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    if (s->pid < 0) {
        swtpm_stop(s);
        return -1;
    }
    /* Ready when the control socket takes a connection and the data socket
     * answers a TPM command (typically 15-30 ms). */
    for (int i = 0; i < 500; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        int fd = connect_unix(ctrl), st;
        if (fd >= 0) {
            close(fd);
            if (data_answers(sock)) {
                return 0;
            }
        }
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            fprintf(stderr, "swtpm exited at start (is swtpm installed?)\n");
            swtpm_stop(s);
            return -1;
        }
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "swtpm did not come up in 5 s\n");
    swtpm_stop(s);
    return -1;
}

void swtpm_stop(struct swtpm *s) {
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
    if (s->dir[0] && test_tmpdir_free(s->dir) < 0) {
        fprintf(stderr, "could not remove %s\n", s->dir);
    }
    s->dir[0] = 0;
}
