/* A tiny test harness for the C tests: CHECK-style assertions that count
 * and keep going, a temp directory per test binary, and helpers shared by
 * the socket tests. Each test binary's main() ends with
 * `return bh_test_summary();`, which prints "N passed, N failed". */
#ifndef BH_TESTUTIL_H
#define BH_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

extern int bh_test_passed;
extern int bh_test_failed;

void bh_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CHECK(cond)                                         \
  do {                                                      \
    if (cond)                                               \
      bh_test_passed++;                                     \
    else                                                    \
      bh_test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond); \
  } while (0)

#define CHECK_INT(a, b)                                                       \
  do {                                                                        \
    long long va_ = (long long)(a), vb_ = (long long)(b);                     \
    if (va_ == vb_)                                                           \
      bh_test_passed++;                                                       \
    else                                                                      \
      bh_test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, va_, \
                   vb_);                                                      \
  } while (0)

#define CHECK_STR(a, b)                                                      \
  do {                                                                       \
    const char *sa_ = (a), *sb_ = (b);                                       \
    if (sa_ && sb_ && strcmp(sa_, sb_) == 0)                                 \
      bh_test_passed++;                                                      \
    else                                                                     \
      bh_test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b, \
                   sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");              \
  } while (0)

/* Check a bh_status against an expected code, printing both names and the
 * error message on failure. */
#define CHECK_CODE(got, want, errp) \
  bh_test_check_code(__FILE__, __LINE__, (int)(got), (int)(want), (errp))
void bh_test_check_code(const char *file, int line, int got, int want,
                        const void *err /* const bh_err * or NULL */);

/* Run a named test function, printing its name. */
#define RUN(fn)                                \
  do {                                         \
    if (bh_test_begin(#fn, false, NULL)) fn(); \
  } while (0)

/* A test function that needs root (another uid, unshare, mounts, chown):
 * why says what for. ctest runs a binary's cases in parts, chosen by
 * BH_TEST_PART: "user" runs the RUN cases, "root" the RUN_ROOT cases (a
 * ctest of its own, c_NAME_root, registered for every file that has
 * them). Not root, the root part runs nothing: it names each case and
 * why, and the binary exits BH_TEST_NOT_RUN, which ctest reports as "Not
 * Run". Without BH_TEST_PART both parts run (root cases only as root). */
#define RUN_ROOT(fn, why)                      \
  do {                                         \
    if (bh_test_begin(#fn, true, (why))) fn(); \
  } while (0)

/* The exit status ctest takes for "not run" (SKIP_RETURN_CODE). */
#define BH_TEST_NOT_RUN 77

/* Starts the test function name when this run is for its part (root:
 * RUN_ROOT's); false when it is not run here. */
bool bh_test_begin(const char *name, bool root, const char *why);

/* Prints "N passed, N failed" and returns the exit status: 0 iff none
 * failed and at least one check ran; BH_TEST_NOT_RUN when every case of
 * this part needs root and we are not root. */
int bh_test_summary(void);

/* A fresh temporary directory for this process (created on first use,
 * removed recursively at exit). Paths are kept short so sockets fit
 * sun_path. */
const char *bh_test_tmpdir(void);
/* tmpdir + "/" + name into buf; returns buf. */
char *bh_test_path(char *buf, size_t cap, const char *name);

/* Hex string (any case, no spaces) into bytes; returns the byte count or
 * -1. */
long bh_test_unhex(const char *hex, uint8_t *out, size_t cap);

/* v as a protobuf varint into out (at most 10 bytes, the length of
 * UINT64_MAX); returns the byte count. For tests that craft wire bytes
 * the encoders would refuse to write. */
size_t bh_test_varint(uint64_t v, uint8_t out[10]);

/* Number of open descriptors of this process (entries of /proc/self/fd),
 * after emptying the cache of verified processes (proc.h): its
 * pidfds are kept on purpose, and a leak check must not count them. */
int bh_test_count_fds(void);

/* Monotonic seconds. */
double bh_test_now(void);

#endif
