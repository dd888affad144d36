/* SPDX-License-Identifier: Apache-2.0 */
/* verifier/inventory.c: the pods file (re-read only when it changes, a bad
 * file keeps the last good inventory, synced as of the file's mtime), the
 * API source, lookups by UID, static pod config hash and container ID, gone
 * pods kept for INVENTORY_GONE_KEEP_MS, the miss handler, and watch events
 * applied one at a time (verifier/inventory-index.c): upserts, deletions,
 * container IDs that move, many changes over a growing index, the bounds. */
#include "test-util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "inventory.h"

#define UID_A  "aaaaaaaa-0000-4000-8000-000000000001"
#define UID_B  "aaaaaaaa-0000-4000-8000-000000000002"
#define UID_S  "aaaaaaaa-0000-4000-8000-00000000000s"
#define MIRROR "0123456789abcdef0123456789abcdef"
#define C8(c)  c c c c c c c c
#define CID(c) C8(C8(c)) /* 64 hex digits */

/* An item of a PodList: pod `uid` named `name` in open5gs on node-1. */
#define ITEM(uid, name)                                                                   \
    "{\"metadata\":{\"uid\":\"" uid "\",\"namespace\":\"open5gs\",\"name\":\"" name "\"," \
    "\"labels\":{\"app\":\"" name "\"}},\"spec\":{\"nodeName\":\"node-1\"}}"
#define LIST(items) "{\"kind\":\"PodList\",\"items\":[" items "]}"

static char dir[64], path[128];
static int misses;

static int setup(void **state) {
    (void)state;
    return test_tmpdir_new("inventory", dir, sizeof(dir));
}

static int teardown(void **state) {
    (void)state;
    return test_tmpdir_free(dir);
}

static int fresh(void **state) {
    static unsigned n;
    (void)state;
    snprintf(path, sizeof(path), "%s/pods-%u.json", dir, n++);
    misses = 0;
    return 0;
}

