/* SPDX-License-Identifier: Apache-2.0 */
#include "test-util.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "crl-internal.h"
#include "crl.h"
#include "log.h"

/* verifier/crl.c with CAs, certificates and CRLs made here with GnuTLS:
 * which certificates a CRL revokes, which CRLs are refused (another CA,
 * malformed, over a cap), and the file's life (reload on change, the last
 * good set kept, nextUpdate warnings, a missing file, concurrent checks). */

struct ca {
    gnutls_x509_privkey_t key;
    gnutls_x509_crt_t crt;
};

static char dir[64], crl_path[128], ca_path[128], log_path[128];
static struct ca ca_a, ca_b, ca_a_twin; /* ca_a_twin: another key, the same name as ca_a */
static gnutls_x509_crt_t leaf1, leaf2, leaf_b;
static const uint8_t serial1[] = {0x00, 0x9a, 0x01, 0x02}; /* a DER sign octet, as OpenSSL writes */
static const uint8_t serial2[] = {0x11, 0x22};
static time_t now;

static void make_ca(struct ca *c, const char *dn, uint8_t serial) {
    gnutls_datum_t der = {0};
    const char *err;

    assert_int_equal(gnutls_x509_privkey_init(&c->key), 0);
    assert_int_equal(gnutls_x509_privkey_generate(c->key, GNUTLS_PK_ECDSA,
                                                  GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
                                                  0),
                     0);
    assert_int_equal(gnutls_x509_crt_init(&c->crt), 0);
    assert_int_equal(gnutls_x509_crt_set_version(c->crt, 3), 0);
    assert_int_equal(gnutls_x509_crt_set_serial(c->crt, &serial, 1), 0);
    assert_int_equal(gnutls_x509_crt_set_dn(c->crt, dn, &err), 0);
    assert_int_equal(gnutls_x509_crt_set_activation_time(c->crt, now - 3600), 0);
    assert_int_equal(gnutls_x509_crt_set_expiration_time(c->crt, now + 86400), 0);
    assert_int_equal(gnutls_x509_crt_set_basic_constraints(c->crt, 1, 0), 0);
    assert_int_equal(
            gnutls_x509_crt_set_key_usage(c->crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN),
            0);
    assert_int_equal(gnutls_x509_crt_set_key(c->crt, c->key), 0);
    assert_int_equal(gnutls_x509_crt_sign2(c->crt, c->crt, c->key, GNUTLS_DIG_SHA256, 0), 0);
    /* GnuTLS finds a CRL's issuer by the raw name, which a certificate only
     * has once imported, as verifier/crl.c's are. */
    assert_int_equal(gnutls_x509_crt_export2(c->crt, GNUTLS_X509_FMT_DER, &der), 0);
    gnutls_x509_crt_deinit(c->crt);
    assert_int_equal(gnutls_x509_crt_init(&c->crt), 0);
    assert_int_equal(gnutls_x509_crt_import(c->crt, &der, GNUTLS_X509_FMT_DER), 0);
    gnutls_free(der.data);
}

static gnutls_x509_crt_t make_leaf(const struct ca *c, const uint8_t *serial, size_t len,
                                   const char *dn) {
    gnutls_x509_privkey_t key;
    gnutls_x509_crt_t crt;
    const char *err;

    assert_int_equal(gnutls_x509_privkey_init(&key), 0);
    assert_int_equal(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                                  GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
                                                  0),
                     0);
    assert_int_equal(gnutls_x509_crt_init(&crt), 0);
    assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
    assert_int_equal(gnutls_x509_crt_set_serial(crt, serial, len), 0);
    assert_int_equal(gnutls_x509_crt_set_dn(crt, dn, &err), 0);
    assert_int_equal(gnutls_x509_crt_set_activation_time(crt, now - 3600), 0);
    assert_int_equal(gnutls_x509_crt_set_expiration_time(crt, now + 86400), 0);
    assert_int_equal(gnutls_x509_crt_set_key(crt, key), 0);
    assert_int_equal(gnutls_x509_crt_sign2(crt, c->crt, c->key, GNUTLS_DIG_SHA256, 0), 0);
    gnutls_x509_privkey_deinit(key);
    return crt;
}

/* A CRL of `c` revoking the serials of `crts` (n of them), as PEM or DER
 * appended to `out` (gnutls_free). */
