/* SPDX-License-Identifier: Apache-2.0 */
#include "crl.h"

#include "crl-internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "fileio.h"
#include "hex.h"
#include "log.h"

#define CA_FILE_MAX (1u << 20)
#define PEM_CRL     "-----BEGIN X509 CRL-----"

/* The file as last read (or found missing): a change of any field means
 * "read it again". */
struct file_id {
    bool exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim, ctim;
};

struct crl_set {
    char *path;
    gnutls_x509_crt_t *cas;
    unsigned ncas;
    /* Guards `cur` only: crl_check() reads under the read lock, the owner
     * thread swaps in a new snapshot under the write lock. */
    pthread_rwlock_t lock;
    struct crl_snapshot *cur; /* never NULL */
    /* Sets put in force since crl_open(): crl_generation(). */
    _Atomic uint64_t generation;
    /* Owner thread only. */
    struct file_id seen;
    bool stale_warned;
    bool started; /* crl_open() is done: a refused file falls back on `cur` */
};

static int serial_cmp(const void *a, const void *b) {
    const struct crl_serial *x = a, *y = b;

    if (x->len != y->len) {
        return x->len < y->len ? -1 : 1;
    }
    return memcmp(x->b, y->b, x->len);
}

/* Strip leading zero octets; -E2BIG past CRL_SERIAL_MAX. */
static int serial_set(struct crl_serial *s, const uint8_t *b, size_t len) {
    while (len > 0 && b[0] == 0) {
        b++;
        len--;
    }
    if (len > CRL_SERIAL_MAX) {
        return -E2BIG;
    }
    s->len = (uint8_t)len;
    memcpy(s->b, b, len);
    return 0;
}

static void list_clear(struct crl_list *l) {
    gnutls_free(l->issuer.data);
    gnutls_free(l->issuer_text);
    free(l->serials);
    memset(l, 0, sizeof(*l));
}

void crl_snapshot_free(struct crl_snapshot *snap) {
    if (!snap) {
        return;
    }
    for (size_t i = 0; i < snap->n; i++) {
        list_clear(&snap->lists[i]);
    }
    free(snap->lists);
    free(snap);
}

static void number_text(gnutls_x509_crl_t crl, char *out, size_t outsz) {
    uint8_t num[20];
    size_t len = sizeof(num);
    unsigned critical;

    snprintf(out, outsz, "-");
    if (gnutls_x509_crl_get_number(crl, num, &len, &critical) < 0 || len == 0) {
        return;
    }
    if (len <= 8) {
        uint64_t v = 0;
        for (size_t i = 0; i < len; i++) {
            v = v << 8 | num[i];
        }
        snprintf(out, outsz, "%" PRIu64, v);
    } else if (2 * len + 3 <= outsz) {
        out[0] = '0';
        out[1] = 'x';
        hex_encode(num, len, out + 2);
    }
}

/* Fill `l` from `crl`; the caller has checked that `count` entries are
 * within the caps. */
static int list_fill(gnutls_x509_crl_t crl, size_t count, struct crl_list *l, char *why,
                     size_t whysz) {
    gnutls_x509_crl_iter_t iter = NULL;
    gnutls_datum_t text = {0};
    size_t n = 0;
    int r = 0;

    if (gnutls_x509_crl_get_raw_issuer_dn(crl, &l->issuer) < 0 ||
        gnutls_x509_crl_get_issuer_dn3(crl, &text, 0) < 0) {
        snprintf(why, whysz, "a CRL has no readable issuer");
        return -EBADMSG;
    }
    l->issuer_text = (char *)text.data;
    number_text(crl, l->number, sizeof(l->number));
    l->next_update = gnutls_x509_crl_get_next_update(crl);
    l->serials = calloc(count ? count : 1, sizeof(*l->serials));
    if (!l->serials) {
        return -ENOMEM;
    }
    while (r == 0) {
        uint8_t raw[CRL_SERIAL_MAX + 8];
        size_t rawlen = sizeof(raw);
        time_t when;
        int g = gnutls_x509_crl_iter_crt_serial(crl, &iter, raw, &rawlen, &when);

        if (g == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
            break;
        }
        if (g == GNUTLS_E_SHORT_MEMORY_BUFFER ||
            (g == 0 && n < count && serial_set(&l->serials[n], raw, rawlen) < 0)) {
            snprintf(why, whysz, "the CRL of %s lists a serial number over %u octets",
                     l->issuer_text, CRL_SERIAL_MAX);
            r = -E2BIG;
        } else if (g < 0 || n == count) {
            snprintf(why, whysz, "the CRL of %s has an unreadable entry (%s)", l->issuer_text,
                     g < 0 ? gnutls_strerror(g) : "more entries than it counts");
            r = -EBADMSG;
        } else {
            n++;
        }
    }
    gnutls_x509_crl_iter_deinit(iter);
    if (r < 0) {
        return r;
    }
    l->n = n;
    qsort(l->serials, n, sizeof(*l->serials), serial_cmp);
    return 0;
}

