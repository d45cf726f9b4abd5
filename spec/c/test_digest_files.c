/* Executable digests against real files: both algorithms in one pass, the
 * cache (keyed on the file actually read, one entry per file holding each
 * algorithm computed), eviction, chunked hashing, cancellation, and files
 * that are not what an executable should be (a FIFO, a directory, a
 * device, a file over the size limit) refused at once. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "digest.h"
#include "identity.h"
#include "testutil.h"

static const char ABC_SHA256[] =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
static const char ABC_BLAKE3[] =
    "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85";

static void write_file(const char *path, const char *data, int flags) {
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);
  CHECK(fd >= 0);
  CHECK_INT(write(fd, data, strlen(data)), strlen(data));
  close(fd);
}

static void check_hex(const uint8_t *d, const char *want) {
  char hex[BH_DIGEST_HEX_LEN + 1];
  bh_hex_encode(d, BH_DIGEST_LEN, hex);
  CHECK_STR(hex, want);
}

static void test_digest_cache(void) {
  char path[256];
  bh_digests d, d2;
  bh_err err;
  bh_digest_cache_clear();
  bh_test_path(path, sizeof path, "f");
  write_file(path, "abc", O_TRUNC);
  CHECK_CODE(bh_digest_file(path, BH_ALGS_ALL, &d, &err), BH_OK, &err);
  CHECK_INT(d.algs, BH_ALGS_ALL);
  check_hex(d.sha256, ABC_SHA256);
  check_hex(d.blake3, ABC_BLAKE3);
  bh_digest_stats s = bh_digest_cache_stats();
  CHECK_INT(s.misses, 1);
  CHECK_INT(s.hits, 0);
  CHECK_INT(s.entries, 1);
  CHECK_CODE(bh_digest_file(path, BH_ALGS_ALL, &d, &err), BH_OK, &err);
  s = bh_digest_cache_stats();
  CHECK_INT(s.hits, 1);
  CHECK_INT(s.misses, 1);
  /* One algorithm of the two cached is a hit, and says only that one. */
  CHECK_CODE(bh_digest_file(path, BH_ALG_BLAKE3, &d, &err), BH_OK, &err);
  CHECK_INT(d.algs, BH_ALG_BLAKE3);
  CHECK_INT(bh_digest_cache_stats().hits, 2);

  write_file(path, "d", O_APPEND);
  CHECK_CODE(bh_digest_file(path, BH_ALGS_ALL, &d, &err), BH_OK, &err);
  CHECK_CODE(bh_digest_file_uncached(path, BH_ALGS_ALL, &d2, &err), BH_OK,
             &err);
  CHECK(memcmp(&d, &d2, sizeof d) == 0);
  char hex[BH_DIGEST_HEX_LEN + 1];
  bh_hex_encode(d.sha256, BH_DIGEST_LEN, hex);
  CHECK(strcmp(hex, ABC_SHA256) != 0);
  s = bh_digest_cache_stats();
  CHECK_INT(s.misses, 2);
  CHECK_INT(s.hits, 2);
  CHECK_INT(s.entries, 1); /* the stale version was replaced */

  /* Same size, new content: mtime/ctime change (nanosecond timestamps). */
  struct timespec times[2] = {{0, UTIME_OMIT}, {1000000000, 0}};
  write_file(path, "xyzw", O_TRUNC);
  CHECK_INT(utimensat(AT_FDCWD, path, times, 0), 0);
  CHECK_CODE(bh_digest_file(path, BH_ALGS_ALL, &d2, &err), BH_OK, &err);
  CHECK(memcmp(d.sha256, d2.sha256, BH_DIGEST_LEN) != 0);
  CHECK(memcmp(d.blake3, d2.blake3, BH_DIGEST_LEN) != 0);
  CHECK_INT(bh_digest_cache_stats().misses, 3);

  CHECK_CODE(bh_digest_file("/nonexistent/x", BH_ALGS_ALL, &d, &err),
             BH_EXE_HASH, &err);
  CHECK(strstr(err.message, "/nonexistent/x") != NULL);
  CHECK_CODE(bh_digest_file_uncached("/nonexistent/x", BH_ALGS_ALL, &d, &err),
             BH_EXE_HASH, &err);
  bh_digest_cache_clear();
  s = bh_digest_cache_stats();
  CHECK_INT(s.entries + s.hits + s.misses, 0);
}

