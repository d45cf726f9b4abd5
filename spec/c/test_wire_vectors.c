/* The golden vectors of the real running-process (spec/fixtures: 4.1.0 in
 * rp41/, generation 1; 4.10.6 in rplatest/, generation 2): their sealed
 * manifests decode, verify and re-encode byte for byte, a clear produces
 * the original's cleared file exactly, each probe answer validates against
 * its request and identity and holds exactly the bytes our encoder writes
 * for that identity, both JSON forms of an identity read the same, and
 * BLAKE3 and SHA-256 give the test values. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"
#include "frame.pb-c.h"
#include "manifest_helpers.h"
#include "wire.h"

static const char *const GENS[] = {"rp41", "rplatest"};

/* fixture GEN/NAME, read whole. */
static uint8_t *fixture(const char *gen, const char *name, size_t *len) {
  char rel[128];
  snprintf(rel, sizeof rel, "%s/%s", gen, name);
  return mh_fixture(rel, len);
}

/* The identity of GEN/identity-project.json (our JSON form). */
static void project_identity(const char *gen, bh_identity *id) {
  size_t n = 0;
  uint8_t *text = fixture(gen, "identity-project.json", &n);
  bh_err err;
  bh_identity_init(id);
  CHECK_CODE(bh_identity_from_json((const char *)text, n, id, &err), BH_OK,
             &err);
  free(text);
}

/* The same algorithms, and equal bytes for each. */
static bool digests_same(const bh_digests *a, const bh_digests *b) {
  return a->algs == b->algs &&
         (!(a->algs & BH_ALG_SHA256) ||
          memcmp(a->sha256, b->sha256, 32) == 0) &&
         (!(a->algs & BH_ALG_BLAKE3) || memcmp(a->blake3, b->blake3, 32) == 0);
}

/* Every field equal, the digests included. */
static bool identity_same(const bh_identity *a, const bh_identity *b) {
  return a->pid == b->pid && strcmp(a->exe_path, b->exe_path) == 0 &&
         digests_same(&a->digests, &b->digests) &&
         strcmp(a->boot_id, b->boot_id) == 0 &&
         bh_endpoint_equal(&a->endpoint, &b->endpoint) &&
         a->started_at_unix_ms == b->started_at_unix_ms &&
         a->has_idle_timeout == b->has_idle_timeout &&
         a->idle_timeout_secs == b->idle_timeout_secs;
}

/* Decode GEN/name verified; the caller clears *m. */
static void decode_fixture(const char *gen, const char *name, bh_manifest *m) {
  size_t n = 0;
  uint8_t *buf = fixture(gen, name, &n);
  bh_err err;
  memset(m, 0, sizeof *m);
  CHECK_CODE(bh_manifest_decode(buf, n, true, m, &err), BH_OK, &err);
  free(buf);
}

/* The manifest with a daemon: verified, its generation, its fields, its
 * daemon the identity of identity-project.json (a generation-2 record
 * carries only the BLAKE3 digest of it). */
static void test_manifest_decode(void) {
  for (int g = 0; g < 2; g++) {
    bh_manifest m;
    bh_identity want;
    bh_err err;
    decode_fixture(GENS[g], "manifest-with-daemon.pb", &m);
    if (m.pb == NULL) continue;
    CHECK(m.sealed);
    CHECK_INT(bh_manifest_generation(&m), g + 1);
    CHECK_STR(m.pb->service_name, "refpeer");
    CHECK_STR(m.pb->service_version, g == 0 ? "4.1.0" : "4.10.6");
    CHECK_STR(m.pb->broker_instance, "refpeer");
    CHECK_INT(m.pb->manifest_schema_version, 1);
    CHECK_STR(m.pb->media_type, BH_MANIFEST_MEDIA_TYPE);
    CHECK(m.pb->host != NULL);
    if (m.pb->host != NULL) {
      CHECK_STR(m.pb->host->hostname, "vm");
      CHECK_STR(m.pb->host->machine_id, "3d1219c7c4c5404aaa1f6d2a48adfda4");
      CHECK_INT(m.pb->host->fs_dev_id, 65024);
    }
    CHECK(bh_manifest_generation(&m) != 0);
    project_identity(GENS[g], &want);
    CHECK_CODE(bh_identity_compare(&want, &m.daemon, &err), BH_OK, &err);
    want.digests.algs &= g == 0 ? BH_ALG_SHA256 : BH_ALG_BLAKE3;
    CHECK(identity_same(&want, &m.daemon));
    bh_identity_clear(&want);
    bh_manifest_clear(&m);
  }
}

