// video_decode.c: gvm_video_read_frames: video frames sampled at a fixed rate by timestamp, resized
// (shorter side, bicubic) and centre-cropped to size x size RGB (media.h has the exact rules).
//
// How: seek to the keyframe at or before the start, decode forward and keep the latest decoded frame; a
// sample whose time falls before the next frame's timestamp takes the kept frame. Only frames that some
// sample takes are converted (libswscale), so decoding a 30 fps file for 1 fps samples costs one
// conversion per sample.
#include <math.h>
#include <string.h>

#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include "data/media_internal.h"

// Times within this many seconds count as equal (frame timestamps are exact rationals; sample times are
// doubles). Far below any frame interval.
#define TIME_EPS 1e-6

// ---- the decoder: one decoded frame at a time, corrupt packets skipped --------------------------------
typedef struct video_reader {
    const char *path;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    int stream;
    AVRational tb;
    double origin;       // media.h's time origin, seconds of the file's timestamps
    double nominal_dur;  // one frame at the stream's guessed rate (0 when unknown)
    int rotation;        // clockwise quarter turns a player applies (the stream's display matrix): 0..3
    AVPacket *pkt;
    AVFrame *frame;
    bool drained;        // the decoder was sent the end of the stream
    int rejected;        // packets or frames the decoder refused (corrupt data)
    int read_error;      // the demuxer's error that ended reading (0: a clean end of file)
} video_reader;

static void reader_close(video_reader *r) {
    av_frame_free(&r->frame);
    av_packet_free(&r->pkt);
    avcodec_free_context(&r->dec);
    avformat_close_input(&r->fmt);
}

static gvm_status reader_open(video_reader *r, const char *path) {
    memset(r, 0, sizeof *r);
    r->path = path;
    gvm_status s = gvm_media_open_file(path, &r->fmt);
    if (s != GVM_OK) return s;
    r->stream = gvm_media_find_stream(r->fmt, AVMEDIA_TYPE_VIDEO);
    if (r->stream < 0) {
        reader_close(r);
        return gvm_error_set(GVM_ERR_NOT_FOUND,
                             "%s: no video stream (an audio-only file, or only cover art); give the video "
                             "file itself, or remove this entry from the list", path);
    }
    s = gvm_media_open_decoder(path, r->fmt, r->stream, &r->dec);
    if (s != GVM_OK) {
        reader_close(r);
        return s;
    }
    AVStream *st = r->fmt->streams[r->stream];
    r->tb = st->time_base;
    r->origin = gvm_media_origin_s(r->fmt);
    AVRational fr = av_guess_frame_rate(r->fmt, st, NULL);
    r->nominal_dur = fr.num > 0 && fr.den > 0 ? av_q2d(av_inv_q(fr)) : 0.0;
    r->rotation = gvm_media_rotation(st);
    // Let the demuxer skip the other streams' packets.
    for (unsigned i = 0; i < r->fmt->nb_streams; i++)
        if ((int)i != r->stream) r->fmt->streams[i]->discard = AVDISCARD_ALL;
    r->pkt = av_packet_alloc();
    r->frame = av_frame_alloc();
    if (!r->pkt || !r->frame) {
        reader_close(r);
        return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory opening the video", path);
    }
    return GVM_OK;
}

// Seek to the keyframe at or before `t` (seconds from the origin). False when the file cannot seek.
static bool reader_seek(video_reader *r, double t) {
    int64_t target = llrint((r->origin + t) / av_q2d(r->tb));
    return avformat_seek_file(r->fmt, r->stream, INT64_MIN, target, target, 0) >= 0;
}

