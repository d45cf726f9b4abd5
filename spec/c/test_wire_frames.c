/* Unit tests of the wire layer (src/core/wire.c, design §1.2–1.4, §1.8): the
 * incremental frame reader, golden request/response bytes derived by hand
 * from the protobuf encoding rules, round trips, and the UTF-8 check of
 * pbutil. Validation failures are in test_wire_validate.c. */
#include "wire_fixtures.h"

/* ---- reader ------------------------------------------------------------ */

static size_t fixed_request(uint8_t **out) {
  uint8_t nonce[BH_NONCE_LEN];
  fixed_nonce(nonce);
  size_t len = 0;
  bh_err err;
  CHECK_CODE(bh_probe_request_build(nonce, out, &len, &err), BH_OK, &err);
  return len;
}

static void test_reader_one_byte_at_a_time(void) {
  uint8_t *frame;
  size_t len = fixed_request(&frame);
  bh_frame_reader r;
  bh_frame_reader_init(&r);
  bh_err err;
  int more = 0;
  for (size_t i = 0; i < len; i++) {
    size_t used = 99;
    bh_read_result res = bh_frame_reader_feed(&r, frame + i, 1, &used, &err);
    CHECK_INT(used, 1);
    if (i + 1 < len)
      more += res == BH_READ_MORE;
    else
      CHECK_INT(res, BH_READ_DONE);
  }
  CHECK_INT(more, len - 1);
  CHECK_INT(r.body_len, len - BH_FRAME_HEADER_LEN);
  CHECK(memcmp(r.body, frame + BH_FRAME_HEADER_LEN, r.body_len) == 0);
  CHECK(bh_frame_reader_heap(&r) >= r.body_len);
  bh_frame_reader_free(&r);
  CHECK_INT(bh_frame_reader_heap(&r), 0);
  free(frame);
}

static void test_reader_whole_chunk_with_trailing(void) {
  uint8_t *frame;
  size_t len = fixed_request(&frame);
  uint8_t buf[256];
  memcpy(buf, frame, len);
  memcpy(buf + len, "xyz", 3);
  bh_frame_reader r;
  bh_frame_reader_init(&r);
  bh_err err;
  size_t used = 0;
  CHECK_INT(bh_frame_reader_feed(&r, buf, len + 3, &used, &err), BH_READ_DONE);
  CHECK_INT(used, len);
  /* Done: further bytes are not consumed. */
  CHECK_INT(bh_frame_reader_feed(&r, buf + len, 3, &used, &err), BH_READ_DONE);
  CHECK_INT(used, 0);
  CHECK(memcmp(r.body, frame + BH_FRAME_HEADER_LEN, r.body_len) == 0);
  bh_frame_reader_free(&r);
  free(frame);
}

static void test_reader_header_split(void) {
  uint8_t *frame;
  size_t len = fixed_request(&frame);
  bh_frame_reader r;
  bh_frame_reader_init(&r);
  bh_err err;
  size_t used = 0;
  CHECK_INT(bh_frame_reader_feed(&r, frame, 3, &used, &err), BH_READ_MORE);
  CHECK_INT(used, 3);
  CHECK_INT(bh_frame_reader_heap(&r), 0);
  CHECK_INT(bh_frame_reader_feed(&r, frame + 3, 12, &used, &err), BH_READ_MORE);
  CHECK_INT(used, 12);
  CHECK_INT(bh_frame_reader_feed(&r, frame + 15, len - 15, &used, &err),
            BH_READ_DONE);
  CHECK_INT(used, len - 15);
  CHECK(memcmp(r.body, frame + BH_FRAME_HEADER_LEN, r.body_len) == 0);
  bh_frame_reader_free(&r);
  free(frame);
}

/* design §1.8: a zero-length body is a valid frame and fails validation at
 * envelope_version, not at decoding. */
