/* Expected identities prepared for probes (see expect.h). */
#include "expect.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_FORMS = 2 };

struct bh_expected {
  atomic_uint refs;
  bh_identity id;
  bool encoded; /* bh_expected_encode ran */
  unsigned nforms;
  struct {
    uint8_t *pb;
    size_t len;
  } forms[MAX_FORMS];
};

static bool same_string(const char *a, const char *b) {
  return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Are a and b the same identity, field for field (what the prober
 * compares and what it does not)? */
static bool same_identity(const bh_identity *a, const bh_identity *b) {
  if (a->pid != b->pid || a->digests.algs != b->digests.algs ||
      a->started_at_unix_ms != b->started_at_unix_ms ||
      a->has_idle_timeout != b->has_idle_timeout ||
      a->idle_timeout_secs != b->idle_timeout_secs)
    return false;
  if ((a->digests.algs & BH_ALG_SHA256) &&
      memcmp(a->digests.sha256, b->digests.sha256, BH_DIGEST_LEN) != 0)
    return false;
  if ((a->digests.algs & BH_ALG_BLAKE3) &&
      memcmp(a->digests.blake3, b->digests.blake3, BH_DIGEST_LEN) != 0)
    return false;
  return same_string(a->exe_path, b->exe_path) &&
         same_string(a->boot_id, b->boot_id) &&
         same_string(a->endpoint.namespace_id, b->endpoint.namespace_id) &&
         same_string(a->endpoint.path, b->endpoint.path);
}

/* Keep the encoding of e's identity in form if it decodes back to exactly
 * that identity (a string that is not UTF-8, say, does not: its answer
 * must be decoded, and refused, as any other). */
static void add_form(bh_expected *e, bh_id_form form) {
  uint8_t *pb = NULL;
  size_t len = 0;
  if (bh_identity_encode(&e->id, form, &pb, &len, NULL) != BH_OK) return;
  bh_identity back;
  bh_identity_init(&back);
  if (bh_identity_decode(pb, len, &back, NULL) == BH_OK &&
      same_identity(&back, &e->id) && e->nforms < MAX_FORMS) {
    e->forms[e->nforms].pb = pb;
    e->forms[e->nforms].len = len;
    e->nforms++;
    pb = NULL;
  }
  bh_identity_clear(&back);
  free(pb);
}

bh_expected *bh_expected_take(bh_identity *id, bh_err *err) {
  bh_expected *e = calloc(1, sizeof *e);
  if (e == NULL) {
    bh_err_set(err, BH_SYSTEM, NULL, "out of memory for an identity");
    return NULL;
  }
  atomic_init(&e->refs, 1);
  bh_identity_init(&e->id);
  bh_identity_move(&e->id, id);
  return e;
}

bh_expected *bh_expected_new(const bh_identity *id, bool encodings,
                             bh_err *err) {
  bh_identity copy;
  bh_identity_init(&copy);
  if (bh_identity_copy(&copy, id, err) != BH_OK) return NULL;
  bh_expected *e = bh_expected_take(&copy, err);
  bh_identity_clear(&copy);
  if (e != NULL && encodings) bh_expected_encode(e);
  return e;
}

void bh_expected_encode(bh_expected *e) {
  if (e->encoded) return;
  e->encoded = true;
  /* What a daemon of either generation answers with: the answer form
   * always (ours, 4.10.4+; for an identity with only BLAKE3 it is the
   * generation-2 record 4.10.3 answers with); the generation-1 record
   * for an identity with only a SHA-256 (4.1.0). */
  add_form(e, BH_FORM_ANSWER);
  if (e->id.digests.algs == BH_ALG_SHA256) add_form(e, BH_FORM_GEN1);
}

bh_expected *bh_expected_ref(bh_expected *e) {
  atomic_fetch_add(&e->refs, 1);
  return e;
}

void bh_expected_unref(bh_expected *e) {
  if (e == NULL || atomic_fetch_sub(&e->refs, 1) != 1) return;
  bh_identity_clear(&e->id);
  for (unsigned i = 0; i < e->nforms; i++)
    free(e->forms[i].pb);
  free(e);
}

const bh_identity *bh_expected_identity(const bh_expected *e) {
  return &e->id;
}

bool bh_expected_answers(const bh_expected *e, const uint8_t *pb, size_t len) {
  for (unsigned i = 0; i < e->nforms; i++)
    if (e->forms[i].len == len && memcmp(e->forms[i].pb, pb, len) == 0)
      return true;
  return false;
}

size_t bh_expected_heap(const bh_expected *e) {
  size_t n = sizeof *e;
  const char *strs[] = {e->id.exe_path, e->id.boot_id,
                        e->id.endpoint.namespace_id, e->id.endpoint.path};
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
    if (strs[i] != NULL) n += strlen(strs[i]) + 1;
  for (unsigned i = 0; i < e->nforms; i++)
    n += e->forms[i].len;
  return n;
}