static void make_crl(const struct ca *c, const gnutls_x509_crt_t *crts, size_t n,
                     time_t next_update, unsigned number, gnutls_x509_crt_fmt_t fmt,
                     gnutls_datum_t *out) {
    gnutls_x509_crl_t crl;
    gnutls_datum_t one = {0};
    uint8_t num = (uint8_t)number;

    assert_int_equal(gnutls_x509_crl_init(&crl), 0);
    assert_int_equal(gnutls_x509_crl_set_version(crl, 2), 0);
    assert_int_equal(gnutls_x509_crl_set_this_update(crl, now - 60), 0);
    assert_int_equal(gnutls_x509_crl_set_next_update(crl, next_update), 0);
    assert_int_equal(gnutls_x509_crl_set_number(crl, &num, 1), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(gnutls_x509_crl_set_crt(crl, crts[i], now - 60), 0);
    }
    assert_int_equal(gnutls_x509_crl_sign2(crl, c->crt, c->key, GNUTLS_DIG_SHA256, 0), 0);
    assert_int_equal(gnutls_x509_crl_export2(crl, fmt, &one), 0);
    out->data = gnutls_realloc(out->data, out->size + one.size);
    assert_non_null(out->data);
    memcpy(out->data + out->size, one.data, one.size);
    out->size += one.size;
    gnutls_free(one.data);
    gnutls_x509_crl_deinit(crl);
}

/* Replace the file by rename, as Kubernetes and kimactl do. */
static void put_file(const char *path, const void *data, size_t len) {
    char tmp[200];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0);
}

static void put_crl(const struct ca *c, const gnutls_x509_crt_t *crts, size_t n, time_t next) {
    gnutls_datum_t d = {0};
    make_crl(c, crts, n, next, 1, GNUTLS_X509_FMT_PEM, &d);
    put_file(crl_path, d.data, d.size);
    gnutls_free(d.data);
}

static void put_cas(const struct ca *const *cas, size_t n) {
    gnutls_datum_t all = {0};
    for (size_t i = 0; i < n; i++) {
        gnutls_datum_t one = {0};
        assert_int_equal(gnutls_x509_crt_export2(cas[i]->crt, GNUTLS_X509_FMT_PEM, &one), 0);
        all.data = gnutls_realloc(all.data, all.size + one.size);
        memcpy(all.data + all.size, one.data, one.size);
        all.size += one.size;
        gnutls_free(one.data);
    }
    put_file(ca_path, all.data, all.size);
    gnutls_free(all.data);
}

/* Log lines since the last call that contain `needle`. */
static int logged(const char *needle) {
    static long seen;
    FILE *f = fopen(log_path, "r");
    char line[2048];
    int n = 0;

    assert_non_null(f);
    fseek(f, seen, SEEK_SET);
    while (fgets(line, sizeof(line), f)) {
        n += strstr(line, needle) != NULL;
    }
    seen = ftell(f);
    fclose(f);
    return n;
}

static FILE *log_file;

static int setup(void **state) {
    (void)state;
    now = time(NULL);
    assert_int_equal(test_tmpdir_new("crl", dir, sizeof(dir)), 0);
    snprintf(crl_path, sizeof(crl_path), "%s/crl.pem", dir);
    snprintf(ca_path, sizeof(ca_path), "%s/ca.crt", dir);
    snprintf(log_path, sizeof(log_path), "%s/log", dir);
    log_file = fopen(log_path, "w");
    assert_non_null(log_file);
    setvbuf(log_file, NULL, _IONBF, 0);
    log_set_stream(log_file);
    make_ca(&ca_a, "CN=kima CA", 1);
    make_ca(&ca_b, "CN=some other CA", 2);
    make_ca(&ca_a_twin, "CN=kima CA", 3);
    leaf1 = make_leaf(&ca_a, serial1, sizeof(serial1), "OU=kima-agent,CN=node-1");
    leaf2 = make_leaf(&ca_a, serial2, sizeof(serial2), "OU=kima-agent,CN=node-2");
    leaf_b = make_leaf(&ca_b, serial1, sizeof(serial1), "OU=kima-agent,CN=node-1");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    gnutls_x509_crt_deinit(leaf1);
    gnutls_x509_crt_deinit(leaf2);
    gnutls_x509_crt_deinit(leaf_b);
    for (struct ca *c = &ca_a; c; c = c == &ca_a ? &ca_b : c == &ca_b ? &ca_a_twin : NULL) {
        gnutls_x509_crt_deinit(c->crt);
        gnutls_x509_privkey_deinit(c->key);
    }
    log_set_stream(NULL);
    fclose(log_file);
    return test_tmpdir_free(dir);
}