static void test_reader_zero_length(void) {
  static const uint8_t hdr[] = {1, 0, 0, 0, 0, 0xEE};
  bh_frame_reader r;
  bh_frame_reader_init(&r);
  bh_err err;
  size_t used = 0;
  CHECK_INT(bh_frame_reader_feed(&r, hdr, sizeof hdr, &used, &err),
            BH_READ_DONE);
  CHECK_INT(used, 5);
  CHECK_INT(r.body_len, 0);
  CHECK_INT(bh_frame_reader_heap(&r), 0);
  bh_request req = {0};
  CHECK_CODE(bh_probe_request_validate(r.body, 0, &req, &err),
             BH_UNEXPECTED_FRAME, &err);
  CHECK_STR(err.message, "envelope_version 0, expected 1");
  uint8_t nonce[BH_NONCE_LEN];
  fixed_nonce(nonce);
  CHECK_CODE(bh_probe_response_validate(r.body, 0, 1, nonce, NULL, NULL, &err),
             BH_UNEXPECTED_FRAME, &err);
  CHECK_STR(err.message, "envelope_version 0, expected 1");
  bh_frame_reader_free(&r);
}

static void test_reader_bad_version(void) {
  for (int v = 0; v <= 2; v += 2) {
    uint8_t buf[] = {(uint8_t)v, 10, 0, 0, 0, 1, 2, 3};
    bh_frame_reader r;
    bh_frame_reader_init(&r);
    bh_err err;
    size_t used = 0;
    CHECK_INT(bh_frame_reader_feed(&r, buf, sizeof buf, &used, &err),
              BH_READ_ERROR);
    CHECK_CODE(err.code, BH_UNSUPPORTED_FRAMING_VERSION, &err);
    CHECK_INT(used, 1);
    char want[64];
    snprintf(want, sizeof want, "framing version %d, expected 1", v);
    CHECK_STR(err.message, want);
    /* Feeding again keeps failing. */
    bh_err_clear(&err);
    CHECK_INT(bh_frame_reader_feed(&r, buf + 1, 1, &used, &err), BH_READ_ERROR);
    CHECK_CODE(err.code, BH_UNSUPPORTED_FRAMING_VERSION, &err);
    CHECK_INT(bh_frame_reader_heap(&r), 0);
    bh_frame_reader_free(&r);
  }
  /* The error comes with the very first byte, alone. */
  bh_frame_reader r;
  bh_frame_reader_init(&r);
  bh_err err;
  size_t used = 0;
  uint8_t seven = 7;
  CHECK_INT(bh_frame_reader_feed(&r, &seven, 1, &used, &err), BH_READ_ERROR);
  CHECK_STR(err.message, "framing version 7, expected 1");
  bh_frame_reader_free(&r);
}

/* Exactly 16 MiB is allowed, and memory follows the bytes that arrive. */
static void test_reader_16mib_grows_with_data(void) {
  static const uint8_t hdr[] = {1, 0x00, 0x00, 0x00, 0x01};
  bh_frame_reader r;
  bh_frame_reader_init(&r);
  bh_err err;
  size_t used = 0;
  CHECK_INT(bh_frame_reader_feed(&r, hdr, 5, &used, &err), BH_READ_MORE);
  CHECK_INT(r.body_len, BH_FRAME_MAX_BODY);
  CHECK_INT(bh_frame_reader_heap(&r), 0);
  uint8_t *chunk = calloc(1, 65536);
  CHECK_INT(bh_frame_reader_feed(&r, chunk, 1000, &used, &err), BH_READ_MORE);
  CHECK_INT(used, 1000);
  CHECK(bh_frame_reader_heap(&r) >= 1000);
  CHECK(bh_frame_reader_heap(&r) < 4096);
  size_t got = 1000;
  bh_read_result res = BH_READ_MORE;
  while (res == BH_READ_MORE) {
    res = bh_frame_reader_feed(&r, chunk, 65536, &used, &err);
    got += used;
  }
  CHECK_INT(res, BH_READ_DONE);
  CHECK_INT(got, BH_FRAME_MAX_BODY);
  CHECK_INT(bh_frame_reader_heap(&r), BH_FRAME_MAX_BODY);
  free(chunk);
  bh_frame_reader_free(&r);
}

