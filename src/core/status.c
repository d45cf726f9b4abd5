/* Names and stages of the stable status codes (design §1.6). */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
  const char *name;
  const char *stage;
} status_table[BH_STATUS_COUNT] = {
    [BH_OK] = {"ok", "ok"},
    [BH_ENDPOINT_MISMATCH] = {"endpoint_mismatch", "endpoint"},
    [BH_INVALID_ENDPOINT] = {"invalid_endpoint", "endpoint"},
    [BH_INVALID_PID] = {"invalid_pid", "verify_pid"},
    [BH_BOOT_ID_MISMATCH] = {"boot_id_mismatch", "verify_pid"},
    [BH_PID_NOT_FOUND] = {"pid_not_found", "verify_pid"},
    [BH_EXE_PATH] = {"exe_path", "verify_pid"},
    [BH_EXE_PATH_MISMATCH] = {"exe_path_mismatch", "verify_pid"},
    [BH_EXE_HASH] = {"exe_hash", "verify_pid"},
    [BH_EXE_SHA256_MISMATCH] = {"exe_sha256_mismatch", "verify_pid"},
    [BH_EXE_HASH_MISMATCH] = {"exe_hash_mismatch", "verify_pid"},
    [BH_PID_REUSED] = {"pid_reused", "verify_pid"},
    [BH_EXE_DELETED] = {"exe_deleted", "verify_pid"},
    [BH_EXE_TOO_LARGE] = {"exe_too_large", "verify_pid"},
    [BH_CONNECT] = {"connect", "response"},
    [BH_TIMEOUT] = {"timeout", "response"},
    [BH_IO] = {"io", "response"},
    [BH_UNSUPPORTED_FRAMING_VERSION] = {"unsupported_framing_version",
                                        "response"},
    [BH_FRAME_TOO_LARGE] = {"frame_too_large", "response"},
    [BH_DECODE_FRAME] = {"decode_frame", "response"},
    [BH_UNEXPECTED_FRAME] = {"unexpected_frame", "response"},
    [BH_MALFORMED_PAYLOAD] = {"malformed_payload", "response"},
    [BH_DECODE_IDENTITY] = {"decode_identity", "response"},
    [BH_MISSING_ENDPOINT] = {"missing_endpoint", "response"},
    [BH_INVALID_SHA256_LENGTH] = {"invalid_sha256_length", "response"},
    [BH_INVALID_HASH_LENGTH] = {"invalid_hash_length", "response"},
    [BH_UNSUPPORTED_HASH_ALGORITHM] = {"unsupported_hash_algorithm",
                                       "response"},
    [BH_IDENTITY_MISMATCH] = {"identity_mismatch", "response"},
    [BH_PEER_MISMATCH] = {"peer_mismatch", "response"},
    [BH_OWNER_CANNOT_CONNECT] = {"owner_cannot_connect", "response"},
    [BH_INVALID_JSON] = {"invalid_json", "identity"},
    [BH_INVALID_IDENTITY] = {"invalid_identity", "identity"},
    [BH_IN_USE] = {"in_use", "respond"},
    [BH_MANIFEST_IO] = {"manifest_io", "manifest"},
    [BH_MANIFEST_DECODE] = {"manifest_decode", "manifest"},
    [BH_MANIFEST_CORRUPT] = {"manifest_corrupt", "manifest"},
    [BH_MANIFEST_SCHEMA_TOO_NEW] = {"manifest_schema_too_new", "manifest"},
    [BH_INSECURE_REGISTRY] = {"insecure_registry", "manifest"},
    [BH_FOREIGN_HOST] = {"foreign_host", "manifest"},
    [BH_MANIFEST_TOO_LARGE] = {"manifest_too_large", "manifest"},
    [BH_SYSTEM] = {"system", "system"},
};

const char *bh_status_name(bh_status code) {
  if ((unsigned)code >= BH_STATUS_COUNT) return "unknown";
  return status_table[code].name;
}

const char *bh_status_stage(bh_status code) {
  if ((unsigned)code >= BH_STATUS_COUNT) return "unknown";
  return status_table[code].stage;
}

/* Fill err: code, field, no errno, the message. */
static bh_status err_fill(bh_err *err, bh_status code, const char *field,
                          const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
static bh_status err_fill(bh_err *err, bh_status code, const char *field,
                          const char *fmt, va_list ap) {
  err->code = code;
  err->sys_errno = 0;
  err->field = field;
  err->nfields = 0;
  int n = vsnprintf(err->message, sizeof err->message, fmt, ap);
  if (n < 0) err->message[0] = '\0';
  return code;
}

bh_status bh_err_set(bh_err *err, bh_status code, const char *field,
                     const char *fmt, ...) {
  if (err == NULL) return code;
  va_list ap;
  va_start(ap, fmt);
  err_fill(err, code, field, fmt, ap);
  va_end(ap);
  return code;
}

bh_status bh_err_sys(bh_err *err, bh_status code, int e, const char *fmt, ...) {
  if (err == NULL) return code;
  va_list ap;
  va_start(ap, fmt);
  err_fill(err, code, NULL, fmt, ap);
  va_end(ap);
  err->sys_errno = e;
  return code;
}

int bh_err_errno(const bh_err *err) {
  return err != NULL ? err->sys_errno : 0;
}

void bh_err_clear(bh_err *err) {
  if (err == NULL) return;
  err->code = BH_OK;
  err->sys_errno = 0;
  err->field = NULL;
  err->nfields = 0;
  err->message[0] = '\0';
}