static void unlink_files(void) {
    unlink(crl_path);
    unlink(ca_path);
}

static int parse(const gnutls_datum_t *d, const struct ca *const *cas, size_t ncas,
                 struct crl_snapshot **snap, char *why) {
    gnutls_x509_crt_t list[4];
    for (size_t i = 0; i < ncas; i++) {
        list[i] = cas[i]->crt;
    }
    return crl_snapshot_parse(d->data, d->size, list, (unsigned)ncas, snap, why, 512);
}

static int revokes(const struct crl_snapshot *snap, gnutls_x509_crt_t crt) {
    gnutls_datum_t issuer;
    struct crl_serial s = {0};
    uint8_t raw[64];
    size_t len = sizeof(raw), off = 0;
    int r;

    assert_int_equal(gnutls_x509_crt_get_raw_issuer_dn(crt, &issuer), 0);
    assert_int_equal(gnutls_x509_crt_get_serial(crt, raw, &len), 0);
    while (off < len && raw[off] == 0) {
        off++;
    }
    s.len = (uint8_t)(len - off);
    memcpy(s.b, raw + off, s.len);
    r = crl_snapshot_revokes(snap, &issuer, &s);
    gnutls_free(issuer.data);
    return r;
}

static void test_revokes_listed_serials_of_its_issuer(void **state) {
    const struct ca *cas[] = {&ca_a};
    gnutls_datum_t d = {0};
    struct crl_snapshot *snap = NULL;
    char why[512];
    (void)state;

    make_crl(&ca_a, &leaf1, 1, now + 86400, 1, GNUTLS_X509_FMT_PEM, &d);
    assert_int_equal(parse(&d, cas, 1, &snap, why), 0);
    assert_int_equal(snap->n, 1);
    assert_int_equal(snap->entries, 1);
    assert_string_equal(snap->lists[0].number, "1");
    assert_int_equal(revokes(snap, leaf1), 1);
    assert_int_equal(revokes(snap, leaf2), 0);
    /* The same serial from another issuer is another certificate. */
    assert_int_equal(revokes(snap, leaf_b), 0);
    crl_snapshot_free(snap);
    gnutls_free(d.data);
}

static void test_empty_crl(void **state) {
    const struct ca *cas[] = {&ca_a};
    gnutls_datum_t d = {0};
    struct crl_snapshot *snap = NULL;
    char why[512];
    (void)state;

    make_crl(&ca_a, NULL, 0, now + 86400, 3, GNUTLS_X509_FMT_PEM, &d);
    assert_int_equal(parse(&d, cas, 1, &snap, why), 0);
    assert_int_equal(snap->n, 1);
    assert_int_equal(snap->entries, 0);
    assert_int_equal(revokes(snap, leaf1), 0);
    crl_snapshot_free(snap);
    gnutls_free(d.data);
}

static void test_several_pem_crls_and_der(void **state) {
    const struct ca *cas[] = {&ca_a, &ca_b};
    gnutls_x509_crt_t both[] = {leaf1, leaf2};
    gnutls_datum_t d = {0}, der = {0};
    struct crl_snapshot *snap = NULL;
    char why[512];
    (void)state;

    make_crl(&ca_a, both, 2, now + 86400, 7, GNUTLS_X509_FMT_PEM, &d);
    make_crl(&ca_b, &leaf_b, 1, now + 86400, 9, GNUTLS_X509_FMT_PEM, &d);
    assert_int_equal(parse(&d, cas, 2, &snap, why), 0);
    assert_int_equal(snap->n, 2);
    assert_int_equal(snap->entries, 3);
    assert_int_equal(revokes(snap, leaf1), 1);
    assert_int_equal(revokes(snap, leaf2), 1);
    assert_int_equal(revokes(snap, leaf_b), 1);
    crl_snapshot_free(snap);
    snap = NULL;

    make_crl(&ca_b, &leaf_b, 1, now + 86400, 9, GNUTLS_X509_FMT_DER, &der);
    assert_int_equal(parse(&der, cas, 2, &snap, why), 0);
    assert_int_equal(snap->n, 1);
    assert_int_equal(revokes(snap, leaf_b), 1);
    assert_int_equal(revokes(snap, leaf1), 0);
    crl_snapshot_free(snap);
    gnutls_free(d.data);
    gnutls_free(der.data);
}

