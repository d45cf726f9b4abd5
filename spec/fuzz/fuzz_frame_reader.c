/* Fuzz target: the incremental frame reader (src/core/wire.h).
 *
 * Input: byte 0 picks how many chunk-size bytes follow ((b & 7) + 1); those
 * bytes are the chunk sizes, used in a cycle (0 = an empty feed); the rest
 * is the byte stream. The stream is fed once in those chunks and once
 * whole. Properties:
 *  - both feedings end the same way: result, error code, consumed count,
 *    body length and body bytes;
 *  - both agree with an oracle computed from the header alone (version
 *    byte first, then the 16 MiB cap, then "enough bytes for the body");
 *  - a feed that returns MORE took every byte offered; a feed never takes
 *    more than offered or past the frame's end;
 *  - after DONE or ERROR, feeding again takes nothing and repeats it;
 *  - the reader's heap never exceeds 2 * bytes taken + 256 (a 4 GiB or
 *    16 MiB announcement alone costs nothing). */
#include <stdint.h>
#include <string.h>

#include "fuzzcheck.h"
#include "wire.h"

typedef struct outcome {
  bh_read_result result;
  bh_status code;
  size_t consumed;
} outcome;

/* The heap bound of the property: what was taken, twice, plus slack. */
static void check_heap(const bh_frame_reader *r, size_t taken) {
  size_t heap = bh_frame_reader_heap(r);
  if (heap > 2 * taken + 256) {
    fprintf(stderr, "heap %zu after %zu bytes\n", heap, taken);
    abort();
  }
}

/* One feed of len bytes, with the per-feed properties checked. */
static bh_read_result feed_once(bh_frame_reader *r, const uint8_t *p,
                                size_t len, outcome *o, bh_err *err) {
  size_t used = (size_t)-1;
  bh_read_result res = bh_frame_reader_feed(r, p, len, &used, err);
  FUZZ_ASSERT(res == BH_READ_MORE || res == BH_READ_DONE ||
              res == BH_READ_ERROR);
  FUZZ_ASSERT(used <= len);
  if (res == BH_READ_MORE) FUZZ_ASSERT(used == len);
  o->consumed += used;
  o->result = res;
  o->code = res == BH_READ_ERROR ? err->code : BH_OK;
  if (res == BH_READ_ERROR) FUZZ_ASSERT(err->code != BH_OK);
  check_heap(r, o->consumed);
  return res;
}

/* Feed stream[0..len) in chunks of sizes[i % n] until the reader stops
 * asking for more or the stream is exhausted. */
static outcome feed_chunks(bh_frame_reader *r, const uint8_t *stream,
                           size_t len, const uint8_t *sizes, size_t n) {
  outcome o = {BH_READ_MORE, BH_OK, 0};
  bh_err err;
  bh_err_clear(&err);
  size_t off = 0;
  for (size_t i = 0;; i++) {
    size_t want = sizes[i % n];
    size_t chunk = want < len - off ? want : len - off;
    bh_read_result res = feed_once(r, stream + off, chunk, &o, &err);
    off += chunk;
    if (res != BH_READ_MORE) break;
    if (off == len) break;
  }
  return o;
}

/* After the reader has finished (DONE or ERROR), feeding more bytes must
 * take none and give the same verdict again. */
static void check_sticky(bh_frame_reader *r, const outcome *o,
                         const uint8_t *rest, size_t rest_len) {
  static const uint8_t extra[3] = {1, 0, 0};
  if (o->result == BH_READ_MORE) return;
  if (rest_len == 0) {
    rest = extra;
    rest_len = sizeof extra;
  }
  bh_err err;
  bh_err_clear(&err);
  size_t used = (size_t)-1;
  bh_read_result res = bh_frame_reader_feed(r, rest, rest_len, &used, &err);
  FUZZ_ASSERT(used == 0);
  FUZZ_ASSERT(res == o->result);
  if (res == BH_READ_ERROR) FUZZ_ASSERT(err.code == o->code);
}

/* What a correct reader must say about the whole stream, judged from the
 * header alone. Streams shorter than a header are left to the caller. */
