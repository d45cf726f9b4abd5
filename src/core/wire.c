/* The wire contract (design §1.2–1.4): framing, the incremental frame
 * reader, and building/validating probe requests and responses with the
 * protobuf-c generated Frame codec. Pure code: no sockets, no Lua. */
#include "wire.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "expect.h"
#include "frame.pb-c.h"
#include "pbutil.h"

typedef RunningProcess__Broker__V1__Frame pb_frame;

#define KIND_REQUEST RUNNING_PROCESS__BROKER__V1__FRAME_KIND__REQUEST
#define KIND_RESPONSE RUNNING_PROCESS__BROKER__V1__FRAME_KIND__RESPONSE
#define ENCODING_NONE RUNNING_PROCESS__BROKER__V1__PAYLOAD_ENCODING__NONE
enum { READER_MIN_CAP = 256 };

/* ---- framing ---------------------------------------------------------- */

void bh_frame_header(uint32_t body_len, uint8_t out[BH_FRAME_HEADER_LEN]) {
  out[0] = BH_FRAMING_VERSION;
  for (int i = 0; i < 4; i++)
    out[1 + i] = (uint8_t)(body_len >> (8 * i));
}

void bh_frame_reader_init(bh_frame_reader *r) {
  memset(r, 0, sizeof *r);
}

void bh_frame_reader_limit(bh_frame_reader *r, uint32_t max_body,
                           const char *name) {
  r->max_body = max_body < BH_FRAME_MAX_BODY ? max_body : 0;
  r->limit_name = name;
}

void bh_frame_reader_free(bh_frame_reader *r) {
  free(r->body);
  bh_frame_reader_init(r);
}

size_t bh_frame_reader_heap(const bh_frame_reader *r) {
  return r->body_cap;
}

/* Judge what has arrived of the header so far: the version byte as soon as
 * it is there, the length once all five bytes are. Stateless, so a reader
 * that failed keeps failing when fed again. */
static bh_status judge_header(bh_frame_reader *r, bh_err *err) {
  if (r->header_got >= 1 && r->header[0] != BH_FRAMING_VERSION)
    return bh_err_set(err, BH_UNSUPPORTED_FRAMING_VERSION, NULL,
                      "framing version %u, expected %d", r->header[0],
                      BH_FRAMING_VERSION);
  if (r->header_got < BH_FRAME_HEADER_LEN) return BH_OK;
  uint32_t n = 0;
  for (int i = 0; i < 4; i++)
    n |= (uint32_t)r->header[1 + i] << (8 * i);
  r->body_len = n;
  if (n > BH_FRAME_MAX_BODY)
    return bh_err_set(err, BH_FRAME_TOO_LARGE, NULL,
                      "frame body of %u bytes exceeds the %u-byte cap", n,
                      BH_FRAME_MAX_BODY);
  if (r->max_body != 0 && n > r->max_body)
    return bh_err_set(err, BH_FRAME_TOO_LARGE, NULL,
                      "frame body of %u bytes exceeds %s (%u bytes)", n,
                      r->limit_name ? r->limit_name : "the limit", r->max_body);
  return BH_OK;
}

/* Make room for `need` body bytes in all, growing geometrically from a
 * small start and never past body_len: memory follows the bytes that have
 * actually arrived, not the length the peer announced. */
static bh_status reserve_body(bh_frame_reader *r, uint32_t need, bh_err *err) {
  if (need <= r->body_cap) return BH_OK;
  uint32_t cap = r->body_cap ? r->body_cap : READER_MIN_CAP;
  while (cap < need)
    cap = cap > UINT32_MAX / 2 ? UINT32_MAX : cap * 2;
  if (cap > r->body_len) cap = r->body_len;
  uint8_t *p = realloc(r->body, cap);
  if (p == NULL)
    return bh_err_set(err, BH_SYSTEM, NULL,
                      "out of memory growing a frame buffer to %u bytes", cap);
  r->body = p;
  r->body_cap = cap;
  return BH_OK;
}

