/* Seals and schema versions (design §1.10): every way a manifest can fail
 * to verify gets the real readers' verdict (manifest_corrupt,
 * manifest_schema_too_new), and each of them still reads with verify off
 * (for investigations); what bh_manifest_write writes reads back
 * verified. The broken manifests start from the real implementation's
 * sealed bytes (spec/fixtures) or are sealed here by hand, the way another
 * writer would seal them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "manifest_helpers.h"

/* Expect `want` verified and a successful read without verification. */
static void expect_verdict(const uint8_t *buf, size_t len, bh_status want,
                           const char *what) {
  bh_manifest m;
  bh_err err;
  bh_err_clear(&err);
  bh_status st = bh_manifest_decode(buf, len, true, &m, &err);
  if (st != want) fprintf(stderr, "   case: %s\n", what);
  CHECK_CODE(st, want, &err);
  if (st == BH_OK) bh_manifest_clear(&m);
  if (want != BH_OK) CHECK(err.message[0] != '\0');
  st = bh_manifest_decode(buf, len, false, &m, &err);
  CHECK_CODE(st, BH_OK, &err);
  if (st == BH_OK) {
    CHECK(!m.sealed);
    CHECK_STR(m.pb->service_name, "refpeer");
    bh_manifest_clear(&m);
  }
}

/* The offset of the self_sha256 record (b2 06 20 + 32 bytes) in buf. */
static size_t seal_at(const uint8_t *buf, size_t len) {
  const uint8_t *p = memmem(buf, len, "\xb2\x06\x20", 3);
  CHECK(p != NULL && (size_t)(p - buf) + 35 <= len);
  return p != NULL ? (size_t)(p - buf) : 0;
}

/* Starting from each real sealed manifest: a byte flipped in its content,
 * in its seal, the seal cut out, an unknown field appended. */
static void test_broken_real_seals(void) {
  static const char *const names[] = {
      "rp41/manifest-with-daemon.pb", "rplatest/manifest-with-daemon.pb",
      "rp41/manifest-cleared.pb", "rplatest/manifest-cleared.pb"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    size_t n = 0;
    uint8_t *orig = mh_fixture(names[i], &n);
    uint8_t *buf = malloc(n + 64);
    expect_verdict(orig, n, BH_OK, "as written");
    memcpy(buf, orig, n);
    uint8_t *svc = memmem(buf, n, "refpeer", 7);
    CHECK(svc != NULL);
    if (svc != NULL) svc[6] = 'x'; /* "refpeex": the first string */
    bh_manifest m;
    bh_err err;
    CHECK_CODE(bh_manifest_decode(buf, n, true, &m, &err), BH_MANIFEST_CORRUPT,
               &err);
    CHECK(strstr(err.message, "self_sha256 mismatch") != NULL);
    memcpy(buf, orig, n);
    size_t at = seal_at(buf, n);
    buf[at + 3 + 31] ^= 0x01;
    expect_verdict(buf, n, BH_MANIFEST_CORRUPT, "seal flipped");
    /* Cut out: the rest is exactly what was hashed, but unsealed. */
    memcpy(buf, orig, at);
    memcpy(buf + at, orig + at + 35, n - at - 35);
    expect_verdict(buf, n - 35, BH_MANIFEST_CORRUPT, "seal removed");
    /* A field this schema does not know (150, reserved) added after
     * sealing: dropped on decode, as prost drops it, so what is left is
     * what was sealed, and it verifies (test_hand_sealed has the field
     * inside the seal). */
    memcpy(buf, orig, n);
    memcpy(buf + n, "\xb0\x09\x07", 3);
    expect_verdict(buf, n + 3, BH_OK, "unknown field after the seal");
    free(buf);
    free(orig);
  }
}

/* Seal pb by hand the way a writer that knows more would: SHA-256 of its
 * encoding with no seal, plus extra bytes (fields this schema does not
 * know) appended before hashing and before writing. */
static uint8_t *seal_by_hand(mh_pb *pb, const uint8_t *extra, size_t extra_len,
                             size_t *len) {
  pb->self_sha256.len = 0;
  size_t n = running_process__broker__v1__cache_manifest__get_packed_size(pb);
  uint8_t *bare = malloc(n + extra_len + 1);
  running_process__broker__v1__cache_manifest__pack(pb, bare);
  if (extra_len > 0) memcpy(bare + n, extra, extra_len);
  static uint8_t seal[32];
  bh_digest_bytes(bare, n + extra_len, seal);
  free(bare);
  pb->self_sha256.data = seal;
  pb->self_sha256.len = 32;
  n = running_process__broker__v1__cache_manifest__get_packed_size(pb);
  uint8_t *out = malloc(n + extra_len + 1);
  running_process__broker__v1__cache_manifest__pack(pb, out);
  if (extra_len > 0) memcpy(out + n, extra, extra_len);
  pb->self_sha256.data = NULL;
  pb->self_sha256.len = 0;
  *len = n + extra_len;
  return out;
}

