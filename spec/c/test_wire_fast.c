/* The shortcuts of the wire layer give what the full protobuf-c path
 * gives, byte for byte and code for code: a response written from the
 * packed prefix (bh_probe_response_build_raw without trace context) is
 * protobuf-c's packing; a request laid out as the template is read as
 * protobuf-c reads it, and one laid out otherwise still is; an answer
 * checked against a prepared identity (bh_probe_response_check, which
 * compares the bytes of a canonical answer instead of decoding it) gets
 * the code, message and identity bh_probe_response_validate gives, for
 * good answers of each form, near misses and every hostile answer of
 * hostile.h. */
#include "expect.h"
#include "hostile.h"
#include "wire_fixtures.h"

/* protobuf-c's response to req with payload nonce + ident (framed). */
static size_t packed_response(const bh_request *req, const uint8_t *ident,
                              size_t ident_len, uint8_t *out, size_t cap) {
  uint8_t *payload = malloc(BH_NONCE_LEN + ident_len);
  memcpy(payload, req->nonce, BH_NONCE_LEN);
  if (ident_len > 0) memcpy(payload + BH_NONCE_LEN, ident, ident_len);
  pb_frame f = RUNNING_PROCESS__BROKER__V1__FRAME__INIT;
  f.envelope_version = 1;
  f.kind = RUNNING_PROCESS__BROKER__V1__FRAME_KIND__RESPONSE;
  f.payload_protocol = BH_PROBE_PROTOCOL;
  f.payload.data = payload;
  f.payload.len = BH_NONCE_LEN + ident_len;
  f.request_id = req->request_id;
  size_t n = pack_frame(&f, out + BH_FRAME_HEADER_LEN, cap - 5);
  bh_frame_header((uint32_t)n, out);
  free(payload);
  return n + BH_FRAME_HEADER_LEN;
}

static void test_response_written_as_packed(void) {
  static const uint64_t ids[] = {0,        1,          127,
                                 128,      16383,      16384,
                                 1u << 31, UINT64_MAX, 0x8000000000000000ull};
  /* payload lengths across the varint boundaries of 128 and 16384 */
  static const size_t lens[] = {0, 1, 95, 96, 200, 16351, 16352, 70000};
  static uint8_t ident[70000], want[80000];
  for (size_t i = 0; i < sizeof ident; i++)
    ident[i] = (uint8_t)(i * 7 + 3);
  for (size_t a = 0; a < sizeof ids / sizeof *ids; a++)
    for (size_t b = 0; b < sizeof lens / sizeof *lens; b++) {
      bh_request req = {.request_id = ids[a]};
      fixed_nonce(req.nonce);
      uint8_t *got = NULL;
      size_t n = 0;
      bh_err err;
      CHECK_CODE(
          bh_probe_response_build_raw(&req, ident, lens[b], &got, &n, &err),
          BH_OK, &err);
      size_t m = packed_response(&req, ident, lens[b], want, sizeof want);
      CHECK_INT(n, m);
      if (n == m) CHECK(memcmp(got, want, n) == 0);
      free(got);
    }
}

/* A request in the template's layout, and the same values laid out as
 * other packers may (fields out of order, a longer varint, an unknown
 * field), all read alike. */
