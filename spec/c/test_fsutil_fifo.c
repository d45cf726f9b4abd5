/* The loop never blocks on a file. Opening a FIFO that has no writer
 * waits forever, so a FIFO where a manifest or an executable should be
 * hung bh.manifest.read, bh.sha256_file and the hasher, also when the
 * manifest was swapped for a FIFO after a scan had seen a regular file.
 * Every read that could hang runs in a child with a time bound: a hang is
 * a failed check (the child is killed), never a stuck test. A racing
 * process swaps a manifest and a FIFO (RENAME_EXCHANGE) while they are
 * read thousands of times. bh_file_read_small itself is checked on
 * regular files, /proc files (which claim size 0) and its bounds. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "child_helpers.h"
#include "digest.h"
#include "fsutil.h"
#include "manifest.h"
#include "manifest_helpers.h"

enum { SWAP_READS = 2000, SWAP_PAUSE_USEC = 100 };
#define SWAP_MIN_SECONDS 1.0

typedef struct outcome {
  bh_status code;
  char message[BH_ERR_MESSAGE_MAX];
} outcome;

typedef enum reader { READ_MANIFEST, READ_DIGEST, READ_DIGEST_UNCACHED } reader;

typedef struct read_args {
  reader what;
  const char *path;
  bool hold_writer; /* keep the FIFO open for writing meanwhile */
} read_args;

static bh_status read_once(reader what, const char *path, bh_err *err) {
  bh_digests d;
  if (what == READ_DIGEST) return bh_digest_file(path, BH_ALGS_ALL, &d, err);
  if (what == READ_DIGEST_UNCACHED)
    return bh_digest_file_uncached(path, BH_ALGS_ALL, &d, err);
  bh_manifest m;
  bh_status st = bh_manifest_read(path, false, &m, err);
  if (st == BH_OK) bh_manifest_clear(&m);
  return st;
}

static void read_child(void *arg, int wfd) {
  const read_args *a = arg;
  outcome o = {BH_OK, ""};
  bh_err err;
  bh_err_clear(&err);
  /* O_RDWR opens a FIFO at once on Linux: a writer that never writes. */
  if (a->hold_writer && open(a->path, O_RDWR | O_CLOEXEC) < 0) _exit(3);
  o.code = read_once(a->what, a->path, &err);
  snprintf(o.message, sizeof o.message, "%s", err.message);
  ch_report(wfd, &o, sizeof o);
}

/* Read path in a child; true (and *o) when it returned within 10 s. */
static bool read_bounded(reader what, const char *path, bool writer,
                         outcome *o) {
  read_args a = {what, path, writer};
  memset(o, 0, sizeof *o);
  return ch_run(read_child, &a, o, sizeof *o, 10.0);
}

/* A sealed-enough manifest: service_name "s" (any bytes that decode). */
static void write_manifest(const char *path) {
  mh_write_bytes(path, "\x0a\x01s", 3);
}

static void test_fifo_is_refused_at_once(void) {
  char fifo[128];
  bh_test_path(fifo, sizeof fifo, "m.fifo");
  CHECK(mkfifo(fifo, 0600) == 0);
  static const struct {
    reader what;
    bh_status want;
  } cases[] = {{READ_MANIFEST, BH_MANIFEST_IO},
               {READ_DIGEST, BH_EXE_HASH},
               {READ_DIGEST_UNCACHED, BH_EXE_HASH}};
  for (size_t i = 0; i < 3; i++) {
    for (int writer = 0; writer < 2; writer++) {
      outcome o;
      CHECK(read_bounded(cases[i].what, fifo, writer, &o));
      CHECK_CODE(o.code, cases[i].want, NULL);
      CHECK(strstr(o.message, "FIFO") != NULL || strstr(o.message, "regular"));
      if (i == 0 && writer == 0) printf("  a FIFO: %s\n", o.message);
    }
  }
}

/* find saw a regular file; by the time of the read it is a FIFO. */
static void test_swapped_after_scan(void) {
  char dir[128], path[160], fifo[160];
  bh_test_path(dir, sizeof dir, "root");
  CHECK(mkdir(dir, 0700) == 0);
  snprintf(path, sizeof path, "%s/%s", dir, BH_MANIFEST_NAME);
  snprintf(fifo, sizeof fifo, "%s/x.fifo", dir);
  write_manifest(path);
  bh_manifest_list l;
  bh_err err;
  CHECK_CODE(bh_manifest_find(dir, 4, &l, &err), BH_OK, &err);
  CHECK_INT(l.count, 1);
  CHECK(mkfifo(fifo, 0600) == 0 && rename(fifo, path) == 0);
  outcome o;
  CHECK(l.count == 1 && read_bounded(READ_MANIFEST, l.paths[0], false, &o));
  CHECK_CODE(o.code, BH_MANIFEST_IO, NULL);
  bh_manifest_list_free(&l);
}

/* ---- a racing process swapping a manifest and a FIFO ----------------------
 */

typedef struct swap_report {
  int reads, ok, refused, other;
  bh_status other_code;
} swap_report;

typedef struct swap_args {
  reader what;
  const char *path;
  bh_status refusal; /* the code of a refused FIFO */
} swap_args;

/* Read at least SWAP_READS times and for at least SWAP_MIN_SECONDS, and
 * on (for at most 10 s) until both the file and the FIFO were met. */
static void swap_reader(void *arg, int wfd) {
  const swap_args *a = arg;
  swap_report r = {0};
  double t0 = bh_test_now();
  for (;;) {
    double t = bh_test_now() - t0;
    bool both = r.ok > 0 && r.refused > 0;
    if (r.reads >= SWAP_READS && t >= SWAP_MIN_SECONDS && (both || t > 10))
      break;
    bh_err err;
    bh_status st = read_once(a->what, a->path, &err);
    r.reads++;
    if (st == BH_OK)
      r.ok++;
    else if (st == a->refusal)
      r.refused++;
    else
      r.other++, r.other_code = st;
  }
  ch_report(wfd, &r, sizeof r);
}

