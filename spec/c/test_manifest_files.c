/* Cache manifests on disk: round trip of every generation, unknown fields
 * dropped as prost drops them, every error code, sealing, find with depth
 * limits and symlinks, clear_daemon's outcomes, and the atomic write
 * surviving a writer killed just before its rename. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "digest.h"
#include "manifest_helpers.h"

/* Read path verified and expect service and (or not) a daemon. */
static void expect_read(const char *path, const char *service, int gen) {
  bh_manifest got;
  bh_err err;
  CHECK_CODE(bh_manifest_read(path, true, &got, &err), BH_OK, &err);
  CHECK(got.sealed);
  CHECK_STR(got.pb->service_name, service);
  CHECK_INT(bh_manifest_generation(&got) != 0, gen != 0);
  CHECK_INT(bh_manifest_generation(&got), gen);
  bh_manifest_clear(&got);
}

static void test_round_trip(void) {
  char path[128];
  bh_test_path(path, sizeof path, "rt.pb");
  for (int gen = 1; gen <= 2; gen++) {
    bh_manifest m, got;
    bh_err err;
    mh_manifest(&m, "cache", gen);
    CHECK_CODE(bh_manifest_write(path, &m, &err), BH_OK, &err);
    CHECK(m.sealed);
    CHECK_CODE(bh_manifest_read(path, true, &got, &err), BH_OK, &err);
    CHECK_STR(got.pb->service_name, "cache");
    CHECK_STR(got.pb->service_version, "1.2.3");
    CHECK_STR(got.pb->broker_envelope_version, "v1");
    CHECK_STR(got.pb->broker_instance, "inst-7");
    CHECK_INT(got.pb->created_at_unix_ms, 1);
    CHECK_INT(got.pb->last_active_unix_ms, 2);
    CHECK_INT(got.pb->manifest_schema_version, 1);
    CHECK_STR(got.pb->media_type, BH_MANIFEST_MEDIA_TYPE);
    CHECK(bh_manifest_generation(&got) != 0);
    CHECK_INT(bh_manifest_generation(&got), gen);
    CHECK_INT(got.daemon.digests.algs,
              gen == 1 ? BH_ALG_SHA256 : BH_ALG_BLAKE3);
    CHECK_CODE(bh_identity_compare(&m.daemon, &got.daemon, &err), BH_OK, &err);
    CHECK(got.daemon.has_idle_timeout);
    CHECK_INT(got.daemon.started_at_unix_ms, 1700000000000ull);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0644);
    bh_manifest_clear(&got);
    /* No daemon: reads back as none. */
    CHECK_CODE(bh_manifest_set_daemon(&m, NULL, 0, &err), BH_OK, &err);
    CHECK_CODE(bh_manifest_write(path, &m, &err), BH_OK, &err);
    expect_read(path, "cache", 0);
    bh_manifest_clear(&m);
    CHECK_INT(unlink(path), 0);
  }
}

/* set_daemon writes one generation: the one asked for, else BLAKE3's
 * when the identity has it; a generation the identity has no digest for
 * is refused and changes nothing. */
static void test_set_daemon_generations(void) {
  bh_manifest m;
  bh_identity both;
  bh_err err;
  mh_manifest(&m, "gen", 0);
  mh_identity(&both, BH_ALGS_ALL);
  CHECK_CODE(bh_manifest_set_daemon(&m, &both, 0, &err), BH_OK, &err);
  CHECK_INT(bh_manifest_generation(&m), 2);
  CHECK_INT(m.pb->current_daemon->exe_sha256.len, 0);
  CHECK_INT(m.pb->current_daemon->exe_hash.len, 32);
  CHECK_STR(m.pb->current_daemon->exe_hash_algorithm, "blake3");
  CHECK_INT(m.daemon.digests.algs, BH_ALG_BLAKE3);
  CHECK_CODE(bh_manifest_set_daemon(&m, &both, 1, &err), BH_OK, &err);
  CHECK_INT(bh_manifest_generation(&m), 1);
  CHECK_INT(m.pb->current_daemon->exe_sha256.len, 32);
  CHECK_INT(m.pb->current_daemon->exe_hash.len, 0);
  CHECK_INT(m.daemon.digests.algs, BH_ALG_SHA256);
  bh_identity sha;
  mh_identity(&sha, BH_ALG_SHA256);
  CHECK_CODE(bh_manifest_set_daemon(&m, &sha, 0, &err), BH_OK, &err);
  CHECK_INT(bh_manifest_generation(&m), 1);
  CHECK_CODE(bh_manifest_set_daemon(&m, &sha, 2, &err), BH_INVALID_IDENTITY,
             &err);
  CHECK_INT(bh_manifest_generation(&m), 1);
  CHECK(bh_manifest_generation(&m) != 0 && m.pb->current_daemon != NULL);
  bh_identity_clear(&sha);
  bh_identity_clear(&both);
  bh_manifest_clear(&m);
}