/* Over the cap is refused from the header alone, with nothing allocated. */
static void test_reader_too_large(void) {
  static const struct {
    uint8_t hdr[5];
    const char *msg;
  } cases[] = {
      {{1, 0x01, 0x00, 0x00, 0x01},
       "frame body of 16777217 bytes exceeds the 16777216-byte cap"},
      {{1, 0xff, 0xff, 0xff, 0xff},
       "frame body of 4294967295 bytes exceeds the 16777216-byte cap"},
  };
  for (size_t i = 0; i < 2; i++) {
    bh_frame_reader r;
    bh_frame_reader_init(&r);
    bh_err err;
    size_t used = 0;
    uint8_t buf[8] = {0};
    memcpy(buf, cases[i].hdr, 5);
    CHECK_INT(bh_frame_reader_feed(&r, buf, sizeof buf, &used, &err),
              BH_READ_ERROR);
    CHECK_CODE(err.code, BH_FRAME_TOO_LARGE, &err);
    CHECK_STR(err.message, cases[i].msg);
    CHECK_INT(used, 5);
    CHECK_INT(bh_frame_reader_heap(&r), 0);
    CHECK(r.body == NULL);
    bh_frame_reader_free(&r);
  }
}

/* ---- golden bytes ------------------------------------------------------ */

/* The request for nonce 00 01 .. 1f, derived by hand.
 * Tag = (field << 3) | wire type; proto3 omits defaults (kind REQUEST = 0,
 * encoding NONE = 0, deadline 0, empty trace strings).
 *   08 01          field 1 envelope_version, varint 1
 *   18 b2 e4 02    field 3 payload_protocol, varint 0xB232 = 45618:
 *                  45618 & 0x7f = 0x32 -> b2 (continuation bit set);
 *                  45618 >> 7 = 356, & 0x7f = 0x64 -> e4; 356 >> 7 = 2 -> 02
 *   22 20 <nonce>  field 4 payload, wire type 2, length 32
 *   28 <varint>    field 5 request_id = LE u64 of 00..07 = 0x0706050403020100;
 *                  7-bit groups from the low end: bits 0-6 of byte 0 = 0;
 *                  then (b1&3f)<<1|b0>>7 = 2; (b2&1f)<<2|b1>>6 = 8;
 *                  (b3&0f)<<3|b2>>5 = 0x18; (b4&07)<<4|b3>>4 = 0x40;
 *                  (b5&03)<<5|b4>>3 = 0x20; (b6&01)<<6|b5>>2 = 1;
 *                  b6>>1 = 3; b7 = 7 (last) -> 80 82 88 98 c0 a0 81 83 07
 * Body = 2 + 4 + 34 + 10 = 50 = 0x32 bytes; header 01 32 00 00 00. */
#define GOLDEN_REQUEST_ID "2880828898c0a0818307"
static const char golden_request[] =
    "0132000000"
    "0801"
    "18b2e402"
    "2220" NONCE_HEX GOLDEN_REQUEST_ID;

static void test_golden_request(void) {
  uint8_t *frame;
  size_t len = fixed_request(&frame);
  CHECK_INT(len, 55);
  CHECK_HEX(frame, len, golden_request);
  CHECK(fixed_request_id() == 0x0706050403020100ull);
  free(frame);
}

/* The request written from the template is byte for byte the one
 * protobuf-c packs, whatever the nonce: request_ids of every varint length
 * (1 to 10 bytes) and 0, which the encoding leaves out. */
static void test_request_template(void) {
  for (int k = 0; k < 600; k++) {
    uint8_t nonce[BH_NONCE_LEN];
    for (int i = 0; i < BH_NONCE_LEN; i++)
      nonce[i] = (uint8_t)(k * 131 + i * 29 + (k >> 3));
    /* k / 60 leading bytes of request_id zero, from the top: ids of
     * every length down to 0. */
    for (int i = 0; i < k / 60 && i < 8; i++)
      nonce[7 - i] = 0;
    if (k % 60 == 1) memset(nonce, 0, 8);
    uint8_t *built = NULL;
    size_t len = 0;
    bh_err err;
    CHECK_CODE(bh_probe_request_build(nonce, &built, &len, &err), BH_OK, &err);
    uint8_t out[BH_PROBE_REQUEST_MAX];
    size_t n = bh_probe_request_write(nonce, out);
    CHECK_INT(n, len);
    if (n == len) CHECK(memcmp(out, built, n) == 0);
    free(built);
  }
  uint8_t nonce[BH_NONCE_LEN], out[BH_PROBE_REQUEST_MAX];
  fixed_nonce(nonce);
  size_t n = bh_probe_request_write(nonce, out);
  CHECK_HEX(out, n, golden_request);
}

/* bh_frame_reader_take: a whole frame in the bytes is a view into them;
 * a split one is gathered in the reader; a bad header fails as
 * bh_frame_reader_feed does. */
