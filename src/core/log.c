/* Log lines on stderr (log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "text.h"

static int threshold = BH_LOG_INFO;
static int journal = -1; /* unknown until asked */

/* Does JOURNAL_STREAM ("DEV:INODE", decimal) name our stderr? */
static bool stderr_is_journal(void) {
  const char *js = getenv("JOURNAL_STREAM");
  char *end = NULL;
  struct stat sb;
  if (js == NULL || fstat(STDERR_FILENO, &sb) != 0) return false;
  unsigned long long dev = strtoull(js, &end, 10);
  if (end == js || *end != ':') return false;
  const char *i = end + 1;
  unsigned long long ino = strtoull(i, &end, 10);
  return end != i && *end == '\0' && (unsigned long long)sb.st_dev == dev &&
         (unsigned long long)sb.st_ino == ino;
}

/* Is stderr the journal (JOURNAL_STREAM matches it)? Asked once. */
static bool log_to_journal(void) {
  if (journal < 0) journal = stderr_is_journal();
  return journal == 1;
}

void bh_log_set_threshold(int prio) {
  if (prio >= BH_LOG_ERR && prio <= BH_LOG_DEBUG) threshold = prio;
}

int bh_log_threshold(void) {
  return threshold;
}

static const char *level_word(int prio) {
  if (prio == BH_LOG_WARNING) return "warning: ";
  if (prio == BH_LOG_DEBUG) return "debug: ";
  return "";
}

/* One line (n bytes at p, no newline) after head, cut to
 * BH_TEXT_FIELD_MAX: a string from a record (a 15 MB service name) inside
 * a message must not become a 15 MB line of the journal. Returns the
 * bytes written. */
static size_t put_line(const char *head, const char *p, size_t n) {
  char mark[BH_TEXT_MARK_MAX];
  size_t mark_len;
  size_t keep = bh_text_cut(p, n, BH_TEXT_FIELD_MAX, mark, &mark_len);
  (void)fprintf(stderr, "%s%.*s%s\n", head, (int)keep, p, mark);
  return strlen(head) + keep + mark_len + 1;
}

void bh_log_named(int prio, const char *progname, const char *msg) {
  if (prio > threshold) return;
  char head[160];
  bool to_journal = log_to_journal();
  /* Under journald "<N>" starts every line (journald splits on newlines);
   * elsewhere the name and level start the first line only. */
  if (to_journal)
    (void)snprintf(head, sizeof head, "<%d>", prio);
  else
    (void)snprintf(head, sizeof head, "%s%s%s", progname ? progname : "",
                   progname ? ": " : "", level_word(prio));
  /* The whole message is cut too, at BH_TEXT_LOG_MAX bytes written: a
   * string of newlines would otherwise be as many lines. */
  size_t total = strlen(msg), written = 0;
  for (const char *p = msg;;) {
    const char *nl = strchr(p, '\n');
    written += put_line(head, p, nl != NULL ? (size_t)(nl - p) : strlen(p));
    if (!to_journal) head[0] = '\0';
    if (nl == NULL) break;
    p = nl + 1;
    if (written >= BH_TEXT_LOG_MAX && *p != '\0') {
      char mark[BH_TEXT_MARK_MAX];
      (void)put_line(head, mark, bh_text_mark(total, mark));
      break;
    }
  }
  (void)fflush(stderr);
}

void bh_log_line(int prio, const char *msg) {
  bh_log_named(prio, "bhprobe-lua", msg);
}

void bh_log(int prio, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  (void)vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  bh_log_line(prio, buf);
}

bool bh_log_limited(bh_log_limit *lim, int prio, const char *fmt, ...) {
  double now = bh_mono_now();
  if (lim->window_start == 0 || now - lim->window_start >= BH_LOG_WINDOW) {
    lim->window_start = now;
    lim->in_window = 0;
  }
  if (lim->in_window >= BH_LOG_BURST) {
    lim->held++;
    return false;
  }
  lim->in_window++;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (lim->held > 0 && n >= 0 && (size_t)n < sizeof buf)
    (void)snprintf(buf + n, sizeof buf - (size_t)n,
                   " (%lu more like it were not logged)", lim->held);
  lim->held = 0;
  bh_log_line(prio, buf);
  return true;
}