static void test_request_layouts(void) {
  uint8_t nonce[BH_NONCE_LEN], req[BH_PROBE_REQUEST_MAX];
  for (int i = 0; i < BH_NONCE_LEN; i++)
    nonce[i] = (uint8_t)(0xf0 - i);
  size_t n = bh_probe_request_write(nonce, req);
  const uint8_t *body = req + BH_FRAME_HEADER_LEN;
  size_t blen = n - BH_FRAME_HEADER_LEN;
  bh_request r = {0};
  bh_err err;
  CHECK_CODE(bh_probe_request_validate(body, blen, &r, &err), BH_OK, &err);
  CHECK(r.request_id == bh_request_id_from_nonce(nonce));
  CHECK(memcmp(r.nonce, nonce, BH_NONCE_LEN) == 0);
  CHECK_STR(r.traceparent, "");
  CHECK_STR(r.tracestate, "");
  bh_request_clear(&r);
  /* field 5 first, then the others */
  uint8_t other[128];
  size_t tail = blen - 40; /* 28 <varint> */
  memcpy(other, body + 40, tail);
  memcpy(other + tail, body, 40);
  CHECK_CODE(bh_probe_request_validate(other, blen, &r, &err), BH_OK, &err);
  CHECK(r.request_id == bh_request_id_from_nonce(nonce));
  CHECK(memcmp(r.nonce, nonce, BH_NONCE_LEN) == 0);
  bh_request_clear(&r);
  /* request_id 5 as a two-byte varint (85 00), and an unknown field 20 */
  uint8_t longer[64];
  memcpy(longer, body, 40);
  memcpy(longer + 40, "\x28\x85\x00\xa0\x01\x07", 6);
  CHECK_CODE(bh_probe_request_validate(longer, 46, &r, &err), BH_OK, &err);
  CHECK_INT(r.request_id, 5);
  bh_request_clear(&r);
  /* kind RESPONSE inserted: refused by both ways of reading */
  uint8_t kind[64] = {0x08, 0x01, 0x10, 0x01};
  memcpy(kind + 4, body + 2, 38);
  CHECK_CODE(bh_probe_request_validate(kind, 42, &r, &err), BH_UNEXPECTED_FRAME,
             &err);
  /* the template with a 31-byte nonce */
  uint8_t short_nonce[64];
  memcpy(short_nonce, body, 39);
  short_nonce[7] = 31;
  CHECK_CODE(bh_probe_request_validate(short_nonce, 39, &r, &err),
             BH_MALFORMED_PAYLOAD, &err);
}

/* ---- answers against a prepared identity -------------------------------- */

static int fast_checked, compared;

/* Check the framed answer (header, body) both ways: the same code,
 * message, field and identity. */
static void same_verdict(const uint8_t *frame, size_t len, uint64_t request_id,
                         const uint8_t nonce[BH_NONCE_LEN],
                         const bh_identity *id, bh_expected *e,
                         const char *what) {
  if (len < BH_FRAME_HEADER_LEN) return;
  const uint8_t *body = frame + BH_FRAME_HEADER_LEN;
  size_t blen = len - BH_FRAME_HEADER_LEN;
  bh_identity slow_id, fast_id;
  bh_identity_init(&slow_id);
  bh_identity_init(&fast_id);
  bh_err slow, fast;
  bh_err_clear(&slow);
  bh_err_clear(&fast);
  bh_status s1 = bh_probe_response_validate(body, blen, request_id, nonce, id,
                                            &slow_id, &slow);
  bh_status s2 = bh_probe_response_check(body, blen, request_id, nonce, e,
                                         &fast_id, true, &fast);
  compared++;
  if (s1 != s2 || strcmp(slow.message, fast.message) != 0 ||
      slow.field != fast.field)
    bh_test_fail(__FILE__, __LINE__, "%s: validate says %s (%s), check %s (%s)",
                 what, bh_status_name(s1), slow.message, bh_status_name(s2),
                 fast.message);
  else
    bh_test_passed++;
  if (slow_id.exe_path != NULL || fast_id.exe_path != NULL) {
    char *a = bh_identity_to_json(&slow_id), *b = bh_identity_to_json(&fast_id);
    CHECK(a != NULL && b != NULL && strcmp(a, b) == 0);
    free(a);
    free(b);
  }
  bh_identity_clear(&slow_id);
  bh_identity_clear(&fast_id);
}

/* The answer to req from identity id in form, framed. */
static size_t answer(const bh_request *req, const bh_identity *id,
                     bh_id_form form, uint8_t **out) {
  uint8_t *pb = NULL;
  size_t pb_len = 0, n = 0;
  if (bh_identity_encode(id, form, &pb, &pb_len, NULL) != BH_OK) return 0;
  if (bh_probe_response_build_raw(req, pb, pb_len, out, &n, NULL) != BH_OK)
    n = 0;
  free(pb);
  return n;
}

