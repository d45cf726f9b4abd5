/* This machine's HostIdentity fields (see host.h). */
#include "host.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "procfs.h"

bh_status bh_machine_id(char *buf, size_t cap, bh_err *err) {
  char *text = NULL;
  size_t len = 0;
  if (cap > 0) buf[0] = '\0';
  /* Followed if it is a symlink (to /var/lib/dbus/machine-id, on some
   * systems): a file of the system, not one a reaction touches. */
  if (bh_file_read_small("/etc/machine-id", 4096, &text, &len, BH_SYSTEM,
                         err) != 0)
    return BH_SYSTEM;
  while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' ' ||
                     text[len - 1] == '\r' || text[len - 1] == '\t'))
    len--;
  if (len == 0 || len >= cap) {
    free(text);
    return bh_err_set(err, BH_SYSTEM, NULL,
                      "/etc/machine-id holds %zu bytes, expected an id", len);
  }
  memcpy(buf, text, len);
  buf[len] = '\0';
  free(text);
  return BH_OK;
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