/* The cache is keyed per algorithm: a file hashed for SHA-256 only is a
 * miss for BLAKE3, and the second pass fills the same entry. */
static void test_digest_cache_per_algorithm(void) {
  char path[256];
  bh_digests d;
  bh_err err;
  bh_digest_cache_clear();
  write_file(bh_test_path(path, sizeof path, "alg"), "abc", O_TRUNC);
  CHECK_CODE(bh_digest_file(path, BH_ALG_SHA256, &d, &err), BH_OK, &err);
  CHECK_INT(d.algs, BH_ALG_SHA256);
  check_hex(d.sha256, ABC_SHA256);
  CHECK_CODE(bh_digest_file(path, BH_ALG_BLAKE3, &d, &err), BH_OK, &err);
  CHECK_INT(d.algs, BH_ALG_BLAKE3);
  check_hex(d.blake3, ABC_BLAKE3);
  bh_digest_stats s = bh_digest_cache_stats();
  CHECK_INT(s.misses, 2);
  CHECK_INT(s.hits, 0);
  CHECK_INT(s.entries, 1);
  CHECK_CODE(bh_digest_file(path, BH_ALGS_ALL, &d, &err), BH_OK, &err);
  CHECK_INT(d.algs, BH_ALGS_ALL);
  check_hex(d.sha256, ABC_SHA256);
  check_hex(d.blake3, ABC_BLAKE3);
  CHECK_INT(bh_digest_cache_stats().hits, 1);
  bh_digest_cache_clear();
}

/* 300 distinct files: the cache stays bounded and evicts the oldest. */
static void test_digest_eviction(void) {
  char path[256], name[32];
  bh_digests d;
  bh_err err;
  bh_digest_cache_clear();
  for (int i = 0; i < 300; i++) {
    snprintf(name, sizeof name, "e%d", i);
    write_file(bh_test_path(path, sizeof path, name), name, O_TRUNC);
    CHECK_CODE(bh_digest_file(path, BH_ALGS_ALL, &d, &err), BH_OK, &err);
  }
  bh_digest_stats s = bh_digest_cache_stats();
  CHECK_INT(s.entries, 256);
  CHECK_INT(s.misses, 300);
  bh_digest_file(bh_test_path(path, sizeof path, "e299"), BH_ALGS_ALL, &d,
                 &err);
  CHECK_INT(bh_digest_cache_stats().hits, 1);
  bh_digest_file(bh_test_path(path, sizeof path, "e0"), BH_ALGS_ALL, &d, &err);
  CHECK_INT(bh_digest_cache_stats().misses, 301);
  bh_digest_cache_clear();
}

/* The digest of a verified daemon's executable is kept: 300 distinct
 * files hashed after it (another user's records) evict everything else
 * first, it stays; so do at most BH_DIGEST_KEPT_MAX kept ones. */
