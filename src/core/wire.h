/* The wire contract (design §1.2–1.4): framing, the incremental frame
 * reader, and building/validating probe requests and responses. Pure code:
 * no sockets, no event loop, no Lua. */
#ifndef BH_WIRE_H
#define BH_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "identity.h"
#include "status.h"

enum {
  BH_FRAMING_VERSION = 1,
  BH_FRAME_HEADER_LEN = 5,
  BH_PROBE_PROTOCOL = 0xB232,
  BH_NONCE_LEN = 32,
};
#define BH_FRAME_MAX_BODY (16u << 20) /* 16 MiB */

/* The releases of running-process whose probe and records this speaks byte
 * for byte (generation 1 and 2), as --version and bhprobe_build_info name
 * them. */
#define BH_RUNNING_PROCESS_VERSIONS "4.1.0,4.10.6"

/* ---- framing ---------------------------------------------------------- */

/* Write the 5-byte header [version=1][u32 LE body_len]. */
void bh_frame_header(uint32_t body_len, uint8_t out[BH_FRAME_HEADER_LEN]);

/* Incremental reader of one frame. Fed arbitrary chunks (one byte at a time
 * works). The header is judged alone, before anything is allocated: a
 * framing byte other than 1 → unsupported_framing_version, a length over
 * 16 MiB, or over the reader's own limit when one is set →
 * frame_too_large. The body buffer grows (geometrically, capped at
 * body_len) only as bytes arrive, so a peer announcing 16 MiB and sending
 * nothing costs nothing. */
typedef struct bh_frame_reader {
  uint8_t header[BH_FRAME_HEADER_LEN];
  uint32_t header_got;
  uint32_t body_len;
  uint32_t body_got;
  uint32_t body_cap;
  uint8_t *body;
  bool done;
  uint32_t max_body;      /* 0: the protocol cap alone */
  const char *limit_name; /* names max_body in messages */
} bh_frame_reader;

typedef enum bh_read_result {
  BH_READ_MORE,  /* need more bytes */
  BH_READ_DONE,  /* a whole frame: r->body[0 .. r->body_len) */
  BH_READ_ERROR, /* err says why; feeding again keeps failing */
} bh_read_result;

void bh_frame_reader_init(bh_frame_reader *r);
/* Refuse bodies over max_body bytes (at most the 16 MiB cap; 0 lifts the
 * limit) as soon as the header says so; name (a static string, e.g.
 * "max_response") is what the error message calls the limit. Call before
 * feeding. Bounds what one peer can make the reader hold. */
void bh_frame_reader_limit(bh_frame_reader *r, uint32_t max_body,
                           const char *name);
void bh_frame_reader_free(bh_frame_reader *r); /* frees body, re-inits */
/* Consume up to len bytes; *used tells how many were taken (never past the
 * end of the frame, so trailing bytes stay with the caller). After DONE,
 * further feeding consumes nothing and returns DONE. */
bh_read_result bh_frame_reader_feed(bh_frame_reader *r, const uint8_t *data,
                                    size_t len, size_t *used, bh_err *err);
/* As bh_frame_reader_feed, and *body is the whole frame's body when DONE
 * (r->body_len bytes): when the reader was empty and data holds the whole
 * frame, it points into data (nothing is copied; valid while data is),
 * else to r->body. */
bh_read_result bh_frame_reader_take(bh_frame_reader *r, const uint8_t *data,
                                    size_t len, size_t *used,
                                    const uint8_t **body, bh_err *err);
/* Bytes of heap the reader holds now (for memory accounting). */
size_t bh_frame_reader_heap(const bh_frame_reader *r);

/* ---- probe exchange ---------------------------------------------------- */

/* request_id = the first 8 nonce bytes as a little-endian u64. */
uint64_t bh_request_id_from_nonce(const uint8_t nonce[BH_NONCE_LEN]);

/* A complete framed probe request built from nonce (design §1.4).
 * *out is malloc'd. */
