/* Hashing off the loop (design §1.5: the full probe, hashing included,
 * never blocks the loop): a worker (worker.h) hashes descriptors
 * (digest.h, which fills the shared cache) and hands the results back to
 * the hasher's event_base, so every callback runs on the loop thread.
 * Jobs for a file already hashed by an earlier job are answered from the
 * cache: a round that probes a thousand daemons of one new binary reads
 * it once.
 *
 * The worker is shared fairly between owners (the uid a job is for: the
 * owner of the process whose executable it hashes): each owner is a
 * group of the worker, whose jobs wait in their own queue, in order, and
 * the worker serves the owners in turn, a slice (4 MiB) of each one's
 * first job per turn. So a user who records processes of huge (up to the
 * 1 GiB limit) or hundreds of distinct executables delays other users'
 * daemons by a few milliseconds, not by the sum of their hashing. Knows
 * nothing of Lua. */
#ifndef BH_HASHER_H
#define BH_HASHER_H

#include <sys/stat.h>
#include <sys/types.h>

#include "identity.h"
#include "status.h"

struct event_base;
typedef struct bh_hasher bh_hasher;
typedef struct bh_hash_job bh_hash_job;

/* Called on the loop with the outcome: st BH_OK and d, or an exe_hash
 * error in err. */
typedef void (*bh_hash_cb)(bh_status st, const bh_digests *d, const bh_err *err,
                           void *ctx);

/* A hasher on base; its thread starts with the first job. NULL with err
 * when its worker cannot be made. */
bh_hasher *bh_hasher_new(struct event_base *base, bh_err *err);

/* Stop: jobs not yet handed back are dropped (their callbacks never
 * run), the running one stops after its slice, the thread is joined. */
void bh_hasher_free(bh_hasher *h);

/* Hash fd (taken over, closed when done; opened by bh_digest_open, st its
 * fstat) for algs, in owner's queue; name is for messages. NULL when out
 * of memory (fd is closed then). */
bh_hash_job *bh_hasher_submit(bh_hasher *h, uid_t owner, int fd,
                              const struct stat *st, const char *name,
                              unsigned algs, bh_hash_cb cb, void *ctx);

/* The caller no longer wants the result: the callback will not run. The
 * work itself goes on (it fills the cache for the next probe of that
 * binary) unless the hasher is freed. Only before the callback ran. */
void bh_hash_job_cancel(bh_hash_job *j);

#endif
