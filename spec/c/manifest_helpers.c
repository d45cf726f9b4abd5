/* The definitions of manifest_helpers.h (see there), compiled once into the
 * bhtestutil library that every C test links. */
#include "manifest_helpers.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.pb-c.h"
#include "identity.h"
#include "manifest.h"
#include "manifest.pb-c.h"
#include "pbutil.h"
#include "testutil.h"

void mh_set_str(char **dst, const char *s) {
  size_t n = strlen(s) + 1;
  char *p = bh_pb_allocator.alloc(NULL, n);
  if (p == NULL) abort();
  memcpy(p, s, n);
  if (*dst != NULL && *dst != protobuf_c_empty_string)
    bh_pb_allocator.free(NULL, *dst);
  *dst = p;
}

void mh_identity(bh_identity *id, unsigned algs) {
  bh_identity_init(id);
  id->pid = 4242;
  id->exe_path = strdup("/usr/bin/daemon");
  for (int i = 0; i < BH_DIGEST_LEN; i++) {
    id->digests.sha256[i] = (uint8_t)i;
    id->digests.blake3[i] = (uint8_t)(0xb0 ^ i);
  }
  id->digests.algs = algs;
  id->boot_id = strdup("boot-1");
  bh_endpoint_set(&id->endpoint, "ns", "/run/d.sock", NULL);
  id->started_at_unix_ms = 1700000000000ull;
  id->has_idle_timeout = true;
  id->idle_timeout_secs = 0;
}

void mh_manifest(bh_manifest *m, const char *service, int generation) {
  bh_err err;
  CHECK_CODE(bh_manifest_init(m, &err), BH_OK, &err);
  mh_set_str(&m->pb->service_name, service);
  mh_set_str(&m->pb->service_version, "1.2.3");
  mh_set_str(&m->pb->broker_envelope_version, "v1");
  mh_set_str(&m->pb->broker_instance, "inst-7");
  m->pb->created_at_unix_ms = 1;
  m->pb->last_active_unix_ms = 2;
  if (generation == 0) return;
  bh_identity id;
  mh_identity(&id, generation == 1 ? BH_ALG_SHA256 : BH_ALG_BLAKE3);
  CHECK_CODE(bh_manifest_set_daemon(m, &id, generation, &err), BH_OK, &err);
  bh_identity_clear(&id);
}

void mh_set_host(bh_manifest *m, const char *machine_id) {
  if (m->pb->host == NULL) {
    m->pb->host = bh_pb_allocator.alloc(NULL, sizeof *m->pb->host);
    if (m->pb->host == NULL) abort();
    running_process__broker__v1__host_identity__init(m->pb->host);
  }
  mh_set_str(&m->pb->host->machine_id, machine_id);
  mh_set_str(&m->pb->host->hostname, "elsewhere");
}

void mh_write_bytes(const char *path, const void *buf, size_t len) {
  FILE *f = fopen(path, "wbe");
  CHECK(f != NULL);
  if (f == NULL) return;
  CHECK_INT(fwrite(buf, 1, len, f), len);
  CHECK_INT(fclose(f), 0);
}

uint8_t *mh_read_bytes(const char *path, size_t *len) {
  *len = 0;
  FILE *f = fopen(path, "rbe");
  if (f == NULL) return NULL;
  size_t cap = 4096, n = 0;
  uint8_t *buf = malloc(cap);
  size_t got;
  while (buf != NULL && (got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) buf = realloc(buf, cap *= 2);
  }
  fclose(f);
  *len = n;
  return buf;
}

bool mh_file_is(const char *path, const uint8_t *buf, size_t len) {
  size_t n = 0;
  uint8_t *got = mh_read_bytes(path, &n);
  bool same = got != NULL && n == len && memcmp(got, buf, len) == 0;
  free(got);
  return same;
}

uint8_t *mh_fixture(const char *name, size_t *len) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", BH_FIXTURES, name);
  uint8_t *buf = mh_read_bytes(path, len);
  if (buf == NULL) {
    fprintf(stderr, "missing fixture %s\n", path);
    exit(2);
  }
  return buf;
}

void mh_copy_fixture(const char *name, const char *path) {
  size_t n = 0;
  uint8_t *buf = mh_fixture(name, &n);
  mh_write_bytes(path, buf, n);
  free(buf);
}

pid_t mh_spawn_shimmed(char *const argv[], int stop_at) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  char n[16];
  snprintf(n, sizeof n, "%d", stop_at);
  setenv("LD_PRELOAD", BH_STOP_SHIM, 1);
  if (stop_at > 0) setenv("BH_STOP_BEFORE_RENAME", n, 1);
  const char *asan = getenv("ASAN_OPTIONS");
  char opts[512];
  snprintf(opts, sizeof opts, "%s%sverify_asan_link_order=0", asan ? asan : "",
           asan && asan[0] ? ":" : "");
  setenv("ASAN_OPTIONS", opts, 1);
  execv("/proc/self/exe", argv);
  _exit(127);
}

bool mh_wait_stopped(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, WUNTRACED) != pid) return false;
  if (!WIFSTOPPED(status))
    fprintf(stderr, "   child did not stop (status 0x%x)\n", status);
  return WIFSTOPPED(status);
}

int mh_wait_exit(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
