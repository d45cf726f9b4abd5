/* Validation tests of the wire layer (src/core/wire.c, design §1.4, §1.6):
 * every status code a request or response can fail with, in the order the
 * responder and the prober check them, and what must still pass. Hostile
 * frames are built with protobuf-c directly (fixtures in wire_fixtures.h). */
#include "wire_fixtures.h"

static bh_status validate_request_frame(const pb_frame *f, bh_err *err) {
  uint8_t body[512];
  size_t n = pack_frame(f, body, sizeof body);
  bh_request req = {0};
  bh_status st = bh_probe_request_validate(body, n, &req, err);
  bh_request_clear(&req);
  return st;
}

static bh_status validate_response_frame(const pb_frame *f,
                                         const bh_identity *expected,
                                         bh_err *err) {
  uint8_t body[1024], nonce[BH_NONCE_LEN];
  size_t n = pack_frame(f, body, sizeof body);
  fixed_nonce(nonce);
  return bh_probe_response_validate(body, n, fixed_request_id(), nonce,
                                    expected, NULL, err);
}

/* Validate a response carrying daemon d against the sample identity. */
static bh_status validate_daemon(const pb_daemon *d, bh_err *err) {
  uint8_t ident[512], payload[600];
  size_t n = pack_daemon(d, ident, sizeof ident);
  pb_frame f;
  response_frame(&f, payload, ident, n);
  bh_identity want;
  sample_identity(&want);
  bh_status st = validate_response_frame(&f, &want, err);
  bh_identity_clear(&want);
  return st;
}

/* ---- request validation ------------------------------------------------ */

static void test_request_unexpected_fields(void) {
  uint8_t nonce[BH_NONCE_LEN];
  pb_frame f;
  bh_err err;
  request_frame(&f, nonce);
  CHECK_CODE(validate_request_frame(&f, &err), BH_OK, &err);

  request_frame(&f, nonce);
  f.envelope_version = 2;
  f.kind = RUNNING_PROCESS__BROKER__V1__FRAME_KIND__EVENT; /* later check */
  CHECK_CODE(validate_request_frame(&f, &err), BH_UNEXPECTED_FRAME, &err);
  CHECK_STR(err.message, "envelope_version 2, expected 1");
  CHECK(err.field == NULL);

  request_frame(&f, nonce);
  f.kind = RUNNING_PROCESS__BROKER__V1__FRAME_KIND__RESPONSE;
  f.payload_protocol = 1; /* later check */
  CHECK_CODE(validate_request_frame(&f, &err), BH_UNEXPECTED_FRAME, &err);
  CHECK_STR(err.message, "kind RESPONSE (1), expected REQUEST (0)");

  request_frame(&f, nonce);
  f.payload_protocol = 0x1234;
  f.payload_encoding = RUNNING_PROCESS__BROKER__V1__PAYLOAD_ENCODING__ZSTD;
  CHECK_CODE(validate_request_frame(&f, &err), BH_UNEXPECTED_FRAME, &err);
  CHECK_STR(err.message, "payload_protocol 0x1234, expected 0xB232");

  request_frame(&f, nonce);
  f.payload_encoding = RUNNING_PROCESS__BROKER__V1__PAYLOAD_ENCODING__ZSTD;
  f.payload.len = 3; /* later check */
  CHECK_CODE(validate_request_frame(&f, &err), BH_UNEXPECTED_FRAME, &err);
  CHECK_STR(err.message, "payload_encoding ZSTD (1), expected NONE (0)");

  /* The responder does not check request_id: it echoes what came. */
  request_frame(&f, nonce);
  f.request_id = 42;
  uint8_t body[256];
  size_t n = pack_frame(&f, body, sizeof body);
  bh_request req = {0};
  CHECK_CODE(bh_probe_request_validate(body, n, &req, &err), BH_OK, &err);
  CHECK(req.request_id == 42);
  bh_request_clear(&req);
}

