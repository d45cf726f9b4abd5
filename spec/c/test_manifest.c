/* Cache manifests on disk: round trip, unknown fields kept byte for byte,
 * every error code, find with depth limits and symlinks, clear_daemon, and
 * the atomic write surviving a writer killed just before rename. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.pb-c.h"
#include "manifest.h"
#include "manifest.pb-c.h"
#include "testutil.h"

/* A valid identity with recognisable values. */
static void sample_identity(bh_identity *id) {
  bh_identity_init(id);
  id->pid = 4242;
  id->exe_path = strdup("/usr/bin/daemon");
  for (int i = 0; i < BH_SHA256_LEN; i++)
    id->exe_sha256[i] = (uint8_t)i;
  id->boot_id = strdup("boot-1");
  bh_endpoint_set(&id->endpoint, "ns", "/run/d.sock", NULL);
  id->started_at_unix_ms = 1700000000000ull;
  id->has_idle_timeout = true;
  id->idle_timeout_secs = 0;
}

static void sample_manifest(bh_manifest *m, const char *service) {
  CHECK_CODE(bh_manifest_init(m, NULL), BH_OK, NULL);
  bh_manifest_set_string(&m->service_name, service, NULL);
  bh_manifest_set_string(&m->service_version, "1.2.3", NULL);
  bh_manifest_set_string(&m->broker_envelope_version, "1", NULL);
  bh_manifest_set_string(&m->broker_instance, "inst-7", NULL);
  m->created_at_unix_ms = 1;
  m->last_active_unix_ms = 2;
  m->has_daemon = true;
  sample_identity(&m->daemon);
}

static void write_bytes(const char *path, const uint8_t *buf, size_t len) {
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  if (f == NULL) return;
  CHECK_INT(fwrite(buf, 1, len, f), len);
  fclose(f);
}

static size_t read_bytes(const char *path, uint8_t *buf, size_t cap) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return 0;
  size_t n = fread(buf, 1, cap, f);
  fclose(f);
  return n;
}

static void test_round_trip(void) {
  char path[128];
  bh_test_path(path, sizeof path, "rt.pb");
  bh_manifest m, got;
  bh_err err;
  sample_manifest(&m, "cache");
  CHECK_CODE(bh_manifest_write(path, &m, &err), BH_OK, &err);
  CHECK_CODE(bh_manifest_read(path, &got, &err), BH_OK, &err);
  CHECK_STR(got.service_name, "cache");
  CHECK_STR(got.service_version, "1.2.3");
  CHECK_STR(got.broker_envelope_version, "1");
  CHECK_STR(got.broker_instance, "inst-7");
  CHECK_INT(got.created_at_unix_ms, 1);
  CHECK_INT(got.last_active_unix_ms, 2);
  CHECK(got.has_daemon);
  CHECK(bh_identity_diff(&m.daemon, &got.daemon) == NULL);
  CHECK(got.daemon.has_idle_timeout);
  CHECK_INT(got.daemon.started_at_unix_ms, 1700000000000ull);
  CHECK_INT(got.unknown_len, 0);
  struct stat sb;
  CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0644);
  bh_manifest_clear(&got);
  /* No daemon: reads back as none. */
  m.has_daemon = false;
  CHECK_CODE(bh_manifest_write(path, &m, &err), BH_OK, &err);
  CHECK_CODE(bh_manifest_read(path, &got, &err), BH_OK, &err);
  CHECK(!got.has_daemon);
  bh_manifest_clear(&got);
  bh_manifest_clear(&m);
}