static void check_identity_answers(const bh_identity *id) {
  bh_err err;
  bh_expected *e = bh_expected_new(id, true, &err);
  CHECK(e != NULL);
  if (e == NULL) return;
  for (int k = 0; k < 2; k++) {
    bh_request req = {0};
    fixed_nonce(req.nonce);
    req.request_id = k == 0 ? fixed_request_id() : 0;
    if (k == 1) memset(req.nonce, 0, 8); /* request_id 0: field 5 left out */
    uint8_t *a = NULL;
    size_t n;
    /* every form, good */
    static const bh_id_form forms[] = {BH_FORM_ANSWER, BH_FORM_GEN1,
                                       BH_FORM_GEN2};
    for (size_t f = 0; f < 3; f++) {
      if ((n = answer(&req, id, forms[f], &a)) == 0) continue;
      same_verdict(a, n, req.request_id, req.nonce, id, e, "good answer");
      /* a bit flipped anywhere in the body */
      for (size_t i = BH_FRAME_HEADER_LEN; i < n; i += 3) {
        a[i] ^= 0x04;
        same_verdict(a, n, req.request_id, req.nonce, id, e, "flipped bit");
        a[i] ^= 0x04;
      }
      /* cut short, and one byte too many */
      for (size_t cut = BH_FRAME_HEADER_LEN; cut < n; cut += 7)
        same_verdict(a, cut, req.request_id, req.nonce, id, e, "cut short");
      uint8_t *more = malloc(n + 1);
      memcpy(more, a, n);
      more[n] = 0;
      same_verdict(more, n + 1, req.request_id, req.nonce, id, e, "one more");
      free(more);
      /* the wrong request_id, the wrong nonce */
      same_verdict(a, n, req.request_id + 1, req.nonce, id, e, "request_id");
      uint8_t other[BH_NONCE_LEN];
      memcpy(other, req.nonce, sizeof other);
      other[31] ^= 1;
      same_verdict(a, n, req.request_id, other, id, e, "nonce");
      free(a);
      a = NULL;
    }
    /* the uncompared fields changed: other bytes, still verified */
    bh_identity later;
    bh_identity_init(&later);
    bh_identity_copy(&later, id, NULL);
    later.started_at_unix_ms += 1000;
    later.has_idle_timeout = !later.has_idle_timeout;
    if ((n = answer(&req, &later, BH_FORM_ANSWER, &a)) > 0)
      same_verdict(a, n, req.request_id, req.nonce, id, e, "later start");
    free(a);
    bh_identity_clear(&later);
    /* every hostile answer */
    for (int h = BH_HOSTILE_NONE + 1; h < BH_HOSTILE_COUNT; h++) {
      uint8_t *hb = NULL;
      size_t hn = 0;
      if (bh_hostile_build((bh_hostile)h, &req, id, &hb, &hn, NULL) == BH_OK)
        same_verdict(hb, hn, req.request_id, req.nonce, id, e,
                     bh_hostile_name((bh_hostile)h));
      free(hb);
    }
  }
  fast_checked++;
  bh_expected_unref(e);
}

static void test_check_same_as_validate(void) {
  bh_identity id;
  sample_identity(&id); /* SHA-256 only: the answer and generation-1 forms */
  check_identity_answers(&id);
  id.digests.algs |= BH_ALG_BLAKE3; /* both */
  memset(id.digests.blake3, 0xbb, BH_DIGEST_LEN);
  check_identity_answers(&id);
  id.digests.algs = BH_ALG_BLAKE3; /* BLAKE3 only */
  id.has_idle_timeout = false;
  check_identity_answers(&id);
  /* an exe_path that is not UTF-8: no encoding kept, every answer decoded
   * (and refused) */
  free(id.exe_path);
  id.exe_path = strdup("/a\xff");
  check_identity_answers(&id);
  bh_identity_clear(&id);
  printf("  %d answers checked both ways for %d identities\n", compared,
         fast_checked);
}

int main(void) {
  RUN(test_response_written_as_packed);
  RUN(test_request_layouts);
  RUN(test_check_same_as_validate);
  return bh_test_summary();
}