// The next decoded frame into r->frame: 1, or 0 at the end of the stream, or a negative AVERROR for an
// error that is not the file's fault (out of memory).
static int reader_next(video_reader *r) {
    for (;;) {
        int ret = avcodec_receive_frame(r->dec, r->frame);
        if (ret >= 0) {
            if (r->frame->width > 0 && r->frame->height > 0) return 1;
            av_frame_unref(r->frame);  // a frame without pixels: skip it
            r->rejected++;
            continue;
        }
        if (ret == AVERROR_EOF || r->drained) return 0;
        if (ret != AVERROR(EAGAIN)) r->rejected++;  // a corrupt frame: go on with the next packet
        for (;;) {
            ret = av_read_frame(r->fmt, r->pkt);
            if (ret < 0) {
                // End of file, or a truncated/corrupt container: decode what was read.
                if (ret != AVERROR_EOF) r->read_error = ret;
                avcodec_send_packet(r->dec, NULL);
                r->drained = true;
                break;
            }
            if (r->pkt->stream_index != r->stream) {
                av_packet_unref(r->pkt);
                continue;
            }
            ret = avcodec_send_packet(r->dec, r->pkt);
            av_packet_unref(r->pkt);
            if (ret == AVERROR(ENOMEM)) return ret;
            if (ret < 0) {
                r->rejected++;
                continue;
            }
            break;
        }
    }
}

// ---- conversion: any pixel format -> shorter side `size` (bicubic) -> centre crop -> RGB24 ----------------
typedef struct rgb_converter {
    int size;
    struct SwsContext *sws;
    int src_w, src_h, src_fmt, src_space, src_range;  // what `sws` was made for
    int sw, sh, left, top;  // the resized size and the crop's offset in it
    uint8_t *scaled;        // uint8 [sh, sw, 3]
} rgb_converter;

static void converter_free(rgb_converter *c) {
    sws_freeContext(c->sws);
    free(c->scaled);
    memset(c, 0, sizeof *c);
}

static gvm_status converter_setup(rgb_converter *c, const char *path, const AVFrame *f) {
    sws_freeContext(c->sws);
    c->sws = NULL;
    free(c->scaled);
    c->scaled = NULL;
    enum AVPixelFormat pf = (enum AVPixelFormat)f->format;
    if (!sws_isSupportedInput(pf)) {
        const char *name = av_get_pix_fmt_name(pf);
        return gvm_error_set(GVM_ERR_FORMAT,
                             "%s: cannot decode the video: pixel format '%s' is not supported by libswscale; "
                             "re-encode the video (ffmpeg -i IN -pix_fmt yuv420p OUT)", path,
                             name ? name : "unknown");
    }
    // torchvision's Resize(int): the shorter side becomes `size`, the longer floor(size * long / short);
    // CenterCrop: offset round((len - size) / 2), half to even like Python's round.
    int w = f->width, h = f->height, size = c->size;
    if (w <= h) {
        c->sw = size;
        c->sh = (int)((int64_t)size * h / w);
    } else {
        c->sh = size;
        c->sw = (int)((int64_t)size * w / h);
    }
    c->left = (int)nearbyint((c->sw - size) / 2.0);
    c->top = (int)nearbyint((c->sh - size) / 2.0);
    size_t bytes = (size_t)c->sw * (size_t)c->sh * 3;
    c->scaled = malloc(bytes);
    // Bicubic with B = 0, C = 0.5 (Keys' a = -0.5, PIL's BICUBIC, which CLIP's preprocessing uses;
    // libswscale's default is C = 0.6). Like PIL, libswscale widens the kernel when shrinking (antialias).
    const double bicubic[2] = {0.0, 0.5};
    c->sws = sws_getContext(w, h, pf, c->sw, c->sh, AV_PIX_FMT_RGB24,
                            SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, NULL, NULL, bicubic);
    if (!c->scaled || !c->sws) {
        converter_free(c);
        c->size = size;
        return gvm_error_set(GVM_ERR_MEMORY, "%s: cannot set up scaling %dx%d -> %dx%d (out of memory)", path, w,
                             h, c->sw, c->sh);
    }
    // YUV and grey: the frame's own colour matrix and range where it states them; libswscale's defaults
    // (BT.601; full range for JPEG-style and grey formats) where it does not. RGB and palette input have
    // neither (a matrix set on them would be applied to libswscale's internal YUV and shift colours).
    const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(pf);
    bool yuv_or_gray = desc && !(desc->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_BAYER));
    int *inv_table, src_range, *table, dst_range, brightness, contrast, saturation;
    if (yuv_or_gray && sws_getColorspaceDetails(c->sws, &inv_table, &src_range, &table, &dst_range, &brightness,
                                                &contrast, &saturation) >= 0) {
        if (f->color_range == AVCOL_RANGE_JPEG) src_range = 1;
        if (f->color_range == AVCOL_RANGE_MPEG) src_range = 0;
        const int *coefs = f->colorspace == AVCOL_SPC_UNSPECIFIED || f->colorspace == AVCOL_SPC_RGB
                               ? inv_table : sws_getCoefficients((int)f->colorspace);
        sws_setColorspaceDetails(c->sws, coefs, src_range, table, dst_range, brightness, contrast, saturation);
    }
    c->src_w = w;
    c->src_h = h;
    c->src_fmt = f->format;
    c->src_space = f->colorspace;
    c->src_range = f->color_range;
    return GVM_OK;
}