/* Append a varint to buf at *n. */
static void put_varint(uint8_t *buf, size_t *n, uint64_t v) {
  while (v >= 0x80) {
    buf[(*n)++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  buf[(*n)++] = (uint8_t)v;
}

/* A manifest in field order with unknown fields at the top level (98 as a
 * varint, 99 as bytes) and inside current_daemon (50), written by hand the
 * way a newer running-process would. */
static size_t craft_with_unknowns(uint8_t *buf) {
  size_t n = 0;
  RunningProcess__Broker__V1__CacheManifest pm =
      RUNNING_PROCESS__BROKER__V1__CACHE_MANIFEST__INIT;
  pm.service_name = "svc";
  pm.created_at_unix_ms = 99;
  n = running_process__broker__v1__cache_manifest__pack(&pm, buf);
  bh_identity id;
  sample_identity(&id);
  uint8_t *d = NULL;
  size_t dlen = 0;
  CHECK_CODE(bh_identity_encode(&id, &d, &dlen, NULL), BH_OK, NULL);
  bh_identity_clear(&id);
  static const uint8_t inner[] = {0x90, 0x03, 0x07}; /* field 50 = 7 */
  put_varint(buf, &n, (20 << 3) | 2);
  put_varint(buf, &n, dlen + sizeof inner);
  memcpy(buf + n, d, dlen);
  n += dlen;
  memcpy(buf + n, inner, sizeof inner);
  n += sizeof inner;
  free(d);
  put_varint(buf, &n, (40 << 3) | 2);
  put_varint(buf, &n, 4);
  memcpy(buf + n, "inst", 4);
  n += 4;
  put_varint(buf, &n, (98 << 3) | 0);
  put_varint(buf, &n, 300);
  put_varint(buf, &n, (99 << 3) | 2);
  put_varint(buf, &n, 3);
  memcpy(buf + n, "abc", 3);
  n += 3;
  return n;
}

static void test_unknown_fields_kept(void) {
  char a[128], b[128];
  bh_test_path(a, sizeof a, "unk-a.pb");
  bh_test_path(b, sizeof b, "unk-b.pb");
  uint8_t orig[512], back[512];
  size_t n = craft_with_unknowns(orig);
  write_bytes(a, orig, n);
  bh_manifest m;
  bh_err err;
  CHECK_CODE(bh_manifest_read(a, &m, &err), BH_OK, &err);
  CHECK_STR(m.service_name, "svc");
  CHECK_STR(m.broker_instance, "inst");
  CHECK(m.has_daemon);
  CHECK_INT(m.daemon.pid, 4242);
  CHECK_INT(m.unknown_len, 10);       /* 90 06 ac 02, 9a 06 03 'abc' */
  CHECK_INT(m.daemon_unknown_len, 3); /* 90 03 07 */
  CHECK_CODE(bh_manifest_write(b, &m, &err), BH_OK, &err);
  size_t got = read_bytes(b, back, sizeof back);
  CHECK_INT(got, n);
  CHECK(got == n && memcmp(orig, back, n) == 0);
  /* Editing a known field keeps the unknown ones. */
  bh_manifest_set_string(&m.service_name, "renamed", NULL);
  CHECK_CODE(bh_manifest_write(b, &m, &err), BH_OK, &err);
  bh_manifest again;
  CHECK_CODE(bh_manifest_read(b, &again, &err), BH_OK, &err);
  CHECK_STR(again.service_name, "renamed");
  CHECK(again.unknown_len == m.unknown_len &&
        memcmp(again.unknown, m.unknown, m.unknown_len) == 0);
  CHECK(again.daemon_unknown_len == 3 &&
        memcmp(again.daemon_unknown, "\x90\x03\x07", 3) == 0);
  bh_manifest_clear(&again);
  bh_manifest_clear(&m);
}

/* Decode a manifest whose current_daemon is the given DaemonProcess. */
static bh_status decode_with_daemon(
    RunningProcess__Broker__V1__DaemonProcess *dp, bh_err *err) {
  RunningProcess__Broker__V1__CacheManifest pm =
      RUNNING_PROCESS__BROKER__V1__CACHE_MANIFEST__INIT;
  pm.current_daemon = dp;
  uint8_t buf[512];
  size_t n = running_process__broker__v1__cache_manifest__pack(&pm, buf);
  bh_manifest m;
  bh_status st = bh_manifest_decode(buf, n, &m, err);
  if (st == BH_OK) bh_manifest_clear(&m);
  return st;
}

static void test_error_codes(void) {
  bh_manifest m;
  bh_err err;
  char path[128];
  CHECK_CODE(bh_manifest_read("/nonexistent/x.pb", &m, &err), BH_MANIFEST_IO,
             &err);
  CHECK(strstr(err.message, "/nonexistent/x.pb") != NULL);
  CHECK(strstr(err.message, strerror(ENOENT)) != NULL);
  CHECK_CODE(bh_manifest_read(bh_test_tmpdir(), &m, &err), BH_MANIFEST_IO,
             &err);
  bh_test_path(path, sizeof path, "garbage.pb");
  write_bytes(path, (const uint8_t *)"\xff\xff\xff", 3);
  CHECK_CODE(bh_manifest_read(path, &m, &err), BH_MANIFEST_DECODE, &err);
  /* Top-level string holding NUL / invalid UTF-8. */
  static const uint8_t nul[] = {0x0a, 0x03, 'a', 0, 'b'};
  CHECK_CODE(bh_manifest_decode(nul, sizeof nul, &m, &err), BH_MANIFEST_DECODE,
             &err);
  static const uint8_t bad8[] = {0x12, 0x02, 0xc3, 0x28};
  CHECK_CODE(bh_manifest_decode(bad8, sizeof bad8, &m, &err),
             BH_MANIFEST_DECODE, &err);
  /* Empty file = an all-defaults manifest. */
  CHECK_CODE(bh_manifest_decode((const uint8_t *)"", 0, &m, &err), BH_OK, &err);
  CHECK(!m.has_daemon);
  bh_manifest_clear(&m);

  RunningProcess__Broker__V1__Endpoint ep =
      RUNNING_PROCESS__BROKER__V1__ENDPOINT__INIT;
  ep.namespace_id = "ns";
  ep.path = "/p.sock";
  uint8_t sha[32] = {0};
  RunningProcess__Broker__V1__DaemonProcess dp =
      RUNNING_PROCESS__BROKER__V1__DAEMON_PROCESS__INIT;
  dp.pid = 1;
  dp.exe_path = "/bin/x";
  dp.exe_sha256.data = sha;
  dp.exe_sha256.len = 32;
  CHECK_CODE(decode_with_daemon(&dp, &err), BH_MISSING_ENDPOINT, &err);
  dp.ipc_endpoint = &ep;
  CHECK_CODE(decode_with_daemon(&dp, &err), BH_OK, &err);
  dp.exe_sha256.len = 31;
  CHECK_CODE(decode_with_daemon(&dp, &err), BH_INVALID_SHA256_LENGTH, &err);
  dp.exe_sha256.len = 32;
  dp.exe_path = "/bin/\xc3\x28";
  CHECK_CODE(decode_with_daemon(&dp, &err), BH_DECODE_IDENTITY, &err);
  dp.exe_path = "/bin/x";
  ep.path = "/p\xff.sock";
  CHECK_CODE(decode_with_daemon(&dp, &err), BH_DECODE_IDENTITY, &err);
}

static void test_encode_rejects_bad_blobs(void) {
  bh_manifest m;
  bh_err err;
  uint8_t *out = NULL;
  size_t len = 0;
  sample_manifest(&m, "svc");
  /* A known field (1) hidden in the unknown blob. */
  bh_manifest_set_blob(&m.unknown, &m.unknown_len, (const uint8_t *)"\x0a\x01x",
                       3, NULL);
  CHECK_CODE(bh_manifest_encode(&m, &out, &len, &err), BH_MANIFEST_DECODE,
             &err);
  CHECK(out == NULL);
  bh_manifest_set_blob(&m.unknown, &m.unknown_len, (const uint8_t *)"\xff\xff",
                       2, NULL);
  CHECK_CODE(bh_manifest_encode(&m, &out, &len, &err), BH_MANIFEST_DECODE,
             &err);
  bh_manifest_set_blob(&m.unknown, &m.unknown_len, NULL, 0, NULL);
  bh_manifest_set_blob(&m.daemon_unknown, &m.daemon_unknown_len,
                       (const uint8_t *)"\x08\x01", 2, NULL); /* pid */
  CHECK_CODE(bh_manifest_encode(&m, &out, &len, &err), BH_MANIFEST_DECODE,
             &err);
  bh_manifest_set_blob(&m.daemon_unknown, &m.daemon_unknown_len, NULL, 0, NULL);
  CHECK_CODE(bh_manifest_encode(&m, &out, &len, &err), BH_OK, &err);
  free(out);
  /* Writing into a missing directory fails cleanly. */
  CHECK_CODE(bh_manifest_write("/nonexistent-dir/m.pb", &m, &err),
             BH_MANIFEST_IO, &err);
  bh_manifest_clear(&m);
}

static void make_dir(const char *root, const char *rel) {
  char p[256];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  CHECK(mkdir(p, 0755) == 0);
}

static void make_manifest(const char *root, const char *rel) {
  char p[256];
  snprintf(p, sizeof p, "%s/%s%s" BH_MANIFEST_NAME, root, rel,
           rel[0] ? "/" : "");
  write_bytes(p, (const uint8_t *)"", 0);
}

static size_t find_count(const char *root, int depth) {
  bh_manifest_list l;
  bh_err err;
  bh_status st = bh_manifest_find(root, depth, &l, &err);
  CHECK_CODE(st, BH_OK, &err);
  size_t n = l.count;
  bh_manifest_list_free(&l);
  return n;
}

static void test_find(void) {
  char root[128], out[128], p[256], q[256];
  bh_test_path(root, sizeof root, "tree");
  bh_test_path(out, sizeof out, "outside");
  CHECK(mkdir(root, 0755) == 0 && mkdir(out, 0755) == 0);
  make_manifest(out, "");
  make_manifest(root, "");
  make_dir(root, "a");
  make_manifest(root, "a");
  make_dir(root, "a/b");
  make_manifest(root, "a/b");
  make_dir(root, "a/b/c");
  make_manifest(root, "a/b/c");
  make_dir(root, "x");
  /* Things that must not be listed: a symlinked manifest, temp files of
   * a writer, a loop back to root, a link out of root, a dir named like a
   * manifest. */
  snprintf(p, sizeof p, "%s/x/" BH_MANIFEST_NAME, root);
  snprintf(q, sizeof q, "%s/" BH_MANIFEST_NAME, out);
  CHECK(symlink(q, p) == 0);
  snprintf(p, sizeof p, "%s/x/" BH_MANIFEST_NAME ".tmp.abcdef", root);
  write_bytes(p, (const uint8_t *)"", 0);
  snprintf(p, sizeof p, "%s/loop", root);
  CHECK(symlink(root, p) == 0);
  snprintf(p, sizeof p, "%s/out", root);
  CHECK(symlink(out, p) == 0);
  make_dir(root, "y");
  make_dir(root, "y/" BH_MANIFEST_NAME);

  CHECK_INT(find_count(root, 0), 1);
  CHECK_INT(find_count(root, 1), 2);
  CHECK_INT(find_count(root, 2), 3);
  CHECK_INT(find_count(root, 3), 4);
  CHECK_INT(find_count(root, -1), 4);
  bh_manifest_list l;
  bh_err err;
  snprintf(p, sizeof p, "%s///", root);
  CHECK_CODE(bh_manifest_find(p, -1, &l, &err), BH_OK, &err);
  CHECK_INT(l.count, 4);
  if (l.count == 4) {
    snprintf(q, sizeof q, "%s/" BH_MANIFEST_NAME, root);
    CHECK_STR(l.paths[0], q);
    snprintf(q, sizeof q, "%s/a/b/c/" BH_MANIFEST_NAME, root);
    CHECK_STR(l.paths[3], q);
  }
  bh_manifest_list_free(&l);
  CHECK_CODE(bh_manifest_find("/nonexistent-root", -1, &l, &err),
             BH_MANIFEST_IO, &err);
  snprintf(p, sizeof p, "%s/" BH_MANIFEST_NAME, root);
  CHECK_CODE(bh_manifest_find(p, -1, &l, &err), BH_MANIFEST_IO, &err);
}

static void test_clear_daemon(void) {
  char path[128];
  bh_test_path(path, sizeof path, "clear.pb");
  uint8_t orig[512];
  size_t n = craft_with_unknowns(orig);
  write_bytes(path, orig, n);
  bool had = false;
  bh_err err;
  /* Guarded: a different identity (or another start time) is left. */
  bh_identity other;
  sample_identity(&other);
  other.pid = 1;
  CHECK_CODE(bh_manifest_clear_daemon(path, &other, &had, &err), BH_OK, &err);
  CHECK(!had);
  other.pid = 4242;
  other.started_at_unix_ms++;
  CHECK_CODE(bh_manifest_clear_daemon(path, &other, &had, &err), BH_OK, &err);
  CHECK(!had);
  other.started_at_unix_ms--;
  CHECK_CODE(bh_manifest_clear_daemon(path, &other, &had, &err), BH_OK, &err);
  CHECK(had);
  bh_identity_clear(&other);
  bh_manifest m;
  CHECK_CODE(bh_manifest_read(path, &m, &err), BH_OK, &err);
  CHECK(!m.has_daemon);
  CHECK_STR(m.service_name, "svc");
  CHECK_INT(m.unknown_len, 10);
  CHECK_INT(m.daemon_unknown_len, 0);
  bh_manifest_clear(&m);
  CHECK_CODE(bh_manifest_clear_daemon(path, NULL, &had, &err), BH_OK, &err);
  CHECK(!had);
  CHECK_CODE(bh_manifest_clear_daemon("/nonexistent/m.pb", NULL, &had, &err),
             BH_MANIFEST_IO, &err);
}

/* Fork a writer that stops itself just before rename, SIGKILL it there:
 * the old manifest must be intact and the leftover temp file must not be
 * taken for a manifest. */
static void test_crash_before_rename(void) {
  char dir[128], path[256];
  bh_test_path(dir, sizeof dir, "crash");
  CHECK(mkdir(dir, 0755) == 0);
  snprintf(path, sizeof path, "%s/" BH_MANIFEST_NAME, dir);
  bh_manifest old, neu, got;
  bh_err err;
  sample_manifest(&old, "old");
  sample_manifest(&neu, "new");
  CHECK_CODE(bh_manifest_write(path, &old, &err), BH_OK, &err);
  pid_t pid = fork();
  if (pid == 0) {
    setenv("BH_TEST_MANIFEST_STOP", "1", 1);
    bh_manifest_write(path, &neu, NULL);
    _exit(0);
  }
  CHECK(pid > 0);
  int status = 0;
  CHECK(waitpid(pid, &status, WUNTRACED) == pid);
  CHECK(WIFSTOPPED(status));
  CHECK(kill(pid, SIGKILL) == 0);
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  CHECK_CODE(bh_manifest_read(path, &got, &err), BH_OK, &err);
  CHECK_STR(got.service_name, "old");
  bh_manifest_clear(&got);
  /* The temp file is there, complete, but invisible to find. */
  bh_manifest_list l;
  CHECK_CODE(bh_manifest_find(dir, 0, &l, &err), BH_OK, &err);
  CHECK_INT(l.count, 1);
  bh_manifest_list_free(&l);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "test $(ls -A %s | wc -l) -eq 2", dir);
  CHECK(system(cmd) == 0);
  /* A later write still succeeds and wins. */
  CHECK_CODE(bh_manifest_write(path, &neu, &err), BH_OK, &err);
  CHECK_CODE(bh_manifest_read(path, &got, &err), BH_OK, &err);
  CHECK_STR(got.service_name, "new");
  bh_manifest_clear(&got);
  bh_manifest_clear(&old);
  bh_manifest_clear(&neu);
}

int main(void) {
  int fds = bh_test_count_fds();
  RUN(test_round_trip);
  RUN(test_unknown_fields_kept);
  RUN(test_error_codes);
  RUN(test_encode_rejects_bad_blobs);
  RUN(test_find);
  RUN(test_clear_daemon);
  RUN(test_crash_before_rename);
  CHECK_INT(bh_test_count_fds(), fds);
  return bh_test_summary();
}