/* Take header bytes one at a time, judging after each, so a bad version
 * fails on the first byte and a bad length before any allocation. */
static bh_read_result feed_header(bh_frame_reader *r, const uint8_t *data,
                                  size_t len, size_t *used, bh_err *err) {
  while (r->header_got < BH_FRAME_HEADER_LEN && *used < len) {
    r->header[r->header_got++] = data[(*used)++];
    if (judge_header(r, err) != BH_OK) return BH_READ_ERROR;
  }
  return r->header_got < BH_FRAME_HEADER_LEN ? BH_READ_MORE : BH_READ_DONE;
}

bh_read_result bh_frame_reader_feed(bh_frame_reader *r, const uint8_t *data,
                                    size_t len, size_t *used, bh_err *err) {
  *used = 0;
  if (r->done) return BH_READ_DONE;
  if (judge_header(r, err) != BH_OK) return BH_READ_ERROR;
  bh_read_result res = feed_header(r, data, len, used, err);
  if (res != BH_READ_DONE) return res;
  uint32_t want = r->body_len - r->body_got;
  size_t avail = len - *used;
  uint32_t take = avail < want ? (uint32_t)avail : want;
  if (take > 0) {
    if (reserve_body(r, r->body_got + take, err) != BH_OK) return BH_READ_ERROR;
    memcpy(r->body + r->body_got, data + *used, take);
    r->body_got += take;
    *used += take;
  }
  if (r->body_got < r->body_len) return BH_READ_MORE;
  r->done = true;
  return BH_READ_DONE;
}

bh_read_result bh_frame_reader_take(bh_frame_reader *r, const uint8_t *data,
                                    size_t len, size_t *used,
                                    const uint8_t **body, bh_err *err) {
  *body = NULL;
  if (!r->done && r->header_got == 0 && len >= BH_FRAME_HEADER_LEN) {
    /* The header judged as feed_header would (a bad version first). */
    memcpy(r->header, data, BH_FRAME_HEADER_LEN);
    r->header_got = BH_FRAME_HEADER_LEN;
    *used = BH_FRAME_HEADER_LEN;
    if (judge_header(r, err) != BH_OK) return BH_READ_ERROR;
    if (len - BH_FRAME_HEADER_LEN >= r->body_len) {
      r->body_got = r->body_len;
      r->done = true;
      *used += r->body_len;
      *body = data + BH_FRAME_HEADER_LEN;
      return BH_READ_DONE;
    }
    size_t more = 0;
    bh_read_result res = bh_frame_reader_feed(
        r, data + BH_FRAME_HEADER_LEN, len - BH_FRAME_HEADER_LEN, &more, err);
    *used += more;
    if (res == BH_READ_DONE) *body = r->body;
    return res;
  }
  bh_read_result res = bh_frame_reader_feed(r, data, len, used, err);
  if (res == BH_READ_DONE) *body = r->body;
  return res;
}

/* ---- Frame codec -------------------------------------------------------- */

/* A decoded Frame and the arena it was decoded into: a probe's (its
 * payload an identity of a few hundred bytes) fits, so it costs no malloc.
 * Lives in the caller's frame; frame_close releases it. */
typedef struct frame_box {
  bh_pb_arena arena;
  pb_frame *f;
} frame_box;

static void frame_close(frame_box *b) {
  bh_pb_arena_release(&b->arena, b->f != NULL ? &b->f->base : NULL);
  b->f = NULL;
}

/* Decode a Frame body into b->f. Strings prost would reject (invalid
 * UTF-8) or that hide a NUL are decode errors too. b needs frame_close
 * whatever this returns. */
