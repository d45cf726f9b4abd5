/* Fixtures shared by the wire tests (test_wire_frames.c, test_wire_validate.c):
 * the fixed nonce, a sample identity in its wire and in-memory forms, and
 * well-formed request/response Frames that a test then makes hostile with
 * protobuf-c directly. Defined in wire_fixtures.c (bhtestutil). */
#ifndef BH_WIRE_FIXTURES_H
#define BH_WIRE_FIXTURES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.pb-c.h"
#include "frame.pb-c.h"
#include "pbutil.h"
#include "testutil.h"
#include "wire.h"

typedef RunningProcess__Broker__V1__Frame pb_frame;
typedef RunningProcess__Broker__V1__DaemonProcess pb_daemon;
typedef RunningProcess__Broker__V1__Endpoint pb_endpoint;

#define NONCE_HEX \
  "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define AA32_HEX \
  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

/* The fixed nonce 00 01 02 ... 1f. */
void fixed_nonce(uint8_t n[BH_NONCE_LEN]);

uint64_t fixed_request_id(void);

char *hex_of(const uint8_t *p, size_t n);

/* Check that buf[0..n) is exactly the bytes spelled by hex. */
#define CHECK_HEX(buf, n, hex)     \
  do {                             \
    char *h_ = hex_of((buf), (n)); \
    CHECK_STR(h_, (hex));          \
    free(h_);                      \
  } while (0)

/* The sample identity, as the wire carries it: pid 7, exe_path "/a",
 * exe_sha256 aa*32, ipc_endpoint ("n", "/s"), started_at 1, boot_id "b",
 * idle_timeout_secs present and 0. */
void sample_daemon(pb_daemon *d, pb_endpoint *ep, uint8_t sha[32]);

/* The same identity in memory (heap strings, cleared by the caller). */
void sample_identity(bh_identity *id);

size_t pack_daemon(const pb_daemon *d, uint8_t *out, size_t cap);

/* A well-formed response Frame to the fixed request, whose payload is the
 * fixed nonce followed by ident; payload_buf holds 32 + ident_len bytes. */
void response_frame(pb_frame *f, uint8_t *payload_buf, const uint8_t *ident,
                    size_t ident_len);

/* A well-formed request Frame carrying the fixed nonce. */
void request_frame(pb_frame *f, uint8_t nonce[BH_NONCE_LEN]);

/* Pack f (body only, no framing header) into buf; returns the length. */
size_t pack_frame(const pb_frame *f, uint8_t *buf, size_t cap);

#endif
