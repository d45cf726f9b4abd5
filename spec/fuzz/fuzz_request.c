/* Fuzz target: request validation (src/core/wire.h), the responder's parser.
 *
 * Properties:
 *  - the verdict agrees with an oracle that unpacks the Frame with
 *    protobuf-c itself and applies design §1.4's order: decode_frame (also
 *    for a trace string with NUL or invalid UTF-8, for field number 0,
 *    which prost refuses, and for a body the field-count pre-scan refuses,
 *    whose unknown-field count must then agree with protobuf-c's own),
 *    envelope_version 1,
 *    kind REQUEST, protocol 0xB232, encoding NONE (unexpected_frame),
 *    payload exactly 32 bytes (malformed_payload);
 *  - a success carries the frame's request_id, its payload as the nonce
 *    and copies of both trace strings (never NULL);
 *  - a response our builder makes for that request validates against the
 *    request's id and nonce (expected NULL) and carries the identity back
 *    unchanged;
 *  - no leak, no crash (ASan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.pb-c.h"
#include "fuzzcheck.h"
#include "pbutil.h"
#include "wire.h"

typedef RunningProcess__Broker__V1__Frame pb_frame;

/* The code design §1.4 gives for body; BH_OK for a valid request. */
static bh_status oracle(const uint8_t *body, size_t len) {
  const bh_pb_limits *lim = &bh_pb_limits_message;
  bool refused = bh_pb_prescan(&running_process__broker__v1__frame__descriptor,
                               body, len, lim, BH_DECODE_FRAME, NULL) != BH_OK;
  pb_frame *f =
      running_process__broker__v1__frame__unpack(&bh_pb_allocator, len, body);
  if (f == NULL) return BH_DECODE_FRAME;
  /* A Frame has no sub-message: protobuf-c's unknown fields are exactly
   * the ones the pre-scan counted. */
  FUZZ_ASSERT(refused || f->base.n_unknown_fields <= lim->max_unknown);
  bh_status want = BH_OK;
  if (refused || !bh_pb_tags_ok(&f->base) || !bh_pb_string_ok(f->traceparent) ||
      !bh_pb_string_ok(f->tracestate))
    want = BH_DECODE_FRAME;
  else if (f->envelope_version != 1 ||
           f->kind != RUNNING_PROCESS__BROKER__V1__FRAME_KIND__REQUEST ||
           f->payload_protocol != BH_PROBE_PROTOCOL ||
           f->payload_encoding !=
               RUNNING_PROCESS__BROKER__V1__PAYLOAD_ENCODING__NONE)
    want = BH_UNEXPECTED_FRAME;
  else if (f->payload.len != BH_NONCE_LEN)
    want = BH_MALFORMED_PAYLOAD;
  running_process__broker__v1__frame__free_unpacked(f, &bh_pb_allocator);
  return want;
}

/* The success side: the request holds what the frame held. */
static void check_request(const bh_request *req, const uint8_t *body,
                          size_t len) {
  pb_frame *f =
      running_process__broker__v1__frame__unpack(&bh_pb_allocator, len, body);
  FUZZ_ASSERT(f != NULL);
  FUZZ_ASSERT(req->request_id == f->request_id);
  FUZZ_ASSERT(memcmp(req->nonce, f->payload.data, BH_NONCE_LEN) == 0);
  FUZZ_ASSERT(req->traceparent != NULL && req->tracestate != NULL);
  FUZZ_ASSERT(strcmp(req->traceparent, f->traceparent) == 0);
  FUZZ_ASSERT(strcmp(req->tracestate, f->tracestate) == 0);
  running_process__broker__v1__frame__free_unpacked(f, &bh_pb_allocator);
}

/* Answer req with the fixed identity and validate the answer as the prober
 * that sent req would. */
static void check_answer(const bh_request *req) {
  bh_err err;
  bh_identity id, got;
  fuzz_fixed_identity(&id);
  bh_identity_init(&got);
  uint8_t *frame = NULL;
  size_t frame_len = 0;
  bh_status st = bh_probe_response_build(req, &id, &frame, &frame_len, &err);
  FUZZ_ASSERT_OK(st, err);
  FUZZ_ASSERT(frame_len >= BH_FRAME_HEADER_LEN);
  st = bh_probe_response_validate(
      frame + BH_FRAME_HEADER_LEN, frame_len - BH_FRAME_HEADER_LEN,
      req->request_id, req->nonce, NULL, &got, &err);
  FUZZ_ASSERT_OK(st, err);
  FUZZ_ASSERT(fuzz_identity_equal(&id, &got));
  /* the trace fields travel back unchanged */
  pb_frame *f = running_process__broker__v1__frame__unpack(
      &bh_pb_allocator, frame_len - BH_FRAME_HEADER_LEN,
      frame + BH_FRAME_HEADER_LEN);
  FUZZ_ASSERT(f != NULL);
  FUZZ_ASSERT(strcmp(f->traceparent, req->traceparent) == 0);
  FUZZ_ASSERT(strcmp(f->tracestate, req->tracestate) == 0);
  running_process__broker__v1__frame__free_unpacked(f, &bh_pb_allocator);
  free(frame);
  bh_identity_clear(&got);
  bh_identity_clear(&id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  bh_request req;
  memset(&req, 0, sizeof req);
  bh_err err;
  bh_err_clear(&err);
  bh_status st = bh_probe_request_validate(data, size, &req, &err);
  bh_status want = oracle(data, size);
  if (st != want) {
    fprintf(stderr, "request: got %s (%s), oracle says %s\n",
            bh_status_name(st), err.message, bh_status_name(want));
    abort();
  }
  if (st == BH_OK) {
    check_request(&req, data, size);
    check_answer(&req);
  } else {
    FUZZ_ASSERT(err.code == st);
  }
  bh_request_clear(&req);
  return 0;
}
