/* Hostile answers to a probe request (see hostile.h): framing tricks are
 * raw bytes; frame tricks re-encode the good Frame with one field wrong;
 * identity tricks start from the good DaemonProcess and either re-encode
 * it with a part removed or append fields that a decoder reads last. */
#include "hostile.h"

#include <stdlib.h>
#include <string.h>

#include "daemon.pb-c.h"
#include "frame.pb-c.h"

typedef RunningProcess__Broker__V1__Frame Frame;
typedef RunningProcess__Broker__V1__DaemonProcess DaemonProcess;

static const struct {
  const char *name, *expected;
} hostiles[BH_HOSTILE_COUNT] = {
    [BH_HOSTILE_BAD_FRAMING] = {"bad_framing", "unsupported_framing_version"},
    [BH_HOSTILE_TOO_LARGE] = {"too_large", "frame_too_large"},
    [BH_HOSTILE_HUGE_HEADER] = {"huge_header", "frame_too_large"},
    [BH_HOSTILE_GARBAGE] = {"garbage", "decode_frame"},
    [BH_HOSTILE_EMPTY_BODY] = {"empty_body", "unexpected_frame"},
    [BH_HOSTILE_TRUNCATED] = {"truncated", "io"},
    [BH_HOSTILE_SHORT_PAYLOAD] = {"short_payload", "malformed_payload"},
    [BH_HOSTILE_WRONG_NONCE] = {"wrong_nonce", "unexpected_frame"},
    [BH_HOSTILE_WRONG_REQUEST_ID] = {"wrong_request_id", "unexpected_frame"},
    [BH_HOSTILE_WRONG_KIND] = {"wrong_kind", "unexpected_frame"},
    [BH_HOSTILE_UNKNOWN_KIND] = {"unknown_kind", "unexpected_frame"},
    [BH_HOSTILE_WRONG_PROTOCOL] = {"wrong_protocol", "unexpected_frame"},
    [BH_HOSTILE_COMPRESSED] = {"compressed", "unexpected_frame"},
    [BH_HOSTILE_ENVELOPE_0] = {"envelope_0", "unexpected_frame"},
    [BH_HOSTILE_BAD_TRACEPARENT] = {"bad_traceparent", "decode_frame"},
    [BH_HOSTILE_NO_ENDPOINT] = {"no_endpoint", "missing_endpoint"},
    [BH_HOSTILE_SHORT_SHA256] = {"short_sha256", "invalid_sha256_length"},
    [BH_HOSTILE_NUL_IN_STRING] = {"nul_in_string", "decode_identity"},
    [BH_HOSTILE_BAD_UTF8] = {"bad_utf8", "decode_identity"},
    [BH_HOSTILE_ZERO_TAG] = {"zero_tag", "decode_identity"},
    [BH_HOSTILE_UNKNOWN_FIELDS] = {"unknown_fields", "ok"},
    [BH_HOSTILE_TWICE] = {"twice", "ok"},
    [BH_HOSTILE_TRAILING] = {"trailing", "ok"},
};

const char *bh_hostile_name(bh_hostile h) {
  if (h <= BH_HOSTILE_NONE || h >= BH_HOSTILE_COUNT) return NULL;
  return hostiles[h].name;
}

const char *bh_hostile_expected(bh_hostile h) {
  if (h <= BH_HOSTILE_NONE || h >= BH_HOSTILE_COUNT) return NULL;
  return hostiles[h].expected;
}

bh_hostile bh_hostile_from_name(const char *name) {
  for (int h = BH_HOSTILE_NONE + 1; h < BH_HOSTILE_COUNT; h++)
    if (strcmp(hostiles[h].name, name) == 0) return (bh_hostile)h;
  return BH_HOSTILE_NONE;
}

/* ---- a growing byte buffer ------------------------------------------------
 */

typedef struct buf {
  uint8_t *p;
  size_t len, cap;
  bool failed;
} buf;

