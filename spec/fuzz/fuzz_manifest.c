/* Fuzz target: the CacheManifest decoder and sealer (src/core/manifest.h).
 * A manifest file is written by whoever owns the cache root, so it is as
 * untrusted as a probe response.
 *
 * The input is decoded twice, without and with verification. Properties:
 *  - a failure without verification is manifest_decode, or one of the
 *    identity decoder's codes for a bad current_daemon; with verification
 *    also manifest_schema_too_new or manifest_corrupt; err says so;
 *  - verification only adds refusals: what verifies also decodes without
 *    it, to the same content, and a verified manifest names schema <= 1;
 *    what fails to decode fails with the same code either way;
 *  - a success holds no unknown field anywhere (they are dropped, as prost
 *    drops them), non-NULL strings, the daemon's generation;
 *  - sealing what was decoded (bh_manifest_seal_encode) gives bytes that
 *    verify again, unless the daemon holds both digest generations (then
 *    they are manifest_corrupt, as for the real readers); they decode to
 *    the same content, and sealing that again gives the same bytes;
 *  - no leak, no crash (ASan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzcheck.h"
#include "manifest.h"
#include "manifest.pb-c.h"

/* The canonical encoding of a message (malloc'd), for comparing content. */
static uint8_t *pack(const bh_manifest_pb *pb, size_t *len) {
  *len = running_process__broker__v1__cache_manifest__get_packed_size(pb);
  uint8_t *buf = malloc(*len + 1);
  FUZZ_ASSERT(buf != NULL);
  running_process__broker__v1__cache_manifest__pack(pb, buf);
  return buf;
}

/* Equal content: the same canonical encoding, the same daemon. */
static bool manifest_equal(const bh_manifest *a, const bh_manifest *b) {
  size_t la = 0, lb = 0;
  uint8_t *pa = pack(a->pb, &la), *pb = pack(b->pb, &lb);
  bool same = la == lb && memcmp(pa, pb, la) == 0;
  free(pa);
  free(pb);
  if (!same || bh_manifest_generation(a) != bh_manifest_generation(b))
    return false;
  return bh_manifest_generation(a) == 0 ||
         fuzz_identity_equal(&a->daemon, &b->daemon);
}

static bool decode_code(bh_status st) {
  return st == BH_MANIFEST_DECODE || st == BH_DECODE_IDENTITY ||
         st == BH_MISSING_ENDPOINT || st == BH_INVALID_SHA256_LENGTH ||
         st == BH_INVALID_HASH_LENGTH || st == BH_UNSUPPORTED_HASH_ALGORITHM;
}

/* What a successful decode must look like. */
static void check_decoded(const bh_manifest *m) {
  FUZZ_ASSERT(m->pb != NULL && m->pb->base.n_unknown_fields == 0);
  FUZZ_ASSERT(m->pb->service_name != NULL && m->pb->media_type != NULL);
  if (m->pb->current_daemon == NULL) {
    FUZZ_ASSERT(bh_manifest_generation(m) == 0);
    return;
  }
  FUZZ_ASSERT(m->pb->current_daemon->base.n_unknown_fields == 0);
  FUZZ_ASSERT(bh_manifest_generation(m) == 1 || bh_manifest_generation(m) == 2);
  FUZZ_ASSERT(m->daemon.digests.algs != 0);
}

/* Seal m and read the result back, checking the properties above. */
static void check_sealed(bh_manifest *m) {
  bh_err err;
  uint8_t *enc = NULL, *enc2 = NULL;
  size_t enc_len = 0, enc2_len = 0;
  bool both =
      bh_manifest_generation(m) != 0 && m->daemon.digests.algs == BH_ALGS_ALL;
  bh_status st = bh_manifest_seal_encode(m->pb, &enc, &enc_len, &err);
  FUZZ_ASSERT_OK(st, err);
  FUZZ_ASSERT(m->pb->manifest_schema_version == 1);
  bh_manifest back;
  memset(&back, 0, sizeof back);
  st = bh_manifest_decode(enc, enc_len, true, &back, &err);
  if (both) {
    FUZZ_ASSERT(st == BH_MANIFEST_CORRUPT);
    free(enc);
    return;
  }
  FUZZ_ASSERT_OK(st, err);
  FUZZ_ASSERT(back.sealed);
  FUZZ_ASSERT(manifest_equal(m, &back));
  st = bh_manifest_seal_encode(back.pb, &enc2, &enc2_len, &err);
  FUZZ_ASSERT_OK(st, err);
  FUZZ_ASSERT(enc_len == enc2_len && memcmp(enc, enc2, enc_len) == 0);
  free(enc2);
  free(enc);
  bh_manifest_clear(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  bh_err err, verr;
  bh_err_clear(&err);
  bh_err_clear(&verr);
  bh_manifest m, v;
  memset(&m, 0, sizeof m);
  memset(&v, 0, sizeof v);
  bh_status st = bh_manifest_decode(data, size, false, &m, &err);
  bh_status vst = bh_manifest_decode(data, size, true, &v, &verr);
  if (vst != BH_OK) {
    FUZZ_ASSERT(decode_code(vst) || vst == BH_MANIFEST_CORRUPT ||
                vst == BH_MANIFEST_SCHEMA_TOO_NEW);
    FUZZ_ASSERT(verr.code == vst && verr.message[0] != '\0');
    /* What does not decode fails the same way, verified or not. */
    if (decode_code(vst)) FUZZ_ASSERT(st == vst);
  }
  if (st != BH_OK) {
    FUZZ_ASSERT(decode_code(st));
    FUZZ_ASSERT(err.code == st && err.message[0] != '\0');
    FUZZ_ASSERT(vst != BH_OK);
    return 0;
  }
  FUZZ_ASSERT(!m.sealed);
  check_decoded(&m);
  if (vst == BH_OK) {
    FUZZ_ASSERT(v.sealed && v.pb->manifest_schema_version <= 1);
    FUZZ_ASSERT(manifest_equal(&m, &v));
  }
  check_sealed(&m);
  bh_manifest_clear(&v);
  bh_manifest_clear(&m);
  return 0;
}
