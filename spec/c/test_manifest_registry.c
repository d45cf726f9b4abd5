/* Manifests as running-process keeps them beyond cache roots (design
 * §1.10): the central registry's directory from the environment, scanning
 * it (a missing one is empty, one that is not private to its owner is
 * refused), and the host a manifest names. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host.h"
#include "manifest_helpers.h"
#include "procfs.h"

/* Set or (value NULL) unset an environment variable. */
static void env(const char *name, const char *value) {
  if (value != NULL)
    CHECK_INT(setenv(name, value, 1), 0);
  else
    CHECK_INT(unsetenv(name), 0);
}

static void expect_dir(const char *want) {
  char *dir = NULL;
  bh_err err;
  CHECK_CODE(bh_manifest_central_dir(&dir, &err), BH_OK, &err);
  CHECK_STR(dir, want);
  free(dir);
}

/* $RUNNING_PROCESS_MANIFEST_DIR, else $XDG_DATA_HOME/running-process/
 * manifests, else ~/.local/share/running-process/manifests; empty or
 * relative values do not count. */
static void test_central_dir(void) {
  env("RUNNING_PROCESS_MANIFEST_DIR", "/srv/reg");
  env("XDG_DATA_HOME", "/data");
  env("HOME", "/home/u");
  expect_dir("/srv/reg");
  env("RUNNING_PROCESS_MANIFEST_DIR", "");
  expect_dir("/data/running-process/manifests");
  env("RUNNING_PROCESS_MANIFEST_DIR", NULL);
  expect_dir("/data/running-process/manifests");
  env("XDG_DATA_HOME", "relative/data");
  expect_dir("/home/u/.local/share/running-process/manifests");
  env("XDG_DATA_HOME", NULL);
  expect_dir("/home/u/.local/share/running-process/manifests");
  env("HOME", NULL);
  char *dir = NULL;
  bh_err err;
  CHECK_CODE(bh_manifest_central_dir(&dir, &err), BH_MANIFEST_IO, &err);
  CHECK(dir == NULL);
}

static void touch(const char *dir, const char *name) {
  char p[256];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  mh_write_bytes(p, "", 0);
}

/* Scan the registry at dir; returns the code, the list in *l. */
static bh_status scan(const char *dir, bh_manifest_list *l, bh_err *err) {
  env("RUNNING_PROCESS_MANIFEST_DIR", dir);
  char *got = NULL;
  bh_status st = bh_manifest_scan_central(l, &got, err);
  if (st == BH_OK) CHECK_STR(got, dir);
  if (st != BH_OK) CHECK(got == NULL);
  free(got);
  return st;
}

static void test_scan_central(void) {
  char dir[256], p[300];
  bh_manifest_list l;
  bh_err err;
  /* Missing: an empty registry, not an error. */
  bh_test_path(dir, sizeof dir, "registry");
  CHECK_CODE(scan(dir, &l, &err), BH_OK, &err);
  CHECK_INT(l.count, 0);
  /* Private: lists {service}-{version}.pb regular files, sorted; not a
   * temp file, another name, a directory, a symlink or a FIFO. */
  CHECK_INT(mkdir(dir, 0700), 0);
  touch(dir, "cache-1.2.pb");
  touch(dir, "aaa-0.1.pb");
  touch(dir, ".cache-1.2.pb.tmp.1234abcd");
  touch(dir, "notes.txt");
  touch(dir, "noversion.pb");
  touch(dir, "-1.pb");   /* no service */
  touch(dir, "svc-.pb"); /* no version */
  touch(dir, ".t-1.pb"); /* a writer's temporary file */
  snprintf(p, sizeof p, "%s/dir-1.pb", dir);
  CHECK_INT(mkdir(p, 0700), 0);
  snprintf(p, sizeof p, "%s/link-1.pb", dir);
  CHECK_INT(symlink("/etc/passwd", p), 0);
  snprintf(p, sizeof p, "%s/fifo-1.pb", dir);
  CHECK_INT(mkfifo(p, 0600), 0);
  CHECK_CODE(scan(dir, &l, &err), BH_OK, &err);
  CHECK_INT(l.count, 2);
  if (l.count == 2) {
    snprintf(p, sizeof p, "%s/aaa-0.1.pb", dir);
    CHECK_STR(l.paths[0], p);
    snprintf(p, sizeof p, "%s/cache-1.2.pb", dir);
    CHECK_STR(l.paths[1], p);
  }
  bh_manifest_list_free(&l);
  /* 0755 (or any group/other bit): refused, as running-process refuses. */
  CHECK_INT(chmod(dir, 0755), 0);
  CHECK_CODE(scan(dir, &l, &err), BH_INSECURE_REGISTRY, &err);
  CHECK(strstr(err.message, "755") != NULL);
  CHECK_INT(l.count, 0);
  CHECK_INT(chmod(dir, 0710), 0);
  CHECK_CODE(scan(dir, &l, &err), BH_INSECURE_REGISTRY, &err);
  CHECK_INT(chmod(dir, 0500), 0); /* stricter than 0700 is private too */
  CHECK_CODE(scan(dir, &l, &err), BH_OK, &err);
  bh_manifest_list_free(&l);
  CHECK_INT(chmod(dir, 0700), 0);
  /* A symlink to a private directory is not the registry. */
  char link[256];
  bh_test_path(link, sizeof link, "reglink");
  CHECK_INT(symlink(dir, link), 0);
  CHECK(scan(link, &l, &err) != BH_OK);
  /* Nor is a regular file. */
  snprintf(p, sizeof p, "%s/cache-1.2.pb", dir);
  CHECK(scan(p, &l, &err) != BH_OK);
}

