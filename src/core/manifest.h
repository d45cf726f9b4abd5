/* Cache manifests on disk (DESIGN §1.3 CacheManifest): read, atomic write,
 * find under a root, and the stale-record clean-up. A manifest is the bare
 * protobuf, conventionally named `.running-process-manifest.pb`.
 *
 * Fields this product does not know are kept as opaque wire bytes
 * (`unknown`, and `daemon_unknown` for those inside current_daemon) and are
 * written back unchanged after the known fields, so a read/write cycle of a
 * manifest written in field order gives the same bytes. Knows nothing of
 * Lua. */
#ifndef BH_MANIFEST_H
#define BH_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "identity.h"
#include "status.h"

#define BH_MANIFEST_NAME ".running-process-manifest.pb"

/* The in-memory manifest. Owns every pointer; strings are never NULL after
 * bh_manifest_init. An all-zero struct is NOT valid: call init. */
typedef struct bh_manifest {
  char *service_name;
  char *service_version;
  char *broker_envelope_version;
  uint64_t created_at_unix_ms;
  uint64_t last_active_unix_ms;
  char *broker_instance;
  bool has_daemon;
  bh_identity daemon; /* current_daemon, when has_daemon */
  /* Wire bytes of the fields we do not know (top level and inside
   * current_daemon); NULL/0 when there are none. */
  uint8_t *unknown;
  size_t unknown_len;
  uint8_t *daemon_unknown;
  size_t daemon_unknown_len;
} bh_manifest;

/* Empty manifest (empty strings, no daemon). BH_SYSTEM when out of memory. */
bh_status bh_manifest_init(bh_manifest *m, bh_err *err);
/* Free everything; *m is left zeroed (call init again to reuse). */
void bh_manifest_clear(bh_manifest *m);

/* Replace a string field (copied). BH_SYSTEM when out of memory. */
bh_status bh_manifest_set_string(char **field, const char *value, bh_err *err);
/* Replace an unknown-fields blob (copied; len 0 clears it). */
bh_status bh_manifest_set_blob(uint8_t **field, size_t *field_len,
                               const uint8_t *value, size_t len, bh_err *err);

/* Decode manifest bytes: manifest_decode when CacheManifest does not
 * unpack or a string is not valid UTF-8/holds NUL; a present current_daemon
 * goes through the identity decoder and keeps its codes (decode_identity,
 * missing_endpoint, invalid_sha256_length). */
bh_status bh_manifest_decode(const uint8_t *buf, size_t len, bh_manifest *out,
                             bh_err *err);
/* Encode: known fields in field order, then the unknown bytes. *out is
 * malloc'd. manifest_decode when an unknown blob is not protobuf or holds
 * a known field number (it would silently override a known field). */
bh_status bh_manifest_encode(const bh_manifest *m, uint8_t **out,
                             size_t *out_len, bh_err *err);

/* Read and decode a file (manifest_io with the path and strerror when it
 * cannot be opened or read; files over 16 MiB are refused the same way). */
bh_status bh_manifest_read(const char *path, bh_manifest *out, bh_err *err);

/* Write atomically: a temp file `<path>.tmp.XXXXXX` in the same directory,
 * all bytes, fsync, rename over path, fsync the directory. The temp file is
 * unlinked on any failure. The old file's mode is kept (new files: 0644
 * minus umask). Errors: manifest_io (with the step and strerror).
 * Test hook: when the environment has BH_TEST_MANIFEST_STOP=1 the writer
 * raises SIGSTOP just before rename (so a test can SIGKILL it there). */
bh_status bh_manifest_write(const char *path, const bh_manifest *m,
                            bh_err *err);

/* read, drop current_daemon (and its unknown fields), write. When only_if
 * is not NULL the daemon is dropped only if it still is that identity
 * (bh_identity_diff finds no difference and started_at_unix_ms is equal),
 * so a daemon that re-registered since it was probed is left alone.
 * *cleared (may be NULL) tells whether the file was rewritten. */
bh_status bh_manifest_clear_daemon(const char *path, const bh_identity *only_if,
                                   bool *cleared, bh_err *err);

/* The atomic write of bh_manifest_write for any bytes (used for the
 * metrics file too). Failures carry io_code (e.g. BH_MANIFEST_IO). */
bh_status bh_write_file_atomic(const char *path, const void *buf, size_t len,
                               bh_status io_code, bh_err *err);

/* Paths of regular files named BH_MANIFEST_NAME under root, sorted.
 * max_depth: directory levels below root searched (0 = root only; < 0 =
 * unlimited, still capped at 64). Symlinks are never followed below root
 * (root itself may be one); directories that cannot be opened are
 * skipped. manifest_io when root cannot be opened as a directory. */
typedef struct bh_manifest_list {
  char **paths;
  size_t count;
} bh_manifest_list;
bh_status bh_manifest_find(const char *root, int max_depth,
                           bh_manifest_list *out, bh_err *err);
void bh_manifest_list_free(bh_manifest_list *l);

#endif