// Turn the square image src uint8 [n, n, 3] by `quarters` clockwise quarter turns into dst (not src).
static void rotate_square(const uint8_t *src, uint8_t *dst, int n, int quarters) {
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            int sx, sy;  // the source pixel that lands at (x, y)
            switch (quarters) {
            case 1: sx = y, sy = n - 1 - x; break;
            case 2: sx = n - 1 - x, sy = n - 1 - y; break;
            default: sx = n - 1 - y, sy = x; break;
            }
            memcpy(dst + ((size_t)y * n + x) * 3, src + ((size_t)sy * n + sx) * 3, 3);
        }
}

// `f` -> dst: uint8 [size, size, 3], turned by `quarters` clockwise quarter turns. Resize and centre crop
// commute with quarter turns (up to which side gets the odd pixel of the crop), so the square is turned.
static gvm_status converter_run(rgb_converter *c, const char *path, const AVFrame *f, int quarters, uint8_t *dst) {
    if (!c->sws || c->src_w != f->width || c->src_h != f->height || c->src_fmt != f->format ||
        c->src_space != (int)f->colorspace || c->src_range != (int)f->color_range) {
        gvm_status s = converter_setup(c, path, f);
        if (s != GVM_OK) return s;
    }
    uint8_t *dst_planes[4] = {c->scaled, NULL, NULL, NULL};
    int dst_strides[4] = {c->sw * 3, 0, 0, 0};
    int rows = sws_scale(c->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst_planes,
                         dst_strides);
    if (rows != c->sh)
        return gvm_error_set(GVM_ERR_FORMAT, "%s: cannot decode the video: scaling a %dx%d %s frame failed", path,
                             f->width, f->height, av_get_pix_fmt_name((enum AVPixelFormat)f->format));
    // With a turn, the crop goes to the start of `scaled` (it holds at least size x size pixels; rows are
    // copied upwards, never over a row still to be read) and is turned from there into dst.
    size_t row_bytes = (size_t)c->size * 3;
    uint8_t *crop = quarters ? c->scaled : dst;
    for (int y = 0; y < c->size; y++)
        memmove(crop + (size_t)y * row_bytes, c->scaled + ((size_t)(y + c->top) * c->sw + c->left) * 3, row_bytes);
    if (quarters) rotate_square(crop, dst, c->size, quarters);
    return GVM_OK;
}

// ---- sampling ------------------------------------------------------------------------------------------------
typedef struct frame_out {
    uint8_t *data;     // uint8 [cap, size, size, 3]
    int64_t n, cap;
    size_t frame_bytes;
    int64_t last_serial;  // serial of the decoded frame held in data[n - 1] (-1: none)
    int rotation;         // clockwise quarter turns to apply
} frame_out;

