/* Helpers shared by the manifest and file tests (test_manifest_files.c,
 * test_manifest_seals.c, test_wire_vectors.c, test_fsutil_paths.c,
 * test_fsutil_race.c, test_manifest_registry.c, test_fsutil_fifo.c): sample
 * identities of either generation, manifests built field by field with the
 * protobuf-c types, whole-file reads and writes, the fixtures, and a child
 * process (this very test binary, run with a mode argument) under the
 * LD_PRELOAD shim that stops it just before a rename. Defined in
 * manifest_helpers.c (bhtestutil). */
#ifndef BH_MANIFEST_HELPERS_H
#define BH_MANIFEST_HELPERS_H

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

typedef RunningProcess__Broker__V1__CacheManifest mh_pb;
typedef RunningProcess__Broker__V1__HostIdentity mh_host_pb;

/* A copy of s in memory the manifest's allocator owns (what
 * bh_manifest_clear frees), replacing *dst. */
void mh_set_str(char **dst, const char *s);

/* A recognisable identity with the digests of `algs` (pid 4242, boot
 * "boot-1", endpoint ("ns", "/run/d.sock"), idle timeout 0). */
void mh_identity(bh_identity *id, unsigned algs);

/* A manifest for service, version 1.2.3, with a host naming this machine
 * and (generation 1 or 2; 0 = none) a daemon. */
void mh_manifest(bh_manifest *m, const char *service, int generation);

/* Give m a host record naming machine_id. */
void mh_set_host(bh_manifest *m, const char *machine_id);

void mh_write_bytes(const char *path, const void *buf, size_t len);

/* The whole file (malloc'd, NULL when unreadable); its size in *len. */
uint8_t *mh_read_bytes(const char *path, size_t *len);

/* Do the file at path and buf hold the same bytes? */
bool mh_file_is(const char *path, const uint8_t *buf, size_t len);

/* A fixture file (spec/fixtures/NAME), read whole; aborts the test
 * binary when it is missing (the tests need nothing outside the tree). */
uint8_t *mh_fixture(const char *name, size_t *len);

/* Copy a fixture to path. */
void mh_copy_fixture(const char *name, const char *path);

/* Run this test binary again as `argv[0] mode arg...` (argv ends with
 * NULL) under the stop-before-rename shim: stop_at = N stops it just
 * before its Nth rename (0 = never). The ASan runtime must come first
 * among the loaded libraries, which LD_PRELOAD breaks: its check is off
 * in the child. Returns the child's pid. */
pid_t mh_spawn_shimmed(char *const argv[], int stop_at);

/* Wait until pid stops (SIGSTOP from the shim); false if it exited. */
bool mh_wait_stopped(pid_t pid);

/* Wait for pid to exit; its exit status, or -1 (killed, or waitpid). */
int mh_wait_exit(pid_t pid);

#endif