/* Sealing what was decoded gives back the file, byte for byte; so does the
 * cleared file. */
static void test_manifest_reencode(void) {
  static const char *const names[] = {"manifest-with-daemon.pb",
                                      "manifest-cleared.pb"};
  for (int g = 0; g < 2; g++)
    for (int k = 0; k < 2; k++) {
      bh_manifest m;
      bh_err err;
      size_t n = 0, len = 0;
      uint8_t *file = fixture(GENS[g], names[k], &n), *out = NULL;
      decode_fixture(GENS[g], names[k], &m);
      if (m.pb == NULL) continue;
      CHECK_INT(bh_manifest_generation(&m) != 0, k == 0);
      CHECK_CODE(bh_manifest_seal_encode(m.pb, &out, &len, &err), BH_OK, &err);
      CHECK_INT(len, n);
      CHECK(out != NULL && len == n && memcmp(out, file, n) == 0);
      free(out);
      free(file);
      bh_manifest_clear(&m);
    }
}

/* clear_daemon on a copy gives exactly the original's cleared file, and
 * keeps the copy's mode. */
static void test_manifest_clear(void) {
  for (int g = 0; g < 2; g++) {
    char path[256], rel[128];
    snprintf(rel, sizeof rel, "%s.pb", GENS[g]);
    bh_test_path(path, sizeof path, rel);
    snprintf(rel, sizeof rel, "%s/manifest-with-daemon.pb", GENS[g]);
    mh_copy_fixture(rel, path);
    CHECK_INT(chmod(path, 0640), 0);
    bh_identity want;
    project_identity(GENS[g], &want);
    bh_clear_outcome out = BH_CLEAR_NONE;
    bh_err err;
    CHECK_CODE(bh_manifest_clear_daemon(path, &want, &out, &err), BH_OK, &err);
    CHECK_INT(out, BH_CLEAR_DONE);
    size_t n = 0;
    uint8_t *cleared = fixture(GENS[g], "manifest-cleared.pb", &n);
    CHECK(mh_file_is(path, cleared, n));
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 07777) == 0640);
    free(cleared);
    bh_identity_clear(&want);
  }
}

/* request.bin's nonce and id: the request as our responder reads it. */
static void read_request(const char *gen, bh_request *req) {
  size_t n = 0, used = 0;
  uint8_t *buf = fixture(gen, "request.bin", &n);
  bh_frame_reader r;
  bh_err err;
  bh_frame_reader_init(&r);
  CHECK_INT(bh_frame_reader_feed(&r, buf, n, &used, &err), BH_READ_DONE);
  CHECK_INT(used, n);
  memset(req, 0, sizeof *req);
  CHECK_CODE(bh_probe_request_validate(r.body, r.body_len, req, &err), BH_OK,
             &err);
  bh_frame_reader_free(&r);
  free(buf);
}

/* Our own request for nonce 00 01 .. 1f is request.bin, byte for byte. */
static void test_request_bytes(void) {
  uint8_t nonce[BH_NONCE_LEN], *out = NULL;
  for (int i = 0; i < BH_NONCE_LEN; i++)
    nonce[i] = (uint8_t)i;
  size_t len = 0, n = 0;
  bh_err err;
  CHECK_CODE(bh_probe_request_build(nonce, &out, &len, &err), BH_OK, &err);
  for (int g = 0; g < 2; g++) {
    uint8_t *file = fixture(GENS[g], "request.bin", &n);
    CHECK(out != NULL && len == n && memcmp(out, file, n) == 0);
    bh_request req;
    read_request(GENS[g], &req);
    CHECK(memcmp(req.nonce, nonce, BH_NONCE_LEN) == 0);
    CHECK(req.request_id == 0x0706050403020100ull);
    bh_request_clear(&req);
    free(file);
  }
  free(out);
}

/* The body of response.bin (malloc'd). */
static uint8_t *response_body(const char *gen, size_t *len) {
  size_t n = 0, used = 0;
  uint8_t *buf = fixture(gen, "response.bin", &n), *body = NULL;
  bh_frame_reader r;
  bh_err err;
  bh_frame_reader_init(&r);
  CHECK_INT(bh_frame_reader_feed(&r, buf, n, &used, &err), BH_READ_DONE);
  CHECK_INT(used, n);
  *len = r.body_len;
  body = malloc(r.body_len + 1);
  memcpy(body, r.body, r.body_len);
  bh_frame_reader_free(&r);
  free(buf);
  return body;
}