/* A manifest like the fixtures, unsealed, to seal by hand. */
static void base_manifest(bh_manifest *m, int generation) {
  mh_manifest(m, "refpeer", generation);
  m->pb->manifest_schema_version = 1;
  mh_set_str(&m->pb->media_type, BH_MANIFEST_MEDIA_TYPE);
}

/* Seals that are right over what their writer saw, and still refused. */
static void test_hand_sealed(void) {
  bh_manifest m;
  size_t len = 0;
  uint8_t *buf;
  base_manifest(&m, 1);
  /* The baseline: sealed by hand, exactly as we seal. */
  buf = seal_by_hand(m.pb, NULL, 0, &len);
  expect_verdict(buf, len, BH_OK, "sealed by hand");
  free(buf);
  /* Schema version 2, sealed right: too new, whatever the seal says. */
  m.pb->manifest_schema_version = 2;
  buf = seal_by_hand(m.pb, NULL, 0, &len);
  expect_verdict(buf, len, BH_MANIFEST_SCHEMA_TOO_NEW, "schema 2");
  free(buf);
  m.pb->manifest_schema_version = 1;
  /* A field of a newer schema, inside the seal: we drop it, like prost,
   * so the seal no longer matches. */
  buf = seal_by_hand(m.pb, (const uint8_t *)"\xb0\x09\x07", 3, &len);
  expect_verdict(buf, len, BH_MANIFEST_CORRUPT, "unknown field sealed");
  free(buf);
  /* Schema version 0 (older writers) with a right seal reads. */
  m.pb->manifest_schema_version = 0;
  buf = seal_by_hand(m.pb, NULL, 0, &len);
  expect_verdict(buf, len, BH_OK, "schema 0");
  free(buf);
  m.pb->manifest_schema_version = 1;
  /* Both generations in current_daemon, sealed over both: each real
   * reader drops one of them when it re-encodes, so neither verifies. */
  RunningProcess__Broker__V1__DaemonProcess *d = m.pb->current_daemon;
  static uint8_t b3[32] = {0xb3};
  d->exe_hash_algorithm = (char *)"blake3";
  d->exe_hash.data = b3;
  d->exe_hash.len = 32;
  buf = seal_by_hand(m.pb, NULL, 0, &len);
  expect_verdict(buf, len, BH_MANIFEST_CORRUPT, "both generations");
  free(buf);
  d->exe_hash_algorithm = (char *)protobuf_c_empty_string;
  d->exe_hash.data = NULL;
  d->exe_hash.len = 0;
  bh_manifest_clear(&m);
}

/* What we write reads back verified, in either generation and without a
 * daemon; the seal covers everything, host included. */
static void test_written_reads_verified(void) {
  char path[256];
  bh_test_path(path, sizeof path, "written.pb");
  for (int gen = 0; gen <= 2; gen++) {
    bh_manifest m, got;
    bh_err err;
    base_manifest(&m, gen);
    mh_set_host(&m, "0123456789abcdef0123456789abcdef");
    CHECK_CODE(bh_manifest_write(path, &m, &err), BH_OK, &err);
    CHECK_CODE(bh_manifest_read(path, true, &got, &err), BH_OK, &err);
    CHECK(got.sealed);
    CHECK_INT(bh_manifest_generation(&got), gen);
    CHECK(got.pb->host != NULL);
    if (got.pb->host != NULL)
      CHECK_STR(got.pb->host->machine_id, "0123456789abcdef0123456789abcdef");
    bh_manifest_clear(&got);
    /* The file's seal is SHA-256 of the file without the seal record. */
    size_t n = 0;
    uint8_t *file = mh_read_bytes(path, &n);
    size_t at = file != NULL ? seal_at(file, n) : 0;
    if (file != NULL && n >= at + 35) {
      uint8_t want[32];
      memmove(file + at, file + at + 35, n - at - 35);
      bh_digest_bytes(file, n - 35, want);
      CHECK(memcmp(want, m.pb->self_sha256.data, 32) == 0);
    }
    free(file);
    bh_manifest_clear(&m);
  }
}

int main(void) {
  RUN(test_broken_real_seals);
  RUN(test_hand_sealed);
  RUN(test_written_reads_verified);
  return bh_test_summary();
}