/* Write the pods file and give it modification time `sec`.`nsec`. */
static void write_pods(const char *text, time_t sec, long nsec) {
    struct timespec ts[2] = {{sec, nsec}, {sec, nsec}};
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void info_free(struct pod_info *i) {
    json_decref(i->labels);
    json_decref(i->images);
    memset(i, 0, sizeof(*i));
}

/* The name of the pod a UID (or config hash) finds, or "" on a miss. */
static const char *name_of(struct inventory *inv, const char *uid, char *buf) {
    struct pod_info i;

    buf[0] = 0;
    if (inventory_peek_uid(inv, uid, NULL, &i) == 0) {
        strcpy(buf, i.name);
        info_free(&i);
    }
    return buf;
}

static void test_file_refresh(void **state) {
    struct inventory *inv = NULL;
    struct pod_info i;
    uint64_t gen;
    char name[256];
    (void)state;

    /* A file that is not there is an error at open. */
    assert_int_equal(inventory_open_file(path, &inv), -ENOENT);
    assert_null(inv);

    write_pods(LIST(ITEM(UID_A, "upf-0")), 1700000000, 123456789);
    assert_int_equal(inventory_open_file(path, &inv), 0);
    assert_int_equal(inventory_lookup_uid(inv, UID_A, NULL, &i), 0);
    assert_string_equal(i.ns, "open5gs");
    assert_string_equal(i.name, "upf-0");
    assert_string_equal(i.node, "node-1");
    assert_false(i.gone);
    assert_string_equal(json_string_value(json_object_get(i.labels, "app")), "upf-0");
    assert_int_equal(json_array_size(i.images), 0);
    info_free(&i);
    /* Synced as of the file's modification time, to the millisecond. */
    assert_int_equal(inventory_synced_ms(inv), 1700000000123);
    gen = inventory_generation(inv);

    /* Unchanged: not read again. */
    assert_int_equal(inventory_refresh(inv), 0);
    assert_int_equal(inventory_generation(inv), gen);

    /* Changed to the same size and the same mtime: not read either (the
     * file is judged by its mtime and size). */
    write_pods(LIST(ITEM(UID_B, "upf-0")), 1700000000, 123456789);
    assert_int_equal(inventory_refresh(inv), 0);
    assert_string_equal(name_of(inv, UID_A, name), "upf-0");
    assert_string_equal(name_of(inv, UID_B, name), "");

    /* A new mtime: read, the generation moves, synced follows the file. */
    write_pods(LIST(ITEM(UID_A, "upf-0") "," ITEM(UID_B, "amf-0")), 1700000060, 0);
    assert_int_equal(inventory_refresh(inv), 1);
    assert_true(inventory_generation(inv) > gen);
    assert_int_equal(inventory_synced_ms(inv), 1700000060000);
    assert_string_equal(name_of(inv, UID_B, name), "amf-0");
    gen = inventory_generation(inv);

    /* A bad file keeps the last good inventory, and its sync time. */
    write_pods("{\"kind\":\"PodList\",\"items\":[", 1700000120, 0);
    assert_int_equal(inventory_refresh(inv), -EBADMSG);
    write_pods("{\"kind\":\"PodList\"}", 1700000180, 0);
    assert_int_equal(inventory_refresh(inv), -EBADMSG);
    write_pods("[]", 1700000240, 0);
    assert_int_equal(inventory_refresh(inv), -EBADMSG);
    assert_int_equal(inventory_generation(inv), gen);
    assert_int_equal(inventory_synced_ms(inv), 1700000060000);
    assert_string_equal(name_of(inv, UID_A, name), "upf-0");
    assert_string_equal(name_of(inv, UID_B, name), "amf-0");
    /* ... also when the file goes away. */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(inventory_refresh(inv), -ENOENT);
    assert_string_equal(name_of(inv, UID_B, name), "amf-0");

    /* Good again: taken. */
    write_pods(LIST(ITEM(UID_B, "amf-1")), 1700000300, 0);
    assert_int_equal(inventory_refresh(inv), 1);
    assert_string_equal(name_of(inv, UID_B, name), "amf-1");
    assert_int_equal(inventory_synced_ms(inv), 1700000300000);
    inventory_free(inv);
}

/* No file at all: an empty inventory that is always current. */
static void test_no_source(void **state) {
    struct inventory *inv = NULL;
    struct pod_info i;
    struct timespec now;
    int64_t now_ms;
    (void)state;

    assert_int_equal(inventory_open_file(NULL, &inv), 0);
    assert_int_equal(inventory_lookup_uid(inv, UID_A, NULL, &i), -ENOENT);
    clock_gettime(CLOCK_REALTIME, &now);
    now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    assert_int_equal(inventory_refresh(inv), 0);
    assert_true(inventory_synced_ms(inv) >= now_ms);
    assert_true(inventory_synced_ms(inv) < now_ms + 60000);
    inventory_free(inv);
    inventory_free(NULL);
}

static json_t *items(const char *text) {
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j) {
        fail_msg("test JSON: %s", e.text);
    }
    return j;
}

static void replace(struct inventory *inv, const char *text, int64_t listed_ms) {
    json_t *j = items(text);
    inventory_replace_items(inv, j, listed_ms);
    json_decref(j);
}

/* The API source: empty and never synced until the first list; synced as
 * of the latest list's start. */
static void test_api_source(void **state) {
    struct inventory *inv = NULL;
    struct pod_info i;
    char name[256];
    (void)state;

    assert_int_equal(inventory_open_api(&inv), 0);
    assert_int_equal(inventory_synced_ms(inv), 0);
    assert_int_equal(inventory_refresh(inv), 0);
    assert_int_equal(inventory_synced_ms(inv), 0);
    assert_int_equal(inventory_lookup_uid(inv, UID_A, NULL, &i), -ENOENT);

    replace(inv, "[" ITEM(UID_A, "upf-0") "]", 5000);
    assert_int_equal(inventory_synced_ms(inv), 5000);
    assert_int_equal(inventory_generation(inv), 1);
    assert_string_equal(name_of(inv, UID_A, name), "upf-0");
    /* A list that started earlier than the last one does not move the
     * sync time back (its pods are taken). */
    replace(inv, "[" ITEM(UID_A, "upf-1") "]", 4000);
    assert_int_equal(inventory_synced_ms(inv), 5000);
    assert_int_equal(inventory_generation(inv), 2);
    assert_string_equal(name_of(inv, UID_A, name), "upf-1");
    inventory_free(inv);
}

