/* An expected identity prepared once for many probes: the identity, and
 * the encodings a daemon answers with for it (design §1.4, §1.9: our own
 * and running-process 4.10.4+'s answer form, which for an identity with
 * only BLAKE3 is also 4.10.3's; 4.1.0's generation-1 record for one with
 * only a SHA-256), each kept only if it decodes back to exactly the
 * identity. An answer whose identity bytes are one of them is that
 * identity, with every check of the prober passed: it needs no decoding
 * (wire.h bh_probe_response_check). Shared by counted references: the
 * Lua binding's cache of converted tables and the probes in flight.
 * Knows nothing of sockets or Lua. */
#ifndef BH_EXPECT_H
#define BH_EXPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "identity.h"
#include "status.h"

typedef struct bh_expected bh_expected;

/* A copy of id (one reference). With encodings, the answer encodings are
 * made too (for an identity probed more than once); without, answers are
 * always decoded. NULL with err (BH_SYSTEM) when out of memory. */
bh_expected *bh_expected_new(const bh_identity *id, bool encodings,
                             bh_err *err);
/* The same, taking id over (it is left initialised). */
bh_expected *bh_expected_take(bh_identity *id, bh_err *err);
/* Make e's answer encodings, if they are not made yet. */
void bh_expected_encode(bh_expected *e);
bh_expected *bh_expected_ref(bh_expected *e);
void bh_expected_unref(bh_expected *e); /* NULL is ignored */
const bh_identity *bh_expected_identity(const bh_expected *e);

/* Are the len bytes at pb (an answer's payload after the nonce) one of
 * e's encodings? */
bool bh_expected_answers(const bh_expected *e, const uint8_t *pb, size_t len);

/* Heap bytes held (for the memory budget of a probe). */
size_t bh_expected_heap(const bh_expected *e);

#endif
