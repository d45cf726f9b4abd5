/* Identity generations on the wire (design §1.4, §1.9): answers of either
 * generation against expectations of either, the digest both sides must
 * share, the digest codes (unsupported_hash_algorithm, invalid_hash_length,
 * invalid_sha256_length), err.fields with several differing fields, the
 * JSON of generation 2, and the same through our own prober and responder
 * over a real socket. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.pb-c.h"
#include "loop.h"
#include "net_helpers.h"
#include "wire.h"

enum { SHA = BH_ALG_SHA256, B3 = BH_ALG_BLAKE3, BOTH = BH_ALGS_ALL };

/* 64 hex digits and the closing quote of a JSON string. */
#define AA "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""
#define ZERO \
  "0000000000000000000000000000000000000000000000000000000000000000\""

/* A daemon's identity with the digests of algs. */
static void ident(bh_identity *id, unsigned algs) {
  bh_identity_init(id);
  id->pid = 77;
  id->exe_path = strdup("/usr/bin/d");
  id->boot_id = strdup("boot");
  bh_endpoint_set(&id->endpoint, "ns", "/run/d.sock", NULL);
  id->digests.algs = algs;
  memset(id->digests.sha256, 0x5a, 32);
  memset(id->digests.blake3, 0xb3, 32);
  id->started_at_unix_ms = 1700000000000ull;
}

/* Validate an answer carrying the identity bytes pb against expected;
 * *got (may be NULL) receives what was decoded. */
static bh_status validate(const uint8_t *pb, size_t len,
                          const bh_identity *expected, bh_identity *got,
                          bh_err *err) {
  bh_request req;
  memset(&req, 0, sizeof req);
  for (int i = 0; i < BH_NONCE_LEN; i++)
    req.nonce[i] = (uint8_t)(i * 3);
  req.request_id = bh_request_id_from_nonce(req.nonce);
  uint8_t *frame = NULL;
  size_t flen = 0;
  bh_status st = bh_probe_response_build_raw(&req, pb, len, &frame, &flen, err);
  if (st == BH_OK)
    st = bh_probe_response_validate(frame + BH_FRAME_HEADER_LEN,
                                    flen - BH_FRAME_HEADER_LEN, req.request_id,
                                    req.nonce, expected, got, err);
  free(frame);
  return st;
}

/* The answer of a daemon with digests `have` in form, against a record
 * with `want`. */
static bh_status answer(unsigned have, bh_id_form form, unsigned want,
                        bh_err *err) {
  bh_identity d, rec;
  ident(&d, have);
  ident(&rec, want);
  uint8_t *pb = NULL;
  size_t len = 0;
  bh_status st = bh_identity_encode(&d, form, &pb, &len, err);
  if (st == BH_OK) st = validate(pb, len, &rec, NULL, err);
  free(pb);
  bh_identity_clear(&d);
  bh_identity_clear(&rec);
  return st;
}

/* Every pairing of a daemon's answer and a record: they verify exactly
 * when they share a digest. */
static void test_mixed_pairs(void) {
  bh_err err;
  /* A 4.10.4+ daemon (both digests, tag 3 appended) and a generation-1
   * record, or a generation-2 one, or one with both. */
  CHECK_CODE(answer(BOTH, BH_FORM_ANSWER, SHA, &err), BH_OK, &err);
  CHECK_CODE(answer(BOTH, BH_FORM_ANSWER, B3, &err), BH_OK, &err);
  CHECK_CODE(answer(BOTH, BH_FORM_ANSWER, BOTH, &err), BH_OK, &err);
  /* A 4.1 daemon (tags 1-7) and records of either generation. */
  CHECK_CODE(answer(SHA, BH_FORM_GEN1, SHA, &err), BH_OK, &err);
  CHECK_CODE(answer(SHA, BH_FORM_GEN1, BOTH, &err), BH_OK, &err);
  CHECK_CODE(answer(SHA, BH_FORM_GEN1, B3, &err), BH_UNSUPPORTED_HASH_ALGORITHM,
             &err);
  CHECK(strstr(err.message, "no digest in common") != NULL);
  /* A 4.10.3 daemon (generation 2, no tag 3) and a generation-1 record. */
  CHECK_CODE(answer(BOTH, BH_FORM_GEN2, B3, &err), BH_OK, &err);
  CHECK_CODE(answer(BOTH, BH_FORM_GEN2, BOTH, &err), BH_OK, &err);
  CHECK_CODE(answer(BOTH, BH_FORM_GEN2, SHA, &err),
             BH_UNSUPPORTED_HASH_ALGORITHM, &err);
  /* Our answer for an identity of one generation. */
  CHECK_CODE(answer(SHA, BH_FORM_ANSWER, SHA, &err), BH_OK, &err);
  CHECK_CODE(answer(B3, BH_FORM_ANSWER, B3, &err), BH_OK, &err);
  CHECK_CODE(answer(B3, BH_FORM_ANSWER, SHA, &err),
             BH_UNSUPPORTED_HASH_ALGORITHM, &err);
}

