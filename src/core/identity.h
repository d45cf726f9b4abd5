/* Who a daemon is (design §1.3 DaemonProcess, §1.7 JSON): the in-memory
 * identity, its protobuf and JSON forms, and the identity of the current
 * process or of another live pid. Knows nothing of sockets or Lua. */
#ifndef BH_IDENTITY_H
#define BH_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

enum {
  BH_DIGEST_LEN = 32, /* both SHA-256 and BLAKE3-256 */
  BH_DIGEST_HEX_LEN = 64,
  BH_SHA256_LEN = BH_DIGEST_LEN,
};

/* The executable digests an identity knows (design §1.9): generation 1
 * records SHA-256 (DaemonProcess tag 3), generation 2 BLAKE3-256 (tags
 * 8/9, algorithm "blake3"); an identity may know both. */
enum { BH_ALG_SHA256 = 1u << 0, BH_ALG_BLAKE3 = 1u << 1 };
#define BH_ALGS_ALL (BH_ALG_SHA256 | BH_ALG_BLAKE3)
#define BH_BLAKE3_NAME "blake3"

typedef struct bh_digests {
  unsigned algs; /* BH_ALG_* bits: which of the two below are set */
  uint8_t sha256[BH_DIGEST_LEN];
  uint8_t blake3[BH_DIGEST_LEN];
} bh_digests;

/* An endpoint: an opaque namespace label and a Unix socket path. Both
 * strings are heap-owned, NUL-terminated and never NULL once set (empty
 * strings are allowed here; bh_endpoint_check decides what is usable). */
typedef struct bh_endpoint {
  char *namespace_id;
  char *path;
} bh_endpoint;

/* A daemon identity. Owns its strings. An initialised identity (all zero)
 * is valid to clear. exe_path and boot_id are never NULL after a successful
 * constructor/decoder/reader. The endpoint is there in every identity read
 * from a record or an answer; only current/of_pid without an endpoint
 * leave it absent ("who is this pid?"), and the core treats an absent one
 * as empty strings: callers that send, store or write an identity check
 * bh_identity_has_endpoint first. */
typedef struct bh_identity {
  uint32_t pid;
  char *exe_path;
  bh_digests digests; /* at least one in a valid identity */
  char *boot_id;
  bh_endpoint endpoint; /* ipc_endpoint: both strings NULL when absent */
  uint64_t started_at_unix_ms;
  bool has_idle_timeout; /* presence matters: absent != 0 */
  uint32_t idle_timeout_secs;
} bh_identity;

/* Endpoints. set/copy free dst's previous strings, so dst must be
 * initialised ({NULL, NULL} or a set endpoint); NULL strings count as "".
 * On failure (BH_SYSTEM, out of memory) dst is unchanged. */
bh_status bh_endpoint_set(bh_endpoint *ep, const char *namespace_id,
                          const char *path, bh_err *err);
bh_status bh_endpoint_copy(bh_endpoint *dst, const bh_endpoint *src,
                           bh_err *err);
void bh_endpoint_clear(bh_endpoint *ep);
bool bh_endpoint_equal(const bh_endpoint *a, const bh_endpoint *b);
/* BH_INVALID_ENDPOINT when the path is empty, relative, or does not fit
 * sun_path (107 bytes plus NUL on Linux). */
bh_status bh_endpoint_check(const bh_endpoint *ep, bh_err *err);

/* Lifecycle.
 * Every function below that fills a `bh_identity *out` (copy, current,
 * of_pid, decode, from_json) expects *out initialised (bh_identity_init or
 * zeroed, or holding an older identity): on success its old contents are
 * freed and replaced, on failure it is left unchanged. */
void bh_identity_init(bh_identity *id);
void bh_identity_clear(bh_identity *id); /* frees strings, re-inits */
bh_status bh_identity_copy(bh_identity *dst, const bh_identity *src,
                           bh_err *err);
/* Move src into dst (dst cleared first); src is left initialised. */
void bh_identity_move(bh_identity *dst, bh_identity *src);

/* False for an identity made by current/of_pid without an endpoint. */
bool bh_identity_has_endpoint(const bh_identity *id);