static const char pods_full[] =
        "[{\"metadata\":{\"uid\":\"" UID_A "\",\"namespace\":\"open5gs\",\"name\":\"upf-0\","
        " \"labels\":{\"app\":\"upf\"}},"
        " \"spec\":{\"nodeName\":\"node-1\"},"
        " \"status\":{"
        "  \"containerStatuses\":[{\"containerID\":\"containerd://" CID(
                "1") "\","
                     "   \"imageID\":\"docker.io/open5gs@sha256:" CID(
                             "e") "\"},"
                                  "   {\"containerID\":\"cri-o://" CID(
                                          "2") "\",\"imageID\":\"\"}],"
                                               "  "
                                               "\"initContainerStatuses\":[{\"containerID\":"
                                               "\"containerd://" CID(
                                                       "3") "\"}],"
                                                            "  "
                                                            "\"ephemeralContainerStatuses\":[{"
                                                            "\"containerID\":\"containerd://" CID(
                                                                    "4") "\"},"
                                                                         "   "
                                                                         "{\"containerID\":\"" CID(
                                                                                 "5") "\"}]}},"
                                                                                      /* A static
                                                                                         pod's
                                                                                         mirror: the
                                                                                         API's UID
                                                                                         and the
                                                                                         kubelet's
                                                                                         config
                                                                                         hash. */
                                                                                      " {"
                                                                                      "\"metadata\""
                                                                                      ":{\"uid\":"
                                                                                      "\"" UID_S
                                                                                      "\","
                                                                                      "\"namespace"
                                                                                      "\":\"kube-"
                                                                                      "system\","
                                                                                      "  "
                                                                                      "\"name\":"
                                                                                      "\"etcd-node-"
                                                                                      "1\","
                                                                                      "\"annotation"
                                                                                      "s\":{"
                                                                                      "\"kubernetes"
                                                                                      ".io/"
                                                                                      "config."
                                                                                      "mirror\":"
                                                                                      "\"" MIRROR
                                                                                      "\"}},"
                                                                                      "  "
                                                                                      "\"spec\":{"
                                                                                      "\"nodeName\""
                                                                                      ":\"node-1\"}"
                                                                                      "},"
                                                                                      /* No UID: not
                                                                                         a pod kima
                                                                                         can use. */
                                                                                      " {"
                                                                                      "\"metadata\""
                                                                                      ":{"
                                                                                      "\"namespace"
                                                                                      "\":\"x\","
                                                                                      "\"name\":"
                                                                                      "\"no-uid\"}}"
                                                                                      "]";

static void test_lookups(void **state) {
    struct inventory *inv = NULL;
    struct pod_info i;
    char name[256];
    (void)state;

    assert_int_equal(inventory_open_api(&inv), 0);
    replace(inv, pods_full, 1000);

    assert_int_equal(inventory_lookup_uid(inv, UID_A, NULL, &i), 0);
    assert_string_equal(i.uid, UID_A);
    assert_string_equal(json_string_value(json_object_get(i.labels, "app")), "upf");
    /* Images of every container with one; empty ones left out. */
    assert_int_equal(json_array_size(i.images), 1);
    assert_string_equal(json_string_value(json_array_get(i.images, 0)),
                        "docker.io/open5gs@sha256:" CID("e"));
    info_free(&i);

    /* Containers, init containers and ephemeral containers, the runtime's
     * prefix taken off. */
    static const char *const cids[] = {CID("1"), CID("2"), CID("3"), CID("4")};
    for (size_t k = 0; k < ARRAY_SIZE(cids); k++) {
        assert_int_equal(inventory_lookup_container(inv, cids[k], NULL, &i), 0);
        assert_string_equal(i.uid, UID_A);
        info_free(&i);
    }
    /* An ID without a runtime prefix is none; nor is the prefixed form. */
    assert_int_equal(inventory_lookup_container(inv, CID("5"), NULL, &i), -ENOENT);
    assert_int_equal(inventory_lookup_container(inv, "containerd://" CID("1"), NULL, &i), -ENOENT);

    /* A static pod: by its API UID and by its config hash, which is its
     * identity. */
    assert_string_equal(name_of(inv, UID_S, name), "etcd-node-1");
    assert_int_equal(inventory_lookup_uid(inv, MIRROR, NULL, &i), 0);
    assert_string_equal(i.uid, MIRROR);
    assert_string_equal(i.api_uid, UID_S);
    assert_string_equal(i.ns, "kube-system");
    assert_non_null(i.labels); /* no labels: an empty object */
    assert_int_equal(json_object_size(i.labels), 0);
    info_free(&i);

    assert_string_equal(name_of(inv, "no-uid", name), "");
    inventory_free(inv);
}