static outcome oracle(const uint8_t *s, size_t len) {
  outcome o = {BH_READ_MORE, BH_OK, len};
  uint32_t body_len = (uint32_t)s[1] | (uint32_t)s[2] << 8 |
                      (uint32_t)s[3] << 16 | (uint32_t)s[4] << 24;
  if (s[0] != BH_FRAMING_VERSION) {
    o.result = BH_READ_ERROR;
    o.code = BH_UNSUPPORTED_FRAMING_VERSION;
  } else if (body_len > BH_FRAME_MAX_BODY) {
    o.result = BH_READ_ERROR;
    o.code = BH_FRAME_TOO_LARGE;
  } else if (len - BH_FRAME_HEADER_LEN >= body_len) {
    o.result = BH_READ_DONE;
    o.consumed = BH_FRAME_HEADER_LEN + (size_t)body_len;
  }
  return o;
}

/* Compare a finished reader with the oracle; for DONE also the body. */
static void check_against(const outcome *want, const outcome *got,
                          const bh_frame_reader *r, const uint8_t *s) {
  FUZZ_ASSERT(got->result == want->result);
  FUZZ_ASSERT(got->code == want->code);
  if (want->result == BH_READ_ERROR) {
    /* Where the header is refused may differ by a byte or so between
     * readers, but never past the header. */
    FUZZ_ASSERT(got->consumed <= BH_FRAME_HEADER_LEN);
    return;
  }
  FUZZ_ASSERT(got->consumed == want->consumed);
  if (want->result == BH_READ_DONE) {
    size_t body_len = want->consumed - BH_FRAME_HEADER_LEN;
    FUZZ_ASSERT(r->body_len == body_len);
    if (body_len > 0) {
      FUZZ_ASSERT(r->body != NULL);
      FUZZ_ASSERT(memcmp(r->body, s + BH_FRAME_HEADER_LEN, body_len) == 0);
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  size_t n = (size_t)(data[0] & 7) + 1;
  if (n > size - 1) n = size - 1;
  const uint8_t *s = data + 1 + n;
  size_t len = size - 1 - n;
  uint8_t sizes[8] = {0};
  bool any = false;
  for (size_t i = 0; i < n; i++) {
    sizes[i] = data[1 + i];
    any = any || sizes[i] != 0;
  }
  if (!any) {
    /* all-empty feeds would never advance: trickle instead */
    sizes[0] = 1;
    n = 1;
  }

  bh_frame_reader chunked, whole;
  bh_frame_reader_init(&chunked);
  bh_frame_reader_init(&whole);
  outcome a = feed_chunks(&chunked, s, len, sizes, n);
  /* the whole stream as one feed (chunk sizes cannot say "all") */
  outcome w = {BH_READ_MORE, BH_OK, 0};
  bh_err err;
  bh_err_clear(&err);
  feed_once(&whole, s, len, &w, &err);

  /* Same verdict both ways. On ERROR the consumed count may differ by
   * design: bytes of the header taken by earlier chunks cannot be given
   * back, so only "never past the header" is required (check_against). */
  FUZZ_ASSERT(a.result == w.result && a.code == w.code);
  if (w.result != BH_READ_ERROR) FUZZ_ASSERT(a.consumed == w.consumed);
  if (len >= BH_FRAME_HEADER_LEN) {
    outcome want = oracle(s, len);
    check_against(&want, &w, &whole, s);
    check_against(&want, &a, &chunked, s);
  } else if (w.result == BH_READ_ERROR) {
    /* an early verdict on a partial header: only the version byte */
    FUZZ_ASSERT(len >= 1 && s[0] != BH_FRAMING_VERSION);
    FUZZ_ASSERT(w.code == BH_UNSUPPORTED_FRAMING_VERSION);
  } else {
    FUZZ_ASSERT(w.result == BH_READ_MORE && w.consumed == len);
  }
  check_sticky(&chunked, &a, s + a.consumed, len - a.consumed);
  check_sticky(&whole, &w, s + w.consumed, len - w.consumed);
  bh_frame_reader_free(&chunked);
  bh_frame_reader_free(&whole);
  /* free re-inits: the heap is back to nothing */
  FUZZ_ASSERT(bh_frame_reader_heap(&chunked) == 0);
  return 0;
}
