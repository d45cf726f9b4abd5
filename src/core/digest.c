/* SHA-256 of files and buffers (OpenSSL EVP), streamed in 64 KiB chunks,
 * with a small cache keyed on the fstat of the descriptor actually hashed.
 *
 * Why this key: probing thousands of daemons that share a handful of
 * binaries must not re-read those binaries each time, yet a replaced or
 * rewritten binary must be re-hashed. Keying on (dev, ino, size, mtime,
 * ctime) of the open descriptor catches replacement (new inode), rename
 * over (new inode), append/truncate (size) and in-place writes (mtime and
 * ctime; ctime cannot be set back by users). The one blind spot is a
 * same-size in-place rewrite within one filesystem timestamp tick.
 *
 * The cache is a fixed array of entries with least-recently-used eviction.
 * It is NOT thread-safe: it belongs to the single loop thread. */
#include "digest.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { CACHE_SLOTS = 256, CHUNK = 64 * 1024 };

typedef struct file_key {
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtim;
  struct timespec ctim;
} file_key;

typedef struct cache_entry {
  bool used;
  uint64_t last_use; /* LRU clock */
  file_key key;
  uint8_t digest[BH_SHA256_LEN];
} cache_entry;

static cache_entry cache[CACHE_SLOTS];
static uint64_t cache_clock;
static bh_digest_stats stats;

static file_key key_of(const struct stat *st) {
  file_key k;
  memset(&k, 0, sizeof k);
  k.dev = st->st_dev;
  k.ino = st->st_ino;
  k.size = st->st_size;
  k.mtim = st->st_mtim;
  k.ctim = st->st_ctim;
  return k;
}

static bool key_equal(const file_key *a, const file_key *b) {
  return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
         a->mtim.tv_sec == b->mtim.tv_sec &&
         a->mtim.tv_nsec == b->mtim.tv_nsec &&
         a->ctim.tv_sec == b->ctim.tv_sec && a->ctim.tv_nsec == b->ctim.tv_nsec;
}

static cache_entry *cache_find(const file_key *k) {
  for (size_t i = 0; i < CACHE_SLOTS; i++)
    if (cache[i].used && key_equal(&cache[i].key, k)) return &cache[i];
  return NULL;
}

/* Store a digest, replacing an entry for the same inode (its old version)
 * or else a free slot or else the least recently used one. */
static void cache_insert(const file_key *k, const uint8_t d[BH_SHA256_LEN]) {
  cache_entry *victim = &cache[0];
  for (size_t i = 0; i < CACHE_SLOTS; i++) {
    cache_entry *e = &cache[i];
    if (e->used && e->key.dev == k->dev && e->key.ino == k->ino) {
      victim = e;
      break;
    }
    if (!victim->used) continue; /* a free slot beats any used one */
    if (!e->used || e->last_use < victim->last_use) victim = e;
  }
  if (!victim->used) stats.entries++;
  victim->used = true;
  victim->last_use = ++cache_clock;
  victim->key = *k;
  memcpy(victim->digest, d, BH_SHA256_LEN);
}

/* Hash everything readable from fd, 64 KiB at a time. Returns 0 or errno
 * (EIO for an OpenSSL failure). */
static int hash_fd(int fd, uint8_t out[BH_SHA256_LEN]) {
  int e = 0;
  unsigned char *buf = malloc(CHUNK);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (buf == NULL || ctx == NULL) {
    e = ENOMEM;
    goto end;
  }
  if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
    e = EIO;
    goto end;
  }
  for (;;) {
    ssize_t n = read(fd, buf, CHUNK);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      e = errno;
      goto end;
    }
    if (n == 0) break;
    if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
      e = EIO;
      goto end;
    }
  }
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx, out, &len) != 1 || len != BH_SHA256_LEN) e = EIO;
end:
  EVP_MD_CTX_free(ctx);
  free(buf);
  return e;
}

/* Open, fstat, then (cache hit) copy or (miss) hash the same descriptor. */
static bh_status digest_path(const char *path, bool use_cache,
                             uint8_t out[BH_SHA256_LEN], bh_err *err) {
  bh_status st = BH_OK;
  /* O_NONBLOCK: a FIFO never makes the open wait; fstat refuses it. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0)
    return bh_err_set(err, BH_EXE_HASH, NULL, "cannot open %s: %s", path,
                      strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    st = bh_err_set(err, BH_EXE_HASH, NULL, "cannot stat %s: %s", path,
                    strerror(errno));
    goto end;
  }
  if (!S_ISREG(sb.st_mode)) {
    st = bh_err_set(err, BH_EXE_HASH, NULL, "%s is not a regular file", path);
    goto end;
  }
  file_key k = key_of(&sb);
  cache_entry *hit = use_cache ? cache_find(&k) : NULL;
  if (hit != NULL) {
    stats.hits++;
    hit->last_use = ++cache_clock;
    memcpy(out, hit->digest, BH_SHA256_LEN);
    goto end;
  }
  int e = hash_fd(fd, out);
  if (e != 0) {
    st = bh_err_set(err, BH_EXE_HASH, NULL, "cannot read %s: %s", path,
                    strerror(e));
    goto end;
  }
  if (use_cache) {
    stats.misses++;
    cache_insert(&k, out);
  }
end:
  close(fd); /* read-only: nothing to lose on a failing close */
  return st;
}

bh_status bh_digest_file(const char *path, uint8_t out[BH_SHA256_LEN],
                         bh_err *err) {
  return digest_path(path, true, out, err);
}

bh_status bh_digest_file_uncached(const char *path, uint8_t out[BH_SHA256_LEN],
                                  bh_err *err) {
  return digest_path(path, false, out, err);
}

void bh_digest_bytes(const void *data, size_t len, uint8_t out[BH_SHA256_LEN]) {
  unsigned int n = 0;
  /* EVP_Digest cannot fail for SHA-256 short of memory exhaustion; zero
   * the output then rather than leave it undefined. */
  if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1)
    memset(out, 0, BH_SHA256_LEN);
}

bh_digest_stats bh_digest_cache_stats(void) {
  return stats;
}

void bh_digest_cache_clear(void) {
  memset(cache, 0, sizeof cache);
  memset(&stats, 0, sizeof stats);
  cache_clock = 0;
}
