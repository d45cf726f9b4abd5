/* Fuzz target: the identity JSON reader (src/core/identity.h, design §1.7).
 *
 * Properties:
 *  - a failure is invalid_json or invalid_identity, and says so in err;
 *  - a success gives non-NULL strings; to_json of it reads back (from_json)
 *    to an identity equal on every field, including started_at and the
 *    presence and value of idle_timeout_secs;
 *  - to_json is stable: writing the re-read identity gives the same text;
 *  - the identity also survives the protobuf forms: the answer form
 *    (every digest) round-trips to an equal identity, and each record
 *    generation it has the digest for round-trips to the identity with
 *    just that digest (the JSON reader demands an endpoint and a digest,
 *    which is all the decoder requires);
 *  - no leak, no crash (ASan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzcheck.h"

/* encode in form → decode gives back id with only the digests of want. */
static void check_form(const bh_identity *id, bh_id_form form, unsigned want) {
  bh_err err;
  uint8_t *pb = NULL;
  size_t pb_len = 0;
  bh_status st = bh_identity_encode(id, form, &pb, &pb_len, &err);
  if ((id->digests.algs & want) == 0) {
    FUZZ_ASSERT(st == BH_INVALID_IDENTITY && pb == NULL);
    return;
  }
  FUZZ_ASSERT_OK(st, err);
  bh_identity back;
  bh_identity_init(&back);
  st = bh_identity_decode(pb, pb_len, &back, &err);
  FUZZ_ASSERT_OK(st, err);
  bh_identity only = *id; /* shallow: only compared, never cleared */
  only.digests.algs &= want;
  FUZZ_ASSERT(fuzz_identity_equal(&only, &back));
  bh_identity_clear(&back);
  free(pb);
}

static void check_protobuf(const bh_identity *id) {
  check_form(id, BH_FORM_ANSWER, BH_ALGS_ALL);
  check_form(id, BH_FORM_GEN1, BH_ALG_SHA256);
  check_form(id, BH_FORM_GEN2, BH_ALG_BLAKE3);
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
  FUZZ_ASSERT(id.digests.algs != 0 && (id.digests.algs & ~BH_ALGS_ALL) == 0);

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
