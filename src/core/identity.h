/* Who a daemon is (DESIGN §1.3 DaemonProcess, §1.7 JSON): the in-memory
 * identity, its protobuf and JSON forms, and the identity of the current
 * process or of another live pid. Knows nothing of sockets or Lua. */
#ifndef BH_IDENTITY_H
#define BH_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

enum { BH_SHA256_LEN = 32, BH_SHA256_HEX_LEN = 64 };

/* An endpoint: an opaque namespace label and a Unix socket path. Both
 * strings are heap-owned, NUL-terminated and never NULL once set (empty
 * strings are allowed here; bh_endpoint_check decides what is usable). */
typedef struct bh_endpoint {
  char *namespace_id;
  char *path;
} bh_endpoint;

/* A daemon identity. Owns its strings. An initialised identity (all zero)
 * is valid to clear. exe_path and boot_id are never NULL after a successful
 * constructor/decoder/reader. */
typedef struct bh_identity {
  uint32_t pid;
  char *exe_path;
  uint8_t exe_sha256[BH_SHA256_LEN];
  char *boot_id;
  bh_endpoint endpoint; /* ipc_endpoint: always present in a valid identity */
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
/* BH_INVALID_ENDPOINT when the path is empty or does not fit sun_path
 * (107 bytes plus NUL on Linux). */
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

/* The current process: pid, canonical /proc/self/exe, its SHA-256 (through
 * the digest cache), boot id, process start time, the given endpoint and
 * optional idle timeout (NULL = absent). */
bh_status bh_identity_current(const bh_endpoint *ep,
                              const uint32_t *idle_timeout_secs,
                              bh_identity *out, bh_err *err);
/* A live process by pid (codes of stage verify_pid: invalid_pid,
 * pid_not_found, exe_path, exe_hash). started_at comes from /proc. */
bh_status bh_identity_of_pid(uint32_t pid, const bh_endpoint *ep,
                             bh_identity *out, bh_err *err);

/* Compare the fields the prober compares, in its order: pid, exe_path
 * (lexically, like Rust's Path ==), exe_sha256, boot_id, ipc_endpoint.
 * Returns NULL when equal, else the name of the first differing field. */
const char *bh_identity_diff(const bh_identity *expected,
                             const bh_identity *got);
/* Lexical path equality: repeated separators, "." components and a
 * trailing separator are ignored; ".." and symlinks are not resolved. */
bool bh_path_lexical_equal(const char *a, const char *b);

/* DaemonProcess protobuf. encode returns a malloc'd buffer. decode checks,
 * in the prober's order: decodes (decode_identity; also for strings that are
 * not valid UTF-8 or contain NUL), has ipc_endpoint (missing_endpoint),
 * exe_sha256 is 32 bytes (invalid_sha256_length). */
bh_status bh_identity_encode(const bh_identity *id, uint8_t **out,
                             size_t *out_len, bh_err *err);
bh_status bh_identity_decode(const uint8_t *buf, size_t len, bh_identity *out,
                             bh_err *err);
/* The same checks on a DaemonProcess already unpacked with bh_pb_allocator
 * (e.g. a manifest's current_daemon). */
struct RunningProcess__Broker__V1__DaemonProcess;
bh_status bh_identity_from_pb(
    const struct RunningProcess__Broker__V1__DaemonProcess *msg,
    bh_identity *out, bh_err *err);

/* JSON (DESIGN §1.7). to_json returns a malloc'd compact JSON object (NULL
 * on allocation failure, or when a string is not valid UTF-8, which JSON
 * cannot carry); an absent idle timeout is written as null. from_json is
 * strict: invalid_json for syntax, invalid_identity (err->field names the
 * field) for missing required fields, wrong types, bad hex, wrong digest
 * length, out-of-range numbers. */
char *bh_identity_to_json(const bh_identity *id);
bh_status bh_identity_from_json(const char *text, size_t len, bh_identity *out,
                                bh_err *err);

/* Hex helpers: out must hold 2*n+1 bytes (lowercase, NUL-terminated).
 * from_hex accepts exactly 2*n hex digits (either case); returns false
 * otherwise. */
void bh_hex_encode(const uint8_t *in, size_t n, char *out);
bool bh_hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t n);

#endif
