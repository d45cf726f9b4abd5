/* A test shim (LD_PRELOAD, built only for the tests): makes the process
 * stop itself (SIGSTOP) just before one of its renames, so a test can
 * kill a writer at that point, or change the file under it and then let
 * it go on (SIGCONT). BH_STOP_BEFORE_RENAME=N stops before the Nth call
 * of rename, renameat or renameat2 (1 = the first); BH_STOP_BEFORE_LINK=N
 * before the Nth linkat (where a temp file gets its name); unset, the
 * shim only passes the calls through. Production code has no such hook. */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

int rename(const char *from, const char *to);
int renameat(int fromfd, const char *from, int tofd, const char *to);
int renameat2(int fromfd, const char *from, int tofd, const char *to,
              unsigned int flags);
int linkat(int fromfd, const char *from, int tofd, const char *to, int flags);

static atomic_long calls, links;

/* Count this call in *counter; stop here when it is the one the variable
 * env asks for. */
static void stop_at(atomic_long *counter, const char *env) {
  const char *want = getenv(env);
  long n = atomic_fetch_add(counter, 1) + 1;
  if (want != NULL && strtol(want, NULL, 10) == n) (void)raise(SIGSTOP);
}

static void maybe_stop(void) {
  stop_at(&calls, "BH_STOP_BEFORE_RENAME");
}

/* The next definition of name (libc's), or NULL with errno ENOSYS. */
static void *next(const char *name) {
  void *f = dlsym(RTLD_NEXT, name);
  if (f == NULL) errno = ENOSYS;
  return f;
}

int rename(const char *from, const char *to) {
  int (*real)(const char *, const char *) = next("rename");
  maybe_stop();
  return real != NULL ? real(from, to) : -1;
}

int renameat(int fromfd, const char *from, int tofd, const char *to) {
  int (*real)(int, const char *, int, const char *) = next("renameat");
  maybe_stop();
  return real != NULL ? real(fromfd, from, tofd, to) : -1;
}

int renameat2(int fromfd, const char *from, int tofd, const char *to,
              unsigned int flags) {
  int (*real)(int, const char *, int, const char *, unsigned int) =
      next("renameat2");
  maybe_stop();
  return real != NULL ? real(fromfd, from, tofd, to, flags) : -1;
}

int linkat(int fromfd, const char *from, int tofd, const char *to, int flags) {
  int (*real)(int, const char *, int, const char *, int) = next("linkat");
  stop_at(&links, "BH_STOP_BEFORE_LINK");
  return real != NULL ? real(fromfd, from, tofd, to, flags) : -1;
}