static void test_refuses_other_ca_and_malformed(void **state) {
    const struct ca *cas[] = {&ca_a};
    gnutls_datum_t twin = {0}, other = {0}, mixed = {0};
    gnutls_datum_t junk = {(unsigned char *)"not a CRL", 9}, empty = {(unsigned char *)"", 0};
    struct crl_snapshot *snap = NULL;
    char why[512], many[64 * 30];
    (void)state;

    /* Same name as the client CA, another key: the signature decides. */
    make_crl(&ca_a_twin, &leaf1, 1, now + 86400, 1, GNUTLS_X509_FMT_PEM, &twin);
    assert_int_equal(parse(&twin, cas, 1, &snap, why), -EKEYREJECTED);
    assert_non_null(strstr(why, "not signed by a CA of --client-ca"));
    assert_non_null(strstr(why, "signature does not verify"));
    assert_non_null(strstr(why, "CN=kima CA"));
    make_crl(&ca_b, &leaf_b, 1, now + 86400, 1, GNUTLS_X509_FMT_PEM, &other);
    assert_int_equal(parse(&other, cas, 1, &snap, why), -EKEYREJECTED);
    assert_non_null(strstr(why, "CN=some other CA"));
    assert_non_null(strstr(why, "issuer is unknown"));
    /* One bad CRL refuses the whole file. */
    make_crl(&ca_a, &leaf1, 1, now + 86400, 1, GNUTLS_X509_FMT_PEM, &mixed);
    make_crl(&ca_b, &leaf_b, 1, now + 86400, 1, GNUTLS_X509_FMT_PEM, &mixed);
    assert_int_equal(parse(&mixed, cas, 1, &snap, why), -EKEYREJECTED);
    /* No CA at all. */
    assert_int_equal(parse(&mixed, cas, 0, &snap, why), -EKEYREJECTED);

    assert_int_equal(parse(&junk, cas, 1, &snap, why), -EBADMSG);
    assert_non_null(strstr(why, "not a CRL"));
    assert_int_equal(parse(&empty, cas, 1, &snap, why), -EBADMSG);
    /* A truncated PEM CRL. */
    mixed.size /= 3;
    assert_int_equal(parse(&mixed, cas, 1, &snap, why), -EBADMSG);
    /* Over the cap of CRLs in a file: refused before any is decoded. */
    many[0] = 0;
    for (size_t i = 0, at = 0; i <= CRL_LISTS_MAX && at < sizeof(many); i++) {
        at += (size_t)snprintf(many + at, sizeof(many) - at, "-----BEGIN X509 CRL-----\n");
    }
    assert_true(strlen(many) < sizeof(many));
    assert_int_equal(
            crl_snapshot_parse((const uint8_t *)many, strlen(many), NULL, 0, &snap, why, 512),
            -E2BIG);
    assert_null(snap);
    gnutls_free(twin.data);
    gnutls_free(other.data);
    gnutls_free(mixed.data);
}

static void test_stale_crl_still_enforced(void **state) {
    const struct ca *cas[] = {&ca_a};
    gnutls_datum_t d = {0};
    struct crl_snapshot *snap = NULL;
    char why[512];
    (void)state;

    make_crl(&ca_a, &leaf1, 1, now - 3600, 1, GNUTLS_X509_FMT_PEM, &d);
    assert_int_equal(parse(&d, cas, 1, &snap, why), 0);
    assert_int_equal(revokes(snap, leaf1), 1);
    assert_int_equal(snap->next_update, now - 3600);
    crl_snapshot_free(snap);
    gnutls_free(d.data);
}

