/* The symlink race against a reaction (issue: "any file can be deleted"):
 * another user owns the directory of a stale record and, in a loop, swaps
 * the record's directory with a symlink to a victim directory
 * (renameat2 RENAME_EXCHANGE) while root removes the record's stale socket
 * and clears its manifest. Whatever the interleaving, nothing in the
 * victim directory may change: every path is walked through directory
 * descriptors that never follow a symlink (design §1.11). Needs root (to
 * be another user); skips visibly otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fsutil.h"
#include "manifest_helpers.h"
#include "stale.h"

enum { NOBODY = 65534 };
#define RACE_SECONDS 1.5

static char victim[256], attack[256], rec_dir[300], rec_link[300];

/* A socket file at dir/name that nothing listens on (dir is a path or
 * "/proc/self/fd/N"). */
static int stale_socket(const char *dir, const char *name) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int n = snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s", dir, name);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || n < 0 || (size_t)n >= sizeof sa.sun_path) return -1;
  int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
  int e = errno;
  close(fd);
  errno = e;
  return rc == 0 || errno == EADDRINUSE ? 0 : -1;
}

/* The attacker, as nobody: keep a stale socket and a manifest (a copy of
 * the victim's, put back whenever it was cleared) in its directory and
 * swap that directory with the symlink to the victim as fast as it can,
 * until killed. */
static void attacker(const uint8_t *manifest, size_t len) {
  if (setgroups(0, NULL) != 0 || setresgid(NOBODY, NOBODY, NOBODY) != 0 ||
      setresuid(NOBODY, NOBODY, NOBODY) != 0)
    _exit(3);
  int dfd = open(rec_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) _exit(4);
  char self[64];
  snprintf(self, sizeof self, "/proc/self/fd/%d", dfd);
  for (;;) {
    struct stat sb;
    if (fstatat(dfd, "s", &sb, AT_SYMLINK_NOFOLLOW) != 0)
      stale_socket(self, "s");
    if (fstatat(dfd, BH_MANIFEST_NAME, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
        (size_t)sb.st_size != len) {
      int fd = openat(dfd, BH_MANIFEST_NAME,
                      O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd >= 0) {
        (void)bh_fs_write_all(fd, manifest, len, "the manifest", NULL);
        close(fd);
      }
    }
    (void)renameat2(AT_FDCWD, rec_dir, AT_FDCWD, rec_link, RENAME_EXCHANGE);
  }
}

static void setup(const uint8_t *manifest, size_t len) {
  char p[400];
  bh_test_path(victim, sizeof victim, "victim");
  bh_test_path(attack, sizeof attack, "attack");
  snprintf(rec_dir, sizeof rec_dir, "%s/d", attack);
  snprintf(rec_link, sizeof rec_link, "%s/l", attack);
  CHECK_INT(chmod(bh_test_tmpdir(), 0755), 0);
  CHECK_INT(mkdir(victim, 0755), 0);
  CHECK_INT(stale_socket(victim, "s"), 0);
  snprintf(p, sizeof p, "%s/" BH_MANIFEST_NAME, victim);
  mh_write_bytes(p, manifest, len);
  CHECK_INT(mkdir(attack, 0755), 0);
  CHECK_INT(mkdir(rec_dir, 0755), 0);
  CHECK_INT(chown(attack, NOBODY, NOBODY), 0);
  CHECK_INT(chown(rec_dir, NOBODY, NOBODY), 0);
  CHECK_INT(symlink(victim, rec_link), 0);
  CHECK_INT(lchown(rec_link, NOBODY, NOBODY), 0);
}

static void test_swap_race(void) {
  size_t len = 0;
  uint8_t *manifest = mh_fixture("rp41/manifest-with-daemon.pb", &len);
  bh_identity daemon;
  bh_err err;
  bh_manifest m;
  CHECK_CODE(bh_manifest_decode(manifest, len, true, &m, &err), BH_OK, &err);
  bh_identity_init(&daemon);
  bh_identity_move(&daemon, &m.daemon);
  bh_manifest_clear(&m);
  setup(manifest, len);
  char vsock[400], vman[400], sock[400], man[400];
  snprintf(vsock, sizeof vsock, "%s/s", victim);
  snprintf(vman, sizeof vman, "%s/" BH_MANIFEST_NAME, victim);
  snprintf(sock, sizeof sock, "%s/s", rec_dir);
  snprintf(man, sizeof man, "%s/" BH_MANIFEST_NAME, rec_dir);
  struct stat vs;
  CHECK(stat(vsock, &vs) == 0 && S_ISSOCK(vs.st_mode));

  pid_t pid = fork();
  if (pid == 0) attacker(manifest, len);
  unsigned long rounds = 0, removed = 0, cleared = 0, refused = 0;
  double t0 = bh_test_now();
  while (bh_test_now() - t0 < RACE_SECONDS) {
    bh_stale_result sr;
    bh_clear_outcome out = BH_CLEAR_NONE;
    if (bh_fs_remove_stale_socket(sock, &sr, &err) != BH_OK) refused++;
    removed += sr.removed;
    if (bh_manifest_clear_daemon(man, &daemon, &out, &err) != BH_OK) refused++;
    cleared += out == BH_CLEAR_DONE;
    rounds++;
  }
  CHECK_INT(kill(pid, SIGKILL), 0);
  CHECK_INT(mh_wait_exit(pid), -1);
  printf(
      "  %lu rounds: %lu sockets removed, %lu manifests cleared, %lu "
      "refused (a symlink on the way)\n",
      rounds, removed, cleared, refused);
  /* The race was real: both kinds of step happened both ways. */
  CHECK(removed > 0 && cleared > 0 && refused > 0);
  /* The victim directory is exactly as it was. */
  struct stat now;
  CHECK(lstat(vsock, &now) == 0 && S_ISSOCK(now.st_mode));
  CHECK(now.st_ino == vs.st_ino);
  CHECK(mh_file_is(vman, manifest, len));
  char cmd[400];
  snprintf(cmd, sizeof cmd, "test $(ls -A %s | wc -l) -eq 2", victim);
  CHECK(system(cmd) == 0);
  bh_identity_clear(&daemon);
  free(manifest);
}

int main(void) {
  RUN_ROOT(test_swap_race, "another uid attacks");
  return bh_test_summary();
}