static bh_status frame_decode(const uint8_t *body, size_t len, frame_box *b,
                              bh_err *err) {
  static const uint8_t empty[1];
  bh_pb_arena_init(&b->arena);
  b->f = NULL;
  if (bh_pb_prescan(&running_process__broker__v1__frame__descriptor, body, len,
                    &bh_pb_limits_message, BH_DECODE_FRAME, err) != BH_OK)
    return BH_DECODE_FRAME;
  pb_frame *f = running_process__broker__v1__frame__unpack(
      &b->arena.allocator, len, body ? body : empty);
  if (f == NULL)
    return bh_err_set(err, BH_DECODE_FRAME, NULL,
                      "expected a Frame protobuf, got %zu undecodable bytes",
                      len);
  b->f = f;
  if (!bh_pb_tags_ok(&f->base))
    return bh_err_set(err, BH_DECODE_FRAME, NULL,
                      "expected a Frame protobuf, got a field number 0");
  const char *bad = !bh_pb_string_ok(f->traceparent)  ? "traceparent"
                    : !bh_pb_string_ok(f->tracestate) ? "tracestate"
                                                      : NULL;
  if (bad != NULL)
    return bh_err_set(err, BH_DECODE_FRAME, NULL,
                      "Frame %s is not a valid UTF-8 string without NUL", bad);
  return BH_OK;
}

/* Pack f behind a 5-byte header into one malloc'd buffer. */
static bh_status frame_pack(const pb_frame *f, uint8_t **out, size_t *out_len,
                            bh_err *err) {
  size_t body = running_process__broker__v1__frame__get_packed_size(f);
  if (body > BH_FRAME_MAX_BODY)
    return bh_err_set(err, BH_FRAME_TOO_LARGE, NULL,
                      "frame body of %zu bytes exceeds the %u-byte cap", body,
                      BH_FRAME_MAX_BODY);
  uint8_t *buf = malloc(BH_FRAME_HEADER_LEN + body);
  if (buf == NULL)
    return bh_err_set(err, BH_SYSTEM, NULL,
                      "out of memory building a %zu-byte frame", body);
  bh_frame_header((uint32_t)body, buf);
  running_process__broker__v1__frame__pack(f, buf + BH_FRAME_HEADER_LEN);
  *out = buf;
  *out_len = BH_FRAME_HEADER_LEN + body;
  return BH_OK;
}

static const char *kind_name(unsigned k) {
  static const char *const names[] = {"REQUEST", "RESPONSE", "EVENT", "CANCEL"};
  return k < 4 ? names[k] : "unknown";
}

static const char *encoding_name(unsigned e) {
  static const char *const names[] = {"NONE", "ZSTD", "SNAPPY", "LZ4"};
  return e < 4 ? names[e] : "unknown";
}

/* The checks both sides make first, in order: envelope_version 1, the
 * wanted kind, the probe payload protocol. */
static bh_status check_envelope(const pb_frame *f, unsigned kind, bh_err *err) {
  if (f->envelope_version != 1)
    return bh_err_set(err, BH_UNEXPECTED_FRAME, NULL,
                      "envelope_version %u, expected 1", f->envelope_version);
  if ((unsigned)f->kind != kind)
    return bh_err_set(
        err, BH_UNEXPECTED_FRAME, NULL, "kind %s (%u), expected %s (%u)",
        kind_name((unsigned)f->kind), (unsigned)f->kind, kind_name(kind), kind);
  if (f->payload_protocol != BH_PROBE_PROTOCOL)
    return bh_err_set(err, BH_UNEXPECTED_FRAME, NULL,
                      "payload_protocol 0x%X, expected 0x%X",
                      f->payload_protocol, (unsigned)BH_PROBE_PROTOCOL);
  return BH_OK;
}

static bh_status check_encoding(const pb_frame *f, bh_err *err) {
  if (f->payload_encoding == ENCODING_NONE) return BH_OK;
  return bh_err_set(err, BH_UNEXPECTED_FRAME, NULL,
                    "payload_encoding %s (%u), expected NONE (0)",
                    encoding_name((unsigned)f->payload_encoding),
                    (unsigned)f->payload_encoding);
}

/* ---- requests ------------------------------------------------------------ */

