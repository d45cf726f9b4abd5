/* The definitions of wire_fixtures.h (see there), compiled once into the
 * bhtestutil library that every C test links. */
#include "wire_fixtures.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.pb-c.h"
#include "frame.pb-c.h"
#include "pbutil.h"
#include "testutil.h"
#include "wire.h"

void fixed_nonce(uint8_t n[BH_NONCE_LEN]) {
  for (int i = 0; i < BH_NONCE_LEN; i++)
    n[i] = (uint8_t)i;
}

uint64_t fixed_request_id(void) {
  uint8_t n[BH_NONCE_LEN];
  fixed_nonce(n);
  return bh_request_id_from_nonce(n);
}

char *hex_of(const uint8_t *p, size_t n) {
  char *s = malloc(2 * n + 1);
  for (size_t i = 0; i < n; i++)
    sprintf(s + 2 * i, "%02x", p[i]);
  s[2 * n] = '\0';
  return s;
}

void sample_daemon(pb_daemon *d, pb_endpoint *ep, uint8_t sha[32]) {
  pb_endpoint e = RUNNING_PROCESS__BROKER__V1__ENDPOINT__INIT;
  pb_daemon p = RUNNING_PROCESS__BROKER__V1__DAEMON_PROCESS__INIT;
  memset(sha, 0xaa, 32);
  *ep = e;
  ep->namespace_id = "n";
  ep->path = "/s";
  *d = p;
  d->pid = 7;
  d->exe_path = "/a";
  d->exe_sha256.len = 32;
  d->exe_sha256.data = sha;
  d->ipc_endpoint = ep;
  d->started_at_unix_ms = 1;
  d->boot_id = "b";
  d->idle_timeout_case =
      RUNNING_PROCESS__BROKER__V1__DAEMON_PROCESS__IDLE_TIMEOUT_IDLE_TIMEOUT_SECS;
  d->idle_timeout_secs = 0;
}

void sample_identity(bh_identity *id) {
  bh_identity_init(id);
  id->pid = 7;
  id->exe_path = strdup("/a");
  id->digests.algs = BH_ALG_SHA256;
  memset(id->digests.sha256, 0xaa, 32);
  id->endpoint.namespace_id = strdup("n");
  id->endpoint.path = strdup("/s");
  id->started_at_unix_ms = 1;
  id->boot_id = strdup("b");
  id->has_idle_timeout = true;
  id->idle_timeout_secs = 0;
}

size_t pack_daemon(const pb_daemon *d, uint8_t *out, size_t cap) {
  size_t n = running_process__broker__v1__daemon_process__get_packed_size(d);
  if (n > cap) abort();
  return running_process__broker__v1__daemon_process__pack(d, out);
}

void response_frame(pb_frame *f, uint8_t *payload_buf, const uint8_t *ident,
                    size_t ident_len) {
  pb_frame init = RUNNING_PROCESS__BROKER__V1__FRAME__INIT;
  *f = init;
  fixed_nonce(payload_buf);
  if (ident_len > 0) memcpy(payload_buf + BH_NONCE_LEN, ident, ident_len);
  f->envelope_version = 1;
  f->kind = RUNNING_PROCESS__BROKER__V1__FRAME_KIND__RESPONSE;
  f->payload_protocol = BH_PROBE_PROTOCOL;
  f->payload.data = payload_buf;
  f->payload.len = BH_NONCE_LEN + ident_len;
  f->request_id = fixed_request_id();
}

void request_frame(pb_frame *f, uint8_t nonce[BH_NONCE_LEN]) {
  pb_frame init = RUNNING_PROCESS__BROKER__V1__FRAME__INIT;
  *f = init;
  fixed_nonce(nonce);
  f->envelope_version = 1;
  f->payload_protocol = BH_PROBE_PROTOCOL;
  f->payload.data = nonce;
  f->payload.len = BH_NONCE_LEN;
  f->request_id = bh_request_id_from_nonce(nonce);
}

size_t pack_frame(const pb_frame *f, uint8_t *buf, size_t cap) {
  size_t n = running_process__broker__v1__frame__get_packed_size(f);
  if (n > cap) abort();
  return running_process__broker__v1__frame__pack(f, buf);
}