/* Exchange a and b (a manifest and a FIFO) every SWAP_PAUSE_USEC until
 * killed; one byte on wfd after the first exchange. */
static void swapper(const char *a, const char *b, int wfd) {
  for (bool told = false;; told = true) {
    if (renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0) _exit(5);
    if (!told) ch_report(wfd, "x", 1);
    usleep(SWAP_PAUSE_USEC);
  }
}

static void test_racing_swap(void) {
  char path[128], fifo[128];
  bh_test_path(path, sizeof path, "race.pb");
  bh_test_path(fifo, sizeof fifo, "race.fifo");
  write_manifest(path);
  CHECK(mkfifo(fifo, 0600) == 0);
  static const struct {
    reader what;
    const char *name;
    bh_status refusal;
  } cases[] = {{READ_MANIFEST, "bh_manifest_read", BH_MANIFEST_IO},
               {READ_DIGEST_UNCACHED, "bh_digest_file_uncached", BH_EXE_HASH}};
  for (size_t i = 0; i < 2; i++) {
    int pfd[2];
    char c;
    CHECK(pipe2(pfd, O_CLOEXEC) == 0);
    pid_t sw = fork();
    if (sw == 0) swapper(path, fifo, pfd[1]);
    CHECK(sw > 0);
    close(pfd[1]);
    CHECK(ch_read_within(pfd[0], &c, 1, 10.0)); /* it is swapping */
    close(pfd[0]);
    swap_args a = {cases[i].what, path, cases[i].refusal};
    swap_report r = {0};
    double t0 = bh_test_now();
    CHECK(ch_run(swap_reader, &a, &r, sizeof r, 30.0));
    double took = bh_test_now() - t0;
    kill(sw, SIGKILL);
    waitpid(sw, NULL, 0);
    printf(
        "  %s racing a swapper: %d reads in %.2f s: %d read the file, %d "
        "refused the FIFO, %d other\n",
        cases[i].name, r.reads, took, r.ok, r.refused, r.other);
    CHECK(r.reads >= SWAP_READS);
    CHECK_INT(r.ok + r.refused + r.other, r.reads);
    if (r.other) CHECK_CODE(r.other_code, BH_OK, NULL);
    CHECK(r.refused > 0 && r.ok > 0); /* the race was really run */
  }
}

/* ---- bh_file_read_small ---------------------------------------------------
 */

/* bh_file_read_small as 0 or the errno its err carries (the status, when
 * not BH_OK, is the one err holds). */
static int read_small(const char *path, size_t max, char **buf, size_t *len,
                      bh_status code, bh_err *err) {
  bh_status st = bh_file_read_small(path, max, buf, len, code, err);
  CHECK(st == BH_OK || st == err->code);
  return st == BH_OK ? 0 : err->sys_errno;
}

static void test_read_small(void) {
  char path[128], link[128], fifo[128];
  char *buf = NULL;
  size_t len = 0;
  bh_err err;
  bh_test_path(path, sizeof path, "small");
  mh_write_bytes(path, "hello\n", 6);
  CHECK_INT(read_small(path, 6, &buf, &len, BH_MANIFEST_IO, &err), 0);
  CHECK_INT(len, 6);
  CHECK_STR(buf, "hello\n");
  free(buf);
  CHECK_INT(read_small(path, 5, &buf, &len, BH_MANIFEST_IO, &err), EFBIG);
  CHECK_CODE(err.code, BH_MANIFEST_IO, &err);
  CHECK(buf == NULL && strstr(err.message, "larger than 5 bytes") != NULL);
  /* /proc files say size 0 and are read to their end. */
  CHECK_INT(read_small("/proc/self/stat", 65536, &buf, &len, BH_SYSTEM, &err),
            0);
  CHECK(len > 20 && strchr(buf, ')') != NULL && strlen(buf) == len);
  free(buf);
  CHECK_INT(read_small("/proc/self/stat", 8, &buf, &len, BH_SYSTEM, &err),
            EFBIG);
  CHECK_INT(read_small(bh_test_tmpdir(), 64, &buf, &len, BH_SYSTEM, &err),
            EINVAL);
  CHECK(strstr(err.message, "a directory, not a regular file") != NULL);
  CHECK_INT(read_small("/dev/null", 64, &buf, &len, BH_SYSTEM, &err), EINVAL);
  CHECK(strstr(err.message, "a device") != NULL);
  CHECK_INT(read_small("/nonexistent/x", 64, &buf, &len, BH_SYSTEM, &err),
            ENOENT);
  /* A symlink to a FIFO: the descriptor read is the FIFO's. */
  bh_test_path(fifo, sizeof fifo, "s.fifo");
  bh_test_path(link, sizeof link, "s.link");
  CHECK(mkfifo(fifo, 0600) == 0 && symlink(fifo, link) == 0);
  CHECK_INT(read_small(link, 64, &buf, &len, BH_SYSTEM, &err), EINVAL);
  CHECK(strstr(err.message, "a FIFO") != NULL);
  /* The empty file is read as empty, NUL-terminated. */
  mh_write_bytes(path, "", 0);
  CHECK_INT(read_small(path, 0, &buf, &len, BH_SYSTEM, &err), 0);
  CHECK(len == 0 && buf != NULL && buf[0] == '\0');
  free(buf);
}

int main(void) {
  RUN(test_fifo_is_refused_at_once);
  RUN(test_swapped_after_scan);
  RUN(test_racing_swap);
  RUN(test_read_small);
  return bh_test_summary();
}