static void test_request_payload_length(void) {
  uint8_t nonce[BH_NONCE_LEN + 1];
  pb_frame f;
  bh_err err;
  request_frame(&f, nonce);
  f.payload.len = 31;
  CHECK_CODE(validate_request_frame(&f, &err), BH_MALFORMED_PAYLOAD, &err);
  CHECK_STR(err.message,
            "request payload of 31 bytes, expected a 32-byte nonce");
  request_frame(&f, nonce);
  f.payload.len = 33;
  CHECK_CODE(validate_request_frame(&f, &err), BH_MALFORMED_PAYLOAD, &err);
  request_frame(&f, nonce);
  f.payload.len = 0;
  CHECK_CODE(validate_request_frame(&f, &err), BH_MALFORMED_PAYLOAD, &err);
}

/* Garbage, invalid UTF-8 and NUL in trace strings are decode_frame, for
 * both sides. */
static void test_decode_frame(void) {
  static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff};
  uint8_t nonce[BH_NONCE_LEN];
  fixed_nonce(nonce);
  bh_request req = {0};
  bh_err err;
  CHECK_CODE(bh_probe_request_validate(garbage, sizeof garbage, &req, &err),
             BH_DECODE_FRAME, &err);
  CHECK_STR(err.message, "expected a Frame protobuf, got 4 undecodable bytes");
  CHECK_CODE(bh_probe_response_validate(garbage, sizeof garbage, 0, nonce, NULL,
                                        NULL, &err),
             BH_DECODE_FRAME, &err);
  /* A truncated length-delimited field. */
  static const uint8_t trunc[] = {0x22, 0x20, 0x00};
  CHECK_CODE(bh_probe_request_validate(trunc, sizeof trunc, &req, &err),
             BH_DECODE_FRAME, &err);

  pb_frame f;
  uint8_t body[256];
  request_frame(&f, nonce);
  f.traceparent = "\xff\xfe";
  size_t n = pack_frame(&f, body, sizeof body);
  CHECK_CODE(bh_probe_request_validate(body, n, &req, &err), BH_DECODE_FRAME,
             &err);
  CHECK_STR(err.message,
            "Frame traceparent is not a valid UTF-8 string without NUL");
  request_frame(&f, nonce);
  f.tracestate = "\xed\xa0\x80"; /* an encoded surrogate */
  n = pack_frame(&f, body, sizeof body);
  CHECK_CODE(bh_probe_request_validate(body, n, &req, &err), BH_DECODE_FRAME,
             &err);
  /* A NUL inside traceparent: append field 8 = "a\0b" by hand (42 03 ..);
   * a later occurrence of a field replaces the earlier one. */
  request_frame(&f, nonce);
  n = pack_frame(&f, body, sizeof body);
  memcpy(body + n,
         "\x42\x03"
         "a\0b",
         5);
  CHECK_CODE(bh_probe_request_validate(body, n + 5, &req, &err),
             BH_DECODE_FRAME, &err);
  /* The same for a response. */
  uint8_t payload[64];
  response_frame(&f, payload, NULL, 0);
  f.traceparent = "\xc0\x80"; /* overlong NUL */
  CHECK_CODE(validate_response_frame(&f, NULL, &err), BH_DECODE_FRAME, &err);
  /* Field number 0 written as a two-byte key (80 00): protobuf-c keeps it
   * as an unknown field, prost rejects it ("invalid tag value: 0"). */
  request_frame(&f, nonce);
  n = pack_frame(&f, body, sizeof body);
  memcpy(body + n, "\x80\x00\x01", 3);
  CHECK_CODE(bh_probe_request_validate(body, n + 3, &req, &err),
             BH_DECODE_FRAME, &err);
  CHECK_STR(err.message, "expected a Frame protobuf, got a field number 0");
  bh_request_clear(&req);
}

/* ---- response validation ----------------------------------------------- */