static void test_reader_take(void) {
  uint8_t *frame;
  size_t len = fixed_request(&frame);
  bh_frame_reader r;
  bh_frame_reader_init(&r);
  bh_err err;
  size_t used = 0;
  const uint8_t *body = NULL;
  CHECK_INT(bh_frame_reader_take(&r, frame, len, &used, &body, &err),
            BH_READ_DONE);
  CHECK(body == frame + BH_FRAME_HEADER_LEN);
  CHECK_INT(used, len);
  CHECK_INT(r.body_len, len - BH_FRAME_HEADER_LEN);
  CHECK_INT(bh_frame_reader_heap(&r), 0);
  bh_frame_reader_free(&r);
  /* Split: six bytes, then the rest. */
  bh_frame_reader_init(&r);
  CHECK_INT(bh_frame_reader_take(&r, frame, 6, &used, &body, &err),
            BH_READ_MORE);
  CHECK_INT(used, 6);
  CHECK_INT(bh_frame_reader_take(&r, frame + 6, len - 6, &used, &body, &err),
            BH_READ_DONE);
  CHECK(body == r.body);
  CHECK(memcmp(body, frame + BH_FRAME_HEADER_LEN, len - BH_FRAME_HEADER_LEN) ==
        0);
  bh_frame_reader_free(&r);
  /* An empty body, and a header over the limit. */
  static const uint8_t empty[] = {1, 0, 0, 0, 0};
  bh_frame_reader_init(&r);
  CHECK_INT(bh_frame_reader_take(&r, empty, sizeof empty, &used, &body, &err),
            BH_READ_DONE);
  CHECK(body == empty + BH_FRAME_HEADER_LEN);
  CHECK_INT(r.body_len, 0);
  bh_frame_reader_free(&r);
  static const uint8_t big[] = {1, 0x41, 0, 0, 0, 9, 9};
  bh_frame_reader_init(&r);
  bh_frame_reader_limit(&r, 64, "max_response");
  CHECK_INT(bh_frame_reader_take(&r, big, sizeof big, &used, &body, &err),
            BH_READ_ERROR);
  CHECK_CODE(err.code, BH_FRAME_TOO_LARGE, &err);
  bh_frame_reader_free(&r);
  static const uint8_t v2[] = {2, 1, 0, 0, 0, 9};
  bh_frame_reader_init(&r);
  CHECK_INT(bh_frame_reader_take(&r, v2, sizeof v2, &used, &body, &err),
            BH_READ_ERROR);
  CHECK_CODE(err.code, BH_UNSUPPORTED_FRAMING_VERSION, &err);
  bh_frame_reader_free(&r);
  free(frame);
}

/* The sample DaemonProcess as a generation-1 record, by hand:
 *   08 07                 field 1 pid = 7
 *   12 02 2f 61           field 2 exe_path "/a"
 *   1a 20 aa*32           field 3 exe_sha256, 32 bytes
 *   22 07 0a 01 6e 12 02 2f 73
 *                         field 4 ipc_endpoint, a 7-byte Endpoint:
 *                         field 1 namespace_id "n", field 2 path "/s"
 *   28 01                 field 5 started_at_unix_ms = 1
 *   32 01 62              field 6 boot_id "b"
 *   38 00                 field 7 idle_timeout_secs: present, so encoded
 *                         even though 0 (omitted when absent)
 * 56 bytes with idle_timeout_secs, 54 without. */
#define DAEMON_SHA "1a20" AA32_HEX
#define DAEMON_REST    \
  "22070a016e12022f73" \
  "2801"               \
  "320162"
#define DAEMON_GEN1 \
  "0807"            \
  "12022f61" DAEMON_SHA DAEMON_REST "3800"
/* The same identity as a daemon answers a probe (BH_FORM_ANSWER, as
 * running-process 4.10.4+ does): the generation-2 message, which has no
 * BLAKE3 digest to carry here, then tag 3 appended after the last field,
 * out of tag order, so generation-1 probers still read the SHA-256. */
#define DAEMON_ANSWER_HEAD \
  "0807"                   \
  "12022f61" DAEMON_REST

