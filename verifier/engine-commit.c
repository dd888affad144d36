/* SPDX-License-Identifier: Apache-2.0 */
/* Group commit: the writes of many rounds in one SQLite transaction and one
 * fsync, each round answered only once the transaction holding its writes
 * and its audit records is durable (docs/verifier.md, "Group commit").
 *
 * Writers take e->lock, write inside their own savepoint of the open
 * transaction and release the savepoint (or roll back to it: a failing
 * round takes nobody else down), then wait. The writer that finds no other
 * writer queued for the lock and no leader leads: it closes the batch,
 * syncs the audit log up to the batch's last record (e->lock released),
 * COMMITs (synchronous=NORMAL: the frames go to the WAL file unsynced),
 * opens the way for the next batch, fdatasyncs the WAL file (e->lock
 * released: the next batch writes meanwhile), and wakes every writer of
 * its batch with the result. A transaction's frames are durable once the
 * WAL file is synced after its COMMIT, so no writer is answered before its
 * writes and its audit records are on disk. A writer that finds no leader
 * leads at once (no timer delays a commit); while one leads, the writers
 * that join form the next batch, and one of them is woken to lead it when
 * the leader is done: the more rounds arrive during a commit and its sync,
 * the more the next commit carries. Each writer waits on its own condition
 * variable, so ending a batch wakes its members and one next leader, not
 * every thread. */
#include "engine-internal.h"

#include <errno.h>
#include <string.h>

#include "log.h"

/* The store lock, for a writer: taken once no batch is closing, so that
 * what the writer checks under it and what it then writes (after
 * engine_write_begin(), which has no batch to wait for then) are one
 * critical section. A writer that waited for the closing batch inside
 * engine_write_begin() had released the lock between its checks and its
 * writes: two activations of one EK under two names both passed the check
 * (review finding R15-2). */
/* Wait (e->lock held) until no batch is closing. */
static void wait_not_closing(struct engine *e) {
    while (e->closing) {
        e->closing_waiters++;
        pthread_cond_wait(&e->batch_cond, &e->lock);
        e->closing_waiters--;
    }
}

void engine_write_lock(struct engine *e) {
    pthread_mutex_lock(&e->lock);
    wait_not_closing(e);
}

void engine_write_unlock(struct engine *e) {
    pthread_mutex_unlock(&e->lock);
}

void engine_set_commit_hook(struct engine *e, int (*fn)(void *ud), void *ud) {
    pthread_mutex_lock(&e->lock);
    e->commit_hook = fn;
    e->commit_hook_ud = ud;
    pthread_mutex_unlock(&e->lock);
}

void engine_set_round_hook(struct engine *e, void (*fn)(void *ud), void *ud) {
    pthread_mutex_lock(&e->lock);
    e->round_hook = fn;
    e->round_hook_ud = ud;
    pthread_mutex_unlock(&e->lock);
}

int engine_write_begin(struct engine *e, struct engine_write *w) {
    int r;

    *w = (struct engine_write){0};
    wait_not_closing(e);
    if (e->store_broken) {
        return -EIO;
    }
    if (e->txn_open && !store_in_transaction(e->store)) {
        /* SQLite rolled the batch's transaction back by itself (an error
         * in one of its writers): its COMMIT will fail and its writers be
         * answered 500. A savepoint now would open a transaction of its
         * own that its RELEASE commits at once, outside the batch and
         * before the audit log is synced (review finding R15-4): refused
         * until the batch has ended. */
        return -EIO;
    }
    if (!e->txn_open) {
        r = store_begin(e->store);
        if (r < 0) {
            return r;
        }
        e->txn_open = true;
        e->batch_audit_seq = 0;
    }
    r = store_savepoint(e->store);
    if (r == 0) {
        e->writing = true;
    }
    return r;
}

/* Tell the writers of a batch how it ended. e->lock held. */
static void finish(struct engine *e, struct engine_write *members, size_t n, int r) {
    for (struct engine_write *w = members, *next; w; w = next) {
        next = w->next;
        w->next = NULL;
        w->r = r;
        w->done = true;
        pthread_cond_signal(&w->cond);
    }
    if (r == 0) {
        e->m.commits++;
        e->m.rounds_committed += n;
    } else {
        e->m.commits_failed++;
        log_error("store: a batch of %zu writes failed: %s", n, strerror(-r));
    }
    e->leading = false;
    if (e->batch) {
        pthread_cond_signal(&e->batch->cond); /* a writer of the next batch leads it */
    }
}

/* Commit the open batch and tell its writers. Called and returns with
 * e->lock held; releases it while the audit log and the WAL are synced
 * (and around the test hook). */
static void lead(struct engine *e) {
    struct engine_write *members;
    uint64_t audit_seq;
    size_t n;
    int r = 0;

    e->leading = true;
    if (e->commit_hook) {
        int (*fn)(void *) = e->commit_hook;
        void *ud = e->commit_hook_ud;
        pthread_mutex_unlock(&e->lock);
        r = fn(ud);
        pthread_mutex_lock(&e->lock);
    }
    /* Closed: no writer joins it any more. Its audit records are made
     * durable first, so that the store never holds a change the audit log
     * could lose; readers and the other rounds' checks go on meanwhile. */
    e->closing = true;
    audit_seq = e->batch_audit_seq;
    pthread_mutex_unlock(&e->lock);
    if (r == 0 && e->audit && audit_seq) {
        r = audit_sync(e->audit, audit_seq);
    }
    pthread_mutex_lock(&e->lock);
    if (r == 0) {
        r = store_commit(e->store); /* written to the WAL, not yet synced */
    }
    if (r < 0) {
        store_rollback(e->store);
    }
    members = e->batch;
    n = e->batch_size;
    e->batch = NULL;
    e->batch_size = 0;
    e->txn_open = false;
    e->batch_audit_seq = 0;
    e->closing = false;
    pthread_cond_broadcast(&e->batch_cond); /* the next batch may start */
    if (r == 0) {
        /* The next batch writes while this one's WAL frames are synced. */
        pthread_mutex_unlock(&e->lock);
        r = store_sync(e->store);
        pthread_mutex_lock(&e->lock);
        if (r == -ENOTRECOVERABLE) {
            /* What the kernel failed to write may be lost while the store
             * reads it back as committed: no more writes until a restart
             * reads what is really on disk. */
            e->store_broken = true;
            log_error("store: the WAL could not be synced: the verifier refuses every write "
                      "until it is restarted");
        }
    }
    finish(e, members, n, r);
}

/* Wait (e->lock held) until w's batch ended, leading it when no writer
 * leads now. */
static int wait_durable(struct engine *e, struct engine_write *w) {
    pthread_cond_init(&w->cond, NULL);
    while (!w->done) {
        if (!e->leading) {
            lead(e);
            continue;
        }
        pthread_cond_wait(&w->cond, &e->lock);
    }
    pthread_cond_destroy(&w->cond);
    return w->r;
}

int engine_write_end(struct engine *e, struct engine_write *w, int r) {
    e->writing = false;
    if (r < 0) {
        store_rollback_to(e->store);
        if (!e->batch && e->txn_open) {
            /* Nothing else in the transaction: close it. */
            store_rollback(e->store);
            e->txn_open = false;
            e->batch_audit_seq = 0;
        }
        return r;
    }
    r = store_release(e->store);
    if (r < 0) {
        store_rollback_to(e->store);
        return r;
    }
    w->member = true;
    w->next = e->batch;
    e->batch = w;
    e->batch_size++;
    return wait_durable(e, w);
}
