/* Every user's central registry (users.h). */
#include "users.h"

#include <errno.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum {
  PW_BUF_START = 4096,
  PW_BUF_MAX = 1 << 20, /* a passwd entry larger than this is not one */
};

void bh_user_registries_free(bh_user_registries *out) {
  for (size_t i = 0; i < out->count; i++) {
    free(out->v[i].dir);
    free(out->v[i].user);
  }
  free(out->v);
  out->v = NULL;
  out->count = 0;
}

/* Is dir already in out (a home two users share)? */
static bool listed(const bh_user_registries *out, const char *dir) {
  for (size_t i = 0; i < out->count; i++)
    if (strcmp(out->v[i].dir, dir) == 0) return true;
  return false;
}

/* Add pw's registry to out when its home is a directory pw owns (the
 * home itself not a symlink). false only when out of memory. */
static bool add_user(bh_user_registries *out, const struct passwd *pw) {
  struct stat st;
  const char *home = pw->pw_dir;
  if (home == NULL || home[0] != '/' || lstat(home, &st) != 0 ||
      !S_ISDIR(st.st_mode) || st.st_uid != pw->pw_uid)
    return true;
  size_t n = strlen(home);
  while (n > 1 && home[n - 1] == '/')
    n--; /* "/home/a/" */
  char *dir = NULL;
  if (asprintf(&dir, "%.*s%s" BH_USER_REGISTRY_SUBDIR, (int)n, home,
               n == 1 ? "" : "/") < 0)
    return false;
  if (listed(out, dir)) {
    free(dir);
    return true;
  }
  bh_user_registry *v = realloc(out->v, (out->count + 1) * sizeof *v);
  char *user = strdup(pw->pw_name);
  if (v == NULL || user == NULL) {
    if (v != NULL) out->v = v;
    free(dir);
    free(user);
    return false;
  }
  out->v = v;
  v[out->count++] = (bh_user_registry){dir, user, pw->pw_uid};
  return true;
}

bh_status bh_user_registries_list(bh_user_registries *out, bh_err *err) {
  memset(out, 0, sizeof *out);
  size_t cap = PW_BUF_START;
  char *buf = malloc(cap);
  bh_status st = BH_OK;
  if (buf == NULL) return bh_err_set(err, BH_SYSTEM, NULL, "out of memory");
  setpwent();
  for (;;) {
    struct passwd pw, *res = NULL;
    int rc = getpwent_r(&pw, buf, cap, &res);
    if (rc == ERANGE && cap < PW_BUF_MAX) { /* the same entry, larger */
      char *more = realloc(buf, cap * 2);
      if (more == NULL) {
        st = bh_err_set(err, BH_SYSTEM, NULL, "out of memory");
        break;
      }
      buf = more;
      cap *= 2;
      continue;
    }
    if (rc == ENOENT || (rc == 0 && res == NULL)) break; /* the end */
    if (rc != 0) {
      st = bh_err_set(err, BH_SYSTEM, NULL, "reading the user database: %s",
                      strerror(rc));
      break;
    }
    if (!add_user(out, res)) {
      st = bh_err_set(err, BH_SYSTEM, NULL, "out of memory");
      break;
    }
  }
  endpwent();
  free(buf);
  if (st != BH_OK) bh_user_registries_free(out);
  return st;
}
