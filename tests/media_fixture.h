// media_fixture.h: helpers shared by the media tests (test_data_media*.c): a temporary folder, the ffmpeg
// and ffprobe programs as makers and oracles of test media, and signal measurements for audio checks.
#ifndef GVM_MEDIA_FIXTURE_H
#define GVM_MEDIA_FIXTURE_H

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"

static char g_dir[256];  // the temporary folder of this test program

static inline const char *tmp_path(const char *name) {
    static char buf[16][512];
    static int k;
    char *p = buf[k++ % 16];
    snprintf(p, sizeof buf[0], "%s/%s", g_dir, name);
    return p;
}

static inline bool contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

// Run a shell command built printf-style; true on exit status 0.
static inline bool sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline bool sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0) printf("command failed (%d): %s\n", rc, cmd);
    return rc == 0;
}

// ffmpeg writing `out` (in the temporary folder) with the given arguments.
static inline bool ffmpeg(const char *out, const char *args) {
    return sh("ffmpeg -nostdin -hide_banner -loglevel error -y %s '%s'", args, tmp_path(out));
}

// The stdout of a command (trailing whitespace removed), into buf.
static inline const char *capture(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline const char *capture(char *buf, size_t size, const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    buf[0] = '\0';
    FILE *p = popen(cmd, "r");
    if (!p) return buf;
    size_t n = fread(buf, 1, size - 1, p);
    buf[n] = '\0';
    pclose(p);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\r')) buf[--n] = '\0';
    return buf;
}

// One value that ffprobe reports, e.g. probe_value(path, "a:0", "stream=sample_rate").
static inline double probe_value(const char *path, const char *select, const char *entry) {
    char buf[256];
    capture(buf, sizeof buf, "ffprobe -v error %s%s -show_entries %s -of default=nw=1:nk=1 '%s'",
            select ? "-count_packets -select_streams " : "", select ? select : "", entry, path);
    return buf[0] ? atof(buf) : NAN;
}

// Start a media test: skip (exit 77) without the ffmpeg and ffprobe programs; make the temporary folder.
static inline void media_fixture_init(const char *prefix) {
    if (system("ffmpeg -version >/dev/null 2>&1") != 0 || system("ffprobe -version >/dev/null 2>&1") != 0) {
        printf("SKIPPED: the ffmpeg and ffprobe programs are needed to make test media\n");
        exit(77);
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/%s_XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);
    GVM_CHECK(mkdtemp(g_dir), "cannot make a temporary folder");
}

// Remove the temporary folder when every check passed; keep it (and say where) otherwise.
static inline int media_fixture_finish(int rc) {
    if (rc == 0) sh("rm -rf '%s'", g_dir);
    else printf("test media kept in %s\n", g_dir);
    return rc;
}

// ---- audio measurements -------------------------------------------------------------------------------------------------
// Frequency from the positive-going zero crossings (linear interpolation between samples).
static inline double zero_crossing_freq(const float *x, int64_t n, int rate) {
    double first = -1, last = -1;
    int64_t count = 0;
    for (int64_t i = 1; i < n; i++) {
        if (x[i - 1] < 0 && x[i] >= 0) {
            double t = (double)(i - 1) + x[i - 1] / (double)(x[i - 1] - x[i]);
            if (first < 0) first = t;
            last = t;
            count++;
        }
    }
    return count > 1 ? (double)(count - 1) * rate / (last - first) : 0;
}

// Amplitude of the `freq` component (Goertzel, with a Hann window; samples [from, to)).
static inline double tone_amplitude(const float *x, int64_t from, int64_t to, double freq, int rate) {
    double w = 2 * M_PI * freq / rate, re = 0, im = 0, wsum = 0;
    for (int64_t i = from; i < to; i++) {
        double win = 0.5 - 0.5 * cos(2 * M_PI * (double)(i - from) / (double)(to - from));
        re += win * x[i] * cos(w * (double)i);
        im -= win * x[i] * sin(w * (double)i);
        wsum += win;
    }
    return 2 * sqrt(re * re + im * im) / wsum;
}

// First sample whose magnitude passes `level`.
static inline int64_t onset(const float *x, int64_t n, float level) {
    for (int64_t i = 0; i < n; i++)
        if (fabsf(x[i]) > level) return i;
    return -1;
}

#endif
