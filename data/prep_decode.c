// prep_decode.c: one source of `gvm prep` decoded into clips (run by the worker threads).
//
// Windows: window k starts at k * hop and lasts `clip` seconds, cut short at the source's end; windows stop
// after the first one that reaches the end, and a window shorter than min_clip is dropped. The source's
// length L is the shortest of the container's duration, the audio read (the video's own track or the
// separate music file) and the frames read, so no clip runs past the sound or the picture.
//
// Reading: when hop * fps is a whole number (the reference 30 s / 1 fps is), the video is read once, start
// to end, and window k takes the frames from index k * hop * fps on: the same sample times as reading the
// window itself (start + i / fps), without a seek and re-decode per window. Otherwise each window is read
// on its own. The audio is always read once and sliced at sample round(start * rate).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset_internal.h"
#include "data/prep_internal.h"

gvm_status prep_probe(const gvm_prep_source *src, gvm_media_info *info) {
    memset(info, 0, sizeof *info);
    gvm_status st = gvm_media_probe(src->video, info);
    if (st == GVM_OK && !info->has_video)
        st = gvm_error_set(GVM_ERR_NOT_FOUND, "%s: no video stream (an audio-only file, or only cover art)",
                           src->video);
    return st;
}

// How many whole frames sit between window starts (-1 when hop * fps is not a whole number).
static int64_t frames_per_hop(const prep_params *p) {
    double x = p->hop * p->fps;
    double r = round(x);
    return fabs(x - r) < 1e-6 && r >= 1 ? (int64_t)r : -1;
}

int64_t prep_estimate_bytes(const prep_params *p, double duration) {
    if (!(duration > 0)) return 0;
    double per_second = p->fps * p->size * p->size * 3.0 + p->rate * 4.0;
    double overlap = p->clip > p->hop ? p->clip / p->hop : 1.0;  // overlapping windows read separately
    return (int64_t)(duration * per_second * overlap);
}

static bool keep_string(prep_result *r, char *s) {
    if (!s) return false;
    char **v = realloc(r->strings, (size_t)(r->n_strings + 1) * sizeof *v);
    if (!v) {
        free(s);
        return false;
    }
    r->strings = v;
    r->strings[r->n_strings++] = s;
    return true;
}

static bool keep_array(prep_result *r, void *a) {
    void **v = realloc(r->owned, (size_t)(r->n_owned + 1) * sizeof *v);
    if (!v) {
        free(a);
        return false;
    }
    r->owned = v;
    r->owned[r->n_owned++] = a;
    return true;
}

static void fail(prep_result *r, const char *msg) {
    free(r->error);
    r->error = strdup(msg && msg[0] ? msg : "unknown error");
}

// The name as stored in the shard (UTF-8 is required there): bytes of a name that is not valid UTF-8 (an
// old Latin-1 file name) become '?'. The split and the id's hash use the real bytes.
static char *utf8_name(const char *name) {
    char *s = strdup(name);
    if (s && !gvm_ds_utf8_valid(s))
        for (char *p = s; *p; p++)
            if ((unsigned char)*p >= 0x80) *p = '?';
    return s;
}

// "<stem>-<hash8>": the stem for people, the hash of the whole name so that a/x.mp4 and b/x.mp4 differ.
static char *id_prefix(const char *name, const char *clean) {
    const char *base = strrchr(clean, '/');
    base = base ? base + 1 : clean;
    size_t len = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && dot != base) len = (size_t)(dot - base);
    size_t n = len + 16;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%.*s-%08x", (int)len, base, (unsigned)(gvm_prep_name_hash(name) >> 32));
    return s;
}

typedef struct window {
    int64_t k;
    double start, dur;
} window;

// The windows of a source of length L (see the file comment).
static int64_t make_windows(const prep_params *p, double L, window **out) {
    int64_t cap = (int64_t)(L / p->hop) + 2, n = 0;
    window *w = malloc((size_t)cap * sizeof *w);
    if (!w) return -1;
    for (int64_t k = 0; k < cap; k++) {
        double start = (double)k * p->hop;
        if (start >= L - 1e-9) break;
        bool last = start + p->clip >= L - 1e-9;
        double dur = last ? L - start : p->clip;
        if (last && fabs(dur - p->clip) < 1e-9) dur = p->clip;
        if (dur >= p->min_clip - 1e-9) w[n++] = (window){k, start, dur};
        if (last) break;
    }
    *out = w;
    return n;
}