/* Digests that both sides carry are all compared. */
static void test_digest_mismatches(void) {
  bh_identity d, rec;
  bh_err err;
  uint8_t *pb = NULL;
  size_t len = 0;
  ident(&rec, BOTH);
  for (int which = 0; which < 3; which++) {
    ident(&d, BOTH);
    if (which != 1) d.digests.sha256[0] ^= 1;
    if (which != 0) d.digests.blake3[31] ^= 1;
    CHECK_CODE(bh_identity_encode(&d, BH_FORM_ANSWER, &pb, &len, &err), BH_OK,
               &err);
    bh_err_clear(&err);
    CHECK_CODE(validate(pb, len, &rec, NULL, &err), BH_IDENTITY_MISMATCH, &err);
    CHECK_STR(err.field, which == 1 ? "exe_hash" : "exe_sha256");
    CHECK_INT(err.nfields, which == 2 ? 2 : 1);
    if (which == 2) CHECK_STR(err.fields[1], "exe_hash");
    /* A record with only the other digest does not see the difference. */
    rec.digests.algs = which == 0 ? B3 : SHA;
    if (which < 2) CHECK_CODE(validate(pb, len, &rec, NULL, &err), BH_OK, &err);
    rec.digests.algs = BOTH;
    free(pb);
    bh_identity_clear(&d);
  }
  bh_identity_clear(&rec);
}

/* A DaemonProcess built field by field (generation 2 unless changed). */
static size_t pack_gen2(const char *alg, size_t hash_len, size_t sha_len,
                        uint8_t *out) {
  static uint8_t hash[40], sha[40];
  memset(hash, 0xb3, sizeof hash);
  memset(sha, 0x5a, sizeof sha);
  RunningProcess__Broker__V1__Endpoint ep =
      RUNNING_PROCESS__BROKER__V1__ENDPOINT__INIT;
  RunningProcess__Broker__V1__DaemonProcess m =
      RUNNING_PROCESS__BROKER__V1__DAEMON_PROCESS__INIT;
  ep.namespace_id = "ns";
  ep.path = "/run/d.sock";
  m.pid = 77;
  m.exe_path = "/usr/bin/d";
  m.boot_id = "boot";
  m.ipc_endpoint = &ep;
  m.exe_hash_algorithm = (char *)alg;
  m.exe_hash.data = hash;
  m.exe_hash.len = hash_len;
  m.exe_sha256.data = sha;
  m.exe_sha256.len = sha_len;
  return running_process__broker__v1__daemon_process__pack(&m, out);
}

/* The digest codes of an answer, in the prober's order. */
static void test_digest_codes(void) {
  bh_identity rec;
  bh_err err;
  uint8_t pb[256];
  ident(&rec, BOTH);
  size_t n = pack_gen2("blake3", 32, 0, pb);
  CHECK_CODE(validate(pb, n, &rec, NULL, &err), BH_OK, &err);
  n = pack_gen2("sha1", 32, 0, pb);
  CHECK_CODE(validate(pb, n, &rec, NULL, &err), BH_UNSUPPORTED_HASH_ALGORITHM,
             &err);
  CHECK(strstr(err.message, "\"sha1\"") != NULL);
  n = pack_gen2("BLAKE3", 32, 0, pb); /* the name is exact */
  CHECK_CODE(validate(pb, n, &rec, NULL, &err), BH_UNSUPPORTED_HASH_ALGORITHM,
             &err);
  n = pack_gen2("", 32, 0, pb); /* a digest without an algorithm */
  CHECK_CODE(validate(pb, n, &rec, NULL, &err), BH_UNSUPPORTED_HASH_ALGORITHM,
             &err);
  n = pack_gen2("blake3", 31, 0, pb);
  CHECK_CODE(validate(pb, n, &rec, NULL, &err), BH_INVALID_HASH_LENGTH, &err);
  CHECK_STR(err.message, "exe_hash is 31 bytes, expected 32");
  n = pack_gen2("blake3", 33, 0, pb);
  CHECK_CODE(validate(pb, n, &rec, NULL, &err), BH_INVALID_HASH_LENGTH, &err);
  n = pack_gen2("blake3", 0, 0, pb); /* an algorithm without a digest */
  CHECK_CODE(validate(pb, n, &rec, NULL, &err), BH_INVALID_HASH_LENGTH, &err);
  /* A bad tag 3 is found first (it is checked first), even with a good
   * generation-2 digest. */
  n = pack_gen2("sha1", 31, 31, pb);
  CHECK_CODE(validate(pb, n, &rec, NULL, &err), BH_INVALID_SHA256_LENGTH, &err);
  n = pack_gen2("", 0, 0, pb); /* no digest at all */
  CHECK_CODE(validate(pb, n, &rec, NULL, &err), BH_INVALID_SHA256_LENGTH, &err);
  /* An identity with a bad digest is refused whatever is expected. */
  n = pack_gen2("sha1", 32, 32, pb);
  CHECK_CODE(validate(pb, n, NULL, NULL, &err), BH_UNSUPPORTED_HASH_ALGORITHM,
             &err);
  bh_identity_clear(&rec);
}

