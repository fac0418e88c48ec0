// progress.c: the progress display of progress.h: a bar redrawn with '\r' on a terminal, plain lines every
// few seconds elsewhere, with an ETA from the average rate so far.
#include "data/progress.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

struct gvm_progress {
    FILE *out;
    gvm_progress_mode mode;
    char label[32];
    double total, interval;
    double t0, last_draw;  // monotonic seconds
    double done;
    char status[512];
    bool drawn;            // a bar is on the current terminal line
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void gvm_progress_format_duration(double s, char *buf, size_t size) {
    if (!(s >= 0) || !isfinite(s) || s > 1e9) {
        snprintf(buf, size, "?");
        return;
    }
    long long t = (long long)s;
    if (t < 60) snprintf(buf, size, "%llds", t);
    else if (t < 3600) snprintf(buf, size, "%lldm%02llds", t / 60, t % 60);
    else if (t < 86400) snprintf(buf, size, "%lldh%02lldm", t / 3600, (t % 3600) / 60);
    else snprintf(buf, size, "%lldd%02lldh", t / 86400, (t % 86400) / 3600);
}

gvm_progress *gvm_progress_start(FILE *out, gvm_progress_mode mode, const char *label, double total,
                                 double interval_s) {
    gvm_progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->out = out;
    if (mode == GVM_PROGRESS_AUTO) mode = isatty(fileno(out)) ? GVM_PROGRESS_BAR : GVM_PROGRESS_LINES;
    p->mode = mode;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "progress");
    p->total = total;
    p->interval = interval_s > 0 ? interval_s : 5.0;
    p->t0 = p->last_draw = now_s();
    return p;
}

gvm_progress_mode gvm_progress_get_mode(const gvm_progress *p) { return p->mode; }

// "ETA 3m12s" from the average rate so far; "" until there is a rate to go by.
static void eta_text(const gvm_progress *p, double elapsed, char *buf, size_t size) {
    buf[0] = '\0';
    if (p->total > 0 && p->done > 0 && p->done < p->total && elapsed >= 1.0) {
        char d[32];
        gvm_progress_format_duration(elapsed * (p->total - p->done) / p->done, d, sizeof d);
        snprintf(buf, size, ", ETA %s", d);
    }
}

static int terminal_width(FILE *out) {
    struct winsize ws;
    if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col;
    return 100;
}

static void draw(gvm_progress *p, double t) {
    double elapsed = t - p->t0;
    double frac = p->total > 0 ? p->done / p->total : 0;
    if (frac > 1) frac = 1;
    if (frac < 0) frac = 0;
    char el[32], eta[48];
    gvm_progress_format_duration(elapsed, el, sizeof el);
    eta_text(p, elapsed, eta, sizeof eta);
    if (p->mode == GVM_PROGRESS_BAR) {
        enum { WIDTH = 24 };
        char bar[WIDTH + 1];
        int fill = (int)(frac * WIDTH);
        for (int i = 0; i < WIDTH; i++) bar[i] = i < fill ? '#' : '.';
        bar[WIDTH] = '\0';
        char line[1024];
        int n = snprintf(line, sizeof line, "[%s] %3d%%  %s  %s%s", bar, (int)(frac * 100), p->status, el, eta);
        int width = terminal_width(p->out) - 1;  // a wrapped line could not be redrawn in place
        if (n > width) line[width] = '\0';
        fprintf(p->out, "\r%s\033[K", line);
        p->drawn = true;
    } else if (p->mode == GVM_PROGRESS_LINES) {
        fprintf(p->out, "%s: %3d%%  %s  (%s elapsed%s)\n", p->label, (int)(frac * 100), p->status, el, eta);
    }
    fflush(p->out);
    p->last_draw = t;
}

void gvm_progress_update(gvm_progress *p, double done, const char *status, bool force) {
    if (!p || p->mode == GVM_PROGRESS_OFF) return;
    p->done = done;
    snprintf(p->status, sizeof p->status, "%s", status ? status : "");
    double t = now_s();
    double every = p->mode == GVM_PROGRESS_BAR ? 0.1 : p->interval;
    if (force || t - p->last_draw >= every) draw(p, t);
}

void gvm_progress_print(gvm_progress *p, const char *fmt, ...) {
    FILE *out = p ? p->out : stderr;
    if (p && p->drawn) {
        fputs("\r\033[K", out);
        p->drawn = false;
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
    fputc('\n', out);
    fflush(out);
}

void gvm_progress_end(gvm_progress *p) {
    if (!p) return;
    if (p->mode != GVM_PROGRESS_OFF) {
        draw(p, now_s());
        if (p->mode == GVM_PROGRESS_BAR) fputc('\n', p->out);
        fflush(p->out);
    }
    free(p);
}