static const char *verify_failure(unsigned status) {
    if (status & GNUTLS_CERT_SIGNER_NOT_FOUND) {
        return "its issuer is unknown";
    }
    if (status & GNUTLS_CERT_SIGNATURE_FAILURE) {
        return "its signature does not verify with the CA's key";
    }
    if (status & GNUTLS_CERT_SIGNER_NOT_CA) {
        return "the issuer is not a CA";
    }
    if (status & GNUTLS_CERT_SIGNER_CONSTRAINTS_FAILURE) {
        return "the CA's key usage does not allow cRLSign";
    }
    if (status & GNUTLS_CERT_INSECURE_ALGORITHM) {
        return "an insecure signature algorithm";
    }
    return "malformed";
}

/* Is `crl` signed by one of `cas`? A nextUpdate in the past or a thisUpdate
 * in the future is no reason to refuse: its revocations still hold. GnuTLS
 * adds GNUTLS_CERT_INVALID to those time flags too, and sets it alone when
 * the CRL cannot be checked at all. */
static int list_verify(gnutls_x509_crl_t crl, const struct crl_list *l,
                       const gnutls_x509_crt_t *cas, unsigned ncas, char *why, size_t whysz) {
    const unsigned timing =
            GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED | GNUTLS_CERT_REVOCATION_DATA_ISSUED_IN_FUTURE;
    unsigned status = 0;
    int g = gnutls_x509_crl_verify(crl, cas, ncas, 0, &status);

    if (g == 0 && (status & ~(timing | GNUTLS_CERT_INVALID)) == 0 &&
        (!(status & GNUTLS_CERT_INVALID) || (status & timing))) {
        return 0;
    }
    if (g < 0) {
        snprintf(why, whysz, "the CRL of %s cannot be checked: %s", l->issuer_text,
                 gnutls_strerror(g));
    } else {
        snprintf(why, whysz, "the CRL of %s is not signed by a CA of --client-ca (%s)",
                 l->issuer_text, verify_failure(status));
    }
    return -EKEYREJECTED;
}

static size_t count_pem(const uint8_t *data, size_t len) {
    size_t n = 0;
    const uint8_t *p = data, *end = data + len;

    while (p < end) {
        const uint8_t *hit = memmem(p, (size_t)(end - p), PEM_CRL, strlen(PEM_CRL));
        if (!hit) {
            break;
        }
        n++;
        p = hit + strlen(PEM_CRL);
    }
    return n;
}