uint64_t bh_request_id_from_nonce(const uint8_t nonce[BH_NONCE_LEN]) {
  uint64_t id = 0;
  for (int i = 0; i < 8; i++)
    id |= (uint64_t)nonce[i] << (8 * i);
  return id;
}

bh_status bh_probe_request_build(const uint8_t nonce[BH_NONCE_LEN],
                                 uint8_t **out, size_t *out_len, bh_err *err) {
  pb_frame f = RUNNING_PROCESS__BROKER__V1__FRAME__INIT;
  f.envelope_version = 1;
  f.kind = KIND_REQUEST;
  f.payload_protocol = BH_PROBE_PROTOCOL;
  f.payload.len = BH_NONCE_LEN;
  f.payload.data = (uint8_t *)nonce;
  f.request_id = bh_request_id_from_nonce(nonce);
  f.payload_encoding = ENCODING_NONE;
  return frame_pack(&f, out, out_len, err);
}

/* The request of an all-zero nonce, packed by protobuf-c: request_id 0
 * is left out, so the body is the envelope, kind, protocol and payload
 * fields, with the nonce at its end; field 5 (request_id), the last one
 * a request sets, is appended after it. Packed once. */
static struct {
  pthread_once_t once;
  uint8_t body[BH_PROBE_REQUEST_MAX];
  size_t len;
} request_template = {PTHREAD_ONCE_INIT, {0}, 0};

static void make_request_template(void) {
  static const uint8_t zero[BH_NONCE_LEN];
  pb_frame f = RUNNING_PROCESS__BROKER__V1__FRAME__INIT;
  f.envelope_version = 1;
  f.kind = KIND_REQUEST;
  f.payload_protocol = BH_PROBE_PROTOCOL;
  f.payload.len = BH_NONCE_LEN;
  f.payload.data = (uint8_t *)zero;
  f.payload_encoding = ENCODING_NONE;
  /* 40 bytes: with the header and field 5 (a key and at most a 10-byte
   * varint) 56, within BH_PROBE_REQUEST_MAX. */
  request_template.len =
      running_process__broker__v1__frame__pack(&f, request_template.body);
}

/* Append v as a protobuf varint at out; returns its length. */
static size_t put_varint(uint8_t *out, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  out[n++] = (uint8_t)v;
  return n;
}

size_t bh_probe_request_write(const uint8_t nonce[BH_NONCE_LEN],
                              uint8_t out[BH_PROBE_REQUEST_MAX]) {
  (void)pthread_once(&request_template.once, make_request_template);
  size_t n = request_template.len;
  uint8_t *body = out + BH_FRAME_HEADER_LEN;
  memcpy(body, request_template.body, n);
  memcpy(body + n - BH_NONCE_LEN, nonce, BH_NONCE_LEN);
  uint64_t id = bh_request_id_from_nonce(nonce);
  if (id != 0) {
    body[n++] = 5 << 3; /* field 5, varint */
    n += put_varint(body + n, id);
  }
  bh_frame_header((uint32_t)n, out);
  return BH_FRAME_HEADER_LEN + n;
}

void bh_request_clear(bh_request *req) {
  free(req->traceparent);
  free(req->tracestate);
  memset(req, 0, sizeof *req);
}

/* Fill req from a frame that passed validation; only allocation fails. */
static bh_status request_fill(const pb_frame *f, bh_request *req, bh_err *err) {
  memset(req, 0, sizeof *req);
  req->request_id = f->request_id;
  memcpy(req->nonce, f->payload.data, BH_NONCE_LEN);
  req->traceparent = strdup(f->traceparent ? f->traceparent : "");
  req->tracestate = strdup(f->tracestate ? f->tracestate : "");
  if (req->traceparent == NULL || req->tracestate == NULL) {
    bh_request_clear(req);
    return bh_err_set(err, BH_SYSTEM, NULL, "out of memory copying trace");
  }
  return BH_OK;
}