/* Compare got (an answer) with expected the way the prober does (design
 * §1.4, §1.9): they need a digest in common (else
 * unsupported_hash_algorithm); then pid, exe_path (lexically, like Rust's
 * Path ==), exe_sha256 and exe_hash (each when both carry it), boot_id,
 * ipc_endpoint; started_at and the idle timeout are not compared. A
 * difference is identity_mismatch with err->field the first differing
 * field and err->fields all of them, the message naming both values of
 * the first. */
bh_status bh_identity_compare(const bh_identity *expected,
                              const bh_identity *got, bh_err *err);
/* Lexical path equality: repeated separators, "." components and a
 * trailing separator are ignored; ".." and symlinks are not resolved. */
bool bh_path_lexical_equal(const char *a, const char *b);

/* DaemonProcess protobuf, in one of three forms:
 *  BH_FORM_GEN1    a generation-1 record: tags 1-7 (needs a SHA-256);
 *  BH_FORM_GEN2    a generation-2 record: tags 1, 2, 4-9 (needs BLAKE3);
 *  BH_FORM_ANSWER  what a daemon answers a probe with, as 4.10.4+ does:
 *                  the generation-2 message (tags 1, 2, 4-7, and 8-9 when
 *                  the identity has BLAKE3), then tag 3 appended out of
 *                  tag order when it has a SHA-256, so that generation-1
 *                  probers still verify it.
 * A form the identity lacks the digest for is invalid_identity. encode
 * returns a malloc'd buffer. decode accepts every form and checks, in the
 * prober's order: decodes (decode_identity; also for strings that are not
 * valid UTF-8 or contain NUL), has ipc_endpoint (missing_endpoint), a
 * present exe_sha256 is 32 bytes (invalid_sha256_length), a present
 * exe_hash_algorithm is "blake3" and exe_hash without one is refused
 * (unsupported_hash_algorithm), exe_hash is 32 bytes
 * (invalid_hash_length), and at least one digest is there
 * (invalid_sha256_length, as generation 1 says of a missing one). */
typedef enum bh_id_form {
  BH_FORM_GEN1,
  BH_FORM_GEN2,
  BH_FORM_ANSWER
} bh_id_form;
bh_status bh_identity_encode(const bh_identity *id, bh_id_form form,
                             uint8_t **out, size_t *out_len, bh_err *err);
bh_status bh_identity_decode(const uint8_t *buf, size_t len, bh_identity *out,
                             bh_err *err);
/* The same checks on a DaemonProcess already unpacked with bh_pb_allocator
 * (e.g. a manifest's current_daemon). */
struct RunningProcess__Broker__V1__DaemonProcess;
bh_status bh_identity_from_pb(
    const struct RunningProcess__Broker__V1__DaemonProcess *msg,
    bh_identity *out, bh_err *err);

/* JSON (design §1.7). to_json returns a malloc'd compact JSON object (NULL
 * on allocation failure, or when a string is not valid UTF-8, which JSON
 * cannot carry): pid, exe_path, exe_sha256 (when known), boot_id,
 * ipc_endpoint, started_at_unix_ms, idle_timeout_secs (null when absent),
 * then exe_hash_algorithm and exe_hash (when BLAKE3 is known). from_json
 * reads that form and the serde sidecars running-process writes (digests
 * as arrays of 32 numbers; 4.10's legacy_exe_sha256, where 32 zero bytes
 * mean "none"). It is strict: invalid_json for syntax, invalid_identity
 * (err->field names the field) for missing required fields, wrong types,
 * bad hex, wrong digest length, an algorithm other than "blake3", no
 * digest at all, out-of-range numbers. */
char *bh_identity_to_json(const bh_identity *id);
bh_status bh_identity_from_json(const char *text, size_t len, bh_identity *out,
                                bh_err *err);

/* The digest of alg (BH_ALG_SHA256 or BH_ALG_BLAKE3) in d, or NULL when d
 * does not have it. */
const uint8_t *bh_digest_of(const bh_digests *d, unsigned alg);

/* Hex helpers: out must hold 2*n+1 bytes (lowercase, NUL-terminated).
 * from_hex accepts exactly 2*n hex digits (either case); returns false
 * otherwise. */
void bh_hex_encode(const uint8_t *in, size_t n, char *out);
bool bh_hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t n);

#endif
