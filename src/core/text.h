/* Strings from records, cut where they are copied. A manifest's
 * service_name, a namespace, a socket path or a message a peer sent is
 * chosen by whoever wrote the record (any local user who can write under
 * a scanned root: up to the 16 MiB a manifest may hold) and the service
 * copies it into what it writes: report lines, metrics labels, log lines,
 * the labels of GET /sd. Each of those sinks cuts every such string here,
 * once, so that one record cannot grow a line, a label or the metrics
 * file without bound: the kept head is followed by a mark that says a
 * cut was made and how long the string was ("...[cut, 15000000 bytes in
 * all]"), never a silent truncation. A cut never splits a UTF-8
 * sequence. */
#ifndef BH_TEXT_H
#define BH_TEXT_H

#include <stddef.h>

enum {
  /* A label value (metrics, /sd): an index key, short by nature. */
  BH_TEXT_LABEL_MAX = 256,
  /* A string in a report line, one line of a log message: PATH_MAX, so
   * that no real path is ever cut. */
  BH_TEXT_FIELD_MAX = 4096,
  /* A whole log message (a traceback's lines together). */
  BH_TEXT_LOG_MAX = 16384,
  /* The longest mark, its NUL included. */
  BH_TEXT_MARK_MAX = 48,
  /* The least max a cut accepts: the mark and some text. */
  BH_TEXT_MIN_MAX = 64
};

/* How many bytes of s (len bytes) to keep so that they and the mark fit
 * in max bytes (max >= BH_TEXT_MIN_MAX). When len <= max, returns len and
 * mark is "" (*mark_len 0): nothing is cut. Otherwise returns the length
 * of the longest head that, followed by the mark written to mark
 * (NUL-terminated, *mark_len bytes without the NUL), takes at most max
 * bytes and does not end inside a UTF-8 sequence. */
size_t bh_text_cut(const char *s, size_t len, size_t max,
                   char mark[BH_TEXT_MARK_MAX], size_t *mark_len);

/* The mark of a cut of a string of len bytes, into mark (NUL-terminated);
 * returns its length. For a sink that cuts by its own count (lines). */
size_t bh_text_mark(size_t len, char mark[BH_TEXT_MARK_MAX]);

#endif
