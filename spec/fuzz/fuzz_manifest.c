/* Fuzz target: the CacheManifest decoder (src/core/manifest.h). A manifest file
 * is written by whoever owns the cache root, so it is as untrusted as a
 * probe response.
 *
 * Properties:
 *  - a failure is manifest_decode, or one of the identity decoder's codes
 *    for a bad current_daemon, and says so in err;
 *  - a success gives non-NULL strings; encoding it succeeds (the unknown
 *    blobs the decoder kept are valid protobuf of unknown fields only);
 *  - encode → decode gives a manifest equal on every field, unknown bytes
 *    included, and encoding that again gives the same bytes;
 *  - no leak, no crash (ASan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzcheck.h"
#include "manifest.h"

static bool blob_same(const uint8_t *a, size_t alen, const uint8_t *b,
                      size_t blen) {
  return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* Every field, exactly. */
static bool manifest_equal(const bh_manifest *a, const bh_manifest *b) {
  if (!fuzz_str_same(a->service_name, b->service_name) ||
      !fuzz_str_same(a->service_version, b->service_version) ||
      !fuzz_str_same(a->broker_envelope_version, b->broker_envelope_version) ||
      !fuzz_str_same(a->broker_instance, b->broker_instance))
    return false;
  if (a->created_at_unix_ms != b->created_at_unix_ms ||
      a->last_active_unix_ms != b->last_active_unix_ms ||
      a->has_daemon != b->has_daemon)
    return false;
  if (a->has_daemon && !fuzz_identity_equal(&a->daemon, &b->daemon))
    return false;
  return blob_same(a->unknown, a->unknown_len, b->unknown, b->unknown_len) &&
         blob_same(a->daemon_unknown, a->daemon_unknown_len, b->daemon_unknown,
                   b->daemon_unknown_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  bh_err err;
  bh_err_clear(&err);
  bh_manifest m, back;
  memset(&m, 0, sizeof m);
  memset(&back, 0, sizeof back);
  bh_status st = bh_manifest_decode(data, size, &m, &err);
  if (st != BH_OK) {
    FUZZ_ASSERT(st == BH_MANIFEST_DECODE || st == BH_DECODE_IDENTITY ||
                st == BH_MISSING_ENDPOINT || st == BH_INVALID_SHA256_LENGTH);
    FUZZ_ASSERT(err.code == st && err.message[0] != '\0');
    bh_manifest_clear(&m);
    return 0;
  }
  FUZZ_ASSERT(m.service_name != NULL && m.service_version != NULL &&
              m.broker_envelope_version != NULL && m.broker_instance != NULL);

  uint8_t *enc = NULL, *enc2 = NULL;
  size_t enc_len = 0, enc2_len = 0;
  st = bh_manifest_encode(&m, &enc, &enc_len, &err);
  FUZZ_ASSERT_OK(st, err);
  st = bh_manifest_decode(enc, enc_len, &back, &err);
  FUZZ_ASSERT_OK(st, err);
  FUZZ_ASSERT(manifest_equal(&m, &back));
  st = bh_manifest_encode(&back, &enc2, &enc2_len, &err);
  FUZZ_ASSERT_OK(st, err);
  FUZZ_ASSERT(blob_same(enc, enc_len, enc2, enc2_len));

  free(enc2);
  free(enc);
  bh_manifest_clear(&back);
  bh_manifest_clear(&m);
  return 0;
}