/* Every compared field differs: err.field is the first, err.fields all of
 * them in comparison order, and the message names the first's values and
 * the others. started_at and the idle timeout are never listed. */
static void test_all_fields_differ(void) {
  bh_identity rec, d;
  bh_err err;
  ident(&rec, BOTH);
  ident(&d, BOTH);
  d.pid = 78;
  free(d.exe_path);
  d.exe_path = strdup("/usr/bin/e");
  d.digests.sha256[3] ^= 1;
  d.digests.blake3[3] ^= 1;
  free(d.boot_id);
  d.boot_id = strdup("other-boot");
  bh_endpoint_set(&d.endpoint, "ns", "/run/e.sock", NULL);
  d.started_at_unix_ms++;
  d.has_idle_timeout = true;
  uint8_t *pb = NULL;
  size_t len = 0;
  CHECK_CODE(bh_identity_encode(&d, BH_FORM_ANSWER, &pb, &len, &err), BH_OK,
             &err);
  CHECK_CODE(validate(pb, len, &rec, NULL, &err), BH_IDENTITY_MISMATCH, &err);
  static const char *const want[] = {"pid",      "exe_path", "exe_sha256",
                                     "exe_hash", "boot_id",  "ipc_endpoint"};
  CHECK_INT(err.nfields, 6);
  for (unsigned i = 0; i < 6 && i < err.nfields; i++)
    CHECK_STR(err.fields[i], want[i]);
  CHECK_STR(err.field, "pid");
  CHECK_STR(err.message,
            "identity mismatch on pid: expected 77, got 78 (also differ: "
            "exe_path, exe_sha256, exe_hash, boot_id, ipc_endpoint)");
  /* Without a digest in common, that is said before any field. */
  rec.digests.algs = SHA;
  d.digests.algs = B3;
  free(pb);
  CHECK_CODE(bh_identity_encode(&d, BH_FORM_ANSWER, &pb, &len, &err), BH_OK,
             &err);
  bh_err_clear(&err);
  CHECK_CODE(validate(pb, len, &rec, NULL, &err), BH_UNSUPPORTED_HASH_ALGORITHM,
             &err);
  CHECK_INT(err.nfields, 0);
  free(pb);
  bh_identity_clear(&d);
  bh_identity_clear(&rec);
}

/* The JSON of generation 2 (design §1.7): exe_hash_algorithm and exe_hash
 * after the §1.7 fields; readers refuse other algorithms and lone halves,
 * and read the serde form's legacy_exe_sha256 (zeros meaning none). */