bh_status bh_probe_request_build(const uint8_t nonce[BH_NONCE_LEN],
                                 uint8_t **out, size_t *out_len, bh_err *err);
/* The longest framed probe request (a 10-byte request_id varint). */
enum { BH_PROBE_REQUEST_MAX = 64 };
/* The same request written into out, from a template packed once (the
 * nonce and request_id patched in): no allocation. Returns its length. */
size_t bh_probe_request_write(const uint8_t nonce[BH_NONCE_LEN],
                              uint8_t out[BH_PROBE_REQUEST_MAX]);

/* A validated request, as the responder sees it. traceparent/tracestate
 * are heap copies (NUL-terminated, never NULL after validation). */
typedef struct bh_request {
  uint64_t request_id;
  uint8_t nonce[BH_NONCE_LEN];
  char *traceparent;
  char *tracestate;
} bh_request;
void bh_request_clear(bh_request *req);

/* Validate a frame body as a probe request, in the responder's order:
 * decode (decode_frame), envelope_version 1, kind REQUEST, payload_protocol
 * 0xB232, payload_encoding NONE (all unexpected_frame), payload exactly 32
 * bytes (malformed_payload). On success *out is overwritten (not freed
 * first: pass a zeroed or cleared request); on failure it is untouched. */
bh_status bh_probe_request_validate(const uint8_t *body, size_t len,
                                    bh_request *out, bh_err *err);

/* A complete framed response to req carrying identity (design §1.4).
 * The _raw form takes the already-encoded payload tail (the bytes after the
 * nonce), so tests and squatter simulations can send any identity bytes. */
bh_status bh_probe_response_build(const bh_request *req, const bh_identity *id,
                                  uint8_t **out, size_t *out_len, bh_err *err);
bh_status bh_probe_response_build_raw(const bh_request *req,
                                      const uint8_t *identity_pb,
                                      size_t identity_len, uint8_t **out,
                                      size_t *out_len, bh_err *err);

/* Validate a frame body as the response to (request_id, nonce), in the
 * prober's order (design §1.4): decode_frame; envelope_version, kind,
 * payload_protocol, request_id, payload_encoding (unexpected_frame);
 * payload >= 32 bytes and starts with the nonce (malformed_payload); the
 * rest decodes (decode_identity), has an endpoint (missing_endpoint) and a
 * 32-byte digest (invalid_sha256_length); equals expected on pid, exe_path,
 * exe_sha256, boot_id, ipc_endpoint (identity_mismatch, err->field names
 * the first differing field). expected NULL skips the comparison. If got
 * is not NULL, *got receives the decoded identity (its previous contents
 * cleared first) on success and on identity_mismatch, the one failure
 * after the answer decoded; on any other failure *got is untouched. */
bh_status bh_probe_response_validate(const uint8_t *body, size_t len,
                                     uint64_t request_id,
                                     const uint8_t nonce[BH_NONCE_LEN],
                                     const bh_identity *expected,
                                     bh_identity *got, bh_err *err);

/* bh_probe_response_validate against a prepared expected identity
 * (expect.h; NULL: no comparison). An answer laid out as the canonical
 * packing of the expected response (the Frame's fields as protobuf-c and
 * prost pack them: envelope_version 1, kind RESPONSE, the probe protocol,
 * the payload, request_id; the payload the nonce and one of expected's
 * encodings) is checked by comparing bytes, with nothing decoded; any
 * other answer goes through bh_probe_response_validate, which says what
 * is wrong. The results are the same. got, when not NULL, receives what
 * bh_probe_response_validate gives it, except a copy of the expected
 * identity itself when the answer was verified without decoding and
 * copy_same is false. */
struct bh_expected;
bh_status bh_probe_response_check(const uint8_t *body, size_t len,
                                  uint64_t request_id,
                                  const uint8_t nonce[BH_NONCE_LEN],
                                  const struct bh_expected *expected,
                                  bh_identity *got, bool copy_same,
                                  bh_err *err);

#endif
