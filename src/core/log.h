/* Log lines on stderr, journald-friendly. Process-wide on purpose: there
 * is one stderr. Under journald (JOURNAL_STREAM names our stderr, as
 * systemd sets it for a service), every line starts with its priority,
 * "<3>" ... "<7>" (sd-daemon(3)), and no program name: the journal
 * records it. Elsewhere a line is "bhprobe-lua: message", with
 * "warning: " or "debug: " before the message at those levels. Lines
 * above the threshold (default info) are dropped. A message may carry
 * strings from records, so each of its lines is cut at 4 KiB and the
 * message at 16 KiB, with the mark of the cut (text.h). */
#ifndef BH_LOG_H
#define BH_LOG_H

#include <stdbool.h>

/* syslog priorities, as journald reads them from the prefix. */
enum {
  BH_LOG_ERR = 3,
  BH_LOG_WARNING = 4,
  BH_LOG_NOTICE = 5,
  BH_LOG_INFO = 6,
  BH_LOG_DEBUG = 7
};

/* One message at prio; a message of several lines gets the prefix on
 * each (journald splits on newlines). */
void bh_log_line(int prio, const char *msg);
/* printf-like bh_log_line. */
void bh_log(int prio, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* As bh_log_line, with progname in place of "bhprobe-lua" (NULL: no
 * name at all, as lua.c prints errors inside its REPL). */
void bh_log_named(int prio, const char *progname, const char *msg);

/* A source of lines that may repeat without bound (accept errors under a
 * flood, libevent's own warnings): at most BH_LOG_BURST lines of it per
 * BH_LOG_WINDOW seconds, the rest counted and said in one line when the
 * next window lets a line through. Zero-initialise one per source. */
enum { BH_LOG_BURST = 5 };
#define BH_LOG_WINDOW 10.0
typedef struct bh_log_limit {
  double window_start;
  unsigned in_window; /* lines let through in this window */
  unsigned long held; /* lines dropped since the last one let through */
} bh_log_limit;

/* printf-like bh_log through lim. Returns whether the line was written. */
bool bh_log_limited(bh_log_limit *lim, int prio, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Drop lines with a priority above prio (BH_LOG_ERR..BH_LOG_DEBUG). */
void bh_log_set_threshold(int prio);
int bh_log_threshold(void);

#endif
