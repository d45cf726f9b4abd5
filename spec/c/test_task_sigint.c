/* The scheduler through the real host: SIGINT stops a policy whose Lua
 * code loops without yielding, in the main task or in a spawned one, with
 * exit status 130 and a message naming the script and the line of the
 * loop (the stop signal's count hook, design §4.7). */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* Run the bhprobe-lua host on script (written to tmpdir/name), wait for
 * the file tmpdir/ready the script creates, let it spin 0.3 s, send SIGINT.
 * Returns the exit status (-1 if it did not exit normally); its stderr is
 * left in errbuf. Skipped (returns -2) without BH_BUILD_DIR. */
static int host_interrupted(const char *name, const char *script, char *errbuf,
                            size_t cap) {
  const char *bd = getenv("BH_BUILD_DIR");
  char bin[512], spath[160], epath[160], ready[160];
  if (bd == NULL) return -2;
  snprintf(bin, sizeof bin, "%s/bhprobe-lua", bd);
  FILE *f = fopen(bh_test_path(spath, sizeof spath, name), "w");
  CHECK(f != NULL);
  if (f == NULL) return -1;
  fputs(script, f);
  fclose(f);
  bh_test_path(epath, sizeof epath, "host.err");
  bh_test_path(ready, sizeof ready, "ready");
  unlink(ready);
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(epath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || dup2(fd, 2) < 0 || chdir(bh_test_tmpdir()) != 0) _exit(126);
    execl(bin, bin, name, (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 400 && access(ready, F_OK) != 0; i++)
    usleep(25000);
  CHECK(access(ready, F_OK) == 0);
  usleep(300000); /* the busy loop is running now */
  CHECK(kill(pid, SIGINT) == 0);
  int ws = 0;
  CHECK_INT(waitpid(pid, &ws, 0), pid);
  f = fopen(epath, "r");
  size_t n = f ? fread(errbuf, 1, cap - 1, f) : 0;
  errbuf[n] = '\0';
  if (f) fclose(f);
  return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

/* A policy that loops forever without yielding is interrupted by SIGINT,
 * exiting 130 with a message naming where it was. */
static void test_sigint_names_where(void) {
  static const char *const scripts[2][2] = {
      {"main.lua",
       "io.open('ready', 'w'):close()\n"
       "local x = 0\n"
       "while true do x = x + 1 end\n"},
      {"task.lua",
       "io.open('ready', 'w'):close()\n"
       "bh.spawn(function()\n"
       "  local x = 0\n"
       "  while true do x = x + 1 end\n"
       "end)\n"
       "bh.sleep(100)\n"},
  };
  for (int i = 0; i < 2; i++) {
    char err[4096];
    int rc = host_interrupted(scripts[i][0], scripts[i][1], err, sizeof err);
    if (rc == -2) {
      printf("  SKIP: BH_BUILD_DIR not set (run through ctest)\n");
      CHECK(true);
      return;
    }
    CHECK_INT(rc, 130);
    CHECK(strstr(err, "interrupted") != NULL);
    /* Names the script and the line of the loop. */
    char where[64];
    snprintf(where, sizeof where, "%s:%d", scripts[i][0], i == 0 ? 3 : 4);
    if (strstr(err, where) == NULL)
      fprintf(stderr, "  %s: stderr does not name %s:\n%s\n", scripts[i][0],
              where, err);
    CHECK(strstr(err, where) != NULL);
  }
}

int main(void) {
  RUN(test_sigint_names_where);
  return bh_test_summary();
}
