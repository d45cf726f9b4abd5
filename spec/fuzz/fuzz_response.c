/* Fuzz target: response validation and identity decoding (src/core/wire.h).
 *
 * The input is a frame body, validated as the response to a fixed request
 * (nonce 00 01 .. 1f, traceparent set) twice: against the fixed expected
 * identity of fuzzcheck.h, and with no expected identity. Properties:
 *  - with and without the comparison agree up to the comparison: either
 *    both succeed, or both fail with the same code, or only the compared
 *    run fails, with exactly what bh_identity_compare says of the two
 *    (code, first field, every field; the expected identity has both
 *    digests, so an answer of either generation shares one with it);
 *  - a success hands back an identity with an endpoint, non-NULL strings;
 *  - that identity, answered by our own builder to the same request,
 *    validates again, decodes to an equal identity (every field) and gets
 *    the same verdict against the expected identity;
 *  - no leak, no crash (ASan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzcheck.h"
#include "wire.h"

/* Build our own response to req carrying id and validate it again,
 * checking the round trip properties listed above. */
static void check_rebuilt(const bh_request *req, const bh_identity *id,
                          const bh_identity *expected, const bh_err *verdict) {
  bh_err err;
  uint8_t *frame = NULL;
  size_t frame_len = 0;
  bh_status st = bh_probe_response_build(req, id, &frame, &frame_len, &err);
  FUZZ_ASSERT_OK(st, err);
  FUZZ_ASSERT(frame_len >= BH_FRAME_HEADER_LEN && frame[0] == 1);
  uint32_t body_len = (uint32_t)frame[1] | (uint32_t)frame[2] << 8 |
                      (uint32_t)frame[3] << 16 | (uint32_t)frame[4] << 24;
  FUZZ_ASSERT(body_len == frame_len - BH_FRAME_HEADER_LEN);
  const uint8_t *body = frame + BH_FRAME_HEADER_LEN;

  bh_identity again;
  bh_identity_init(&again);
  st = bh_probe_response_validate(body, body_len, req->request_id, req->nonce,
                                  NULL, &again, &err);
  FUZZ_ASSERT_OK(st, err);
  FUZZ_ASSERT(fuzz_identity_equal(id, &again));
  st = bh_probe_response_validate(body, body_len, req->request_id, req->nonce,
                                  expected, NULL, &err);
  FUZZ_ASSERT(st == verdict->code);
  if (st == BH_IDENTITY_MISMATCH) {
    FUZZ_ASSERT(fuzz_str_same(err.field, verdict->field));
    FUZZ_ASSERT(err.nfields == verdict->nfields);
  }
  bh_identity_clear(&again);
  free(frame);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  bh_request req;
  memset(&req, 0, sizeof req);
  fuzz_fixed_nonce(req.nonce);
  req.request_id = bh_request_id_from_nonce(req.nonce);
  req.traceparent =
      (char *)"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  req.tracestate = (char *)"";
  bh_identity expected;
  fuzz_fixed_identity(&expected);

  bh_err err_cmp, err_any;
  bh_identity got, got_any;
  bh_identity_init(&got);
  bh_identity_init(&got_any);
  bh_status compared = bh_probe_response_validate(
      data, size, req.request_id, req.nonce, &expected, &got, &err_cmp);
  bh_status plain = bh_probe_response_validate(
      data, size, req.request_id, req.nonce, NULL, &got_any, &err_any);

  if (compared != BH_OK) FUZZ_ASSERT(compared == err_cmp.code);
  if (plain != BH_OK) {
    FUZZ_ASSERT(plain == err_any.code && plain != BH_IDENTITY_MISMATCH);
    FUZZ_ASSERT(compared == plain);
  } else {
    FUZZ_ASSERT(got_any.exe_path != NULL && got_any.boot_id != NULL);
    FUZZ_ASSERT(got_any.endpoint.namespace_id != NULL &&
                got_any.endpoint.path != NULL);
    bh_err verdict;
    bh_err_clear(&verdict);
    bh_status want = bh_identity_compare(&expected, &got_any, &verdict);
    FUZZ_ASSERT(want == BH_OK || want == BH_IDENTITY_MISMATCH);
    FUZZ_ASSERT(compared == want);
    if (want == BH_OK) {
      FUZZ_ASSERT(fuzz_identity_equal(&got, &got_any));
    } else {
      FUZZ_ASSERT(fuzz_str_same(err_cmp.field, verdict.field));
      FUZZ_ASSERT(err_cmp.nfields == verdict.nfields && verdict.nfields >= 1);
      for (unsigned i = 0; i < verdict.nfields; i++)
        FUZZ_ASSERT(fuzz_str_same(err_cmp.fields[i], verdict.fields[i]));
    }
    check_rebuilt(&req, &got_any, &expected, &verdict);
  }
  bh_identity_clear(&got);
  bh_identity_clear(&got_any);
  bh_identity_clear(&expected);
  return 0;
}