#define KEEP INVENTORY_GONE_KEEP_MS

/* A pod no longer listed stays known as gone for KEEP ms from the first
 * list that missed it, then is forgotten. */
static void test_gone(void **state) {
    struct inventory *inv = NULL;
    struct pod_info i;
    (void)state;

    assert_int_equal(inventory_open_api(&inv), 0);
    replace(inv, pods_full, 1000);
    replace(inv, "[" ITEM(UID_B, "amf-0") "]", 2000);

    assert_int_equal(inventory_lookup_uid(inv, UID_A, NULL, &i), 0);
    assert_true(i.gone);
    assert_string_equal(i.name, "upf-0");
    info_free(&i);
    /* Its containers and its config hash still find it. */
    assert_int_equal(inventory_lookup_container(inv, CID("3"), NULL, &i), 0);
    assert_true(i.gone);
    info_free(&i);
    assert_int_equal(inventory_lookup_uid(inv, MIRROR, NULL, &i), 0);
    assert_true(i.gone);
    info_free(&i);
    assert_int_equal(inventory_lookup_uid(inv, UID_B, NULL, &i), 0);
    assert_false(i.gone);
    info_free(&i);

    /* Later lists count from when it was first missed (2000), not from
     * themselves: kept at 2000 + KEEP, forgotten after. */
    replace(inv, "[" ITEM(UID_B, "amf-0") "]", 2000 + KEEP / 2);
    replace(inv, "[" ITEM(UID_B, "amf-0") "]", 2000 + KEEP);
    assert_int_equal(inventory_lookup_uid(inv, UID_A, NULL, &i), 0);
    assert_true(i.gone);
    info_free(&i);
    replace(inv, "[" ITEM(UID_B, "amf-0") "]", 2000 + KEEP + 1);
    assert_int_equal(inventory_lookup_uid(inv, UID_A, NULL, &i), -ENOENT);
    assert_int_equal(inventory_lookup_container(inv, CID("3"), NULL, &i), -ENOENT);
    assert_int_equal(inventory_lookup_uid(inv, MIRROR, NULL, &i), -ENOENT);
    assert_int_equal(inventory_lookup_uid(inv, UID_B, NULL, &i), 0);
    info_free(&i);
    inventory_free(inv);
}

/* A pod listed again is live again; a static pod recreated under a new API
 * UID with the same config hash: the hash finds the live one. */
static void test_gone_and_back(void **state) {
    struct inventory *inv = NULL;
    struct pod_info i;
    (void)state;

    assert_int_equal(inventory_open_api(&inv), 0);
    replace(inv, pods_full, 1000);
    replace(inv, "[]", 2000);
    assert_int_equal(inventory_lookup_uid(inv, UID_A, NULL, &i), 0);
    assert_true(i.gone);
    info_free(&i);
    replace(inv, "[" ITEM(UID_A, "upf-0") "]", 3000);
    assert_int_equal(inventory_lookup_uid(inv, UID_A, NULL, &i), 0);
    assert_false(i.gone);
    info_free(&i);

    replace(inv,
            "[{\"metadata\":{\"uid\":\"" UID_B "\",\"namespace\":\"kube-system\","
            "\"name\":\"etcd-node-1\",\"annotations\":{\"kubernetes.io/config.mirror\":\"" MIRROR
            "\"}},\"spec\":{\"nodeName\":\"node-1\"}}]",
            4000);
    assert_int_equal(inventory_lookup_uid(inv, MIRROR, NULL, &i), 0);
    assert_string_equal(i.uid, MIRROR);
    assert_string_equal(i.api_uid, UID_B);
    assert_false(i.gone);
    info_free(&i);
    /* The old mirror pod stood for the same static pod, which is not
     * gone: it is not kept as a deleted pod. */
    assert_int_equal(inventory_lookup_uid(inv, UID_S, NULL, &i), -ENOENT);
    inventory_free(inv);
}