static void test_file_reload_keeps_last_good(void **state) {
    const struct ca *cas[] = {&ca_a};
    struct crl_set *s = NULL;
    gnutls_datum_t twin = {0};
    (void)state;

    put_cas(cas, 1);
    put_crl(&ca_a, &leaf1, 1, now + 86400);
    logged("");
    assert_int_equal(crl_open(crl_path, ca_path, now, &s), 0);
    assert_int_equal(logged("revokes 1 certificates"), 1);
    assert_int_equal(crl_check(s, leaf1), 1);
    assert_int_equal(logged("CN=node-1"), 0); /* the HTTP front logs who, rate-limited */
    assert_int_equal(crl_check(s, leaf2), 0);
    assert_int_equal(crl_refresh(s, now), 0); /* unchanged: not read again */
    assert_int_equal(logged("CRL file"), 0);
    /* The generation moves with each set put in force, and only then. */
    assert_int_equal(crl_generation(s), 1);
    assert_int_equal(crl_generation(NULL), 0);

    /* Corrupt: refused once, the previous set stays, no repeat while unchanged. */
    put_file(crl_path, "-----BEGIN X509 CRL-----\ngarbage\n", 33);
    assert_int_equal(crl_refresh(s, now), -EBADMSG);
    assert_int_equal(crl_refresh(s, now), 0);
    assert_int_equal(logged("refused: not a CRL"), 1);
    assert_int_equal(logged("refused"), 0);
    assert_int_equal(crl_check(s, leaf1), 1);

    /* Signed by a CA of the same name but another key: refused, logged. */
    make_crl(&ca_a_twin, &leaf2, 1, now + 86400, 2, GNUTLS_X509_FMT_PEM, &twin);
    put_file(crl_path, twin.data, twin.size);
    assert_int_equal(crl_refresh(s, now), -EKEYREJECTED);
    assert_int_equal(logged("not signed by a CA of --client-ca"), 1);
    assert_int_equal(crl_check(s, leaf1), 1);
    assert_int_equal(crl_check(s, leaf2), 0);
    assert_int_equal(crl_generation(s), 1); /* refused files change nothing */

    /* A good new list replaces the old one entirely. */
    put_crl(&ca_a, &leaf2, 1, now + 86400);
    assert_int_equal(crl_refresh(s, now), 1);
    assert_int_equal(crl_generation(s), 2);
    assert_int_equal(crl_check(s, leaf1), 0);
    assert_int_equal(crl_check(s, leaf2), 1);
    assert_int_equal(crl_count(s), 1);

    /* A folder (or a FIFO) where the file should be: refused, kept. */
    unlink(crl_path);
    assert_int_equal(mkdir(crl_path, 0700), 0);
    assert_int_equal(crl_refresh(s, now), -EBADMSG);
    assert_int_equal(logged("not a regular file"), 1);
    assert_int_equal(crl_check(s, leaf2), 1);
    assert_int_equal(rmdir(crl_path), 0);
    put_crl(&ca_a, &leaf2, 1, now + 86400);
    assert_int_equal(crl_refresh(s, now), 1);

    /* The file disappears: what was loaded stays in force. */
    unlink(crl_path);
    assert_int_equal(crl_refresh(s, now), -ENOENT);
    assert_int_equal(logged("stay in force"), 1);
    assert_int_equal(crl_refresh(s, now), 0);
    assert_int_equal(crl_check(s, leaf2), 1);
    crl_free(s);
    gnutls_free(twin.data);
    unlink_files();
}

static void test_file_missing_then_appears(void **state) {
    const struct ca *cas[] = {&ca_a};
    struct crl_set *s = NULL;
    (void)state;

    put_cas(cas, 1);
    logged("");
    assert_int_equal(crl_open(crl_path, ca_path, now, &s), 0);
    assert_int_equal(logged("does not exist"), 1);
    assert_int_equal(crl_check(s, leaf1), 0);
    assert_int_equal(crl_refresh(s, now), 0);
    put_crl(&ca_a, &leaf1, 1, now + 86400);
    assert_int_equal(crl_refresh(s, now), 1);
    assert_int_equal(crl_check(s, leaf1), 1);
    crl_free(s);
    unlink_files();
}