/* Append a varint to buf at *n. */
static void put_varint(uint8_t *buf, size_t *n, uint64_t v) {
  *n += bh_test_varint(v, buf + *n);
}

/* A manifest with unknown fields at the top level (98 as a varint, 99 as
 * bytes) and inside current_daemon (50), written the way a newer writer
 * that knows them would. Unsealed. */
static size_t craft_with_unknowns(uint8_t *buf) {
  mh_pb pm = RUNNING_PROCESS__BROKER__V1__CACHE_MANIFEST__INIT;
  pm.service_name = "svc";
  pm.created_at_unix_ms = 99;
  size_t n = running_process__broker__v1__cache_manifest__pack(&pm, buf);
  bh_identity id;
  mh_identity(&id, BH_ALG_SHA256);
  uint8_t *d = NULL;
  size_t dlen = 0;
  CHECK_CODE(bh_identity_encode(&id, BH_FORM_GEN1, &d, &dlen, NULL), BH_OK,
             NULL);
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

/* Unknown fields used to be kept byte for byte; now, as in the real
 * readers (prost), they are dropped on decode, and what is written back is
 * the canonical, sealed encoding of what is known. */
static void test_unknown_fields_dropped(void) {
  char a[128], b[128];
  bh_test_path(a, sizeof a, "unk-a.pb");
  bh_test_path(b, sizeof b, "unk-b.pb");
  uint8_t orig[512];
  size_t n = craft_with_unknowns(orig);
  mh_write_bytes(a, orig, n);
  bh_manifest m;
  bh_err err;
  CHECK_CODE(bh_manifest_read(a, true, &m, &err), BH_MANIFEST_CORRUPT, &err);
  CHECK_CODE(bh_manifest_read(a, false, &m, &err), BH_OK, &err);
  CHECK(!m.sealed);
  CHECK_STR(m.pb->service_name, "svc");
  CHECK_STR(m.pb->broker_instance, "inst");
  CHECK(bh_manifest_generation(&m) != 0);
  CHECK_INT(m.daemon.pid, 4242);
  CHECK_INT(m.pb->base.n_unknown_fields, 0);
  CHECK_INT(m.pb->current_daemon->base.n_unknown_fields, 0);
  CHECK_CODE(bh_manifest_write(b, &m, &err), BH_OK, &err);
  size_t got_len = 0;
  uint8_t *got = mh_read_bytes(b, &got_len);
  CHECK(got != NULL && memmem(got, got_len, "abc", 3) == NULL);
  CHECK(got != NULL && memmem(got, got_len, "\x90\x03\x07", 3) == NULL);
  free(got);
  bh_manifest again;
  CHECK_CODE(bh_manifest_read(b, true, &again, &err), BH_OK, &err);
  CHECK_STR(again.pb->service_name, "svc");
  CHECK_INT(again.pb->created_at_unix_ms, 99);
  CHECK_CODE(bh_identity_compare(&m.daemon, &again.daemon, &err), BH_OK, &err);
  bh_manifest_clear(&again);
  bh_manifest_clear(&m);
}

/* Decode a manifest whose current_daemon is the given DaemonProcess
 * (unsealed: verify off). */
static bh_status decode_with_daemon(
    RunningProcess__Broker__V1__DaemonProcess *dp, bh_err *err) {
  mh_pb pm = RUNNING_PROCESS__BROKER__V1__CACHE_MANIFEST__INIT;
  pm.current_daemon = dp;
  uint8_t buf[512];
  size_t n = running_process__broker__v1__cache_manifest__pack(&pm, buf);
  bh_manifest m;
  bh_status st = bh_manifest_decode(buf, n, false, &m, err);
  if (st == BH_OK) bh_manifest_clear(&m);
  return st;
}

static void test_error_codes(void) {
  bh_manifest m;
  bh_err err;
  char path[128];
  CHECK_CODE(bh_manifest_read("/nonexistent/x.pb", true, &m, &err),
             BH_MANIFEST_IO, &err);
  CHECK(strstr(err.message, "/nonexistent/x.pb") != NULL);
  CHECK(strstr(err.message, strerror(ENOENT)) != NULL);
  CHECK_CODE(bh_manifest_read(bh_test_tmpdir(), true, &m, &err), BH_MANIFEST_IO,
             &err);
  bh_test_path(path, sizeof path, "garbage.pb");
  mh_write_bytes(path, "\xff\xff\xff", 3);
  CHECK_CODE(bh_manifest_read(path, true, &m, &err), BH_MANIFEST_DECODE, &err);
  CHECK_CODE(bh_manifest_read(path, false, &m, &err), BH_MANIFEST_DECODE, &err);
  /* Top-level string holding NUL / invalid UTF-8. */
  static const uint8_t nul[] = {0x0a, 0x03, 'a', 0, 'b'};
  CHECK_CODE(bh_manifest_decode(nul, sizeof nul, false, &m, &err),
             BH_MANIFEST_DECODE, &err);
  static const uint8_t bad8[] = {0x12, 0x02, 0xc3, 0x28};
  CHECK_CODE(bh_manifest_decode(bad8, sizeof bad8, false, &m, &err),
             BH_MANIFEST_DECODE, &err);
  /* Field number 0 in a two-byte key: prost refuses it. */
  static const uint8_t zero[] = {0x80, 0x00, 0x01};
  CHECK_CODE(bh_manifest_decode(zero, sizeof zero, false, &m, &err),
             BH_MANIFEST_DECODE, &err);
  /* An empty file is an all-defaults manifest, which is not sealed. */
  CHECK_CODE(bh_manifest_decode((const uint8_t *)"", 0, true, &m, &err),
             BH_MANIFEST_CORRUPT, &err);
  CHECK_CODE(bh_manifest_decode((const uint8_t *)"", 0, false, &m, &err), BH_OK,
             &err);
  CHECK(bh_manifest_generation(&m) == 0);
  CHECK_INT(bh_manifest_generation(&m), 0);
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
  dp.exe_sha256.len = 0;
  dp.exe_hash_algorithm = "blake3";
  dp.exe_hash.data = sha;
  dp.exe_hash.len = 31;
  CHECK_CODE(decode_with_daemon(&dp, &err), BH_INVALID_HASH_LENGTH, &err);
  dp.exe_hash.len = 32;
  CHECK_CODE(decode_with_daemon(&dp, &err), BH_OK, &err);
  dp.exe_hash_algorithm = "sha1";
  CHECK_CODE(decode_with_daemon(&dp, &err), BH_UNSUPPORTED_HASH_ALGORITHM,
             &err);
  dp.exe_hash_algorithm = "";
  dp.exe_sha256.len = 32;
  dp.exe_hash.len = 0;
  /* A string that is not UTF-8 anywhere in the manifest, its daemon's
   * included, makes the whole manifest undecodable, as prost says (it was
   * the daemon's decode_identity before). */
  dp.exe_path = "/bin/\xc3\x28";
  CHECK_CODE(decode_with_daemon(&dp, &err), BH_MANIFEST_DECODE, &err);
  dp.exe_path = "/bin/x";
  ep.path = "/p\xff.sock";
  CHECK_CODE(decode_with_daemon(&dp, &err), BH_MANIFEST_DECODE, &err);
}

/* seal_encode: schema version 1, media_type only when empty, and
 * self_sha256 = SHA-256 of the encoding without it (computed here with
 * protobuf-c on a copy that has no seal). */
static void test_seal_encode(void) {
  bh_manifest m;
  bh_err err;
  mh_manifest(&m, "seal", 2);
  m.pb->manifest_schema_version = 0;
  uint8_t *out = NULL;
  size_t len = 0;
  CHECK_CODE(bh_manifest_seal_encode(m.pb, &out, &len, &err), BH_OK, &err);
  CHECK_INT(m.pb->manifest_schema_version, 1);
  CHECK_STR(m.pb->media_type, BH_MANIFEST_MEDIA_TYPE);
  CHECK_INT(m.pb->self_sha256.len, 32);
  ProtobufCBinaryData seal = m.pb->self_sha256;
  m.pb->self_sha256.len = 0;
  size_t n = running_process__broker__v1__cache_manifest__get_packed_size(m.pb);
  uint8_t *bare = malloc(n + 1);
  running_process__broker__v1__cache_manifest__pack(m.pb, bare);
  m.pb->self_sha256 = seal;
  uint8_t want[32];
  bh_digest_bytes(bare, n, want);
  CHECK(memcmp(want, seal.data, 32) == 0);
  CHECK_INT(len, n + 35); /* b2 06 20 + 32 bytes */
  free(bare);
  free(out);
  /* A media type of its own is kept (the original sets it only when
   * empty), and the seal covers it. */
  mh_set_str(&m.pb->media_type, "application/x-other");
  out = NULL;
  CHECK_CODE(bh_manifest_seal_encode(m.pb, &out, &len, &err), BH_OK, &err);
  CHECK_STR(m.pb->media_type, "application/x-other");
  bh_manifest back;
  CHECK_CODE(bh_manifest_decode(out, len, true, &back, &err), BH_OK, &err);
  CHECK_STR(back.pb->media_type, "application/x-other");
  bh_manifest_clear(&back);
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
  mh_write_bytes(p, "", 0);
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
   * manifest, a FIFO named like one. */
  snprintf(p, sizeof p, "%s/x/" BH_MANIFEST_NAME, root);
  snprintf(q, sizeof q, "%s/" BH_MANIFEST_NAME, out);
  CHECK(symlink(q, p) == 0);
  snprintf(p, sizeof p, "%s/x/." BH_MANIFEST_NAME ".tmp.abcdef", root);
  mh_write_bytes(p, "", 0);
  snprintf(p, sizeof p, "%s/loop", root);
  CHECK(symlink(root, p) == 0);
  snprintf(p, sizeof p, "%s/out", root);
  CHECK(symlink(out, p) == 0);
  make_dir(root, "y");
  make_dir(root, "y/" BH_MANIFEST_NAME);
  make_dir(root, "z");
  snprintf(p, sizeof p, "%s/z/" BH_MANIFEST_NAME, root);
  CHECK(mkfifo(p, 0600) == 0);

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
  bh_manifest m;
  bh_err err;
  mh_manifest(&m, "svc", 1);
  CHECK_CODE(bh_manifest_write(path, &m, &err), BH_OK, &err);
  bh_clear_outcome out = BH_CLEAR_DONE;
  /* Guarded: a different identity (or another start time) is left. */
  bh_identity other;
  mh_identity(&other, BH_ALG_SHA256);
  other.pid = 1;
  CHECK_CODE(bh_manifest_clear_daemon(path, &other, &out, &err), BH_OK, &err);
  CHECK_INT(out, BH_CLEAR_OTHER);
  other.pid = 4242;
  other.started_at_unix_ms++;
  CHECK_CODE(bh_manifest_clear_daemon(path, &other, &out, &err), BH_OK, &err);
  CHECK_INT(out, BH_CLEAR_OTHER);
  other.started_at_unix_ms--;
  expect_read(path, "svc", 1);
  CHECK_CODE(bh_manifest_clear_daemon(path, &other, &out, &err), BH_OK, &err);
  CHECK_INT(out, BH_CLEAR_DONE);
  bh_identity_clear(&other);
  /* Resealed, everything else kept. */
  bh_manifest got;
  CHECK_CODE(bh_manifest_read(path, true, &got, &err), BH_OK, &err);
  CHECK(bh_manifest_generation(&got) == 0);
  CHECK_INT(bh_manifest_generation(&got), 0);
  CHECK_STR(got.pb->service_name, "svc");
  CHECK_STR(got.pb->broker_instance, "inst-7");
  CHECK_INT(got.pb->last_active_unix_ms, 2);
  bh_manifest_clear(&got);
  CHECK_CODE(bh_manifest_clear_daemon(path, NULL, &out, &err), BH_OK, &err);
  CHECK_INT(out, BH_CLEAR_NONE);
  CHECK_CODE(bh_manifest_clear_daemon("/nonexistent/m.pb", NULL, &out, &err),
             BH_MANIFEST_IO, &err);
  /* Generation 2 clears the same way. */
  bh_manifest_clear(&m);
  mh_manifest(&m, "svc2", 2);
  CHECK_CODE(bh_manifest_write(path, &m, &err), BH_OK, &err);
  CHECK_CODE(bh_manifest_clear_daemon(path, &m.daemon, &out, &err), BH_OK,
             &err);
  CHECK_INT(out, BH_CLEAR_DONE);
  expect_read(path, "svc2", 0);
  bh_manifest_clear(&m);
}

/* A manifest that does not verify is never rewritten by a clean-up:
 * its bytes are exactly what they were. */
static void test_clear_refuses_unverified(void) {
  char path[128];
  bh_test_path(path, sizeof path, "unverified.pb");
  uint8_t orig[512];
  size_t n = craft_with_unknowns(orig);
  mh_write_bytes(path, orig, n);
  bh_clear_outcome out = BH_CLEAR_DONE;
  bh_err err;
  CHECK_CODE(bh_manifest_clear_daemon(path, NULL, &out, &err),
             BH_MANIFEST_CORRUPT, &err);
  CHECK(mh_file_is(path, orig, n));
  mh_write_bytes(path, "\xff\xff", 2);
  CHECK_CODE(bh_manifest_clear_daemon(path, NULL, &out, &err),
             BH_MANIFEST_DECODE, &err);
  CHECK(mh_file_is(path, (const uint8_t *)"\xff\xff", 2));
}

/* The child of test_crash_before_rename: write a manifest for service. */
static int child_write(const char *path, const char *service) {
  bh_manifest m;
  bh_err err;
  mh_manifest(&m, service, 2);
  bh_status st = bh_manifest_write(path, &m, &err);
  bh_manifest_clear(&m);
  return st == BH_OK ? 0 : 1;
}

/* A writer stopped just before rename (the shim) and SIGKILLed there:
 * the old manifest must be intact and the leftover temp file must not be
 * taken for a manifest. */
static void test_crash_before_rename(void) {
  char dir[128], path[256];
  bh_test_path(dir, sizeof dir, "crash");
  CHECK(mkdir(dir, 0755) == 0);
  snprintf(path, sizeof path, "%s/" BH_MANIFEST_NAME, dir);
  bh_manifest old;
  bh_err err;
  mh_manifest(&old, "old", 1);
  CHECK_CODE(bh_manifest_write(path, &old, &err), BH_OK, &err);
  char *argv[] = {"test_manifest_files", "write", path, "new", NULL};
  pid_t pid = mh_spawn_shimmed(argv, 1);
  CHECK(pid > 0);
  CHECK(mh_wait_stopped(pid));
  CHECK(kill(pid, SIGKILL) == 0);
  CHECK_INT(mh_wait_exit(pid), -1);
  expect_read(path, "old", 1);
  /* The temp file is there, but invisible to find. */
  bh_manifest_list l;
  CHECK_CODE(bh_manifest_find(dir, 0, &l, &err), BH_OK, &err);
  CHECK_INT(l.count, 1);
  bh_manifest_list_free(&l);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "test $(ls -A %s | wc -l) -eq 2", dir);
  CHECK(system(cmd) == 0);
  /* Unstopped, the same writer succeeds and wins. */
  pid = mh_spawn_shimmed(argv, 0);
  CHECK_INT(mh_wait_exit(pid), 0);
  expect_read(path, "new", 2);
  bh_manifest_clear(&old);
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "write") == 0)
    return child_write(argv[2], argv[3]);
  int fds = bh_test_count_fds();
  RUN(test_round_trip);
  RUN(test_set_daemon_generations);
  RUN(test_unknown_fields_dropped);
  RUN(test_error_codes);
  RUN(test_seal_encode);
  RUN(test_find);
  RUN(test_clear_daemon);
  RUN(test_clear_refuses_unverified);
  RUN(test_crash_before_rename);
  CHECK_INT(bh_test_count_fds(), fds);
  return bh_test_summary();
}