#define DECOY(ns, uid, mirror, node)                                                            \
    "{\"metadata\":{\"uid\":\"" uid "\",\"namespace\":\"" ns "\",\"name\":\"decoy\","           \
    "\"annotations\":{\"kubernetes.io/config.mirror\":\"" mirror "\"}},\"spec\":{\"nodeName\":" \
    "\"" node "\"}}"

/* The mirror annotation is anyone's to set: a tenant's pod claiming to
 * stand for another pod (by its UID) or for a static pod (by its hash)
 * captures nothing. Only the namespaces named for static pods are
 * believed, and only hash-shaped values. */
static void test_mirror_annotation_believed_narrowly(void **state) {
    struct inventory *inv = NULL;
    struct pod_info i;
    char id[64];
    json_t *item;
    (void)state;

    assert_int_equal(inventory_open_api(&inv), 0);
    /* Listed first (namespaces sort before the victim's). */
    replace(inv,
            "[" DECOY("aaa", UID_B, UID_A, "node-2") "," DECOY(
                    "kube-system", UID_S, UID_A, "node-2") "," ITEM(UID_A, "upf-0") "]",
            1000);
    assert_int_equal(inventory_lookup_uid(inv, UID_A, NULL, &i), 0);
    assert_string_equal(i.name, "upf-0");
    assert_string_equal(i.node, "node-1");
    info_free(&i);

    /* A hash claimed outside the static pods' namespaces: not believed. */
    replace(inv, "[" DECOY("aaa", UID_B, MIRROR, "node-2") "]", 2000);
    assert_int_equal(inventory_lookup_uid(inv, MIRROR, NULL, &i), -ENOENT);
    item = json_loads(DECOY("aaa", UID_B, MIRROR, "node-2"), 0, NULL);
    inventory_item_identity(inv, item, id, sizeof(id));
    assert_string_equal(id, UID_B);
    json_decref(item);

    /* Believed in a namespace the operator names. */
    assert_int_equal(inventory_set_static_namespaces(inv, "kube-system,open5gs"), 0);
    replace(inv, "[" DECOY("open5gs", UID_B, MIRROR, "node-2") "]", 3000);
    assert_int_equal(inventory_lookup_uid(inv, MIRROR, NULL, &i), 0);
    assert_string_equal(i.uid, MIRROR);
    assert_string_equal(i.api_uid, UID_B);
    info_free(&i);
    item = json_loads(DECOY("open5gs", UID_B, MIRROR, "node-2"), 0, NULL);
    inventory_item_identity(inv, item, id, sizeof(id));
    assert_string_equal(id, MIRROR);
    json_decref(item);

    /* Namespace lists are names, nothing else. */
    assert_int_equal(inventory_set_static_namespaces(inv, "Kube"), -EINVAL);
    assert_int_equal(inventory_set_static_namespaces(inv, "a b"), -EINVAL);
    assert_false(inventory_static_namespaces_valid(NULL));
    assert_true(inventory_static_namespaces_valid("kube-system"));
    /* A namespace whose name contains an allowed one is not allowed. */
    assert_int_equal(inventory_set_static_namespaces(inv, "kube-system"), 0);
    replace(inv, "[" DECOY("x-kube-system", UID_B, MIRROR, "node-2") "]", 4000);
    assert_int_equal(inventory_lookup_uid(inv, MIRROR, NULL, &i), -ENOENT);
    inventory_free(inv);
}

static void on_miss(void *ud) {
    assert_ptr_equal(ud, &misses);
    misses++;
}

/* A miss calls the handler; a hit or a peek does not. */
static void test_miss_handler(void **state) {
    struct inventory *inv = NULL;
    struct pod_info i;
    (void)state;

    assert_int_equal(inventory_open_api(&inv), 0);
    replace(inv, pods_full, 1000);
    inventory_set_miss_handler(inv, on_miss, &misses);

    assert_int_equal(inventory_lookup_uid(inv, UID_B, NULL, &i), -ENOENT);
    assert_int_equal(misses, 1);
    assert_int_equal(inventory_lookup_container(inv, CID("9"), NULL, &i), -ENOENT);
    assert_int_equal(misses, 2);
    assert_int_equal(inventory_peek_uid(inv, UID_B, NULL, &i), -ENOENT);
    assert_int_equal(misses, 2);

    assert_int_equal(inventory_lookup_uid(inv, UID_A, NULL, &i), 0);
    info_free(&i);
    assert_int_equal(inventory_lookup_container(inv, CID("1"), NULL, &i), 0);
    info_free(&i);
    assert_int_equal(inventory_peek_uid(inv, UID_A, NULL, &i), 0);
    info_free(&i);
    assert_int_equal(misses, 2);

    inventory_set_miss_handler(inv, NULL, NULL);
    assert_int_equal(inventory_lookup_uid(inv, UID_B, NULL, &i), -ENOENT);
    assert_int_equal(misses, 2);
    inventory_free(inv);
}