static void test_golden_identity(void) {
  bh_identity id;
  sample_identity(&id);
  bh_err err;
  uint8_t *out = NULL;
  size_t len = 0;
  CHECK_CODE(bh_identity_encode(&id, BH_FORM_GEN1, &out, &len, &err), BH_OK,
             &err);
  if (out) CHECK_HEX(out, len, DAEMON_GEN1);
  free(out);
  out = NULL;
  CHECK_CODE(bh_identity_encode(&id, BH_FORM_ANSWER, &out, &len, &err), BH_OK,
             &err);
  if (out) CHECK_HEX(out, len, DAEMON_ANSWER_HEAD "3800" DAEMON_SHA);
  free(out);
  /* No BLAKE3 digest: there is no generation-2 record of it. */
  out = NULL;
  CHECK_CODE(bh_identity_encode(&id, BH_FORM_GEN2, &out, &len, &err),
             BH_INVALID_IDENTITY, &err);
  CHECK(out == NULL);
  bh_identity_clear(&id);
}

/* The response to the golden request, with traceparent "tp", carrying the
 * sample identity in its answer form, by hand:
 *   08 01  envelope_version 1;  10 01  field 2 kind RESPONSE = 1
 *   18 b2 e4 02  payload_protocol 0xB232
 *   22 58  field 4 payload, 32 + 56 = 88 = 0x58 bytes: nonce || identity
 *   28 ..  request_id echoed (as in the request)
 *   42 02 74 70  field 8 (tag 8<<3|2 = 0x42) traceparent "tp"
 * Body = 2 + 2 + 4 + 90 + 10 + 4 = 112 = 0x70. Without idle_timeout_secs
 * the payload is 86 = 0x56 and the body 110 = 0x6e. */
static const char golden_response_idle0[] =
    "0170000000"
    "0801"
    "1001"
    "18b2e402"
    "2258" NONCE_HEX DAEMON_ANSWER_HEAD "3800" DAEMON_SHA GOLDEN_REQUEST_ID
    "42027470";
static const char golden_response_no_idle[] =
    "016e000000"
    "0801"
    "1001"
    "18b2e402"
    "2256" NONCE_HEX DAEMON_ANSWER_HEAD DAEMON_SHA GOLDEN_REQUEST_ID "42027470";

static void test_golden_response(void) {
  bh_request req = {0};
  req.request_id = fixed_request_id();
  fixed_nonce(req.nonce);
  req.traceparent = "tp";
  req.tracestate = "";
  bh_identity id;
  sample_identity(&id);
  bh_err err;
  uint8_t *out = NULL;
  size_t len = 0;
  CHECK_CODE(bh_probe_response_build(&req, &id, &out, &len, &err), BH_OK, &err);
  CHECK_INT(len, 117);
  if (out) CHECK_HEX(out, len, golden_response_idle0);
  free(out);
  id.has_idle_timeout = false;
  out = NULL;
  CHECK_CODE(bh_probe_response_build(&req, &id, &out, &len, &err), BH_OK, &err);
  CHECK_INT(len, 115);
  if (out) CHECK_HEX(out, len, golden_response_no_idle);
  free(out);
  /* The raw form sends the identity bytes as given. */
  uint8_t ident[128];
  long n =
      bh_test_unhex(DAEMON_ANSWER_HEAD "3800" DAEMON_SHA, ident, sizeof ident);
  CHECK_INT(n, 56);
  out = NULL;
  CHECK_CODE(
      bh_probe_response_build_raw(&req, ident, (size_t)n, &out, &len, &err),
      BH_OK, &err);
  if (out) CHECK_HEX(out, len, golden_response_idle0);
  free(out);
  bh_identity_clear(&id);
}

/* ---- round trips --------------------------------------------------------- */

/* Feed a whole framed message through a reader; returns the body copy. */
static uint8_t *read_frame(const uint8_t *buf, size_t len, size_t *body_len) {
  bh_frame_reader r;
  bh_frame_reader_init(&r);
  bh_err err;
  size_t used = 0;
  CHECK_INT(bh_frame_reader_feed(&r, buf, len, &used, &err), BH_READ_DONE);
  CHECK_INT(used, len);
  *body_len = r.body_len;
  uint8_t *copy = malloc(r.body_len + 1);
  if (r.body_len) memcpy(copy, r.body, r.body_len);
  bh_frame_reader_free(&r);
  return copy;
}

