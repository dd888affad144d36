/* SPDX-License-Identifier: Apache-2.0 */
/* The hashing pool: readers copy file contents into chunks, workers hash
 * them. What must stay true:
 *  - a file's chunks are hashed in the order they were added, by one
 *    worker at a time (a job is either queued, running or idle);
 *  - the bytes held in chunks never exceed the budget (one chunk may when
 *    nothing else is held), so memory does not grow with the image;
 *  - a job's digest is written exactly once, after its last chunk, and the
 *    job is freed then; img_hash_pool_wait() returns when none is left. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "image-internal.h"

struct img_hash_job {
    struct img_hash_job *next; /* in the run queue */
    struct img_chunk *head, *tail;
    EVP_MD_CTX *md;
    struct img_entry *entry;
    bool closed, running, queued;
};

struct img_hash_pool {
    pthread_mutex_t mu;
    pthread_cond_t work, room, idle;
    struct img_hash_job *runq, *runq_tail;
    size_t buffered, budget;
    size_t jobs; /* begun and not yet finished */
    bool quit, failed;
    unsigned n_threads;
    pthread_t *threads;
};

/* Digest into the entry and free the job. Called with the lock held or
 * without workers. */
static void job_finish(struct img_hash_pool *p, struct img_hash_job *j) {
    unsigned len = 0;

    if (EVP_DigestFinal_ex(j->md, j->entry->digest, &len) != 1) {
        p->failed = true;
        len = 0;
    }
    j->entry->digest_len = (uint8_t)len;
    EVP_MD_CTX_free(j->md);
    free(j);
    p->jobs--;
    if (p->jobs == 0) {
        pthread_cond_broadcast(&p->idle);
    }
}

/* Runs without the lock: returns false when OpenSSL failed. */
static bool hash_chunks(struct img_hash_job *j, struct img_chunk *c, size_t *ret_freed) {
    size_t freed = 0;
    bool ok = true;

    while (c) {
        struct img_chunk *next = c->next;
        if (EVP_DigestUpdate(j->md, c->data, c->len) != 1) {
            ok = false;
        }
        freed += c->size;
        free(c);
        c = next;
    }
    *ret_freed = freed;
    return ok;
}

/* Hash a job's chunks until none is queued; the lock is held on entry and
 * on return, dropped while hashing. */
static void worker_run(struct img_hash_pool *p, struct img_hash_job *j) {
    for (;;) {
        struct img_chunk *c = j->head;
        size_t freed;
        bool ok;

        j->head = j->tail = NULL;
        if (!c) {
            break;
        }
        pthread_mutex_unlock(&p->mu);
        ok = hash_chunks(j, c, &freed);
        pthread_mutex_lock(&p->mu);
        p->failed |= !ok;
        p->buffered -= freed;
        pthread_cond_broadcast(&p->room);
    }
    j->running = false;
    if (j->closed) {
        job_finish(p, j);
    }
}

static void *worker_main(void *arg) {
    struct img_hash_pool *p = arg;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        struct img_hash_job *j;
        while (!p->runq && !p->quit) {
            pthread_cond_wait(&p->work, &p->mu);
        }
        if (!p->runq) {
            break;
        }
        j = p->runq;
        p->runq = j->next;
        if (!p->runq) {
            p->runq_tail = NULL;
        }
        j->next = NULL;
        j->queued = false;
        j->running = true;
        worker_run(p, j);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int img_hash_pool_new(unsigned workers, size_t budget, struct img_hash_pool **ret) {
    struct img_hash_pool *p = calloc(1, sizeof(*p));

    if (!p) {
        return -ENOMEM;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->room, NULL);
    pthread_cond_init(&p->idle, NULL);
    p->budget = budget;
    if (workers > 0 && !(p->threads = calloc(workers, sizeof(*p->threads)))) {
        img_hash_pool_free(p);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < workers; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
            img_hash_pool_free(p);
            return -EAGAIN;
        }
        p->n_threads++;
    }
    *ret = p;
    return 0;
}