static int import_all(const uint8_t *data, size_t len, gnutls_x509_crl_t **ret_crls,
                      unsigned *ret_n, char *why, size_t whysz) {
    gnutls_datum_t d;
    size_t pems;
    int g;

    if (len == 0) {
        snprintf(why, whysz, "empty");
        return -EBADMSG;
    }
    if (len > CRL_FILE_MAX) {
        snprintf(why, whysz, "over %u bytes", CRL_FILE_MAX);
        return -E2BIG;
    }
    d = (gnutls_datum_t){(unsigned char *)data, (unsigned)len};
    pems = count_pem(data, len);
    if (pems > CRL_LISTS_MAX) {
        snprintf(why, whysz, "%zu CRLs, over the cap of %u", pems, CRL_LISTS_MAX);
        return -E2BIG;
    }
    if (pems > 0) {
        g = gnutls_x509_crl_list_import2(ret_crls, ret_n, &d, GNUTLS_X509_FMT_PEM, 0);
        if (g == 0 && *ret_n != pems) {
            for (unsigned i = 0; i < *ret_n; i++) {
                gnutls_x509_crl_deinit((*ret_crls)[i]);
            }
            gnutls_free(*ret_crls);
            g = GNUTLS_E_BASE64_DECODING_ERROR;
        }
    } else {
        gnutls_x509_crl_t *one = gnutls_malloc(sizeof(*one));
        g = one ? gnutls_x509_crl_init(&one[0]) : GNUTLS_E_MEMORY_ERROR;
        if (g == 0 && (g = gnutls_x509_crl_import(one[0], &d, GNUTLS_X509_FMT_DER)) < 0) {
            gnutls_x509_crl_deinit(one[0]);
        }
        if (g < 0) {
            gnutls_free(one);
        } else {
            *ret_crls = one;
            *ret_n = 1;
        }
    }
    if (g == GNUTLS_E_MEMORY_ERROR) {
        return -ENOMEM;
    }
    if (g < 0) {
        snprintf(why, whysz, "not a CRL in PEM or DER (%s)", gnutls_strerror(g));
        return -EBADMSG;
    }
    return 0;
}

int crl_snapshot_parse(const uint8_t *data, size_t len, const gnutls_x509_crt_t *cas, unsigned ncas,
                       struct crl_snapshot **ret_snap, char *why, size_t whysz) {
    gnutls_x509_crl_t *crls = NULL;
    unsigned ncrls = 0;
    struct crl_snapshot *snap = NULL;
    int r;

    if ((!data && len) || !ret_snap || !why || whysz == 0) {
        return -EINVAL;
    }
    why[0] = 0;
    r = import_all(data, len, &crls, &ncrls, why, whysz);
    if (r < 0) {
        return r;
    }
    snap = calloc(1, sizeof(*snap));
    if (!snap || !(snap->lists = calloc(ncrls, sizeof(*snap->lists)))) {
        r = -ENOMEM;
        goto out;
    }
    snap->next_update = -1;
    /* Count first: no serial array is allocated for lists over the cap. */
    for (unsigned i = 0; i < ncrls; i++) {
        int c = gnutls_x509_crl_get_crt_count(crls[i]);
        if (c < 0 || (size_t)c > CRL_ENTRIES_MAX - snap->entries) {
            snprintf(why, whysz, "over %u revoked certificates", CRL_ENTRIES_MAX);
            r = -E2BIG;
            goto out;
        }
        snap->entries += (size_t)c;
    }
    snap->entries = 0;
    for (unsigned i = 0; i < ncrls; i++) {
        struct crl_list *l = &snap->lists[i];
        r = list_fill(crls[i], (size_t)gnutls_x509_crl_get_crt_count(crls[i]), l, why, whysz);
        snap->n = i + 1;
        if (r < 0 || (r = list_verify(crls[i], l, cas, ncas, why, whysz)) < 0) {
            goto out;
        }
        snap->entries += l->n;
        if (l->next_update != -1 &&
            (snap->next_update == -1 || l->next_update < snap->next_update)) {
            snap->next_update = l->next_update;
        }
    }
    *ret_snap = snap;
    snap = NULL;
    r = 0;
out:
    for (unsigned i = 0; i < ncrls; i++) {
        gnutls_x509_crl_deinit(crls[i]);
    }
    gnutls_free(crls);
    crl_snapshot_free(snap);
    return r;
}

int crl_snapshot_revokes(const struct crl_snapshot *snap, const gnutls_datum_t *issuer,
                         const struct crl_serial *serial) {
    for (size_t i = 0; i < snap->n; i++) {
        const struct crl_list *l = &snap->lists[i];
        if (l->issuer.size == issuer->size &&
            memcmp(l->issuer.data, issuer->data, issuer->size) == 0 &&
            bsearch(serial, l->serials, l->n, sizeof(*l->serials), serial_cmp)) {
            return 1;
        }
    }
    return 0;
}