/* A pod item as a watch event carries it: `cid` (64 hex digits) its one
 * container's ID, `mirror` its config.mirror annotation (kube-system). */
static json_t *pod_item(const char *uid, const char *name, const char *cid, const char *mirror) {
    char cidf[96] = "";
    json_t *j;

    if (cid) {
        snprintf(cidf, sizeof(cidf), "containerd://%s", cid);
    }
    j = json_pack("{s:{s:s,s:s,s:s,s:{s:s},s:{}},s:{s:s},s:{s:[{s:s,s:s}]}}", "metadata", "uid",
                  uid, "namespace", mirror ? "kube-system" : "open5gs", "name", name, "labels",
                  "app", name, "annotations", "spec", "nodeName", "node-1", "status",
                  "containerStatuses", "containerID", cidf, "imageID", "img");
    assert_non_null(j);
    if (mirror) {
        json_object_set_new(json_object_get(json_object_get(j, "metadata"), "annotations"),
                            "kubernetes.io/config.mirror", json_string(mirror));
    }
    return j;
}

static int upsert(struct inventory *inv, const char *uid, const char *name, const char *cid,
                  const char *mirror, int64_t ms) {
    json_t *j = pod_item(uid, name, cid, mirror);
    int r = inventory_upsert_item(inv, j, ms);

    json_decref(j);
    return r;
}

static int delete (struct inventory *inv, const char *uid, int64_t ms) {
    json_t *j = pod_item(uid, "x", NULL, NULL);
    int r = inventory_delete_item(inv, j, ms);

    json_decref(j);
    return r;
}

/* The pod a container ID finds (its name), or "" on a miss. */
static const char *container_pod(struct inventory *inv, const char *cid, char *buf) {
    struct pod_info i;

    buf[0] = 0;
    if (inventory_lookup_container(inv, cid, NULL, &i) == 0) {
        strcpy(buf, i.name);
        info_free(&i);
    }
    return buf;
}

/* Watch events: ADDED and MODIFIED upsert, DELETED marks gone; each bumps
 * the generation and moves synced_ms; a container ID moved to another pod
 * is found there. */