static void test_response_unexpected_fields(void) {
  uint8_t payload[64];
  pb_frame f;
  bh_err err;
  response_frame(&f, payload, NULL, 0);
  f.envelope_version = 0;
  f.kind = RUNNING_PROCESS__BROKER__V1__FRAME_KIND__REQUEST;
  CHECK_CODE(validate_response_frame(&f, NULL, &err), BH_UNEXPECTED_FRAME,
             &err);
  CHECK_STR(err.message, "envelope_version 0, expected 1");

  response_frame(&f, payload, NULL, 0);
  f.kind = 7; /* not a known FrameKind: still decodes, fails here */
  f.payload_protocol = 0;
  CHECK_CODE(validate_response_frame(&f, NULL, &err), BH_UNEXPECTED_FRAME,
             &err);
  CHECK_STR(err.message, "kind unknown (7), expected RESPONSE (1)");

  response_frame(&f, payload, NULL, 0);
  f.payload_protocol = 0xB233;
  f.request_id = 1;
  CHECK_CODE(validate_response_frame(&f, NULL, &err), BH_UNEXPECTED_FRAME,
             &err);
  CHECK_STR(err.message, "payload_protocol 0xB233, expected 0xB232");

  response_frame(&f, payload, NULL, 0);
  f.request_id = 1;
  f.payload_encoding = RUNNING_PROCESS__BROKER__V1__PAYLOAD_ENCODING__LZ4;
  CHECK_CODE(validate_response_frame(&f, NULL, &err), BH_UNEXPECTED_FRAME,
             &err);
  CHECK_STR(err.message, "request_id 1, expected 506097522914230528");

  response_frame(&f, payload, NULL, 0);
  f.payload_encoding = RUNNING_PROCESS__BROKER__V1__PAYLOAD_ENCODING__SNAPPY;
  f.payload.len = 0;
  CHECK_CODE(validate_response_frame(&f, NULL, &err), BH_UNEXPECTED_FRAME,
             &err);
  CHECK_STR(err.message, "payload_encoding SNAPPY (2), expected NONE (0)");
}

static void test_response_malformed_payload(void) {
  uint8_t payload[64];
  pb_frame f;
  bh_err err;
  response_frame(&f, payload, NULL, 0);
  f.payload.len = 31;
  CHECK_CODE(validate_response_frame(&f, NULL, &err), BH_MALFORMED_PAYLOAD,
             &err);
  CHECK_STR(err.message, "response payload of 31 bytes, expected at least 32");
  response_frame(&f, payload, NULL, 0);
  f.payload.len = 0;
  CHECK_CODE(validate_response_frame(&f, NULL, &err), BH_MALFORMED_PAYLOAD,
             &err);
  response_frame(&f, payload, NULL, 0);
  /* A wrong nonce is unexpected_frame, as the reference says it
   * (design §1.4); it was malformed_payload before. */
  payload[31] ^= 1;
  CHECK_CODE(validate_response_frame(&f, NULL, &err), BH_UNEXPECTED_FRAME,
             &err);
  CHECK_STR(err.message, "nonce does not match endpoint probe request");
}

/* The identity part: decode_identity, missing_endpoint and
 * invalid_sha256_length, in that order. */