static void file_id_of(const struct stat *st, struct file_id *id) {
    *id = (struct file_id){.exists = true,
                           .dev = st->st_dev,
                           .ino = st->st_ino,
                           .size = st->st_size,
                           .mtim = st->st_mtim,
                           .ctim = st->st_ctim};
}

static bool file_id_same(const struct file_id *a, const struct file_id *b) {
    if (a->exists != b->exists) {
        return false;
    }
    return !a->exists || (a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
                          a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
                          a->ctim.tv_sec == b->ctim.tv_sec && a->ctim.tv_nsec == b->ctim.tv_nsec);
}

static void format_time(time_t t, char *out, size_t outsz) {
    struct tm tm;

    if (!gmtime_r(&t, &tm) || strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(out, outsz, "%lld", (long long)t);
    }
}

/* Warn, once per loaded set, about each CRL whose nextUpdate has passed. */
static void warn_stale(struct crl_set *s, time_t now) {
    const struct crl_snapshot *snap = s->cur;

    if (s->stale_warned || snap->next_update == -1 || snap->next_update >= now) {
        return;
    }
    s->stale_warned = true;
    for (size_t i = 0; i < snap->n; i++) {
        const struct crl_list *l = &snap->lists[i];
        char when[32];
        if (l->next_update == -1 || l->next_update >= now) {
            continue;
        }
        format_time(l->next_update, when, sizeof(when));
        log_warn("CRL file %s: the CRL of %s (number %s) is past its nextUpdate %s; it stays in "
                 "force, but publish a fresh one (kimactl certs revoke re-signs it)",
                 s->path, l->issuer_text, l->number, when);
    }
}

/* The file's identity now, as crl_refresh() compares it. A path that cannot
 * be looked up for another reason than ENOENT counts as present but
 * unreadable, so the error is logged once, not every second. */
static void file_id_now(const char *path, struct file_id *id) {
    struct stat st;

    if (stat(path, &st) == 0) {
        file_id_of(&st, id);
    } else {
        *id = (struct file_id){.exists = errno != ENOENT};
    }
}

static void log_refused(const struct crl_set *s, const char *why) {
    if (s->started) {
        log_error("CRL file %s refused: %s; the %zu revocations loaded before stay in force",
                  s->path, why, s->cur->entries);
    } else {
        log_error("CRL file %s refused: %s", s->path, why);
    }
}

/* Read the file and swap its CRLs in. The owner thread only. */
static int load(struct crl_set *s, time_t now) {
    _cleanup_close_ int fd = -1;
    _cleanup_free_ uint8_t *data = NULL;
    struct crl_snapshot *snap = NULL, *old;
    struct stat st;
    size_t len = 0;
    char why[512];
    int r;

    file_id_now(s->path, &s->seen);
    /* O_NONBLOCK: a FIFO put there must not stall the service loop. */
    fd = open(s->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0 && errno == ENOENT && s->cur->entries == 0) {
        log_warn("CRL file %s does not exist (yet): no certificate is revoked until it appears",
                 s->path);
        return -ENOENT;
    }
    if (fd < 0 || fstat(fd, &st) < 0) {
        r = -errno;
        log_refused(s, strerror(-r));
        return r;
    }
    /* What was read, even if the file changed since the stat() above. */
    file_id_of(&st, &s->seen);
    if (!S_ISREG(st.st_mode)) {
        log_refused(s, "not a regular file");
        return -EBADMSG;
    }
    r = read_fd_capped(fd, CRL_FILE_MAX, &data, &len);
    if (r < 0) {
        snprintf(why, sizeof(why), "%s", r == -EFBIG ? "too large" : strerror(-r));
    } else {
        r = crl_snapshot_parse(data, len, s->cas, s->ncas, &snap, why, sizeof(why));
    }
    if (r < 0) {
        log_refused(s, why);
        return r;
    }
    pthread_rwlock_wrlock(&s->lock);
    old = s->cur;
    s->cur = snap;
    pthread_rwlock_unlock(&s->lock);
    atomic_fetch_add(&s->generation, 1);
    crl_snapshot_free(old);
    s->stale_warned = false;
    for (size_t i = 0; i < snap->n; i++) {
        log_info("CRL file %s: the CRL of %s, number %s, revokes %zu certificates", s->path,
                 snap->lists[i].issuer_text, snap->lists[i].number, snap->lists[i].n);
    }
    warn_stale(s, now);
    return 1;
}