static void test_watch_events(void **state) {
    struct inventory *inv = NULL;
    struct pod_info i;
    char name[256];
    json_t *bad;
    (void)state;

    assert_int_equal(inventory_open_api(&inv), 0);
    assert_int_equal(upsert(inv, UID_A, "upf-0", CID("1"), NULL, 100), 0);
    assert_int_equal(inventory_generation(inv), 1);
    assert_int_equal(inventory_synced_ms(inv), 100);
    assert_string_equal(name_of(inv, UID_A, name), "upf-0");
    assert_string_equal(container_pod(inv, CID("1"), name), "upf-0");

    /* Modified: its container restarted under a new ID, its label changed. */
    assert_int_equal(upsert(inv, UID_A, "upf-0", CID("2"), NULL, 200), 0);
    assert_int_equal(inventory_generation(inv), 2);
    assert_int_equal(inventory_synced_ms(inv), 200);
    assert_string_equal(container_pod(inv, CID("1"), name), "");
    assert_string_equal(container_pod(inv, CID("2"), name), "upf-0");

    /* The ID moves to pod B (A no longer has it). */
    assert_int_equal(upsert(inv, UID_A, "upf-0", NULL, NULL, 300), 0);
    assert_int_equal(upsert(inv, UID_B, "smf-0", CID("2"), NULL, 310), 0);
    assert_string_equal(container_pod(inv, CID("2"), name), "smf-0");

    /* Deleted: gone, still found; a second delete and an unknown UID change
     * nothing. An event received earlier never moves synced_ms back. */
    assert_int_equal(delete (inv, UID_A, 400), 1);
    assert_int_equal(inventory_generation(inv), 5);
    assert_int_equal(inventory_lookup_uid(inv, UID_A, NULL, &i), 0);
    assert_true(i.gone);
    info_free(&i);
    assert_int_equal(delete (inv, UID_A, 350), 0);
    assert_int_equal(delete (inv, "aaaaaaaa-0000-4000-8000-00000000ffff", 500), 0);
    assert_int_equal(inventory_generation(inv), 5);
    assert_int_equal(inventory_synced_ms(inv), 500);
    inventory_mark_synced(inv, 600);
    inventory_mark_synced(inv, 550);
    assert_int_equal(inventory_synced_ms(inv), 600);

    /* Back (MODIFIED after a DELETED we were told of by mistake): live. */
    assert_int_equal(upsert(inv, UID_A, "upf-0", NULL, NULL, 700), 0);
    assert_int_equal(inventory_lookup_uid(inv, UID_A, NULL, &i), 0);
    assert_false(i.gone);
    info_free(&i);

    /* Items without a UID are refused and change nothing. */
    bad = json_pack("{s:{s:s}}", "metadata", "name", "nameless");
    assert_int_equal(inventory_upsert_item(inv, bad, 800), -EBADMSG);
    assert_int_equal(inventory_delete_item(inv, bad, 800), -EBADMSG);
    json_decref(bad);
    assert_int_equal(inventory_generation(inv), 6);

    /* A LIST afterwards replaces it all: B not listed is gone. */
    replace(inv, "[" ITEM(UID_A, "upf-0") "]", 900);
    assert_int_equal(inventory_lookup_uid(inv, UID_B, NULL, &i), 0);
    assert_true(i.gone);
    info_free(&i);
    assert_string_equal(container_pod(inv, CID("2"), name), "smf-0");
    inventory_free(inv);
}

/* A static pod's mirror pod recreated under a new UID: its hash finds the
 * new one, and the gone one is forgotten (as a list would). */
static void test_watch_mirror(void **state) {
    struct inventory *inv = NULL;
    struct pod_info i;
    (void)state;

    assert_int_equal(inventory_open_api(&inv), 0);
    assert_int_equal(upsert(inv, UID_S, "etcd-node-1", NULL, MIRROR, 100), 0);
    assert_int_equal(delete (inv, UID_S, 200), 1);
    assert_int_equal(inventory_lookup_uid(inv, MIRROR, "node-1", &i), 0);
    assert_true(i.gone);
    info_free(&i);
    assert_int_equal(upsert(inv, UID_B, "etcd-node-1", NULL, MIRROR, 300), 0);
    assert_int_equal(inventory_lookup_uid(inv, MIRROR, "node-1", &i), 0);
    assert_false(i.gone);
    assert_string_equal(i.api_uid, UID_B);
    info_free(&i);
    assert_int_equal(inventory_peek_uid(inv, UID_S, NULL, &i), -ENOENT);
    inventory_free(inv);
}

static void uid_n(unsigned n, char *out) {
    snprintf(out, 64, "cccccccc-0000-4000-8000-%012u", n);
}

static void cid_n(unsigned n, char *out) {
    snprintf(out, 65, "%064u", n);
}

/* Many inserts, modifications and deletes (the index grows, tombstones
 * pile up and are swept) keep every lookup right. */