static void put(buf *b, const void *bytes, size_t n) {
  if (b->failed) return;
  if (b->len + n > b->cap) {
    size_t cap = (b->len + n) * 2;
    uint8_t *p = realloc(b->p, cap);
    if (p == NULL) {
      b->failed = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, bytes, n);
  b->len += n;
}

/* ---- the identity part ----------------------------------------------------
 */

/* The DaemonProcess of id, with the part h breaks: the endpoint left
 * out, a 31-byte digest, or fields appended that a decoder takes last. */
static bool put_identity(buf *b, bh_hostile h, const bh_identity *id) {
  uint8_t *pb = NULL;
  size_t n = 0;
  if (bh_identity_encode(id, BH_FORM_ANSWER, &pb, &n, NULL) != BH_OK)
    return false;
  if (h == BH_HOSTILE_NO_ENDPOINT || h == BH_HOSTILE_SHORT_SHA256) {
    DaemonProcess *d =
        running_process__broker__v1__daemon_process__unpack(NULL, n, pb);
    if (d == NULL) {
      free(pb);
      return false;
    }
    RunningProcess__Broker__V1__Endpoint *ep = d->ipc_endpoint;
    size_t digest_len = d->exe_sha256.len;
    if (h == BH_HOSTILE_NO_ENDPOINT) d->ipc_endpoint = NULL;
    if (h == BH_HOSTILE_SHORT_SHA256 && digest_len > 0) d->exe_sha256.len--;
    uint8_t out[4096];
    size_t m = running_process__broker__v1__daemon_process__get_packed_size(d);
    if (m <= sizeof out) {
      running_process__broker__v1__daemon_process__pack(d, out);
      put(b, out, m);
    }
    d->ipc_endpoint = ep; /* so that free_unpacked frees all of it */
    d->exe_sha256.len = digest_len;
    running_process__broker__v1__daemon_process__free_unpacked(d, NULL);
    free(pb);
    return m <= sizeof out;
  }
  put(b, pb, n);
  free(pb);
  if (h == BH_HOSTILE_NUL_IN_STRING) put(b, "\x12\x03/\0b", 5);
  if (h == BH_HOSTILE_BAD_UTF8) put(b, "\x12\x02/\xff", 4);
  if (h == BH_HOSTILE_ZERO_TAG) put(b, "\x80\x00\x01", 3);
  if (h == BH_HOSTILE_UNKNOWN_FIELDS) put(b, "\x90\x03\x01\x9a\x03\x02xy", 8);
  return true;
}

/* ---- the frame ------------------------------------------------------------
 */

/* The response frame to req carrying payload, with h's wrong field. */
static void put_frame(buf *b, bh_hostile h, const bh_request *req,
                      const uint8_t *payload, size_t payload_len) {
  Frame f = RUNNING_PROCESS__BROKER__V1__FRAME__INIT;
  f.envelope_version = h == BH_HOSTILE_ENVELOPE_0 ? 0 : 1;
  f.kind = h == BH_HOSTILE_WRONG_KIND
               ? RUNNING_PROCESS__BROKER__V1__FRAME_KIND__REQUEST
           : h == BH_HOSTILE_UNKNOWN_KIND
               ? 7
               : RUNNING_PROCESS__BROKER__V1__FRAME_KIND__RESPONSE;
  f.payload_protocol = BH_PROBE_PROTOCOL + (h == BH_HOSTILE_WRONG_PROTOCOL);
  f.request_id = req->request_id + (h == BH_HOSTILE_WRONG_REQUEST_ID);
  f.payload_encoding =
      h == BH_HOSTILE_COMPRESSED
          ? RUNNING_PROCESS__BROKER__V1__PAYLOAD_ENCODING__ZSTD
          : RUNNING_PROCESS__BROKER__V1__PAYLOAD_ENCODING__NONE;
  f.payload.data = (uint8_t *)payload;
  f.payload.len = payload_len;
  f.traceparent = h == BH_HOSTILE_BAD_TRACEPARENT ? "\xff" : req->traceparent;
  f.tracestate = req->tracestate;
  size_t n = running_process__broker__v1__frame__get_packed_size(&f);
  uint8_t *body = malloc(n ? n : 1);
  if (body == NULL) {
    b->failed = true;
    return;
  }
  running_process__broker__v1__frame__pack(&f, body);
  uint8_t header[BH_FRAME_HEADER_LEN];
  bh_frame_header((uint32_t)n, header);
  put(b, header, sizeof header);
  put(b, body, n);
  free(body);
}

/* The (possibly wrong) response frame: nonce, then the identity. */
static bool put_response(buf *b, bh_hostile h, const bh_request *req,
                         const bh_identity *id) {
  buf payload = {0};
  uint8_t nonce[BH_NONCE_LEN];
  memcpy(nonce, req->nonce, sizeof nonce);
  if (h == BH_HOSTILE_WRONG_NONCE) nonce[BH_NONCE_LEN - 1] ^= 1;
  put(&payload, nonce, h == BH_HOSTILE_SHORT_PAYLOAD ? 10 : sizeof nonce);
  bool ok = h == BH_HOSTILE_SHORT_PAYLOAD || put_identity(&payload, h, id);
  if (ok && !payload.failed) put_frame(b, h, req, payload.p, payload.len);
  free(payload.p);
  return ok && !payload.failed;
}

/* Framing tricks: bytes that never get as far as a Frame. */
static bool put_framing(buf *b, bh_hostile h) {
  switch (h) {
    case BH_HOSTILE_BAD_FRAMING:
      put(b, "\x02\x00\x00\x00\x00", 5);
      return true;
    case BH_HOSTILE_TOO_LARGE:
      put(b, "\x01\x01\x00\x00\x01", 5);
      return true;
    case BH_HOSTILE_HUGE_HEADER:
      put(b, "\x01\xff\xff\xff\xff", 5);
      return true;
    case BH_HOSTILE_GARBAGE:
      put(b, "\x01\x08\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff", 13);
      return true;
    case BH_HOSTILE_EMPTY_BODY:
      put(b, "\x01\x00\x00\x00\x00", 5);
      return true;
    case BH_HOSTILE_TRUNCATED:
      put(b, "\x01\x64\x00\x00\x00\x08\x01\x10\x01", 9);
      return true;
    default:
      return false;
  }
}

bh_status bh_hostile_build(bh_hostile h, const bh_request *req,
                           const bh_identity *id, uint8_t **out,
                           size_t *out_len, bh_err *err) {
  buf b = {0};
  bool ok = true;
  if (h <= BH_HOSTILE_NONE || h >= BH_HOSTILE_COUNT) {
    ok = false;
  } else if (!put_framing(&b, h)) {
    bool twice = h == BH_HOSTILE_TWICE;
    ok = put_response(&b, h, req, id) &&
         (!twice || put_response(&b, h, req, id));
    if (h == BH_HOSTILE_TRAILING) put(&b, "\x02garbage", 8);
  }
  if (!ok || b.failed) {
    free(b.p);
    return bh_err_set(err, BH_SYSTEM, NULL, "cannot build the %s answer",
                      bh_hostile_name(h) ? bh_hostile_name(h) : "hostile");
  }
  *out = b.p;
  *out_len = b.len;
  return BH_OK;
}
