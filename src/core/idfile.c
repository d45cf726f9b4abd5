/* The id files of the system, read once (see idfile.h). */
#include "idfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"

/* Read f's file into f->text (the lock held): 0, or the errno value with
 * err filled; EINVAL when it is empty or longer than an id. */
static int id_file_read(bh_id_file *f, bh_err *err) {
  char *text = NULL;
  size_t len = 0;
  int e = bh_file_read_small(f->path, 4096, &text, &len, BH_SYSTEM, err);
  if (e != 0) return e;
  while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' ' ||
                     text[len - 1] == '\r' || text[len - 1] == '\t'))
    len--;
  if (len > 0 && len < sizeof f->text) {
    memcpy(f->text, text, len);
    f->len = len;
  } else {
    e = EINVAL;
    bh_err_set(err, BH_SYSTEM, NULL, "%s holds %zu bytes, expected an id",
               f->path, len);
  }
  free(text);
  return e;
}

bh_status bh_id_file_get(bh_id_file *f, char *buf, size_t cap, bh_err *err) {
  if (cap == 0) return bh_err_set(err, BH_SYSTEM, NULL, "no room for an id");
  buf[0] = '\0';
  if (pthread_mutex_lock(&f->lock) != 0)
    return bh_err_set(err, BH_SYSTEM, NULL, "cannot lock the cache of %s",
                      f->path);
  int e = f->len == 0 ? id_file_read(f, err) : 0;
  if (e == 0) {
    size_t n = f->len < cap - 1 ? f->len : cap - 1;
    memcpy(buf, f->text, n);
    buf[n] = '\0';
  }
  (void)pthread_mutex_unlock(&f->lock);
  return e == 0 ? BH_OK : BH_SYSTEM;
}