static void test_round_trip(void) {
  uint8_t nonce[BH_NONCE_LEN];
  for (int i = 0; i < BH_NONCE_LEN; i++)
    nonce[i] = (uint8_t)(0xf0 ^ i);
  uint8_t *frame = NULL, *resp = NULL;
  size_t len = 0, rlen = 0, blen = 0;
  bh_err err;
  CHECK_CODE(bh_probe_request_build(nonce, &frame, &len, &err), BH_OK, &err);
  uint8_t *body = read_frame(frame, len, &blen);
  bh_request req = {0};
  CHECK_CODE(bh_probe_request_validate(body, blen, &req, &err), BH_OK, &err);
  CHECK(req.request_id == bh_request_id_from_nonce(nonce));
  CHECK(memcmp(req.nonce, nonce, BH_NONCE_LEN) == 0);
  CHECK_STR(req.traceparent, "");
  CHECK_STR(req.tracestate, "");
  free(body);

  bh_identity id, got;
  sample_identity(&id);
  bh_identity_init(&got);
  CHECK_CODE(bh_probe_response_build(&req, &id, &resp, &rlen, &err), BH_OK,
             &err);
  body = read_frame(resp, rlen, &blen);
  CHECK_CODE(bh_probe_response_validate(body, blen, req.request_id, nonce, &id,
                                        &got, &err),
             BH_OK, &err);
  CHECK_INT(got.started_at_unix_ms, 1);
  CHECK_STR(got.boot_id, "b");
  /* A mismatch still gives what the peer claimed; an earlier failure
   * (another request id) leaves got as it was. */
  bh_identity other;
  sample_identity(&other);
  free(other.boot_id);
  other.boot_id = strdup("another boot");
  bh_identity_clear(&got);
  CHECK_CODE(bh_probe_response_validate(body, blen, req.request_id, nonce,
                                        &other, &got, &err),
             BH_IDENTITY_MISMATCH, &err);
  CHECK_STR(got.boot_id, "b");
  bh_identity_clear(&got);
  CHECK_CODE(bh_probe_response_validate(body, blen, req.request_id + 1, nonce,
                                        &other, &got, &err),
             BH_UNEXPECTED_FRAME, &err);
  CHECK(got.boot_id == NULL);
  bh_identity_clear(&other);
  free(body);
  free(resp);
  free(frame);
  bh_identity_clear(&got);
  bh_identity_clear(&id);
  bh_request_clear(&req);
}

/* traceparent/tracestate of the request come back in the response. */
static void test_trace_copied(void) {
  uint8_t nonce[BH_NONCE_LEN], body[256];
  pb_frame f;
  request_frame(&f, nonce);
  f.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  f.tracestate = "congo=t61rcWkgMzE";
  size_t n = pack_frame(&f, body, sizeof body);
  bh_request req = {0};
  bh_err err;
  CHECK_CODE(bh_probe_request_validate(body, n, &req, &err), BH_OK, &err);
  CHECK_STR(req.traceparent, f.traceparent);
  CHECK_STR(req.tracestate, f.tracestate);
  bh_identity id;
  sample_identity(&id);
  uint8_t *resp = NULL;
  size_t rlen = 0;
  CHECK_CODE(bh_probe_response_build(&req, &id, &resp, &rlen, &err), BH_OK,
             &err);
  pb_frame *back = running_process__broker__v1__frame__unpack(
      NULL, rlen - BH_FRAME_HEADER_LEN, resp + BH_FRAME_HEADER_LEN);
  CHECK(back != NULL);
  if (back) {
    CHECK_STR(back->traceparent, f.traceparent);
    CHECK_STR(back->tracestate, f.tracestate);
    CHECK_INT(back->deadline_unix_ms, 0);
    running_process__broker__v1__frame__free_unpacked(back, NULL);
  }
  free(resp);
  bh_identity_clear(&id);
  bh_request_clear(&req);
}

/* ---- pbutil -------------------------------------------------------------- */

