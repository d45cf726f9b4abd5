/* The DaemonProcess protobuf form of an identity (design §1.3, §1.9),
 * through the protobuf-c generated code. Records come in two generations
 * (tag 3 = SHA-256; tags 8/9 = "blake3" + BLAKE3-256) and a probe answer
 * in a third form (generation 2, then tag 3 appended); see identity.h.
 * The decoder checks what the Rust reference checks, in the prober's
 * order. err->field stays NULL here: in the error contract it names the
 * differing field of an identity_mismatch. */
#include <stdlib.h>
#include <string.h>

#include "daemon.pb-c.h"
#include "identity.h"
#include "pbutil.h"

typedef RunningProcess__Broker__V1__DaemonProcess pb_daemon;
typedef RunningProcess__Broker__V1__Endpoint pb_endpoint;

/* The legacy trailer of an answer: key of field 3 (wire type 2), length
 * 32, then the SHA-256. */
enum { TRAILER_LEN = 2 + BH_DIGEST_LEN };

/* protobuf-c wants char * for strings it only reads when packing. */
static char *pb_str(const char *s) {
  return (char *)(s != NULL ? s : "");
}

/* Fill msg (and ep, which it points to) from id with the digests of
 * `algs`; the message borrows id's strings and digests. */
static void fill_message(const bh_identity *id, unsigned algs, pb_daemon *msg,
                         pb_endpoint *ep) {
  ep->namespace_id = pb_str(id->endpoint.namespace_id);
  ep->path = pb_str(id->endpoint.path);
  msg->pid = id->pid;
  msg->exe_path = pb_str(id->exe_path);
  msg->ipc_endpoint = ep;
  msg->started_at_unix_ms = id->started_at_unix_ms;
  msg->boot_id = pb_str(id->boot_id);
  if (id->has_idle_timeout) {
    /* Set through the oneof: encoded even when 0 ("38 00"). */
    msg->idle_timeout_case =
        RUNNING_PROCESS__BROKER__V1__DAEMON_PROCESS__IDLE_TIMEOUT_IDLE_TIMEOUT_SECS;
    msg->idle_timeout_secs = id->idle_timeout_secs;
  }
  if (algs & BH_ALG_SHA256) {
    msg->exe_sha256.data = (uint8_t *)id->digests.sha256;
    msg->exe_sha256.len = BH_DIGEST_LEN;
  }
  if (algs & BH_ALG_BLAKE3) {
    msg->exe_hash_algorithm = BH_BLAKE3_NAME;
    msg->exe_hash.data = (uint8_t *)id->digests.blake3;
    msg->exe_hash.len = BH_DIGEST_LEN;
  }
}

/* Which digests a form writes in the message itself, and whether the
 * legacy trailer follows; invalid_identity when id lacks what the form
 * needs. */
static bh_status form_layout(const bh_identity *id, bh_id_form form,
                             unsigned *algs, bool *trailer, bh_err *err) {
  unsigned have = id->digests.algs;
  *trailer = false;
  switch (form) {
    case BH_FORM_GEN1:
      *algs = BH_ALG_SHA256;
      break;
    case BH_FORM_GEN2:
      *algs = BH_ALG_BLAKE3;
      break;
    case BH_FORM_ANSWER:
    default:
      *algs = have & BH_ALG_BLAKE3;
      *trailer = (have & BH_ALG_SHA256) != 0;
      if (have != 0) return BH_OK;
      return bh_err_set(err, BH_INVALID_IDENTITY, NULL,
                        "an identity needs an executable digest to answer");
  }
  if (have & *algs) return BH_OK;
  return bh_err_set(err, BH_INVALID_IDENTITY, NULL,
                    "a generation-%d DaemonProcess needs a %s digest, and "
                    "the identity has none",
                    form == BH_FORM_GEN1 ? 1 : 2,
                    form == BH_FORM_GEN1 ? "sha256" : "blake3");
}

bh_status bh_identity_encode(const bh_identity *id, bh_id_form form,
                             uint8_t **out, size_t *out_len, bh_err *err) {
  unsigned algs;
  bool trailer;
  bh_status st = form_layout(id, form, &algs, &trailer, err);
  if (st != BH_OK) return st;
  pb_endpoint ep = RUNNING_PROCESS__BROKER__V1__ENDPOINT__INIT;
  pb_daemon msg = RUNNING_PROCESS__BROKER__V1__DAEMON_PROCESS__INIT;
  fill_message(id, algs, &msg, &ep);
  size_t len =
      running_process__broker__v1__daemon_process__get_packed_size(&msg);
  size_t total = len + (trailer ? TRAILER_LEN : 0);
  uint8_t *buf = malloc(total > 0 ? total : 1);
  if (buf == NULL)
    return bh_err_set(err, BH_SYSTEM, NULL,
                      "out of memory encoding identity (%zu bytes)", total);
  running_process__broker__v1__daemon_process__pack(&msg, buf);
  if (trailer) {
    buf[len] = 0x1a; /* field 3, length-delimited */
    buf[len + 1] = BH_DIGEST_LEN;
    memcpy(buf + len + 2, id->digests.sha256, BH_DIGEST_LEN);
  }
  *out = buf;
  *out_len = total;
  return BH_OK;
}

/* Every decoded string must be NUL-free UTF-8 (prost rejects invalid
 * UTF-8 as a decode error). */