static void test_watch_many(void **state) {
    struct inventory *inv = NULL;
    struct pod_info i;
    char uid[64], cid[65], name[256];
    const unsigned n = 20000;
    (void)state;

    assert_int_equal(inventory_open_api(&inv), 0);
    for (unsigned k = 0; k < n; k++) {
        uid_n(k, uid);
        cid_n(k, cid);
        assert_int_equal(upsert(inv, uid, "p", cid, NULL, 1000 + k), 0);
    }
    /* Every third deleted, every third moved to a new container ID, the
     * rest modified in place, three times over. */
    for (unsigned round = 0; round < 3; round++) {
        for (unsigned k = 0; k < n; k++) {
            uid_n(k, uid);
            cid_n(k % 3 == 1 ? n * (round + 1) + k : k, cid);
            if (k % 3 == 0 && round == 0) {
                assert_int_equal(delete (inv, uid, 50000 + k), 1);
            } else if (k % 3 != 0) {
                assert_int_equal(upsert(inv, uid, "q", cid, NULL, 60000 + k), 0);
            }
        }
    }
    assert_int_equal(inventory_generation(inv), n + n / 3 + 1 + 3 * (n - n / 3 - 1));
    for (unsigned k = 0; k < n; k++) {
        uid_n(k, uid);
        assert_int_equal(inventory_peek_uid(inv, uid, NULL, &i), 0);
        assert_int_equal(i.gone, k % 3 == 0);
        assert_string_equal(i.name, k % 3 == 0 ? "p" : "q");
        info_free(&i);
        cid_n(k % 3 == 1 ? n * 3 + k : k, cid);
        assert_string_equal(container_pod(inv, cid, name), k % 3 == 0 ? "p" : "q");
        if (k % 3 == 1) {
            cid_n(n * 2 + k, cid); /* an older ID of it: no longer its */
            assert_string_equal(container_pod(inv, cid, name), "");
        }
    }
    inventory_free(inv);
}

/* At most INVENTORY_PODS_MAX live pods; gone pods past INVENTORY_GONE_MAX
 * are forgotten, the oldest first. */
static void test_watch_bounds(void **state) {
    struct inventory *inv = NULL;
    struct pod_info i;
    char uid[64];
    const unsigned extra = INVENTORY_GONE_MAX / 4 + 1;
    (void)state;

    assert_int_equal(inventory_open_api(&inv), 0);
    for (unsigned k = 0; k < INVENTORY_PODS_MAX; k++) {
        uid_n(k, uid);
        assert_int_equal(upsert(inv, uid, "p", NULL, NULL, 1), 0);
    }
    uid_n(INVENTORY_PODS_MAX, uid);
    assert_int_equal(upsert(inv, uid, "p", NULL, NULL, 1), -E2BIG);
    assert_int_equal(inventory_peek_uid(inv, uid, NULL, &i), -ENOENT);
    /* Modifying a pod it has is no new pod. */
    uid_n(7, uid);
    assert_int_equal(upsert(inv, uid, "p", NULL, NULL, 1), 0);
    /* All deleted, oldest first, then `extra` more added and deleted:
     * past the bound, the oldest gone are dropped. */
    for (unsigned k = 0; k < INVENTORY_PODS_MAX; k++) {
        uid_n(k, uid);
        assert_int_equal(delete (inv, uid, 10 + k), 1);
    }
    for (unsigned k = INVENTORY_PODS_MAX; k < INVENTORY_PODS_MAX + extra; k++) {
        uid_n(k, uid);
        assert_int_equal(upsert(inv, uid, "p", NULL, NULL, 10 + k), 0);
        assert_int_equal(delete (inv, uid, 10 + k), 1);
    }
    uid_n(0, uid);
    assert_int_equal(inventory_peek_uid(inv, uid, NULL, &i), -ENOENT);
    uid_n(INVENTORY_PODS_MAX + extra - 1, uid);
    assert_int_equal(inventory_peek_uid(inv, uid, NULL, &i), 0);
    assert_true(i.gone);
    info_free(&i);
    uid_n(extra, uid); /* within the newest INVENTORY_GONE_MAX */
    assert_int_equal(inventory_peek_uid(inv, uid, NULL, &i), 0);
    info_free(&i);
    inventory_free(inv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup(test_file_refresh, fresh),
            cmocka_unit_test_setup(test_no_source, fresh),
            cmocka_unit_test_setup(test_api_source, fresh),
            cmocka_unit_test_setup(test_lookups, fresh),
            cmocka_unit_test_setup(test_gone, fresh),
            cmocka_unit_test_setup(test_gone_and_back, fresh),
            cmocka_unit_test_setup(test_mirror_annotation_believed_narrowly, fresh),
            cmocka_unit_test_setup(test_miss_handler, fresh),
            cmocka_unit_test_setup(test_watch_events, fresh),
            cmocka_unit_test_setup(test_watch_mirror, fresh),
            cmocka_unit_test_setup(test_watch_many, fresh),
            cmocka_unit_test_setup(test_watch_bounds, fresh),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
