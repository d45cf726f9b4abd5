/* Executable digests (see digest.h): SHA-256 through OpenSSL EVP and
 * BLAKE3 through its C implementation, both fed from one read of the
 * file, 256 KiB at a time, never the whole file in memory.
 *
 * Why the cache key: probing thousands of daemons that share a handful of
 * binaries must not re-read those binaries each time, yet a replaced or
 * rewritten binary must be re-hashed. Keying on (dev, ino, size, mtime,
 * ctime) of the open descriptor catches replacement (new inode), rename
 * over (new inode), append/truncate (size) and in-place writes (mtime and
 * ctime; ctime cannot be set back by users). The one blind spot is a
 * same-size in-place rewrite within one filesystem timestamp tick (and a
 * running executable cannot be written at all: ETXTBSY).
 *
 * The cache is a fixed array with least-recently-used eviction, each
 * entry holding whichever digests have been computed for that file,
 * behind one mutex (the hasher's worker thread fills it). */
#include "digest.h"

#include <blake3.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"

enum { CACHE_SLOTS = BH_DIGEST_CACHE_SLOTS, CHUNK = 256 * 1024 };

typedef struct file_key {
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtim;
  struct timespec ctim;
} file_key;

typedef struct cache_entry {
  bool used;
  bool kept;         /* the executable of a verified daemon */
  uint64_t last_use; /* LRU clock */
  file_key key;
  bh_digests d;
} cache_entry;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
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

/* Caller holds cache_lock. */
static cache_entry *cache_find(const file_key *k) {
  for (size_t i = 0; i < CACHE_SLOTS; i++)
    if (cache[i].used && key_equal(&cache[i].key, k)) return &cache[i];
  return NULL;
}

/* Would the cache rather lose e than v? A free slot first, then an
 * entry not kept, then the least recently used. */
static bool rather_lose(const cache_entry *e, const cache_entry *v) {
  if (!v->used) return false;
  if (!e->used) return true;
  if (e->kept != v->kept) return !e->kept;
  return e->last_use < v->last_use;
}

/* Store digests, merging into the entry of the same version of the file,
 * else replacing the entry of an older version of the same inode, else
 * the entry rather_lose picks. Caller holds cache_lock. */
static void cache_insert(const file_key *k, const bh_digests *d) {
  cache_entry *victim = cache_find(k);
  if (victim == NULL) {
    victim = &cache[0];
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
      cache_entry *e = &cache[i];
      if (e->used && e->key.dev == k->dev && e->key.ino == k->ino) {
        victim = e;
        break;
      }
      if (rather_lose(e, victim)) victim = e;
    }
    if (!victim->used) stats.entries++;
    victim->kept = false;
    memset(&victim->d, 0, sizeof victim->d);
  }
  victim->used = true;
  victim->last_use = ++cache_clock;
  victim->key = *k;
  if (d->algs & BH_ALG_SHA256)
    memcpy(victim->d.sha256, d->sha256, BH_DIGEST_LEN);
  if (d->algs & BH_ALG_BLAKE3)
    memcpy(victim->d.blake3, d->blake3, BH_DIGEST_LEN);
  victim->d.algs |= d->algs;
}

bool bh_digest_cache_get(const struct stat *st, unsigned algs,
                         bh_digests *out) {
  file_key k = key_of(st);
  bool hit = false;
  (void)pthread_mutex_lock(&cache_lock);
  cache_entry *e = cache_find(&k);
  if (e != NULL && (e->d.algs & algs) == algs) {
    e->last_use = ++cache_clock;
    *out = e->d;
    out->algs = algs;
    stats.hits++;
    hit = true;
  }
  (void)pthread_mutex_unlock(&cache_lock);
  return hit;
}

void bh_digest_cache_keep(const struct stat *st) {
  file_key k = key_of(st);
  (void)pthread_mutex_lock(&cache_lock);
  cache_entry *e = cache_find(&k);
  if (e != NULL && !e->kept) {
    cache_entry *oldest = NULL;
    size_t kept = 0;
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
      if (!cache[i].used || !cache[i].kept) continue;
      kept++;
      if (oldest == NULL || cache[i].last_use < oldest->last_use)
        oldest = &cache[i];
    }
    if (kept >= BH_DIGEST_KEPT_MAX && oldest != NULL) oldest->kept = false;
    e->kept = true;
  }
  (void)pthread_mutex_unlock(&cache_lock);
}

/* The two hashers of one pass. */
typedef struct hashers {
  EVP_MD_CTX *sha;
  blake3_hasher b3;
  unsigned algs;
} hashers;

