/* Hostile answers to a probe request: the bytes a broken or malicious
 * daemon sends instead of a good response, one per hostile responder of
 * docs/hostile-peers.md, so a responder can simulate each of them (for
 * users testing their own clients, and for our specs). Each is the good
 * answer of identity id to req with one thing wrong. Pure code: no
 * sockets, no event loop, no Lua. */
#ifndef BH_HOSTILE_H
#define BH_HOSTILE_H

#include <stddef.h>
#include <stdint.h>

#include "identity.h"
#include "status.h"
#include "wire.h"

typedef enum bh_hostile {
  BH_HOSTILE_NONE = 0,
  BH_HOSTILE_BAD_FRAMING,      /* framing byte 2 */
  BH_HOSTILE_TOO_LARGE,        /* header announces 16 MiB + 1 */
  BH_HOSTILE_HUGE_HEADER,      /* header announces 4 GiB - 1 */
  BH_HOSTILE_GARBAGE,          /* a body of 8 bytes 0xff */
  BH_HOSTILE_EMPTY_BODY,       /* a zero-length body */
  BH_HOSTILE_TRUNCATED,        /* announces 100 bytes, sends 4 */
  BH_HOSTILE_SHORT_PAYLOAD,    /* payload of 10 bytes */
  BH_HOSTILE_WRONG_NONCE,      /* last bit of the echoed nonce flipped */
  BH_HOSTILE_WRONG_REQUEST_ID, /* request_id + 1 */
  BH_HOSTILE_WRONG_KIND,       /* kind REQUEST */
  BH_HOSTILE_UNKNOWN_KIND,     /* kind 7 */
  BH_HOSTILE_WRONG_PROTOCOL,   /* payload_protocol 0xB233 */
  BH_HOSTILE_COMPRESSED,       /* payload_encoding ZSTD */
  BH_HOSTILE_ENVELOPE_0,       /* envelope_version 0 */
  BH_HOSTILE_BAD_TRACEPARENT,  /* traceparent that is not UTF-8 */
  BH_HOSTILE_NO_ENDPOINT,      /* identity without ipc_endpoint */
  BH_HOSTILE_SHORT_SHA256,     /* 31-byte exe_sha256 */
  BH_HOSTILE_NUL_IN_STRING,    /* exe_path with a NUL byte */
  BH_HOSTILE_BAD_UTF8,         /* exe_path that is not UTF-8 */
  BH_HOSTILE_ZERO_TAG,         /* identity with a field number 0 */
  BH_HOSTILE_UNKNOWN_FIELDS,   /* identity with unknown fields 50, 51 */
  BH_HOSTILE_TWICE,            /* the good answer, twice */
  BH_HOSTILE_TRAILING,         /* the good answer, then garbage */
  BH_HOSTILE_COUNT
} bh_hostile;

/* The stable name of each ("bad_framing", ..., "trailing"); NULL for
 * BH_HOSTILE_NONE or out of range. */
const char *bh_hostile_name(bh_hostile h);
/* The code a prober following design §1.4 gives for it ("ok" for the
 * three a prober must accept: twice, trailing, unknown_fields). */
const char *bh_hostile_expected(bh_hostile h);
/* The kind of that name, or BH_HOSTILE_NONE. */
bh_hostile bh_hostile_from_name(const char *name);

/* The bytes of h in answer to req from identity id (*out malloc'd).
 * BH_SYSTEM when out of memory or id does not encode. */
bh_status bh_hostile_build(bh_hostile h, const bh_request *req,
                           const bh_identity *id, uint8_t **out,
                           size_t *out_len, bh_err *err);

#endif