static bh_status check_strings(const pb_daemon *m, bh_err *err) {
  static const char why[] = "contains a NUL byte or invalid UTF-8";
  const struct {
    const char *name;
    const char *value;
  } fields[] = {
      {"exe_path", m->exe_path},
      {"boot_id", m->boot_id},
      {"exe_hash_algorithm", m->exe_hash_algorithm},
      {"ipc_endpoint.namespace_id",
       m->ipc_endpoint ? m->ipc_endpoint->namespace_id : NULL},
      {"ipc_endpoint.path", m->ipc_endpoint ? m->ipc_endpoint->path : NULL},
  };
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
    if (!bh_pb_string_ok(fields[i].value))
      return bh_err_set(err, BH_DECODE_IDENTITY, NULL,
                        "DaemonProcess field %s %s", fields[i].name, why);
  return BH_OK;
}

/* The digests of a decoded message, checked in the order of design §1.4,
 * §1.9 (see identity.h). */
static bh_status take_digests(const pb_daemon *m, bh_digests *d, bh_err *err) {
  const char *alg = m->exe_hash_algorithm ? m->exe_hash_algorithm : "";
  memset(d, 0, sizeof *d);
  if (m->exe_sha256.len != 0) {
    if (m->exe_sha256.len != BH_DIGEST_LEN)
      return bh_err_set(err, BH_INVALID_SHA256_LENGTH, NULL,
                        "exe_sha256 is %zu bytes, expected %d",
                        m->exe_sha256.len, BH_DIGEST_LEN);
    memcpy(d->sha256, m->exe_sha256.data, BH_DIGEST_LEN);
    d->algs |= BH_ALG_SHA256;
  }
  if (alg[0] != '\0' || m->exe_hash.len != 0) {
    if (strcmp(alg, BH_BLAKE3_NAME) != 0)
      return bh_err_set(err, BH_UNSUPPORTED_HASH_ALGORITHM, NULL,
                        "exe_hash_algorithm \"%.40s\", expected \"blake3\"",
                        alg);
    if (m->exe_hash.len != BH_DIGEST_LEN)
      return bh_err_set(err, BH_INVALID_HASH_LENGTH, NULL,
                        "exe_hash is %zu bytes, expected %d", m->exe_hash.len,
                        BH_DIGEST_LEN);
    memcpy(d->blake3, m->exe_hash.data, BH_DIGEST_LEN);
    d->algs |= BH_ALG_BLAKE3;
  }
  if (d->algs == 0)
    return bh_err_set(err, BH_INVALID_SHA256_LENGTH, NULL,
                      "DaemonProcess has no executable digest (exe_sha256 is "
                      "0 bytes, expected %d, and there is no exe_hash)",
                      BH_DIGEST_LEN);
  return BH_OK;
}

/* Copy a checked message into a fresh identity. */
static bh_status from_message(const pb_daemon *m, bh_identity *id,
                              bh_err *err) {
  id->pid = m->pid;
  id->started_at_unix_ms = m->started_at_unix_ms;
  id->has_idle_timeout =
      m->idle_timeout_case ==
      RUNNING_PROCESS__BROKER__V1__DAEMON_PROCESS__IDLE_TIMEOUT_IDLE_TIMEOUT_SECS;
  id->idle_timeout_secs = id->has_idle_timeout ? m->idle_timeout_secs : 0;
  id->exe_path = strdup(m->exe_path);
  id->boot_id = strdup(m->boot_id);
  if (id->exe_path == NULL || id->boot_id == NULL)
    return bh_err_set(err, BH_SYSTEM, NULL, "out of memory decoding identity");
  return bh_endpoint_set(&id->endpoint, m->ipc_endpoint->namespace_id,
                         m->ipc_endpoint->path, err);
}

bh_status bh_identity_decode(const uint8_t *buf, size_t len, bh_identity *out,
                             bh_err *err) {
  static const uint8_t empty[1];
  if (bh_pb_prescan(&running_process__broker__v1__daemon_process__descriptor,
                    buf, len, &bh_pb_limits_message, BH_DECODE_IDENTITY,
                    err) != BH_OK)
    return BH_DECODE_IDENTITY;
  /* A real identity (paths, boot id, digests) fits: no malloc per field. */
  bh_pb_arena arena;
  bh_pb_arena_init(&arena);
  pb_daemon *m = running_process__broker__v1__daemon_process__unpack(
      &arena.allocator, len, buf != NULL ? buf : empty);
  if (m == NULL)
    return bh_err_set(err, BH_DECODE_IDENTITY, NULL,
                      "%zu bytes do not decode as a DaemonProcess", len);
  bh_status st = bh_identity_from_pb(m, out, err);
  bh_pb_arena_release(&arena, &m->base);
  return st;
}

bh_status bh_identity_from_pb(const pb_daemon *m, bh_identity *out,
                              bh_err *err) {
  bh_identity id;
  bh_identity_init(&id);
  bh_status st;
  if (!bh_pb_tags_ok(&m->base)) {
    st = bh_err_set(err, BH_DECODE_IDENTITY, NULL,
                    "DaemonProcess holds a field number 0");
    goto end;
  }
  st = check_strings(m, err);
  if (st != BH_OK) goto end;
  if (m->ipc_endpoint == NULL) {
    st = bh_err_set(err, BH_MISSING_ENDPOINT, NULL,
                    "DaemonProcess has no ipc_endpoint");
    goto end;
  }
  st = take_digests(m, &id.digests, err);
  if (st != BH_OK) goto end;
  st = from_message(m, &id, err);
  if (st == BH_OK) bh_identity_move(out, &id);
end:
  bh_identity_clear(&id);
  return st;
}
