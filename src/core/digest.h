/* SHA-256 of files (OpenSSL EVP, streamed), with a cache keyed on the
 * identity of the descriptor actually hashed (st_dev, st_ino, st_size,
 * st_mtim, st_ctim): hashing the same unchanged executable again is a
 * single open+fstat; any change to the file invalidates its entry. */
#ifndef BH_DIGEST_H
#define BH_DIGEST_H

#include <stdbool.h>
#include <stdint.h>

#include "identity.h"
#include "status.h"

/* Hash the file at path through the cache. BH_EXE_HASH if it cannot be
 * opened or read (err names the path and errno). */
bh_status bh_digest_file(const char *path, uint8_t out[BH_SHA256_LEN],
                         bh_err *err);
/* Same without consulting or filling the cache. */
bh_status bh_digest_file_uncached(const char *path, uint8_t out[BH_SHA256_LEN],
                                  bh_err *err);
/* SHA-256 of a memory buffer. */
void bh_digest_bytes(const void *data, size_t len, uint8_t out[BH_SHA256_LEN]);

typedef struct bh_digest_stats {
  uint64_t hits;
  uint64_t misses;
  uint64_t entries;
} bh_digest_stats;
bh_digest_stats bh_digest_cache_stats(void);
void bh_digest_cache_clear(void); /* frees every entry, resets stats */

#endif
