/* Digests of executables (design §1.5, §1.9): SHA-256 (OpenSSL EVP) and
 * BLAKE3-256 (the official C implementation), computed in one streamed
 * pass over the file, with a cache keyed on the identity of the
 * descriptor actually hashed (st_dev, st_ino, st_size, st_mtim, st_ctim):
 * hashing the same unchanged executable again is a single open+fstat; any
 * change to the file invalidates its entry.
 *
 * Only regular files are hashed: every file is opened O_NONBLOCK and
 * checked with fstat on the descriptor that is read, so a FIFO or a device
 * planted where an executable should be fails at once (exe_hash) instead of
 * blocking. The cache is shared by every thread of the process (the
 * hasher's worker fills it, the loop reads it) and guarded by a mutex: a
 * file's digest does not depend on who asks. */
#ifndef BH_DIGEST_H
#define BH_DIGEST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "identity.h"
#include "status.h"

/* Files larger than this are not hashed (exe_too_large): real daemons
 * are far smaller, and it bounds what one hostile record can make us
 * read (a 4 GiB sparse executable took 3 s of the hashing thread). */
#define BH_DIGEST_MAX_BYTES ((uint64_t)1 << 30) /* 1 GiB */

/* Hash the file at path (the digests named by algs, BH_ALG_* bits)
 * through the cache. BH_EXE_HASH if it cannot be opened or read, is not a
 * regular file, or is too large (err names the path and why). */
bh_status bh_digest_file(const char *path, unsigned algs, bh_digests *out,
                         bh_err *err);
/* Same without consulting or filling the cache. */
bh_status bh_digest_file_uncached(const char *path, unsigned algs,
                                  bh_digests *out, bh_err *err);
/* The executable process pid really runs, read through /proc/PID/exe
 * itself (not through the path it names, which another mount namespace
 * can bind over), through the cache. */
bh_status bh_digest_exe(uint32_t pid, unsigned algs, bh_digests *out,
                        bh_err *err);

/* Open path for hashing (O_RDONLY | O_NONBLOCK | O_CLOEXEC) into *fd and
 * fstat the descriptor into *st: a regular file (else BH_EXE_HASH) of at
 * most BH_DIGEST_MAX_BYTES (else BH_EXE_TOO_LARGE); *fd is -1 on failure.
 * name is what messages call the file. */
bh_status bh_digest_open(const char *path, const char *name, int *fd,
                         struct stat *st, bh_err *err);
/* bh_digest_open of /proc/PID/exe ("the executable of pid PID"). */
bh_status bh_digest_open_exe(uint32_t pid, int *fd, struct stat *st,
                             bh_err *err);
/* The cached digests of the file described by st, when every one of algs
 * is cached (true), else false. */
bool bh_digest_cache_get(const struct stat *st, unsigned algs, bh_digests *out);
/* The file st describes is the executable of a daemon just verified:
 * keep its entry over others. The cache evicts entries nobody verified
 * first, so that a user who makes the service hash hundreds of distinct
 * files (each a record of theirs) cannot push the real daemons' digests
 * out every round; at most BH_DIGEST_KEPT_MAX entries are kept (the least
 * recently used one stops being kept for a newer one). */
void bh_digest_cache_keep(const struct stat *st);
/* Hash everything readable from fd (already checked by bh_digest_open,
 * described by st) and store the result in the cache. cancel, when not
 * NULL, is read between chunks (it may be set by another thread): true
 * stops the work (BH_EXE_HASH, "cancelled"). */
bh_status bh_digest_fd(int fd, const struct stat *st, const char *name,
                       unsigned algs, const atomic_bool *cancel,
                       bh_digests *out, bh_err *err);

/* The same in steps, for a hasher that shares its time between files:
 * begin (NULL when out of memory), then step until *end (each step reads
 * at most about max_bytes; BH_EXE_HASH "cannot read NAME" with the errno
 * when it cannot), then end (the digests, stored in the cache under st;
 * frees the state) or abort (frees it). */
typedef struct bh_digest_state bh_digest_state;
bh_digest_state *bh_digest_begin(unsigned algs);
bh_status bh_digest_step(bh_digest_state *s, int fd, uint64_t max_bytes,
                         const char *name, bool *end, bh_err *err);
bh_status bh_digest_end(bh_digest_state *s, const struct stat *st,
                        const char *name, bh_digests *out, bh_err *err);
void bh_digest_abort(bh_digest_state *s);

/* SHA-256 of a memory buffer. */
void bh_digest_bytes(const void *data, size_t len, uint8_t out[BH_SHA256_LEN]);
/* BLAKE3-256 of a memory buffer. */
void bh_blake3_bytes(const void *data, size_t len, uint8_t out[BH_DIGEST_LEN]);

enum { BH_DIGEST_CACHE_SLOTS = 256, BH_DIGEST_KEPT_MAX = 192 };

typedef struct bh_digest_stats {
  uint64_t hits;
  uint64_t misses;
  uint64_t entries;
} bh_digest_stats;
bh_digest_stats bh_digest_cache_stats(void);
void bh_digest_cache_clear(void); /* frees every entry, resets stats */

#endif