void prep_decode(const gvm_prep_source *src, const prep_params *p, const gvm_media_info *info, prep_result *r) {
    memset(r, 0, sizeof *r);
    r->split = gvm_prep_source_split(src, p->eval_fraction);  // PREP_TRAIN / PREP_EVAL have the same values
    const char *audio_path = src->music ? src->music : src->video;
    if (!src->music && !info->has_audio) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s: no audio stream (the file has no sound track); give its music as a separate "
                 "file in a manifest (column 'music')", src->video);
        fail(r, msg);
        return;
    }
    float *audio = NULL;
    int64_t na = 0;
    if (gvm_audio_read(audio_path, p->rate, 0, 0, &audio, &na) != GVM_OK) {
        fail(r, gvm_error_message());
        return;
    }
    if (!keep_array(r, audio)) goto oom;
    double L = (double)na / p->rate;
    if (info->duration_s > 0) L = fmin(L, info->duration_s);

    int64_t fph = frames_per_hop(p);
    uint8_t *frames = NULL;
    int64_t nf = 0;
    const size_t frame_bytes = (size_t)p->size * (size_t)p->size * 3;
    if (fph > 0) {
        if (p->stop && *p->stop) {
            fail(r, "stopped");
            return;
        }
        if (gvm_video_read_frames(src->video, p->fps, p->size, 0, 0, &frames, &nf) != GVM_OK) {
            fail(r, gvm_error_message());
            return;
        }
        if (!keep_array(r, frames)) goto oom;
        L = fmin(L, (double)nf / p->fps);  // sample nf is at or past the picture's end
    }
    r->media_seconds = L;

    window *w = NULL;
    int64_t nw = make_windows(p, L, &w);
    if (nw < 0) goto oom;
    r->clips = calloc((size_t)(nw ? nw : 1), sizeof *r->clips);
    char *clean = utf8_name(src->name), *prefix = NULL, *style = NULL;
    bool ok = keep_string(r, clean) && r->clips;
    if (ok) ok = keep_string(r, prefix = id_prefix(src->name, clean));
    if (ok) ok = keep_string(r, style = strdup(src->style ? src->style : p->style ? p->style : ""));
    for (int64_t i = 0; ok && i < nw; i++) {
        const window *win = &w[i];
        const uint8_t *cf = NULL;
        int64_t cnf = 0;
        if (fph > 0) {
            int64_t f0 = win->k * fph;
            cnf = (int64_t)floor(win->dur * p->fps + 1e-9);
            if (cnf > nf - f0) cnf = nf - f0;
            cf = frames + (size_t)f0 * frame_bytes;
        } else {
            if (p->stop && *p->stop) {
                fail(r, "stopped");
                break;
            }
            uint8_t *buf = NULL;
            gvm_status st = gvm_video_read_frames(src->video, p->fps, p->size, win->start, win->dur, &buf, &cnf);
            if (st == GVM_ERR_INVALID) break;  // the picture ends before the container says: no more windows
            if (st != GVM_OK) {
                fail(r, gvm_error_message());
                break;
            }
            if (!(ok = keep_array(r, buf))) break;
            cf = buf;
        }
        int64_t a0 = llround(win->start * p->rate), cna = llround(win->dur * p->rate);
        if (cna > na - a0) cna = na - a0;
        if (cnf <= 0 || cna <= 0) continue;
        char *id = malloc(strlen(prefix) + 32);
        if (!(ok = keep_string(r, id))) break;
        sprintf(id, "%s-c%04lld", prefix, (long long)win->k);
        gvm_clip *c = &r->clips[r->n_clips++];
        c->clip_id = id;
        c->source_file = clean;
        c->style = style;
        c->split = prep_split_name(r->split);
        c->start_time = win->start;
        c->duration = win->dur;
        c->fps = p->fps;
        c->sample_rate = p->rate;
        c->frames = cf;
        c->num_frames = cnf;
        c->height = c->width = p->size;
        c->audio = audio + a0;
        c->num_samples = cna;
        r->bytes += cnf * (int64_t)frame_bytes + cna * 4;
    }
    free(w);
    if (!ok) goto oom;
    return;
oom:
    fail(r, "out of memory decoding this source; use fewer --threads or a smaller --max-memory-mb");
}

void prep_result_free(prep_result *r) {
    if (!r) return;
    free(r->error);
    free(r->clips);
    for (int64_t i = 0; i < r->n_strings; i++) free(r->strings[i]);
    free(r->strings);
    for (int64_t i = 0; i < r->n_owned; i++) free(r->owned[i]);
    free(r->owned);
    memset(r, 0, sizeof *r);
}