static void test_json_generations(void) {
  bh_identity id, got;
  bh_err err;
  ident(&id, B3);
  bh_identity_init(&got);
  char *text = bh_identity_to_json(&id);
  CHECK_STR(
      text,
      "{\"pid\":77,\"exe_path\":\"/usr/bin/d\",\"boot_id\":\"boot\","
      "\"ipc_endpoint\":{\"namespace_id\":\"ns\",\"path\":\"/run/"
      "d.sock\"},\"started_at_unix_ms\":1700000000000,"
      "\"idle_timeout_secs\":null,\"exe_hash_algorithm\":\"blake3\","
      "\"exe_hash\":\"b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3"
      "b3b3b3b3b3\"}");
  CHECK_CODE(bh_identity_from_json(text, strlen(text), &got, &err), BH_OK,
             &err);
  CHECK_INT(got.digests.algs, B3);
  CHECK(memcmp(got.digests.blake3, id.digests.blake3, 32) == 0);
  free(text);
  static const struct {
    const char *tail;
    bh_status want;
    const char *field;
    unsigned algs;
  } cases[] = {
      {",\"exe_hash_algorithm\":\"sha1\",\"exe_hash\":\"" AA,
       BH_INVALID_IDENTITY, "exe_hash_algorithm", 0},
      {",\"exe_hash\":\"" AA, BH_INVALID_IDENTITY, "exe_hash_algorithm", 0},
      {",\"exe_hash_algorithm\":\"blake3\"", BH_INVALID_IDENTITY, "exe_hash",
       0},
      {",\"exe_hash_algorithm\":\"blake3\",\"exe_hash\":\"abcd\"",
       BH_INVALID_IDENTITY, "exe_hash", 0},
      {",\"legacy_exe_sha256\":\"" AA, BH_OK, NULL, SHA},
      {",\"legacy_exe_sha256\":\"" ZERO, BH_INVALID_IDENTITY, "exe_sha256", 0},
      {",\"legacy_exe_sha256\":\"" ZERO ",\"exe_hash_algorithm\":\"blake3\","
       "\"exe_hash\":\"" AA,
       BH_OK, NULL, B3},
      {",\"exe_sha256\":\"" AA ",\"legacy_exe_sha256\":\"" AA,
       BH_INVALID_IDENTITY, "legacy_exe_sha256", 0},
      {"", BH_INVALID_IDENTITY, "exe_sha256", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char doc[512];
    snprintf(doc, sizeof doc,
             "{\"pid\":1,\"exe_path\":\"/x\",\"boot_id\":\"b\","
             "\"ipc_endpoint\":{\"namespace_id\":\"n\",\"path\":\"/p\"}%s}",
             cases[i].tail);
    bh_err_clear(&err);
    bh_status st = bh_identity_from_json(doc, strlen(doc), &got, &err);
    if (st != cases[i].want) fprintf(stderr, "   input: %s\n", doc);
    CHECK_CODE(st, cases[i].want, &err);
    if (cases[i].field != NULL) CHECK_STR(err.field, cases[i].field);
    if (st == BH_OK) CHECK_INT(got.digests.algs, cases[i].algs);
  }
  bh_identity_clear(&got);
  bh_identity_clear(&id);
}

/* ---- through our prober and responder ------------------------------------
 */

static struct event_base *base;

static void answer_with(bh_responder *r, const bh_request *req, bh_reply *reply,
                        void *ctx) {
  reply->kind = BH_REPLY_IDENTITY;
  reply->identity = ctx;
}

/* A responder that answers with an identity of `have`, probed (response
 * only) with a record of `want`. */
static bh_status over_socket(unsigned have, unsigned want) {
  bh_endpoint ep = {0};
  bh_identity d, rec;
  bh_err err;
  make_endpoint(&ep, "gen.sock");
  ident(&d, have);
  ident(&rec, want);
  bh_endpoint_copy(&d.endpoint, &ep, NULL);
  bh_endpoint_copy(&rec.endpoint, &ep, NULL);
  bh_respond_opts o = bh_respond_opts_default();
  o.hook = answer_with;
  o.hook_ctx = &d;
  bh_responder *r = bh_respond_start(base, &ep, &d, &o, &err);
  CHECK(r != NULL);
  probe_out out;
  bh_probe_opts po = response_only_opts(2.0);
  run_probe(base, &ep, &rec, &po, &out);
  bh_status st = out.err.code;
  if (st == BH_OK) CHECK_INT(out.identity.digests.algs, have);
  probe_out_clear(&out);
  bh_respond_free(r);
  bh_identity_clear(&d);
  bh_identity_clear(&rec);
  bh_endpoint_clear(&ep);
  return st;
}

static void test_over_socket(void) {
  base = bh_loop_new();
  CHECK_CODE(over_socket(BOTH, SHA), BH_OK, NULL);
  CHECK_CODE(over_socket(BOTH, B3), BH_OK, NULL);
  CHECK_CODE(over_socket(SHA, BOTH), BH_OK, NULL);
  CHECK_CODE(over_socket(B3, BOTH), BH_OK, NULL);
  CHECK_CODE(over_socket(B3, SHA), BH_UNSUPPORTED_HASH_ALGORITHM, NULL);
  CHECK_CODE(over_socket(SHA, B3), BH_UNSUPPORTED_HASH_ALGORITHM, NULL);
  bh_loop_free(base);
}

int main(void) {
  RUN(test_mixed_pairs);
  RUN(test_digest_mismatches);
  RUN(test_digest_codes);
  RUN(test_all_fields_differ);
  RUN(test_json_generations);
  RUN(test_over_socket);
  return bh_test_summary();
}