// Append the decoded frame `f` (numbered `serial`) as the next sample.
static gvm_status out_push(frame_out *o, rgb_converter *conv, const char *path, const AVFrame *f, int64_t serial) {
    if (o->n == o->cap) {
        int64_t cap = o->cap ? o->cap * 2 : 16;
        if ((size_t)cap > SIZE_MAX / o->frame_bytes) return gvm_error_set(GVM_ERR_MEMORY, "%s: too many frames", path);
        uint8_t *p = realloc(o->data, (size_t)cap * o->frame_bytes);
        if (!p)
            return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory for %lld frames of %zu bytes; ask for fewer "
                                 "frames (a shorter duration or a lower fps)", path, (long long)cap, o->frame_bytes);
        o->data = p;
        o->cap = cap;
    }
    uint8_t *dst = o->data + (size_t)o->n * o->frame_bytes;
    gvm_status s = GVM_OK;
    if (o->n > 0 && o->last_serial == serial)
        memcpy(dst, dst - o->frame_bytes, o->frame_bytes);  // the same frame again (fps above the source's)
    else
        s = converter_run(conv, path, f, o->rotation, dst);
    if (s != GVM_OK) return s;
    o->n++;
    o->last_serial = serial;
    return GVM_OK;
}

typedef enum { SAMPLE_DONE, SAMPLE_RESTART, SAMPLE_ERROR } sample_result;

// One pass over the file: from a seek to start_s when `seek`, else from the beginning. SAMPLE_RESTART
// when the seek landed after start_s (a bogus index) or the first frame has no timestamp: the caller
// then decodes from the beginning.
static sample_result sample_pass(video_reader *r, rgb_converter *conv, frame_out *o, double fps, double start_s,
                                 int64_t n_want, bool seek, gvm_status *status, double *end_s, int64_t *decoded) {
    AVFrame *prev = av_frame_alloc();
    if (!prev) {
        *status = gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", r->path);
        return SAMPLE_ERROR;
    }
    bool have_prev = false;
    double prev_t = 0, prev_dur = 0;
    int64_t serial = 0;
    sample_result result = SAMPLE_DONE;
    *status = GVM_OK;
    for (;;) {
        int got = reader_next(r);
        if (got < 0) {
            *status = gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory decoding the video", r->path);
            result = SAMPLE_ERROR;
            break;
        }
        if (got == 0) break;
        AVFrame *f = r->frame;
        int64_t ts = f->best_effort_timestamp;
        if (!have_prev && seek && ts == AV_NOPTS_VALUE) {
            result = SAMPLE_RESTART;
            break;
        }
        double t = ts == AV_NOPTS_VALUE ? (have_prev ? prev_t + prev_dur : 0.0) : (double)ts * av_q2d(r->tb) - r->origin;
        if (!have_prev && seek && t > start_s + TIME_EPS) {
            result = SAMPLE_RESTART;
            break;
        }
        // Timestamps that do not increase: continue the sequence at the previous frame's end.
        if (have_prev && t <= prev_t) t = prev_t + prev_dur;
#if LIBAVUTIL_VERSION_INT >= AV_VERSION_INT(57, 30, 100)
        int64_t fdur = f->duration;
#else
        int64_t fdur = f->pkt_duration;
#endif
        double dur = fdur > 0 ? (double)fdur * av_q2d(r->tb) : have_prev ? t - prev_t : r->nominal_dur;
        if (dur <= 0) dur = r->nominal_dur;
        (*decoded)++;
        // Every sample before this frame's time shows the kept frame (this one when none is kept yet).
        while (o->n < n_want && start_s + (double)o->n / fps < t - TIME_EPS) {
            *status = have_prev ? out_push(o, conv, r->path, prev, serial - 1) : out_push(o, conv, r->path, f, serial);
            if (*status != GVM_OK) break;
        }
        if (*status != GVM_OK) {
            result = SAMPLE_ERROR;
            break;
        }
        if (o->n >= n_want) break;
        av_frame_unref(prev);
        av_frame_move_ref(prev, f);
        have_prev = true;
        prev_t = t;
        prev_dur = dur;
        serial++;
    }
    if (result == SAMPLE_DONE && have_prev) {
        // The last frame stays on screen until its timestamp plus its duration.
        while (o->n < n_want && start_s + (double)o->n / fps < prev_t + prev_dur - TIME_EPS) {
            *status = out_push(o, conv, r->path, prev, serial - 1);
            if (*status != GVM_OK) {
                result = SAMPLE_ERROR;
                break;
            }
        }
        *end_s = prev_t + prev_dur;
    }
    av_frame_free(&prev);
    return result;
}

