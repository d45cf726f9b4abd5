/* Fuzz target: the identity JSON reader (src/core/identity.h, DESIGN §1.7).
 *
 * Properties:
 *  - a failure is invalid_json or invalid_identity, and says so in err;
 *  - a success gives non-NULL strings; to_json of it reads back (from_json)
 *    to an identity equal on every field, including started_at and the
 *    presence and value of idle_timeout_secs;
 *  - to_json is stable: writing the re-read identity gives the same text;
 *  - the identity also survives the protobuf form (encode → decode) when
 *    it has what the decoder requires (always: the JSON reader demands an
 *    endpoint and a 32-byte digest);
 *  - no leak, no crash (ASan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzcheck.h"

/* encode → decode gives back an equal identity. */
static void check_protobuf(const bh_identity *id) {
  bh_err err;
  uint8_t *pb = NULL;
  size_t pb_len = 0;
  bh_status st = bh_identity_encode(id, &pb, &pb_len, &err);
  FUZZ_ASSERT_OK(st, err);
  bh_identity back;
  bh_identity_init(&back);
  st = bh_identity_decode(pb, pb_len, &back, &err);
  FUZZ_ASSERT_OK(st, err);
  FUZZ_ASSERT(fuzz_identity_equal(id, &back));
  bh_identity_clear(&back);
  free(pb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  bh_err err;
  bh_err_clear(&err);
  bh_identity id, back;
  bh_identity_init(&id);
  bh_identity_init(&back);
  bh_status st = bh_identity_from_json((const char *)data, size, &id, &err);
  if (st != BH_OK) {
    FUZZ_ASSERT(st == BH_INVALID_JSON || st == BH_INVALID_IDENTITY);
    FUZZ_ASSERT(err.code == st && err.message[0] != '\0');
    bh_identity_clear(&id);
    return 0;
  }
  FUZZ_ASSERT(id.exe_path != NULL && id.boot_id != NULL);
  FUZZ_ASSERT(id.endpoint.namespace_id != NULL && id.endpoint.path != NULL);

  char *text = bh_identity_to_json(&id);
  FUZZ_ASSERT(text != NULL);
  st = bh_identity_from_json(text, strlen(text), &back, &err);
  FUZZ_ASSERT_OK(st, err);
  FUZZ_ASSERT(fuzz_identity_equal(&id, &back));
  char *text2 = bh_identity_to_json(&back);
  FUZZ_ASSERT(text2 != NULL && strcmp(text, text2) == 0);
  check_protobuf(&id);

  free(text2);
  free(text);
  bh_identity_clear(&back);
  bh_identity_clear(&id);
  return 0;
}