/* A private registry that is not ours: refused, whatever its mode. */
static void test_scan_central_not_ours(void) {
  char dir[256];
  bh_manifest_list l;
  bh_err err;
  bh_test_path(dir, sizeof dir, "otheruid");
  CHECK_INT(mkdir(dir, 0700), 0);
  CHECK_INT(chown(dir, 65534, 65534), 0);
  CHECK_CODE(scan(dir, &l, &err), BH_INSECURE_REGISTRY, &err);
  CHECK_INT(l.count, 0);
}

/* Whether a registry is missing (empty) or refused (a symlink on the way)
 * does not depend on the caller asking for the message, nor on the
 * language strerror speaks: the same verdicts with err NULL. */
static void test_scan_central_without_err(void) {
  char real[256], link[256], reg[300];
  bh_manifest_list l;
  bh_test_path(real, sizeof real, "noerr-real");
  bh_test_path(link, sizeof link, "noerr-link");
  CHECK_INT(mkdir(real, 0755), 0);
  snprintf(reg, sizeof reg, "%s/registry", real);
  CHECK_INT(mkdir(reg, 0700), 0);
  touch(reg, "svc-1.pb");
  CHECK_INT(symlink(real, link), 0);
  snprintf(reg, sizeof reg, "%s/registry", link);
  env("RUNNING_PROCESS_MANIFEST_DIR", reg);
  bh_err err;
  CHECK_CODE(bh_manifest_scan_central(&l, NULL, &err), BH_MANIFEST_IO, &err);
  CHECK_CODE(bh_manifest_scan_central(&l, NULL, NULL), BH_MANIFEST_IO, NULL);
  CHECK_INT(l.count, 0);
  snprintf(reg, sizeof reg, "%s/missing/registry", real);
  env("RUNNING_PROCESS_MANIFEST_DIR", reg);
  CHECK_CODE(bh_manifest_scan_central(&l, NULL, &err), BH_OK, &err);
  CHECK_CODE(bh_manifest_scan_central(&l, NULL, NULL), BH_OK, NULL);
  CHECK_INT(l.count, 0);
}

/* host.machine_id another machine's: foreign_host; ours, or none: ok. */
static void test_check_host(void) {
  char ours[64];
  bh_err err;
  if (bh_machine_id(ours, sizeof ours, &err) != BH_OK) {
    printf("SKIP: no /etc/machine-id (%s)\n", err.message);
    return;
  }
  bh_manifest m;
  mh_manifest(&m, "svc", 1);
  CHECK_CODE(bh_manifest_check_host(&m, &err), BH_OK, &err); /* no host */
  mh_set_host(&m, "");
  CHECK_CODE(bh_manifest_check_host(&m, &err), BH_OK, &err); /* none named */
  mh_set_host(&m, ours);
  CHECK_CODE(bh_manifest_check_host(&m, &err), BH_OK, &err);
  char other[64];
  snprintf(other, sizeof other, "%s", ours);
  other[0] = other[0] == '0' ? '1' : '0';
  mh_set_host(&m, other);
  CHECK_CODE(bh_manifest_check_host(&m, &err), BH_FOREIGN_HOST, &err);
  CHECK(strstr(err.message, other) != NULL);
  CHECK(strstr(err.message, "elsewhere") != NULL);
  /* It survives a write and a read. */
  char path[256];
  bh_manifest got;
  CHECK_CODE(bh_manifest_write(bh_test_path(path, sizeof path, "foreign.pb"),
                               &m, &err),
             BH_OK, &err);
  CHECK_CODE(bh_manifest_read(path, true, &got, &err), BH_OK, &err);
  CHECK_CODE(bh_manifest_check_host(&got, &err), BH_FOREIGN_HOST, &err);
  bh_manifest_clear(&got);
  bh_manifest_clear(&m);
}

/* What a writer records about this machine. */
static void test_host_current(void) {
  bh_host h;
  char boot[64];
  bh_err err;
  bh_host_current(bh_test_tmpdir(), &h);
  struct stat sb;
  CHECK(stat(bh_test_tmpdir(), &sb) == 0);
  CHECK_INT(h.fs_dev_id, sb.st_dev);
  CHECK(h.hostname[0] != '\0');
  CHECK_CODE(bh_boot_id(boot, sizeof boot, &err), BH_OK, &err);
  CHECK_STR(h.boot_id, boot);
  CHECK(strncmp(h.namespace_id, "mnt:[", 5) == 0);
  CHECK(strstr(h.namespace_id, ":pid:[") != NULL);
  bh_host_current(NULL, &h);
  CHECK_INT(h.fs_dev_id, 0);
}

int main(void) {
  RUN(test_central_dir);
  RUN(test_scan_central);
  RUN_ROOT(test_scan_central_not_ours, "a directory owned by another uid");
  RUN(test_scan_central_without_err);
  RUN(test_check_host);
  RUN(test_host_current);
  return bh_test_summary();
}