gvm_status gvm_video_read_frames(const char *path, double fps, int size, double start_s, double duration_s,
                                 uint8_t **frames, int64_t *n_frames) {
    GVM_CHECK(frames && n_frames, "gvm_video_read_frames: NULL output");
    *frames = NULL;
    *n_frames = 0;
    if (!(fps > 0 && fps <= 1000))
        return gvm_error_set(GVM_ERR_INVALID, "%s: frame sampling rate %g fps is out of range (0, 1000]", path, fps);
    if (size < 1 || size > 8192)
        return gvm_error_set(GVM_ERR_INVALID, "%s: frame size %d is out of range [1, 8192]", path, size);
    if (!(start_s >= 0 && isfinite(start_s)) || !isfinite(duration_s))
        return gvm_error_set(GVM_ERR_INVALID, "%s: start %g s / duration %g s: start must be >= 0 and both finite",
                             path, start_s, duration_s);
    int64_t n_want = INT64_MAX;
    if (duration_s > 0) {
        double n = floor(duration_s * fps + 1e-9);
        if (n < 1)
            return gvm_error_set(GVM_ERR_INVALID, "%s: a duration of %g s at %g fps holds no frame; ask for at least "
                                 "1/fps seconds", path, duration_s, fps);
        if (n > 1e9) return gvm_error_set(GVM_ERR_INVALID, "%s: %g frames requested: too many", path, n);
        n_want = (int64_t)n;
    }
    frame_out out = {.frame_bytes = (size_t)size * (size_t)size * 3, .last_serial = -1};
    rgb_converter conv = {.size = size};
    bool seek = start_s > 0;
    gvm_status s = GVM_OK;
    double end_s = 0;
    int64_t decoded = 0;
    video_reader r;
    for (;;) {
        s = reader_open(&r, path);
        if (s != GVM_OK) break;
        // A file that cannot seek is decoded from its beginning.
        if (seek && !reader_seek(&r, start_s)) {
            reader_close(&r);
            seek = false;
            continue;
        }
        out.n = 0;
        out.last_serial = -1;
        out.rotation = r.rotation;
        decoded = 0;
        sample_result res = sample_pass(&r, &conv, &out, fps, start_s, n_want, seek, &s, &end_s, &decoded);
        if (res == SAMPLE_RESTART || (res == SAMPLE_DONE && seek && decoded == 0)) {
            reader_close(&r);
            seek = false;
            continue;
        }
        break;
    }
    if (s == GVM_OK && out.n == 0) {
        char eb[AV_ERROR_MAX_STRING_SIZE];
        if (decoded == 0 && !seek) {
            const char *codec = avcodec_get_name(r.fmt->streams[r.stream]->codecpar->codec_id);
            if (r.read_error)
                s = gvm_error_set(GVM_ERR_FORMAT, "%s: cannot decode the video stream (%s): no frame could be read "
                                  "(%s); the file is truncated or corrupt: re-download or re-encode it",
                                  path, codec, gvm_media_err_str(r.read_error, eb, sizeof eb));
            else
                s = gvm_error_set(GVM_ERR_FORMAT, "%s: cannot decode the video stream (%s): no frame decodes (%d "
                                  "packets rejected); the stream is corrupt or empty: re-encode the file",
                                  path, codec, r.rejected);
        } else {
            s = gvm_error_set(GVM_ERR_INVALID, "%s: start %.3f s is at or past the end of the video (%.3f s); ask "
                              "for an earlier start", path, start_s, end_s);
        }
    }
    if (r.fmt) reader_close(&r);
    converter_free(&conv);
    if (s != GVM_OK) {
        free(out.data);
        return s;
    }
    *frames = out.data;
    *n_frames = out.n;
    return GVM_OK;
}
