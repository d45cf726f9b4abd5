/* The DaemonProcess protobuf form of an identity (DESIGN §1.3), through
 * the protobuf-c generated code. The decoder checks what the Rust
 * reference checks, in the prober's order (DESIGN §1.4): the bytes decode
 * (strings valid UTF-8; we also refuse NUL bytes), an ipc_endpoint is
 * present, exe_sha256 is 32 bytes. err->field stays NULL here: in the
 * error contract it names the differing field of an identity_mismatch. */
#include <stdlib.h>
#include <string.h>

#include "daemon.pb-c.h"
#include "identity.h"
#include "pbutil.h"

typedef RunningProcess__Broker__V1__DaemonProcess pb_daemon;
typedef RunningProcess__Broker__V1__Endpoint pb_endpoint;

/* protobuf-c wants char * for strings it only reads when packing. */
static char *pb_str(const char *s) {
  return (char *)(s != NULL ? s : "");
}

bh_status bh_identity_encode(const bh_identity *id, uint8_t **out,
                             size_t *out_len, bh_err *err) {
  pb_endpoint ep = RUNNING_PROCESS__BROKER__V1__ENDPOINT__INIT;
  pb_daemon msg = RUNNING_PROCESS__BROKER__V1__DAEMON_PROCESS__INIT;
  ep.namespace_id = pb_str(id->endpoint.namespace_id);
  ep.path = pb_str(id->endpoint.path);
  msg.pid = id->pid;
  msg.exe_path = pb_str(id->exe_path);
  msg.exe_sha256.data = (uint8_t *)id->exe_sha256;
  msg.exe_sha256.len = BH_SHA256_LEN;
  msg.ipc_endpoint = &ep;
  msg.started_at_unix_ms = id->started_at_unix_ms;
  msg.boot_id = pb_str(id->boot_id);
  if (id->has_idle_timeout) {
    /* Set through the oneof: encoded even when 0 ("38 00"). */
    msg.idle_timeout_case =
        RUNNING_PROCESS__BROKER__V1__DAEMON_PROCESS__IDLE_TIMEOUT_IDLE_TIMEOUT_SECS;
    msg.idle_timeout_secs = id->idle_timeout_secs;
  }
  size_t len =
      running_process__broker__v1__daemon_process__get_packed_size(&msg);
  uint8_t *buf = malloc(len > 0 ? len : 1);
  if (buf == NULL)
    return bh_err_set(err, BH_SYSTEM, NULL,
                      "out of memory encoding identity (%zu bytes)", len);
  running_process__broker__v1__daemon_process__pack(&msg, buf);
  *out = buf;
  *out_len = len;
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

/* Copy a checked message into a fresh identity. */
static bh_status from_message(const pb_daemon *m, bh_identity *id,
                              bh_err *err) {
  id->pid = m->pid;
  memcpy(id->exe_sha256, m->exe_sha256.data, BH_SHA256_LEN);
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
  if (bh_pb_prescan(&running_process__broker__v1__daemon_process__descriptor,
                    buf, len, &bh_pb_limits_message, BH_DECODE_IDENTITY,
                    err) != BH_OK)
    return BH_DECODE_IDENTITY;
  pb_daemon *m = running_process__broker__v1__daemon_process__unpack(
      &bh_pb_allocator, len, buf);
  if (m == NULL)
    return bh_err_set(err, BH_DECODE_IDENTITY, NULL,
                      "%zu bytes do not decode as a DaemonProcess", len);
  bh_status st = bh_identity_from_pb(m, out, err);
  running_process__broker__v1__daemon_process__free_unpacked(m,
                                                             &bh_pb_allocator);
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
  if (m->exe_sha256.len != BH_SHA256_LEN) {
    st = bh_err_set(err, BH_INVALID_SHA256_LENGTH, NULL,
                    "exe_sha256 is %zu bytes, expected %d", m->exe_sha256.len,
                    BH_SHA256_LEN);
    goto end;
  }
  st = from_message(m, &id, err);
  if (st == BH_OK) bh_identity_move(out, &id);
end:
  bh_identity_clear(&id);
  return st;
}
