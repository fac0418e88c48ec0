// progress.h: a progress display for long command-line jobs (gvm prep, later gvm encode): on a terminal a
// bar redrawn in place with '\r' (done / total, the caller's status text, elapsed time and ETA); otherwise
// (a log file, a cluster job's output) a plain line every few seconds, so logs stay readable.
//
// Work is measured in any unit the caller picks (bytes of input, seconds of media); the ETA assumes the
// rest goes at the average rate so far. Not thread-safe: one thread updates it.
#ifndef GVM_DATA_PROGRESS_H
#define GVM_DATA_PROGRESS_H

#include <stdbool.h>
#include <stdio.h>

typedef enum gvm_progress_mode {
    GVM_PROGRESS_AUTO = 0,  // BAR when `out` is a terminal, LINES otherwise
    GVM_PROGRESS_BAR = 1,
    GVM_PROGRESS_LINES = 2,
    GVM_PROGRESS_OFF = 3,
} gvm_progress_mode;

typedef struct gvm_progress gvm_progress;

// Start a display of `total` units of work on `out` (stderr for a program). `label` starts each plain line
// ("prep"). interval_s: seconds between plain lines (<= 0: 5). NULL only when out of memory.
gvm_progress *gvm_progress_start(FILE *out, gvm_progress_mode mode, const char *label, double total, double interval_s);
// Report `done` units and a status text ("12/40 sources, 1.2 h of media, 45.1x realtime"). The display is
// redrawn at most 10 times a second on a terminal and every interval_s as plain lines, unless `force`.
void gvm_progress_update(gvm_progress *p, double done, const char *status, bool force);
// Print a line that stays (a warning about one file) without breaking the bar: the bar is cleared, the
// line printed, and the bar drawn again at the next update.
void gvm_progress_print(gvm_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// A last redraw and a newline (on a terminal); frees p (NULL is fine).
void gvm_progress_end(gvm_progress *p);
// The mode AUTO resolved to (for tests and for callers that print differently).
gvm_progress_mode gvm_progress_get_mode(const gvm_progress *p);

// "45s", "3m12s", "2h05m", "3d04h" (rounded down); "?" for a negative or non-finite value.
void gvm_progress_format_duration(double seconds, char *buf, size_t size);

#endif