static bool hashers_init(hashers *h, unsigned algs) {
  h->algs = algs;
  h->sha = NULL;
  if (algs & BH_ALG_BLAKE3) blake3_hasher_init(&h->b3);
  if (!(algs & BH_ALG_SHA256)) return true;
  h->sha = EVP_MD_CTX_new();
  return h->sha != NULL && EVP_DigestInit_ex(h->sha, EVP_sha256(), NULL) == 1;
}

static bool hashers_update(hashers *h, const void *buf, size_t n) {
  if (h->algs & BH_ALG_BLAKE3) blake3_hasher_update(&h->b3, buf, n);
  return !(h->algs & BH_ALG_SHA256) || EVP_DigestUpdate(h->sha, buf, n) == 1;
}

static bool hashers_final(hashers *h, bh_digests *out) {
  memset(out, 0, sizeof *out);
  out->algs = h->algs;
  if (h->algs & BH_ALG_BLAKE3)
    blake3_hasher_finalize(&h->b3, out->blake3, BH_DIGEST_LEN);
  if (!(h->algs & BH_ALG_SHA256)) return true;
  unsigned int len = 0;
  return EVP_DigestFinal_ex(h->sha, out->sha256, &len) == 1 &&
         len == BH_DIGEST_LEN;
}

struct bh_digest_state {
  hashers h;
  unsigned char *buf;
  uint64_t done; /* bytes hashed so far */
};

bh_digest_state *bh_digest_begin(unsigned algs) {
  bh_digest_state *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  s->buf = malloc(CHUNK);
  if (s->buf == NULL || !hashers_init(&s->h, algs)) {
    bh_digest_abort(s);
    return NULL;
  }
  return s;
}

void bh_digest_abort(bh_digest_state *s) {
  if (s == NULL) return;
  EVP_MD_CTX_free(s->h.sha);
  free(s->buf);
  free(s);
}

/* bh_digest_step's reading: 0, the read's errno, or EIO for OpenSSL. */
static int step(bh_digest_state *s, int fd, uint64_t max_bytes, bool *end) {
  uint64_t start = s->done;
  *end = false;
  while (s->done - start < max_bytes) {
    ssize_t n = read(fd, s->buf, CHUNK);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) {
      *end = true;
      return 0;
    }
    if (!hashers_update(&s->h, s->buf, (size_t)n)) return EIO;
    s->done += (uint64_t)n;
  }
  return 0;
}

bh_status bh_digest_step(bh_digest_state *s, int fd, uint64_t max_bytes,
                         const char *name, bool *end, bh_err *err) {
  int e = step(s, fd, max_bytes, end);
  if (e == 0) return BH_OK;
  return bh_err_sys(err, BH_EXE_HASH, e, "cannot read %s: %s", name,
                    strerror(e));
}

/* The digests of what s hashed; frees s. false when OpenSSL failed. */
static bool state_final(bh_digest_state *s, bh_digests *out) {
  bool ok = hashers_final(&s->h, out);
  bh_digest_abort(s);
  return ok;
}

/* Hash everything readable from fd. Returns 0, an errno, ECANCELED when
 * cancel was set, or EIO for an OpenSSL failure. */
static int hash_fd(int fd, unsigned algs, const atomic_bool *cancel,
                   bh_digests *out) {
  bh_digest_state *s = bh_digest_begin(algs);
  if (s == NULL) return ENOMEM;
  for (bool end = false; !end;) {
    if (cancel != NULL && atomic_load(cancel)) {
      bh_digest_abort(s);
      return ECANCELED;
    }
    int e = step(s, fd, CHUNK, &end);
    if (e != 0) {
      bh_digest_abort(s);
      return e;
    }
  }
  return state_final(s, out) ? 0 : EIO;
}

bh_status bh_digest_open(const char *path, const char *name, int *fd,
                         struct stat *st, bh_err *err) {
  bh_status s = bh_file_open_regular(path, name, fd, st, BH_EXE_HASH, err);
  if (s != BH_OK || (uint64_t)st->st_size <= BH_DIGEST_MAX_BYTES) return s;
  (void)close(*fd); /* read-only: nothing to lose */
  *fd = -1;
  return bh_err_sys(err, BH_EXE_TOO_LARGE, EFBIG,
                    "%s is %.1f GiB, over the 1 GiB hashing limit: not hashed",
                    name, (double)st->st_size / (double)(1u << 30));
}

