/* Fuzz target: the DaemonProcess decoder (src/core/identity.h).
 *
 * Properties:
 *  - a failure is decode_identity, missing_endpoint,
 *    invalid_sha256_length, unsupported_hash_algorithm or
 *    invalid_hash_length, and says so in err;
 *  - a success gives non-NULL strings holding no NUL and valid UTF-8;
 *  - a success has at least one digest;
 *  - encode (the answer form, which carries every digest) → decode gives
 *    an identity equal on every field, and encoding that again gives the
 *    same bytes (our encoding is canonical);
 *  - the identity also survives the JSON form (to_json → from_json; a
 *    started_at beyond 2^63-1 comes back clamped, by design);
 *  - no leak, no crash (ASan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzcheck.h"
#include "pbutil.h"

/* A decoded string: present, and clean (no NUL, valid UTF-8). */
static void check_string(const char *s) {
  FUZZ_ASSERT(s != NULL);
  FUZZ_ASSERT(bh_utf8_valid(s, strlen(s)));
}

/* to_json → from_json gives back an equal identity, except that JSON
 * clamps started_at_unix_ms to 2^63-1 (jansson's integers are signed; a
 * documented choice of src/core/identity_json.c). */
static void check_json(const bh_identity *id) {
  bh_err err;
  char *text = bh_identity_to_json(id);
  FUZZ_ASSERT(text != NULL);
  bh_identity back;
  bh_identity_init(&back);
  bh_status st = bh_identity_from_json(text, strlen(text), &back, &err);
  if (st != BH_OK) fprintf(stderr, "json: %s\n", text);
  FUZZ_ASSERT_OK(st, err);
  bh_identity want = *id; /* shallow: only compared, never cleared */
  if (want.started_at_unix_ms > (uint64_t)INT64_MAX)
    want.started_at_unix_ms = (uint64_t)INT64_MAX;
  FUZZ_ASSERT(fuzz_identity_equal(&want, &back));
  bh_identity_clear(&back);
  free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  bh_err err;
  bh_err_clear(&err);
  bh_identity id, back;
  bh_identity_init(&id);
  bh_identity_init(&back);
  bh_status st = bh_identity_decode(data, size, &id, &err);
  if (st != BH_OK) {
    FUZZ_ASSERT(st == BH_DECODE_IDENTITY || st == BH_MISSING_ENDPOINT ||
                st == BH_INVALID_SHA256_LENGTH ||
                st == BH_UNSUPPORTED_HASH_ALGORITHM ||
                st == BH_INVALID_HASH_LENGTH);
    FUZZ_ASSERT(err.code == st && err.message[0] != '\0');
    bh_identity_clear(&id);
    return 0;
  }
  check_string(id.exe_path);
  check_string(id.boot_id);
  check_string(id.endpoint.namespace_id);
  check_string(id.endpoint.path);
  FUZZ_ASSERT(id.digests.algs != 0 && (id.digests.algs & ~BH_ALGS_ALL) == 0);

  uint8_t *pb = NULL, *pb2 = NULL;
  size_t pb_len = 0, pb2_len = 0;
  st = bh_identity_encode(&id, BH_FORM_ANSWER, &pb, &pb_len, &err);
  FUZZ_ASSERT_OK(st, err);
  st = bh_identity_decode(pb, pb_len, &back, &err);
  FUZZ_ASSERT_OK(st, err);
  FUZZ_ASSERT(fuzz_identity_equal(&id, &back));
  st = bh_identity_encode(&back, BH_FORM_ANSWER, &pb2, &pb2_len, &err);
  FUZZ_ASSERT_OK(st, err);
  FUZZ_ASSERT(pb_len == pb2_len && memcmp(pb, pb2, pb_len) == 0);
  check_json(&id);

  free(pb2);
  free(pb);
  bh_identity_clear(&back);
  bh_identity_clear(&id);
  return 0;
}