/* The fields of a response before its payload (envelope_version 1, kind
 * RESPONSE, the probe protocol), packed by protobuf-c once. */
static struct {
  pthread_once_t once;
  uint8_t bytes[16];
  size_t len;
} response_prefix = {PTHREAD_ONCE_INIT, {0}, 0};

static void make_response_prefix(void) {
  pb_frame f = RUNNING_PROCESS__BROKER__V1__FRAME__INIT;
  f.envelope_version = 1;
  f.kind = KIND_RESPONSE;
  f.payload_protocol = BH_PROBE_PROTOCOL;
  /* 8 bytes: three one-byte keys and varints of 1, 1 and 3 bytes. */
  response_prefix.len =
      running_process__broker__v1__frame__pack(&f, response_prefix.bytes);
}

/* Read a varint at *p (before end), which must be in its shortest form,
 * as a packer writes it; false when it is not, or does not end there. */
static bool get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  const uint8_t *at = *p;
  uint8_t shortest[10];
  *v = 0;
  for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
    uint8_t b = *(*p)++;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return put_varint(shortest, *v) == (size_t)(*p - at);
  }
  return false;
}

/* Is body laid out as the request template (probe.c's requests, and every
 * other prober's whose packer writes the same fields the same way), with
 * any nonce and request_id? Then fill *req as the full validation would. */
static bool canonical_request(const uint8_t *body, size_t len,
                              bh_request *req) {
  (void)pthread_once(&request_template.once, make_request_template);
  size_t n = request_template.len;
  if (len < n || memcmp(body, request_template.body, n - BH_NONCE_LEN) != 0)
    return false;
  const uint8_t *p = body + n, *end = body + len;
  uint64_t id = 0;
  if (p < end && (*p++ != (5 << 3) || !get_varint(&p, end, &id) || id == 0))
    return false; /* field 5 and nothing else, 0 left out */
  if (p != end) return false;
  char *tp = strdup(""), *ts = strdup("");
  if (tp == NULL || ts == NULL) {
    free(tp);
    free(ts);
    return false; /* the full validation says it */
  }
  memset(req, 0, sizeof *req);
  req->request_id = id;
  memcpy(req->nonce, body + n - BH_NONCE_LEN, BH_NONCE_LEN);
  req->traceparent = tp;
  req->tracestate = ts;
  return true;
}

bh_status bh_probe_request_validate(const uint8_t *body, size_t len,
                                    bh_request *out, bh_err *err) {
  if (canonical_request(body, len, out)) return BH_OK;
  frame_box box;
  bh_status st = frame_decode(body, len, &box, err);
  const pb_frame *f = box.f;
  if (st == BH_OK) st = check_envelope(f, KIND_REQUEST, err);
  if (st == BH_OK) st = check_encoding(f, err);
  if (st == BH_OK && f->payload.len != BH_NONCE_LEN)
    st = bh_err_set(err, BH_MALFORMED_PAYLOAD, NULL,
                    "request payload of %zu bytes, expected a %d-byte nonce",
                    f->payload.len, BH_NONCE_LEN);
  if (st == BH_OK) st = request_fill(f, out, err);
  frame_close(&box);
  return st;
}

/* ---- responses ----------------------------------------------------------- */

/* The response to a request without trace context, written as protobuf-c
 * packs it (the fields before the payload packed once, then the payload
 * and request_id) into one buffer. */