int img_hash_pool_wait(struct img_hash_pool *p) {
    bool failed;

    pthread_mutex_lock(&p->mu);
    while (p->jobs > 0) {
        pthread_cond_wait(&p->idle, &p->mu);
    }
    failed = p->failed;
    pthread_mutex_unlock(&p->mu);
    return failed ? -EIO : 0;
}

void img_hash_pool_free(struct img_hash_pool *p) {
    if (!p) {
        return;
    }
    img_hash_pool_wait(p);
    pthread_mutex_lock(&p->mu);
    p->quit = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n_threads; i++) {
        pthread_join(p->threads[i], NULL);
    }
    free(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->room);
    pthread_cond_destroy(&p->idle);
    free(p);
}

int img_hash_begin(struct img_hash_pool *p, enum hash_alg alg, struct img_entry *e,
                   struct img_hash_job **ret) {
    const EVP_MD *md = hash_alg_evp_md(alg);
    struct img_hash_job *j;

    if (!md) {
        return -EINVAL;
    }
    j = calloc(1, sizeof(*j));
    if (!j) {
        return -ENOMEM;
    }
    j->entry = e;
    j->md = EVP_MD_CTX_new();
    if (!j->md || EVP_DigestInit_ex(j->md, md, NULL) != 1) {
        EVP_MD_CTX_free(j->md);
        free(j);
        return -ENOMEM;
    }
    pthread_mutex_lock(&p->mu);
    p->jobs++;
    pthread_mutex_unlock(&p->mu);
    *ret = j;
    return 0;
}

int img_chunk_get(struct img_hash_pool *p, size_t size, struct img_chunk **ret) {
    struct img_chunk *c;

    pthread_mutex_lock(&p->mu);
    /* Without workers a chunk is hashed as soon as it is added: nothing to wait for. */
    while (p->n_threads > 0 && p->buffered > 0 && p->buffered + size > p->budget) {
        pthread_cond_wait(&p->room, &p->mu);
    }
    p->buffered += size;
    pthread_mutex_unlock(&p->mu);
    c = malloc(sizeof(*c) + size);
    if (!c) {
        pthread_mutex_lock(&p->mu);
        p->buffered -= size;
        pthread_cond_broadcast(&p->room);
        pthread_mutex_unlock(&p->mu);
        return -ENOMEM;
    }
    c->next = NULL;
    c->len = 0;
    c->size = size;
    *ret = c;
    return 0;
}

void img_chunk_put(struct img_hash_pool *p, struct img_chunk *c) {
    if (!c) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->buffered -= c->size;
    pthread_cond_broadcast(&p->room);
    pthread_mutex_unlock(&p->mu);
    free(c);
}

void img_hash_add(struct img_hash_pool *p, struct img_hash_job *j, struct img_chunk *c) {
    size_t freed;
    bool ok;

    if (p->n_threads == 0) {
        ok = hash_chunks(j, c, &freed);
        pthread_mutex_lock(&p->mu);
        p->failed |= !ok;
        p->buffered -= freed;
        pthread_mutex_unlock(&p->mu);
        return;
    }
    pthread_mutex_lock(&p->mu);
    if (j->tail) {
        j->tail->next = c;
    } else {
        j->head = c;
    }
    j->tail = c;
    if (!j->running && !j->queued) {
        j->queued = true;
        if (p->runq_tail) {
            p->runq_tail->next = j;
        } else {
            p->runq = j;
        }
        p->runq_tail = j;
        pthread_cond_signal(&p->work);
    }
    pthread_mutex_unlock(&p->mu);
}

void img_hash_end(struct img_hash_pool *p, struct img_hash_job *j) {
    pthread_mutex_lock(&p->mu);
    j->closed = true;
    if (!j->running && !j->queued) {
        job_finish(p, j);
    }
    pthread_mutex_unlock(&p->mu);
}