/* Hash fd into out; BH_EXE_HASH naming the file when it cannot be read. */
static bh_status hash_named(int fd, const char *name, unsigned algs,
                            const atomic_bool *cancel, bh_digests *out,
                            bh_err *err) {
  int e = hash_fd(fd, algs, cancel, out);
  if (e == 0) return BH_OK;
  return bh_err_set(err, BH_EXE_HASH, NULL, "cannot read %s: %s", name,
                    e == ECANCELED ? "hashing was cancelled" : strerror(e));
}

/* Store out in the cache under the file st describes. */
static void cache_store(const struct stat *st, const bh_digests *out) {
  file_key k = key_of(st);
  (void)pthread_mutex_lock(&cache_lock);
  stats.misses++;
  cache_insert(&k, out);
  (void)pthread_mutex_unlock(&cache_lock);
}

bh_status bh_digest_end(bh_digest_state *s, const struct stat *st,
                        const char *name, bh_digests *out, bh_err *err) {
  if (!state_final(s, out))
    return bh_err_set(err, BH_EXE_HASH, NULL, "cannot read %s: %s", name,
                      strerror(EIO));
  cache_store(st, out);
  return BH_OK;
}

bh_status bh_digest_fd(int fd, const struct stat *st, const char *name,
                       unsigned algs, const atomic_bool *cancel,
                       bh_digests *out, bh_err *err) {
  bh_status s = hash_named(fd, name, algs, cancel, out, err);
  if (s != BH_OK) return s;
  cache_store(st, out);
  return BH_OK;
}

/* Open, fstat, then (cache hit) copy or (miss) hash the same descriptor. */
static bh_status digest_path(const char *path, const char *name, unsigned algs,
                             bool use_cache, bh_digests *out, bh_err *err) {
  struct stat sb;
  int fd;
  bh_status st = bh_digest_open(path, name, &fd, &sb, err);
  if (st != BH_OK) return st;
  if (!use_cache)
    st = hash_named(fd, name, algs, NULL, out, err);
  else if (!bh_digest_cache_get(&sb, algs, out))
    st = bh_digest_fd(fd, &sb, name, algs, NULL, out, err);
  (void)close(fd); /* read-only: nothing to lose on a failing close */
  return st;
}

bh_status bh_digest_file(const char *path, unsigned algs, bh_digests *out,
                         bh_err *err) {
  return digest_path(path, path, algs, true, out, err);
}

bh_status bh_digest_file_uncached(const char *path, unsigned algs,
                                  bh_digests *out, bh_err *err) {
  return digest_path(path, path, algs, false, out, err);
}

/* The path and message name of the executable of pid. */
static void exe_names(uint32_t pid, char path[64], char name[96]) {
  (void)snprintf(path, 64, "/proc/%u/exe", pid);
  (void)snprintf(name, 96, "the executable of pid %u (%s)", pid, path);
}

bh_status bh_digest_exe(uint32_t pid, unsigned algs, bh_digests *out,
                        bh_err *err) {
  char path[64], name[96];
  exe_names(pid, path, name);
  return digest_path(path, name, algs, true, out, err);
}

bh_status bh_digest_open_exe(uint32_t pid, int *fd, struct stat *st,
                             bh_err *err) {
  char path[64], name[96];
  exe_names(pid, path, name);
  return bh_digest_open(path, name, fd, st, err);
}

void bh_digest_bytes(const void *data, size_t len, uint8_t out[BH_SHA256_LEN]) {
  unsigned int n = 0;
  /* EVP_Digest cannot fail for SHA-256 short of memory exhaustion; zero
   * the output then rather than leave it undefined. */
  if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1)
    memset(out, 0, BH_SHA256_LEN);
}

void bh_blake3_bytes(const void *data, size_t len, uint8_t out[BH_DIGEST_LEN]) {
  blake3_hasher h;
  blake3_hasher_init(&h);
  blake3_hasher_update(&h, data, len);
  blake3_hasher_finalize(&h, out, BH_DIGEST_LEN);
}

bh_digest_stats bh_digest_cache_stats(void) {
  (void)pthread_mutex_lock(&cache_lock);
  bh_digest_stats s = stats;
  (void)pthread_mutex_unlock(&cache_lock);
  return s;
}

void bh_digest_cache_clear(void) {
  (void)pthread_mutex_lock(&cache_lock);
  memset(cache, 0, sizeof cache);
  memset(&stats, 0, sizeof stats);
  cache_clock = 0;
  (void)pthread_mutex_unlock(&cache_lock);
}