static void test_open_refuses_bad_file_and_ca(void **state) {
    const struct ca *cas[] = {&ca_a};
    struct crl_set *s = NULL;
    (void)state;

    /* At start-up there is nothing to fall back on. */
    put_cas(cas, 1);
    put_crl(&ca_b, &leaf_b, 1, now + 86400);
    assert_int_equal(crl_open(crl_path, ca_path, now, &s), -EKEYREJECTED);
    assert_null(s);
    put_file(crl_path, "junk", 4);
    assert_int_equal(crl_open(crl_path, ca_path, now, &s), -EBADMSG);
    put_file(ca_path, "no CA here", 10);
    assert_int_equal(crl_open(crl_path, ca_path, now, &s), -EBADMSG);
    unlink(ca_path);
    assert_int_equal(crl_open(crl_path, ca_path, now, &s), -ENOENT);
    assert_null(s);
    assert_int_equal(crl_open(NULL, ca_path, now, &s), -EINVAL);
    /* A NULL set revokes nothing. */
    assert_int_equal(crl_check(NULL, leaf1), 0);
    assert_int_equal(crl_count(NULL), 0);
    unlink_files();
}

static void test_next_update_warning_once(void **state) {
    const struct ca *cas[] = {&ca_a};
    struct crl_set *s = NULL;
    (void)state;

    put_cas(cas, 1);
    put_crl(&ca_a, &leaf1, 1, now + 100);
    logged("");
    assert_int_equal(crl_open(crl_path, ca_path, now, &s), 0);
    assert_int_equal(logged("past its nextUpdate"), 0);
    assert_int_equal(crl_refresh(s, now + 200), 0);
    assert_int_equal(logged("past its nextUpdate"), 1);
    assert_int_equal(crl_refresh(s, now + 300), 0);
    assert_int_equal(logged("past its nextUpdate"), 0);
    assert_int_equal(crl_check(s, leaf1), 1); /* still enforced */
    crl_free(s);

    /* Already past at load: warned at once. */
    put_crl(&ca_a, &leaf1, 1, now - 100);
    assert_int_equal(crl_open(crl_path, ca_path, now, &s), 0);
    assert_int_equal(logged("past its nextUpdate"), 1);
    assert_int_equal(crl_check(s, leaf1), 1);
    crl_free(s);
    unlink_files();
}

struct checker {
    struct crl_set *s;
    int bad;
};

static void *check_loop(void *arg) {
    struct checker *c = arg;
    for (int i = 0; i < 20000; i++) {
        int r1 = crl_check(c->s, leaf1), r2 = crl_check(c->s, leaf2);
        /* The two checks may see different lists; each sees a whole one. */
        if (r1 < 0 || r1 > 1 || r2 < 0 || r2 > 1) {
            c->bad++;
        }
    }
    return NULL;
}

/* HTTP threads check while the owner thread swaps lists. */
static void test_concurrent_checks_and_reloads(void **state) {
    const struct ca *cas[] = {&ca_a};
    gnutls_datum_t one = {0}, two = {0};
    struct checker c = {0};
    pthread_t t[2];
    (void)state;

    put_cas(cas, 1);
    make_crl(&ca_a, &leaf1, 1, now + 86400, 1, GNUTLS_X509_FMT_PEM, &one);
    make_crl(&ca_a, &leaf2, 1, now + 86400, 2, GNUTLS_X509_FMT_PEM, &two);
    put_file(crl_path, one.data, one.size);
    assert_int_equal(crl_open(crl_path, ca_path, now, &c.s), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, check_loop, &c), 0);
    }
    for (int i = 0; i < 200; i++) {
        const gnutls_datum_t *d = i % 2 ? &one : &two;
        put_file(crl_path, d->data, d->size);
        assert_int_equal(crl_refresh(c.s, now), 1);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
    }
    assert_int_equal(c.bad, 0);
    crl_free(c.s);
    gnutls_free(one.data);
    gnutls_free(two.data);
    unlink_files();
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_revokes_listed_serials_of_its_issuer),
            cmocka_unit_test(test_empty_crl),
            cmocka_unit_test(test_several_pem_crls_and_der),
            cmocka_unit_test(test_refuses_other_ca_and_malformed),
            cmocka_unit_test(test_stale_crl_still_enforced),
            cmocka_unit_test(test_file_reload_keeps_last_good),
            cmocka_unit_test(test_file_missing_then_appears),
            cmocka_unit_test(test_open_refuses_bad_file_and_ca),
            cmocka_unit_test(test_next_update_warning_once),
            cmocka_unit_test(test_concurrent_checks_and_reloads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