/* Each answer validates against its request's nonce and the identity it
 * was checked against, and carries that identity back. */
static void test_response_validates(void) {
  for (int g = 0; g < 2; g++) {
    bh_request req;
    bh_identity want, got;
    bh_err err;
    size_t len = 0;
    read_request(GENS[g], &req);
    project_identity(GENS[g], &want);
    bh_identity_init(&got);
    uint8_t *body = response_body(GENS[g], &len);
    CHECK_CODE(bh_probe_response_validate(body, len, req.request_id, req.nonce,
                                          &want, &got, &err),
               BH_OK, &err);
    CHECK(identity_same(&want, &got));
    free(body);
    bh_identity_clear(&got);
    bh_identity_clear(&want);
    bh_request_clear(&req);
  }
}

/* The identity bytes inside each answer, against our encoder: 4.10.6
 * answers in exactly our answer form (generation 2, then tag 3 appended);
 * 4.1.0 answers with its record as is (tags 1-7 in order), which is our
 * generation-1 form; our answer for that SHA-256-only identity holds the
 * same fields with tag 3 last, and reads back the same. */
static void test_answer_bytes(void) {
  for (int g = 0; g < 2; g++) {
    size_t len = 0;
    uint8_t *body = response_body(GENS[g], &len);
    RunningProcess__Broker__V1__Frame *f =
        running_process__broker__v1__frame__unpack(NULL, len, body);
    CHECK(f != NULL && f->payload.len > BH_NONCE_LEN);
    if (f == NULL || f->payload.len <= BH_NONCE_LEN) continue;
    const uint8_t *theirs = f->payload.data + BH_NONCE_LEN;
    size_t theirs_len = f->payload.len - BH_NONCE_LEN;
    bh_identity want, back;
    bh_err err;
    project_identity(GENS[g], &want);
    uint8_t *answer = NULL, *gen1 = NULL;
    size_t answer_len = 0, gen1_len = 0;
    CHECK_CODE(
        bh_identity_encode(&want, BH_FORM_ANSWER, &answer, &answer_len, &err),
        BH_OK, &err);
    if (g == 1) {
      CHECK_INT(answer_len, theirs_len);
      CHECK(answer_len == theirs_len &&
            memcmp(answer, theirs, theirs_len) == 0);
      /* The trailer: tag 3 with the SHA-256, after tag 9. */
      CHECK(theirs_len > 34 && theirs[theirs_len - 34] == 0x1a &&
            theirs[theirs_len - 33] == 0x20 &&
            memcmp(theirs + theirs_len - 32, want.digests.sha256, 32) == 0);
    } else {
      CHECK_CODE(
          bh_identity_encode(&want, BH_FORM_GEN1, &gen1, &gen1_len, &err),
          BH_OK, &err);
      CHECK(gen1_len == theirs_len && memcmp(gen1, theirs, theirs_len) == 0);
      CHECK_INT(answer_len, theirs_len);
      CHECK(answer_len == theirs_len &&
            memcmp(answer, theirs, theirs_len) != 0);
      bh_identity_init(&back);
      CHECK_CODE(bh_identity_decode(answer, answer_len, &back, &err), BH_OK,
                 &err);
      CHECK(identity_same(&want, &back));
      bh_identity_clear(&back);
    }
    free(gen1);
    free(answer);
    bh_identity_clear(&want);
    running_process__broker__v1__frame__free_unpacked(f, NULL);
    free(body);
  }
}

/* The serde sidecar and our JSON form read to the same identity; our JSON
 * of it is identity-project.json without its newline. */
