/* The C test harness (see testutil.h). */
#include "testutil.h"

#include <dirent.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"
#include "status.h"

int bh_test_passed;
int bh_test_failed;
static const char *current_test = "";
static char tmpdir[64];

void bh_test_fail(const char *file, int line, const char *fmt, ...) {
  bh_test_failed++;
  fprintf(stderr, "FAIL %s:%d [%s] ", file, line, current_test);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

void bh_test_check_code(const char *file, int line, int got, int want,
                        const void *errp) {
  if (got == want) {
    bh_test_passed++;
    return;
  }
  const bh_err *err = errp;
  bh_test_fail(file, line, "code %s, want %s (message: %s)",
               bh_status_name((bh_status)got), bh_status_name((bh_status)want),
               err ? err->message : "-");
}

/* Cases of this run's part that ran, and those that need root and were
 * not run (we are not root). */
static int cases_run, not_run;

bool bh_test_begin(const char *name, bool root, const char *why) {
  const char *part = getenv("BH_TEST_PART");
  if (part != NULL && *part != '\0' &&
      strcmp(part, root ? "root" : "user") != 0)
    return false;
  if (root && geteuid() != 0) {
    printf("NOT RUN %s: needs root (%s)\n", name, why);
    not_run++;
    return false;
  }
  current_test = name;
  fprintf(stderr, "-- %s\n", name);
  cases_run++;
  return true;
}

int bh_test_summary(void) {
  printf("%d passed, %d failed", bh_test_passed, bh_test_failed);
  if (not_run > 0) printf(", %d not run (need root)", not_run);
  printf("\n");
  /* checks outside the cases (main's set-up) do not make a part run */
  if (bh_test_failed == 0 && cases_run == 0 && not_run > 0)
    return BH_TEST_NOT_RUN;
  return (bh_test_failed == 0 && bh_test_passed > 0) ? 0 : 1;
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void rm_tmpdir(void) {
  if (tmpdir[0]) nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *bh_test_tmpdir(void) {
  if (tmpdir[0] == '\0') {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/bht.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
      perror("mkdtemp");
      exit(2);
    }
    atexit(rm_tmpdir);
  }
  return tmpdir;
}

char *bh_test_path(char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "%s/%s", bh_test_tmpdir(), name);
  return buf;
}

long bh_test_unhex(const char *hex, uint8_t *out, size_t cap) {
  size_t n = strlen(hex);
  if (n % 2 || n / 2 > cap) return -1;
  for (size_t i = 0; i < n / 2; i++) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1) return -1;
    out[i] = (uint8_t)v;
  }
  return (long)(n / 2);
}

size_t bh_test_varint(uint64_t v, uint8_t out[10]) {
  size_t n = 0;
  do {
    out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
  return n;
}

int bh_test_count_fds(void) {
  bh_proc_cache_clear();
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* the directory's own descriptor */
}

double bh_test_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