static void test_digest_kept_entries(void) {
  char path[256], name[32];
  bh_digests d;
  bh_err err;
  struct stat daemon_st, other_st;
  bh_digest_cache_clear();
  write_file(bh_test_path(path, sizeof path, "daemon"), "daemon", O_TRUNC);
  CHECK_CODE(bh_digest_file(path, BH_ALGS_ALL, &d, &err), BH_OK, &err);
  CHECK_INT(stat(path, &daemon_st), 0);
  bh_digest_cache_keep(&daemon_st);
  write_file(bh_test_path(path, sizeof path, "other"), "other", O_TRUNC);
  CHECK_CODE(bh_digest_file(path, BH_ALGS_ALL, &d, &err), BH_OK, &err);
  CHECK_INT(stat(path, &other_st), 0);
  for (int i = 0; i < 300; i++) {
    snprintf(name, sizeof name, "k%d", i);
    write_file(bh_test_path(path, sizeof path, name), name, O_TRUNC);
    CHECK_CODE(bh_digest_file(path, BH_ALGS_ALL, &d, &err), BH_OK, &err);
  }
  CHECK(bh_digest_cache_get(&daemon_st, BH_ALGS_ALL, &d));
  CHECK(!bh_digest_cache_get(&other_st, BH_ALGS_ALL, &d));
  /* keeping every entry keeps at most BH_DIGEST_KEPT_MAX: the others go
   * on turning over */
  for (int i = 0; i < 300; i++) {
    struct stat st;
    snprintf(name, sizeof name, "k%d", i);
    if (stat(bh_test_path(path, sizeof path, name), &st) == 0)
      bh_digest_cache_keep(&st);
  }
  int cached = 0;
  for (int i = 0; i < 300; i++) {
    snprintf(name, sizeof name, "n%d", i);
    write_file(bh_test_path(path, sizeof path, name), name, O_TRUNC);
    CHECK_CODE(bh_digest_file(path, BH_ALGS_ALL, &d, &err), BH_OK, &err);
  }
  for (int i = 0; i < 300; i++) {
    struct stat st;
    snprintf(name, sizeof name, "n%d", i);
    if (stat(bh_test_path(path, sizeof path, name), &st) == 0 &&
        bh_digest_cache_get(&st, BH_ALGS_ALL, &d))
      cached++;
  }
  CHECK_INT(cached, BH_DIGEST_CACHE_SLOTS - BH_DIGEST_KEPT_MAX);
  bh_digest_cache_clear();
}

/* A large file hashes in chunks to the same values as one buffer. */
static void test_digest_large(void) {
  size_t n = 3 * 256 * 1024 + 123;
  char *buf = malloc(n), path[256];
  for (size_t i = 0; i < n; i++)
    buf[i] = (char)(i * 7 + 1);
  bh_test_path(path, sizeof path, "big");
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  CHECK_INT(write(fd, buf, n), n);
  close(fd);
  uint8_t a[BH_DIGEST_LEN], b[BH_DIGEST_LEN];
  bh_digests d;
  bh_err err;
  bh_digest_bytes(buf, n, a);
  bh_blake3_bytes(buf, n, b);
  CHECK_CODE(bh_digest_file_uncached(path, BH_ALGS_ALL, &d, &err), BH_OK, &err);
  CHECK(memcmp(a, d.sha256, BH_DIGEST_LEN) == 0);
  CHECK(memcmp(b, d.blake3, BH_DIGEST_LEN) == 0);
  free(buf);
}

/* Opening a FIFO for reading would block until a writer comes: it must
 * fail at once instead (O_NONBLOCK, then fstat on that descriptor). The
 * check runs in a child with an alarm, so a regression fails the test
 * instead of hanging it. */
static void test_digest_refuses_fifo(void) {
  char path[256];
  CHECK_INT(mkfifo(bh_test_path(path, sizeof path, "fifo"), 0600), 0);
  pid_t child = fork();
  if (child == 0) {
    alarm(10);
    bh_digests d;
    bh_err err;
    bh_status a = bh_digest_file(path, BH_ALGS_ALL, &d, &err);
    bool said = strstr(err.message, "not a regular file") != NULL;
    bh_status b = bh_digest_file_uncached(path, BH_ALGS_ALL, &d, &err);
    _exit(a == BH_EXE_HASH && b == BH_EXE_HASH && said ? 0 : 1);
  }
  int status = 0;
  double t0 = bh_test_now();
  CHECK_INT(waitpid(child, &status, 0), child);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  if (WIFSIGNALED(status)) fprintf(stderr, "   hung on a FIFO (SIGALRM)\n");
  CHECK(bh_test_now() - t0 < 5);
}