static void test_identity_json(void) {
  for (int g = 0; g < 2; g++) {
    size_t n = 0, pn = 0;
    uint8_t *serde = fixture(GENS[g], "identity.json", &n);
    uint8_t *project = fixture(GENS[g], "identity-project.json", &pn);
    bh_identity a, b;
    bh_err err;
    bh_identity_init(&a);
    CHECK_CODE(bh_identity_from_json((const char *)serde, n, &a, &err), BH_OK,
               &err);
    project_identity(GENS[g], &b);
    CHECK(identity_same(&a, &b));
    CHECK_INT(a.digests.algs, g == 0 ? BH_ALG_SHA256 : BH_ALGS_ALL);
    char *text = bh_identity_to_json(&a);
    CHECK(pn > 0 && project[pn - 1] == '\n');
    CHECK(text != NULL && strlen(text) == pn - 1 &&
          memcmp(text, project, pn - 1) == 0);
    if (text != NULL && strlen(text) != pn - 1)
      fprintf(stderr, "   ours:   %s\n   theirs: %.*s", text, (int)pn,
              (const char *)project);
    free(text);
    bh_identity_clear(&a);
    bh_identity_clear(&b);
    free(project);
    free(serde);
  }
}

/* The value of "key: HEX" in text (64 hex digits), decoded. */
static bool text_digest(const char *text, const char *key, uint8_t out[32]) {
  const char *at = strstr(text, key);
  return at != NULL &&
         bh_hex_decode(at + strlen(key), BH_DIGEST_HEX_LEN, out, BH_DIGEST_LEN);
}

/* The identity's digests are those of the binary the vectors ran. */
static void test_exe_digests(void) {
  size_t n = 0;
  char *text = (char *)fixture("rplatest", "blake3-of-exe.txt", &n);
  uint8_t b3[32], sha[32];
  CHECK(text_digest(text, "blake3: ", b3));
  CHECK(text_digest(text, "sha256: ", sha));
  bh_identity id;
  project_identity("rplatest", &id);
  CHECK(memcmp(id.digests.blake3, b3, 32) == 0);
  CHECK(memcmp(id.digests.sha256, sha, 32) == 0);
  bh_identity_clear(&id);
  free(text);
}

/* One line of blake3-vectors.txt: "input | size | blake3 | sha256". */
static void check_vector(const char *line, const uint8_t *data, size_t len) {
  char path[256];
  uint8_t b3[32], sha[32], got[32];
  const char *p1 = strstr(line, " | "), *p2 = p1 ? strstr(p1 + 3, " | ") : NULL;
  CHECK(p2 != NULL);
  if (p2 == NULL) return;
  CHECK(strtoull(p1 + 3, NULL, 10) == len);
  CHECK(bh_hex_decode(p2 + 3, 64, b3, 32));
  CHECK(bh_hex_decode(p2 + 3 + 64 + 3, 64, sha, 32));
  bh_blake3_bytes(data, len, got);
  CHECK(memcmp(got, b3, 32) == 0);
  bh_digest_bytes(data, len, got);
  CHECK(memcmp(got, sha, 32) == 0);
  mh_write_bytes(bh_test_path(path, sizeof path, "vector"), data, len);
  bh_digests d;
  bh_err err;
  CHECK_CODE(bh_digest_file(path, BH_ALGS_ALL, &d, &err), BH_OK, &err);
  CHECK(memcmp(d.blake3, b3, 32) == 0);
  CHECK(memcmp(d.sha256, sha, 32) == 0);
  CHECK_INT(unlink(path), 0);
}

/* The empty input, "abc", 1 MiB of 'a': through memory and through a file
 * (1 MiB is four of the digest's read chunks). */
static void test_blake3_vectors(void) {
  size_t n = 0;
  char *text = (char *)fixture("rplatest", "blake3-vectors.txt", &n);
  size_t mib = 1 << 20;
  uint8_t *a = malloc(mib);
  memset(a, 'a', mib);
  const char *l0 = strstr(text, "\nempty input |");
  const char *l1 = strstr(text, "\n\"abc\" (61 62 63) |");
  const char *l2 = strstr(text, "\n1 MiB of 0x61");
  CHECK(l0 != NULL && l1 != NULL && l2 != NULL);
  if (l0 != NULL) check_vector(l0 + 1, (const uint8_t *)"", 0);
  if (l1 != NULL) check_vector(l1 + 1, (const uint8_t *)"abc", 3);
  if (l2 != NULL) check_vector(l2 + 1, a, mib);
  free(a);
  free(text);
}

int main(void) {
  RUN(test_manifest_decode);
  RUN(test_manifest_reencode);
  RUN(test_manifest_clear);
  RUN(test_request_bytes);
  RUN(test_response_validates);
  RUN(test_answer_bytes);
  RUN(test_identity_json);
  RUN(test_exe_digests);
  RUN(test_blake3_vectors);
  return bh_test_summary();
}