static void test_utf8(void) {
  CHECK(bh_utf8_valid("", 0));
  CHECK(bh_utf8_valid("abc", 3));
  CHECK(bh_utf8_valid("\xc3\xa9", 2));          /* é */
  CHECK(bh_utf8_valid("\xe2\x82\xac", 3));      /* € */
  CHECK(bh_utf8_valid("\xf0\x9f\x98\x80", 4));  /* U+1F600 */
  CHECK(bh_utf8_valid("\xf4\x8f\xbf\xbf", 4));  /* U+10FFFF */
  CHECK(!bh_utf8_valid("\xc0\x80", 2));         /* overlong NUL */
  CHECK(!bh_utf8_valid("\xe0\x80\xaf", 3));     /* overlong '/' */
  CHECK(!bh_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
  CHECK(!bh_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
  CHECK(!bh_utf8_valid("\xe2\x82", 2));         /* truncated */
  CHECK(!bh_utf8_valid("\x80", 1));             /* lone continuation */
  CHECK(!bh_utf8_valid("\xe2\x28\xa1", 3));     /* bad continuation */
  CHECK(!bh_utf8_valid("\xff", 1));
  CHECK(bh_pb_string_ok(protobuf_c_empty_string));
  CHECK(bh_pb_string_ok(NULL));
}

/* Identities decode through a stack arena: one whose strings do not fit
 * spills to the heap and still decodes to the same thing (ASan's leak
 * check sees the spilled blocks freed), and a hidden NUL is refused both
 * in a block of the arena and in a spilled one. */
static void check_decodes_back(const bh_identity *id) {
  uint8_t *bytes = NULL;
  size_t len = 0;
  bh_err err;
  CHECK_CODE(bh_identity_encode(id, BH_FORM_GEN1, &bytes, &len, &err), BH_OK,
             &err);
  bh_identity back;
  bh_identity_init(&back);
  CHECK_CODE(bh_identity_decode(bytes, len, &back, &err), BH_OK, &err);
  CHECK(back.exe_path != NULL && strcmp(back.exe_path, id->exe_path) == 0);
  CHECK(back.boot_id != NULL && strcmp(back.boot_id, id->boot_id) == 0);
  CHECK_INT(back.pid, id->pid);
  bh_identity_clear(&back);
  free(bytes);
}

static void test_identity_arena(void) {
  bh_identity id;
  sample_identity(&id);
  check_decodes_back(&id);
  char *big = malloc(3001);
  CHECK(big != NULL);
  if (big == NULL) return;
  memset(big, 'x', 3000);
  big[0] = '/';
  big[3000] = '\0';
  free(id.exe_path);
  id.exe_path = big;
  check_decodes_back(&id);
  bh_identity_clear(&id);

  /* A NUL inside a string, small (arena) and large (spilled). */
  for (size_t n = 4; n <= 3000; n += 2996) {
    pb_daemon d;
    pb_endpoint ep;
    uint8_t sha[32];
    sample_daemon(&d, &ep, sha);
    char *s = calloc(n + 1, 1);
    CHECK(s != NULL);
    if (s == NULL) return;
    memset(s, 'y', n);
    s[0] = '/';
    s[n / 2] = '\0';
    uint8_t *buf = malloc(n + 512);
    CHECK(buf != NULL);
    if (buf == NULL) return;
    /* protobuf-c packs strlen bytes: pack without the NUL, then put it
     * into the packed bytes. */
    s[n / 2] = 'y';
    d.exe_path = s;
    size_t len = pack_daemon(&d, buf, n + 512);
    uint8_t *at = memmem(buf, len, s, n);
    CHECK(at != NULL);
    if (at != NULL) at[n / 2] = 0;
    bh_identity back;
    bh_identity_init(&back);
    bh_err err;
    CHECK_CODE(bh_identity_decode(buf, len, &back, &err), BH_DECODE_IDENTITY,
               &err);
    bh_identity_clear(&back);
    free(buf);
    free(s);
  }
}

int main(void) {
  RUN(test_reader_one_byte_at_a_time);
  RUN(test_reader_whole_chunk_with_trailing);
  RUN(test_reader_header_split);
  RUN(test_reader_zero_length);
  RUN(test_reader_bad_version);
  RUN(test_reader_16mib_grows_with_data);
  RUN(test_reader_too_large);
  RUN(test_golden_request);
  RUN(test_request_template);
  RUN(test_reader_take);
  RUN(test_golden_identity);
  RUN(test_golden_response);
  RUN(test_round_trip);
  RUN(test_trace_copied);
  RUN(test_utf8);
  RUN(test_identity_arena);
  return bh_test_summary();
}