/* Not regular files (exe_hash) and a file over the hashing limit (sparse:
 * costs no disk; exe_too_large), each naming why; bh_digest_open says so
 * too. */
static void test_digest_refuses_others(void) {
  char path[256];
  bh_digests d;
  bh_err err;
  struct stat st;
  CHECK_CODE(bh_digest_file(bh_test_tmpdir(), BH_ALGS_ALL, &d, &err),
             BH_EXE_HASH, &err);
  CHECK(strstr(err.message, "not a regular file") != NULL);
  CHECK_CODE(bh_digest_file("/dev/null", BH_ALGS_ALL, &d, &err), BH_EXE_HASH,
             &err);
  int fd;
  CHECK_CODE(bh_digest_open("/dev/zero", "zero", &fd, &st, &err), BH_EXE_HASH,
             &err);
  CHECK_INT(fd, -1);
  CHECK_CODE(err.code, BH_EXE_HASH, &err);
  CHECK(strstr(err.message, "zero") != NULL);
  fd = open(bh_test_path(path, sizeof path, "huge"),
            O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  CHECK(fd >= 0);
  CHECK_INT(ftruncate(fd, (off_t)BH_DIGEST_MAX_BYTES + 1), 0);
  close(fd);
  double t0 = bh_test_now();
  CHECK_CODE(bh_digest_file(path, BH_ALGS_ALL, &d, &err), BH_EXE_TOO_LARGE,
             &err);
  CHECK(strstr(err.message, "over the 1 GiB hashing limit") != NULL);
  CHECK(bh_test_now() - t0 < 5); /* refused by fstat, not read */
  CHECK_INT(truncate(path, (off_t)BH_DIGEST_MAX_BYTES), 0);
  CHECK_CODE(bh_digest_open(path, "at the limit", &fd, &st, &err), BH_OK, &err);
  CHECK(fd >= 0); /* exactly the limit is allowed */
  if (fd >= 0) close(fd);
  CHECK_INT(unlink(path), 0);
}

/* bh_digest_fd stops between chunks once told to, and caches nothing. */
static void test_digest_cancel(void) {
  char path[256];
  bh_err err;
  struct stat st;
  bh_digests d;
  bh_digest_cache_clear();
  write_file(bh_test_path(path, sizeof path, "cancel"), "abc", O_TRUNC);
  int fd;
  CHECK_CODE(bh_digest_open(path, "the file", &fd, &st, &err), BH_OK, &err);
  CHECK(fd >= 0);
  atomic_bool stop;
  atomic_init(&stop, true);
  CHECK_CODE(bh_digest_fd(fd, &st, "the file", BH_ALGS_ALL, &stop, &d, &err),
             BH_EXE_HASH, &err);
  CHECK(strstr(err.message, "cancelled") != NULL);
  CHECK(!bh_digest_cache_get(&st, BH_ALG_SHA256, &d));
  CHECK_INT(bh_digest_cache_stats().entries, 0);
  atomic_store(&stop, false);
  CHECK_CODE(bh_digest_fd(fd, &st, "the file", BH_ALGS_ALL, &stop, &d, &err),
             BH_OK, &err);
  check_hex(d.sha256, ABC_SHA256);
  CHECK(bh_digest_cache_get(&st, BH_ALGS_ALL, &d));
  check_hex(d.blake3, ABC_BLAKE3);
  close(fd);
  bh_digest_cache_clear();
}

int main(void) {
  RUN(test_digest_cache);
  RUN(test_digest_cache_per_algorithm);
  RUN(test_digest_eviction);
  RUN(test_digest_kept_entries);
  RUN(test_digest_large);
  RUN(test_digest_refuses_fifo);
  RUN(test_digest_refuses_others);
  RUN(test_digest_cancel);
  return bh_test_summary();
}