static bh_status response_write(const bh_request *req,
                                const uint8_t *identity_pb, size_t identity_len,
                                uint8_t **out, size_t *out_len, bh_err *err) {
  (void)pthread_once(&response_prefix.once, make_response_prefix);
  size_t plen = BH_NONCE_LEN + identity_len;
  uint8_t lenv[10], idv[10];
  size_t body =
      response_prefix.len + 1 + put_varint(lenv, plen) + plen +
      (req->request_id != 0 ? 1 + put_varint(idv, req->request_id) : 0);
  if (body > BH_FRAME_MAX_BODY) /* as frame_pack says it */
    return bh_err_set(err, BH_FRAME_TOO_LARGE, NULL,
                      "frame body of %zu bytes exceeds the %u-byte cap", body,
                      BH_FRAME_MAX_BODY);
  size_t max = BH_FRAME_HEADER_LEN + body;
  uint8_t *buf = malloc(max);
  if (buf == NULL)
    return bh_err_set(err, BH_SYSTEM, NULL,
                      "out of memory building a %zu-byte frame", max);
  uint8_t *p = buf + BH_FRAME_HEADER_LEN;
  memcpy(p, response_prefix.bytes, response_prefix.len);
  p += response_prefix.len;
  *p++ = (4 << 3) | 2; /* payload, length-delimited */
  p += put_varint(p, plen);
  memcpy(p, req->nonce, BH_NONCE_LEN);
  if (identity_len > 0) memcpy(p + BH_NONCE_LEN, identity_pb, identity_len);
  p += plen;
  if (req->request_id != 0) {
    *p++ = 5 << 3;
    p += put_varint(p, req->request_id);
  }
  bh_frame_header((uint32_t)body, buf);
  *out = buf;
  *out_len = max;
  return BH_OK;
}

bh_status bh_probe_response_build_raw(const bh_request *req,
                                      const uint8_t *identity_pb,
                                      size_t identity_len, uint8_t **out,
                                      size_t *out_len, bh_err *err) {
  if (identity_len > BH_FRAME_MAX_BODY)
    return bh_err_set(err, BH_FRAME_TOO_LARGE, NULL,
                      "identity of %zu bytes exceeds the %u-byte frame cap",
                      identity_len, BH_FRAME_MAX_BODY);
  if ((req->traceparent == NULL || req->traceparent[0] == '\0') &&
      (req->tracestate == NULL || req->tracestate[0] == '\0'))
    return response_write(req, identity_pb, identity_len, out, out_len, err);
  size_t plen = BH_NONCE_LEN + identity_len;
  uint8_t *payload = malloc(plen);
  if (payload == NULL)
    return bh_err_set(err, BH_SYSTEM, NULL,
                      "out of memory building a %zu-byte payload", plen);
  memcpy(payload, req->nonce, BH_NONCE_LEN);
  if (identity_len > 0)
    memcpy(payload + BH_NONCE_LEN, identity_pb, identity_len);
  pb_frame f = RUNNING_PROCESS__BROKER__V1__FRAME__INIT;
  f.envelope_version = 1;
  f.kind = KIND_RESPONSE;
  f.payload_protocol = BH_PROBE_PROTOCOL;
  f.payload.len = plen;
  f.payload.data = payload;
  f.request_id = req->request_id;
  f.payload_encoding = ENCODING_NONE;
  f.traceparent = req->traceparent ? req->traceparent : "";
  f.tracestate = req->tracestate ? req->tracestate : "";
  bh_status st = frame_pack(&f, out, out_len, err);
  free(payload);
  return st;
}

bh_status bh_probe_response_build(const bh_request *req, const bh_identity *id,
                                  uint8_t **out, size_t *out_len, bh_err *err) {
  uint8_t *pb = NULL;
  size_t pb_len = 0;
  bh_status st = bh_identity_encode(id, BH_FORM_ANSWER, &pb, &pb_len, err);
  if (st != BH_OK) return st;
  st = bh_probe_response_build_raw(req, pb, pb_len, out, out_len, err);
  free(pb);
  return st;
}

/* Check the payload of a response that passed the frame checks: the nonce
 * echo, then the identity behind it (decoded and compared). */
