/* This machine's HostIdentity fields (see host.h). */
#include "host.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "idfile.h"
#include "procfs.h"

/* Followed if it is a symlink (to /var/lib/dbus/machine-id, on some
 * systems): a file of the system, not one a reaction touches. Read once:
 * a scan checks every manifest's host against it. */
static bh_id_file machine_id_file = BH_ID_FILE("/etc/machine-id");

bh_status bh_machine_id(char *buf, size_t cap, bh_err *err) {
  return bh_id_file_get(&machine_id_file, buf, cap, err);
}

bh_status bh_host_check(const char *theirs, const char *hostname, bh_err *err) {
  char ours[64];
  if (theirs == NULL || theirs[0] == '\0') return BH_OK;
  if (bh_machine_id(ours, sizeof ours, NULL) != BH_OK) return BH_OK;
  if (strcmp(ours, theirs) == 0) return BH_OK;
  return bh_err_set(err, BH_FOREIGN_HOST, NULL,
                    "recorded by machine %.40s (host \"%.60s\"); this is "
                    "machine %s",
                    theirs, hostname != NULL ? hostname : "", ours);
}

/* The inode number in a namespace link ("mnt:[4026531832]"), as text. */
static void ns_link(const char *path, char *buf, size_t cap) {
  ssize_t n = readlink(path, buf, cap - 1);
  buf[n > 0 ? n : 0] = '\0';
}

void bh_host_current(const char *dir, bh_host *out) {
  memset(out, 0, sizeof *out);
  if (gethostname(out->hostname, sizeof out->hostname - 1) != 0)
    out->hostname[0] = '\0';
  if (bh_machine_id(out->machine_id, sizeof out->machine_id, NULL) != BH_OK)
    out->machine_id[0] = '\0';
  if (bh_boot_id(out->boot_id, sizeof out->boot_id, NULL) != BH_OK)
    out->boot_id[0] = '\0';
  struct stat sb;
  if (dir != NULL && stat(dir, &sb) == 0) out->fs_dev_id = (uint64_t)sb.st_dev;
  char mnt[40], pid[40];
  ns_link("/proc/self/ns/mnt", mnt, sizeof mnt);
  ns_link("/proc/self/ns/pid", pid, sizeof pid);
  if (mnt[0] != '\0' && pid[0] != '\0')
    (void)snprintf(out->namespace_id, sizeof out->namespace_id, "%s:%s", mnt,
                   pid);
}