static void test_response_identity_decode(void) {
  uint8_t payload[600], ident[512];
  pb_frame f;
  bh_err err;
  static const uint8_t junk[] = {0x0a, 0xff, 0x01};
  response_frame(&f, payload, junk, sizeof junk);
  CHECK_CODE(validate_response_frame(&f, NULL, &err), BH_DECODE_IDENTITY, &err);
  /* Nothing after the nonce: an all-default identity, no endpoint. */
  response_frame(&f, payload, NULL, 0);
  CHECK_CODE(validate_response_frame(&f, NULL, &err), BH_MISSING_ENDPOINT,
             &err);

  pb_daemon d;
  pb_endpoint ep;
  uint8_t sha[32];
  sample_daemon(&d, &ep, sha);
  d.exe_path = "/\xff";
  size_t n = pack_daemon(&d, ident, sizeof ident);
  response_frame(&f, payload, ident, n);
  CHECK_CODE(validate_response_frame(&f, NULL, &err), BH_DECODE_IDENTITY, &err);

  sample_daemon(&d, &ep, sha);
  d.ipc_endpoint = NULL;
  d.exe_sha256.len = 31; /* also wrong, but checked later */
  n = pack_daemon(&d, ident, sizeof ident);
  response_frame(&f, payload, ident, n);
  CHECK_CODE(validate_response_frame(&f, NULL, &err), BH_MISSING_ENDPOINT,
             &err);

  sample_daemon(&d, &ep, sha);
  d.exe_sha256.len = 31;
  n = pack_daemon(&d, ident, sizeof ident);
  response_frame(&f, payload, ident, n);
  CHECK_CODE(validate_response_frame(&f, NULL, &err), BH_INVALID_SHA256_LENGTH,
             &err);

  /* A valid identity followed by field number 0 (two-byte key 80 00),
   * and the same inside its endpoint: decode_identity, as prost says. */
  sample_daemon(&d, &ep, sha);
  n = pack_daemon(&d, ident, sizeof ident);
  memcpy(ident + n, "\x80\x00\x01", 3);
  response_frame(&f, payload, ident, n + 3);
  CHECK_CODE(validate_response_frame(&f, NULL, &err), BH_DECODE_IDENTITY, &err);
  CHECK_STR(err.message, "DaemonProcess holds a field number 0");
}

static void test_identity_mismatch(void) {
  static const struct {
    const char *field;
    int which;
  } cases[] = {{"pid", 0},     {"exe_path", 1},     {"exe_sha256", 2},
               {"boot_id", 3}, {"ipc_endpoint", 4}, {"ipc_endpoint", 5}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    pb_daemon d;
    pb_endpoint ep;
    uint8_t sha[32];
    bh_err err;
    sample_daemon(&d, &ep, sha);
    switch (cases[i].which) {
      case 0:
        d.pid = 8;
        break;
      case 1:
        d.exe_path = "/b";
        break;
      case 2:
        sha[31] = 0xab;
        break;
      case 3:
        d.boot_id = "c";
        break;
      case 4:
        ep.namespace_id = "m";
        break;
      default:
        ep.path = "/t";
        break;
    }
    CHECK_CODE(validate_daemon(&d, &err), BH_IDENTITY_MISMATCH, &err);
    CHECK_STR(err.field, cases[i].field);
  }
  /* Messages carry both values. */
  pb_daemon d;
  pb_endpoint ep;
  uint8_t sha[32];
  bh_err err;
  sample_daemon(&d, &ep, sha);
  d.exe_path = "/b";
  d.pid = 9; /* pid is compared first */
  CHECK_CODE(validate_daemon(&d, &err), BH_IDENTITY_MISMATCH, &err);
  CHECK_STR(err.field, "pid");
  CHECK_STR(err.message,
            "identity mismatch on pid: expected 7, got 9 (also differ: "
            "exe_path)");
  CHECK_INT(err.nfields, 2);
  CHECK_STR(err.fields[0], "pid");
  CHECK_STR(err.fields[1], "exe_path");
  sample_daemon(&d, &ep, sha);
  d.exe_path = "/b";
  d.boot_id = "c";
  CHECK_CODE(validate_daemon(&d, &err), BH_IDENTITY_MISMATCH, &err);
  CHECK_STR(err.message,
            "identity mismatch on exe_path: expected \"/a\", got \"/b\" "
            "(also differ: boot_id)");
  sample_daemon(&d, &ep, sha);
  ep.path = "/t";
  CHECK_CODE(validate_daemon(&d, &err), BH_IDENTITY_MISMATCH, &err);
  CHECK_STR(err.message,
            "identity mismatch on ipc_endpoint: expected (\"n\", \"/s\"), "
            "got (\"n\", \"/t\")");
  sample_daemon(&d, &ep, sha);
  sha[0] = 0xbb;
  CHECK_CODE(validate_daemon(&d, &err), BH_IDENTITY_MISMATCH, &err);
  CHECK_STR(err.message, "identity mismatch on exe_sha256: expected " AA32_HEX
                         ", got bb"
                         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                         "aaaaaaaaaaaaaaaaaaaa");
}