static bh_status check_payload(const pb_frame *f,
                               const uint8_t nonce[BH_NONCE_LEN],
                               const bh_identity *expected, bh_identity *got,
                               bh_err *err) {
  if (f->payload.len < BH_NONCE_LEN)
    return bh_err_set(err, BH_MALFORMED_PAYLOAD, NULL,
                      "response payload of %zu bytes, expected at least %d",
                      f->payload.len, BH_NONCE_LEN);
  if (memcmp(f->payload.data, nonce, BH_NONCE_LEN) != 0)
    return bh_err_set(err, BH_UNEXPECTED_FRAME, NULL,
                      "nonce does not match endpoint probe request");
  bh_identity id;
  bh_identity_init(&id);
  bh_status st = bh_identity_decode(f->payload.data + BH_NONCE_LEN,
                                    f->payload.len - BH_NONCE_LEN, &id, err);
  if (st != BH_OK) return st;
  if (expected != NULL) st = bh_identity_compare(expected, &id, err);
  /* what the peer claimed, also when it is not what was expected: an
   * investigation wants to see the lie */
  if (got != NULL) bh_identity_move(got, &id);
  bh_identity_clear(&id);
  return st;
}

bh_status bh_probe_response_validate(const uint8_t *body, size_t len,
                                     uint64_t request_id,
                                     const uint8_t nonce[BH_NONCE_LEN],
                                     const bh_identity *expected,
                                     bh_identity *got, bh_err *err) {
  frame_box box;
  bh_status st = frame_decode(body, len, &box, err);
  const pb_frame *f = box.f;
  if (st == BH_OK) st = check_envelope(f, KIND_RESPONSE, err);
  if (st == BH_OK && f->request_id != request_id)
    st = bh_err_set(
        err, BH_UNEXPECTED_FRAME, NULL, "request_id %llu, expected %llu",
        (unsigned long long)f->request_id, (unsigned long long)request_id);
  if (st == BH_OK) st = check_encoding(f, err);
  if (st == BH_OK) st = check_payload(f, nonce, expected, got, err);
  frame_close(&box);
  return st;
}

/* Is body the canonical packing of the response to (request_id, nonce)
 * whose identity bytes expected answers with: the bytes protobuf-c would
 * write (response_write), field by field? */
static bool canonical_answer(const uint8_t *body, size_t len,
                             uint64_t request_id,
                             const uint8_t nonce[BH_NONCE_LEN],
                             const bh_expected *expected) {
  (void)pthread_once(&response_prefix.once, make_response_prefix);
  const uint8_t *p = body, *end = body + len;
  size_t n = response_prefix.len;
  if (len < n + 2 || memcmp(p, response_prefix.bytes, n) != 0) return false;
  p += n;
  if (*p++ != ((4 << 3) | 2)) return false; /* payload, length-delimited */
  uint64_t plen;
  if (!get_varint(&p, end, &plen) || plen < BH_NONCE_LEN ||
      plen > (uint64_t)(end - p))
    return false;
  if (memcmp(p, nonce, BH_NONCE_LEN) != 0 ||
      !bh_expected_answers(expected, p + BH_NONCE_LEN,
                           (size_t)plen - BH_NONCE_LEN))
    return false;
  p += plen;
  if (request_id == 0) return p == end; /* field 5 left out */
  uint8_t tail[11] = {5 << 3};
  size_t tn = 1 + put_varint(tail + 1, request_id);
  return (size_t)(end - p) == tn && memcmp(p, tail, tn) == 0;
}

bh_status bh_probe_response_check(const uint8_t *body, size_t len,
                                  uint64_t request_id,
                                  const uint8_t nonce[BH_NONCE_LEN],
                                  const bh_expected *expected, bh_identity *got,
                                  bool copy_same, bh_err *err) {
  if (expected == NULL)
    return bh_probe_response_validate(body, len, request_id, nonce, NULL, got,
                                      err);
  if (canonical_answer(body, len, request_id, nonce, expected))
    return got != NULL && copy_same
               ? bh_identity_copy(got, bh_expected_identity(expected), err)
               : BH_OK;
  return bh_probe_response_validate(body, len, request_id, nonce,
                                    bh_expected_identity(expected), got, err);
}