static int load_cas(const char *path, gnutls_x509_crt_t **ret_cas, unsigned *ret_n) {
    _cleanup_free_ uint8_t *data = NULL;
    size_t len;
    gnutls_datum_t d;
    int r = read_file_capped(path, CA_FILE_MAX, &data, &len);

    if (r < 0) {
        log_error("--crl: cannot read the CA file %s: %s", path, strerror(-r));
        return r;
    }
    d = (gnutls_datum_t){data, (unsigned)len};
    r = gnutls_x509_crt_list_import2(ret_cas, ret_n, &d, GNUTLS_X509_FMT_PEM, 0);
    if (r < 0 || *ret_n == 0) {
        log_error("--crl: the CA file %s holds no PEM certificate (%s)", path,
                  r < 0 ? gnutls_strerror(r) : "empty");
        return r == GNUTLS_E_MEMORY_ERROR ? -ENOMEM : -EBADMSG;
    }
    return 0;
}

int crl_open(const char *path, const char *ca_path, time_t now, struct crl_set **ret_set) {
    struct crl_set *s;
    int r;

    if (!path || !ca_path || !ret_set) {
        return -EINVAL;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        return -ENOMEM;
    }
    pthread_rwlock_init(&s->lock, NULL);
    if (!(s->path = strdup(path)) || !(s->cur = calloc(1, sizeof(*s->cur)))) {
        crl_free(s);
        return -ENOMEM;
    }
    s->cur->next_update = -1;
    r = load_cas(ca_path, &s->cas, &s->ncas);
    if (r < 0 || ((r = load(s, now)) < 0 && r != -ENOENT)) {
        crl_free(s);
        return r;
    }
    s->started = true;
    *ret_set = s;
    return 0;
}

int crl_refresh(struct crl_set *s, time_t now) {
    struct file_id id;

    if (!s) {
        return -EINVAL;
    }
    file_id_now(s->path, &id);
    if (file_id_same(&id, &s->seen)) {
        warn_stale(s, now);
        return 0;
    }
    return load(s, now);
}

int crl_check(struct crl_set *s, gnutls_x509_crt_t crt) {
    uint8_t raw[CRL_SERIAL_MAX + 8];
    size_t rawlen = sizeof(raw);
    struct crl_serial serial;
    gnutls_datum_t issuer = {0};
    int r;

    if (!s) {
        return 0;
    }
    if (!crt) {
        return -EINVAL;
    }
    if (gnutls_x509_crt_get_serial(crt, raw, &rawlen) < 0 || serial_set(&serial, raw, rawlen) < 0) {
        return -E2BIG;
    }
    if (gnutls_x509_crt_get_raw_issuer_dn(crt, &issuer) < 0) {
        return -ENOMEM;
    }
    pthread_rwlock_rdlock(&s->lock);
    r = crl_snapshot_revokes(s->cur, &issuer, &serial);
    pthread_rwlock_unlock(&s->lock);
    gnutls_free(issuer.data);
    return r; /* the caller logs (through its rate limit: a peer provokes it) */
}

uint64_t crl_generation(struct crl_set *s) {
    return s ? atomic_load(&s->generation) : 0;
}

size_t crl_count(struct crl_set *s) {
    size_t n;

    if (!s) {
        return 0;
    }
    pthread_rwlock_rdlock(&s->lock);
    n = s->cur->entries;
    pthread_rwlock_unlock(&s->lock);
    return n;
}

void crl_free(struct crl_set *s) {
    if (!s) {
        return;
    }
    pthread_rwlock_destroy(&s->lock);
    crl_snapshot_free(s->cur);
    for (unsigned i = 0; i < s->ncas; i++) {
        gnutls_x509_crt_deinit(s->cas[i]);
    }
    gnutls_free(s->cas);
    free(s->path);
    free(s);
}