/* What passes: lexical exe_path equality, fields the prober does not
 * compare, unknown trailing fields, and expected == NULL. */
static void test_response_success_paths(void) {
  pb_daemon d;
  pb_endpoint ep;
  uint8_t sha[32];
  bh_err err;
  sample_daemon(&d, &ep, sha);
  CHECK_CODE(validate_daemon(&d, &err), BH_OK, &err);
  d.exe_path = "//a";
  CHECK_CODE(validate_daemon(&d, &err), BH_OK, &err);
  d.exe_path = "/a/";
  CHECK_CODE(validate_daemon(&d, &err), BH_OK, &err);
  sample_daemon(&d, &ep, sha);
  d.started_at_unix_ms = 99;
  d.idle_timeout_case =
      RUNNING_PROCESS__BROKER__V1__DAEMON_PROCESS__IDLE_TIMEOUT__NOT_SET;
  CHECK_CODE(validate_daemon(&d, &err), BH_OK, &err);

  /* /a//b on the wire against /a/b expected. */
  uint8_t ident[512], payload[600];
  sample_daemon(&d, &ep, sha);
  d.exe_path = "/a//b";
  size_t n = pack_daemon(&d, ident, sizeof ident);
  pb_frame f;
  response_frame(&f, payload, ident, n);
  bh_identity want;
  sample_identity(&want);
  free(want.exe_path);
  want.exe_path = strdup("/a/b");
  CHECK_CODE(validate_response_frame(&f, &want, &err), BH_OK, &err);
  bh_identity_clear(&want);

  /* Unknown fields after a valid identity (field 99 varint, field 100
   * bytes) are ignored. */
  sample_daemon(&d, &ep, sha);
  n = pack_daemon(&d, ident, sizeof ident);
  memcpy(ident + n, "\x98\x06\x01\xa2\x06\x02zz", 8);
  response_frame(&f, payload, ident, n + 8);
  sample_identity(&want);
  CHECK_CODE(validate_response_frame(&f, &want, &err), BH_OK, &err);
  bh_identity_clear(&want);

  /* expected NULL skips the comparison; got receives the identity. */
  sample_daemon(&d, &ep, sha);
  d.pid = 1234;
  n = pack_daemon(&d, ident, sizeof ident);
  response_frame(&f, payload, ident, n);
  uint8_t body[1024], nonce[BH_NONCE_LEN];
  size_t blen = pack_frame(&f, body, sizeof body);
  fixed_nonce(nonce);
  bh_identity got;
  bh_identity_init(&got);
  CHECK_CODE(bh_probe_response_validate(body, blen, fixed_request_id(), nonce,
                                        NULL, &got, &err),
             BH_OK, &err);
  CHECK_INT(got.pid, 1234);
  CHECK_STR(got.exe_path, "/a");
  CHECK_STR(got.endpoint.path, "/s");
  CHECK(got.has_idle_timeout && got.idle_timeout_secs == 0);
  bh_identity_clear(&got);
}

int main(void) {
  RUN(test_request_unexpected_fields);
  RUN(test_request_payload_length);
  RUN(test_decode_frame);
  RUN(test_response_unexpected_fields);
  RUN(test_response_malformed_payload);
  RUN(test_response_identity_decode);
  RUN(test_identity_mismatch);
  RUN(test_response_success_paths);
  return bh_test_summary();
}
