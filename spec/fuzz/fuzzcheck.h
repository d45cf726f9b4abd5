/* Shared by the fuzz targets: the entry point's prototype, a property
 * assertion that abort()s (so libFuzzer and the replay driver both see a
 * crash, with the broken property named on stderr), fixed test data, and a
 * full identity equality. Header-only: each target is its own program. */
#ifndef BH_FUZZCHECK_H
#define BH_FUZZCHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity.h"
#include "status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A failed property: name it and abort (never compiled out). */
#define FUZZ_ASSERT(cond)                                                 \
  do {                                                                    \
    if (!(cond)) {                                                        \
      fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, \
              #cond);                                                     \
      abort();                                                            \
    }                                                                     \
  } while (0)

/* Abort unless status is OK, printing the error (for operations that must
 * not fail on data our own code produced). */
#define FUZZ_ASSERT_OK(st, err)                                              \
  do {                                                                       \
    if ((st) != BH_OK) {                                                     \
      fprintf(stderr, "%s:%d: %s failed: %s: %s\n", __FILE__, __LINE__, #st, \
              bh_status_name((err).code), (err).message);                    \
      abort();                                                               \
    }                                                                        \
  } while (0)

/* Both strings NULL, or both equal byte for byte. */
static inline bool fuzz_str_same(const char *a, const char *b) {
  if (a == NULL || b == NULL) return a == b;
  return strcmp(a, b) == 0;
}

/* The same digests: the same algorithms, and equal bytes for each. */
static inline bool fuzz_digests_same(const bh_digests *a, const bh_digests *b) {
  if (a->algs != b->algs) return false;
  if ((a->algs & BH_ALG_SHA256) &&
      memcmp(a->sha256, b->sha256, BH_DIGEST_LEN) != 0)
    return false;
  return !(a->algs & BH_ALG_BLAKE3) ||
         memcmp(a->blake3, b->blake3, BH_DIGEST_LEN) == 0;
}

/* Equal on every field, strings compared exactly (stricter than the
 * prober's lexical exe_path), and consistent with bh_identity_compare
 * (two equal identities with a digest compare equal). */
static inline bool fuzz_identity_equal(const bh_identity *a,
                                       const bh_identity *b) {
  bool same =
      a->pid == b->pid && fuzz_str_same(a->exe_path, b->exe_path) &&
      fuzz_digests_same(&a->digests, &b->digests) &&
      fuzz_str_same(a->boot_id, b->boot_id) &&
      fuzz_str_same(a->endpoint.namespace_id, b->endpoint.namespace_id) &&
      fuzz_str_same(a->endpoint.path, b->endpoint.path) &&
      a->started_at_unix_ms == b->started_at_unix_ms &&
      a->has_idle_timeout == b->has_idle_timeout &&
      (!a->has_idle_timeout || a->idle_timeout_secs == b->idle_timeout_secs);
  if (same && a->digests.algs != 0)
    FUZZ_ASSERT(bh_identity_compare(a, b, NULL) == BH_OK);
  return same;
}

/* The nonce the response target's request used (0x00, 0x01, ... 0x1f);
 * the corpus generator uses the same bytes. */
static inline void fuzz_fixed_nonce(uint8_t nonce[32]) {
  for (int i = 0; i < 32; i++)
    nonce[i] = (uint8_t)i;
}

/* The identity the response target expects (the corpus generator writes
 * the same one, in either generation). Aborts on allocation failure. */
static inline void fuzz_fixed_identity(bh_identity *id) {
  bh_err err;
  bh_identity_init(id);
  id->pid = 4242;
  id->exe_path = strdup("/usr/bin/daemon");
  id->boot_id = strdup("6f1c1b9e-3f0a-4d52-9d1e-0c6a1f1f2b3c");
  FUZZ_ASSERT(id->exe_path != NULL && id->boot_id != NULL);
  /* Both digests, so answers of either generation share one with it. */
  id->digests.algs = BH_ALGS_ALL;
  for (int i = 0; i < BH_DIGEST_LEN; i++) {
    id->digests.sha256[i] = (uint8_t)(0xa0 + i);
    id->digests.blake3[i] = (uint8_t)(0xc0 + i);
  }
  bh_status st = bh_endpoint_set(&id->endpoint, "ns", "/tmp/d.sock", &err);
  FUZZ_ASSERT_OK(st, err);
  id->started_at_unix_ms = 1700000000000ull;
  id->has_idle_timeout = true;
  id->idle_timeout_secs = 30;
}

#endif
