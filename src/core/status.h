/* Status codes of the C core (design §1.6) and the error record that carries
 * them. The core never raises: every fallible function returns a bh_status
 * and, when given a bh_err, fills it with the code, the compared field (for
 * identity mismatches), the errno of the system call that failed (for a
 * caller that must tell "not there" from "refused") and a human message
 * saying what was expected and what came. A descriptor or an object a
 * function makes is an out-parameter. The exceptions are few and named
 * for what they are: a wrapper of one system call (bh_fd_openat,
 * bh_pidfd_open, bh_peer_pidfd) returns what that call returns, a step of
 * I/O on the loop (bh_sock_io) says what the loop must do next, and a
 * completion of the io_uring ring carries the kernel's result (a count
 * or -errno, uring.h). */
#ifndef BH_STATUS_H
#define BH_STATUS_H

#include <stdbool.h>

typedef enum bh_status {
  BH_OK = 0,
  /* stage "endpoint" */
  BH_ENDPOINT_MISMATCH,
  BH_INVALID_ENDPOINT,
  /* stage "verify_pid" */
  BH_INVALID_PID,
  BH_BOOT_ID_MISMATCH,
  BH_PID_NOT_FOUND,
  BH_EXE_PATH,
  BH_EXE_PATH_MISMATCH,
  BH_EXE_HASH,
  BH_EXE_SHA256_MISMATCH,
  BH_EXE_HASH_MISMATCH,
  BH_PID_REUSED,
  BH_EXE_DELETED,
  BH_EXE_TOO_LARGE,
  /* stage "response" (the responder reuses these for requests, stage
   * "request" is then implied by the caller) */
  BH_CONNECT,
  BH_TIMEOUT,
  BH_IO,
  BH_UNSUPPORTED_FRAMING_VERSION,
  BH_FRAME_TOO_LARGE,
  BH_DECODE_FRAME,
  BH_UNEXPECTED_FRAME,
  BH_MALFORMED_PAYLOAD,
  BH_DECODE_IDENTITY,
  BH_MISSING_ENDPOINT,
  BH_INVALID_SHA256_LENGTH,
  BH_INVALID_HASH_LENGTH,
  BH_UNSUPPORTED_HASH_ALGORITHM,
  BH_IDENTITY_MISMATCH,
  BH_PEER_MISMATCH,
  BH_OWNER_CANNOT_CONNECT,
  /* stage "identity": JSON and argument-level identity problems */
  BH_INVALID_JSON,
  BH_INVALID_IDENTITY,
  /* stage "respond": binding a responder */
  BH_IN_USE,
  /* stage "manifest" */
  BH_MANIFEST_IO,
  BH_MANIFEST_DECODE,
  BH_MANIFEST_CORRUPT,
  BH_MANIFEST_SCHEMA_TOO_NEW,
  BH_INSECURE_REGISTRY,
  BH_FOREIGN_HOST,
  BH_MANIFEST_TOO_LARGE,
  /* stage "system": resource exhaustion, unexpected syscall failures */
  BH_SYSTEM,
  BH_STATUS_COUNT
} bh_status;

enum { BH_ERR_MESSAGE_MAX = 240, BH_ERR_FIELDS_MAX = 8 };

typedef struct bh_err {
  bh_status code;
  /* The errno of the system call that failed (bh_err_sys), or 0. */
  int sys_errno;
  const char *field; /* static string or NULL */
  /* identity_mismatch: every differing field, in comparison order (field
   * is fields[0]); nfields is 0 otherwise. Static strings. */
  const char *fields[BH_ERR_FIELDS_MAX];
  unsigned nfields;
  char message[BH_ERR_MESSAGE_MAX];
} bh_err;

/* "endpoint_mismatch", ... ; "ok" for BH_OK. Never NULL. */
const char *bh_status_name(bh_status code);
/* "endpoint", "verify_pid", "response", "identity", "respond", "manifest",
 * "system"; "ok" for BH_OK. Never NULL. */
const char *bh_status_stage(bh_status code);

/* Fill *err (if err is not NULL) and return code. field may be NULL. */
bh_status bh_err_set(bh_err *err, bh_status code, const char *field,
                     const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* bh_err_set for a failed system call whose errno was e: err->sys_errno
 * is e (bh_err_set leaves it 0). Without err, e is lost: a caller that
 * must know it passes one. */
bh_status bh_err_sys(bh_err *err, bh_status code, int e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The errno carried by err (0 when err is NULL or none was). */
int bh_err_errno(const bh_err *err);

/* Reset *err to BH_OK with an empty message. */
void bh_err_clear(bh_err *err);

#endif
