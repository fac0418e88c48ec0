// audio_decode.c: gvm_audio_read: an audio stream as mono float at a chosen rate, from a given time
// (media.h has the rules).
//
// How: seek half a second before the start (decoders such as AAC need the previous frame, and the
// resampler its filter history), decode forward and pass every frame through libswresample, which mixes
// to mono (our matrix: the mean of the channels) and resamples. Output samples are placed on the time
// line by the timestamps where a run of contiguous frames ("segment") begins; within a segment they are
// counted, so timestamp jitter does not move them. A new segment (fresh resampler) starts at a gap of
// more than GAP_S seconds or when the sample format, rate or channel layout changes.
#include <math.h>
#include <string.h>

#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>

#include "data/media_internal.h"

#define GAP_S 0.005          // a timestamp gap above this is filled with silence
#define SEEK_MARGIN_S 0.5    // seek to this much before the start
#define HISTORY_MIN_S 0.05   // a seek that lands later than start - this decodes from the beginning instead

// ---- the output: samples placed by index g = round((t - start_s) * rate) ---------------------------------
typedef struct audio_sink {
    const char *path;
    float *data;     // float [cap]: samples g = 0 .. n-1
    int64_t n, cap;
    int64_t n_want;  // INT64_MAX: to the end of the stream
    int64_t pos;     // index g of the next sample produced (negative: before start_s, dropped)
    bool started;    // the first segment has placed `pos`
} audio_sink;

static bool sink_full(const audio_sink *k) { return k->n >= k->n_want; }

static gvm_status sink_reserve(audio_sink *k, int64_t extra) {
    int64_t need = k->n + extra;
    if (need > k->n_want) need = k->n_want;
    if (need <= k->cap) return GVM_OK;
    int64_t cap = k->cap ? k->cap : 1 << 16;
    while (cap < need) cap *= 2;
    if (k->n_want != INT64_MAX && cap > k->n_want) cap = k->n_want;
    if ((uint64_t)cap > SIZE_MAX / sizeof(float)) return gvm_error_set(GVM_ERR_MEMORY, "%s: audio too long", k->path);
    float *p = realloc(k->data, (size_t)cap * sizeof(float));
    if (!p)
        return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory for %lld audio samples; read a shorter duration",
                             k->path, (long long)cap);
    k->data = p;
    k->cap = cap;
    return GVM_OK;
}

// Produce samples x [count] (NULL: silence) at index pos, pos + 1, ...
static gvm_status sink_push(audio_sink *k, const float *x, int64_t count) {
    if (k->pos < 0) {  // before start_s: drop
        int64_t drop = -k->pos < count ? -k->pos : count;
        k->pos += drop;
        count -= drop;
        if (x) x += drop;
    }
    if (count <= 0 || sink_full(k)) {
        k->pos += count > 0 ? count : 0;
        return GVM_OK;
    }
    int64_t take = count < k->n_want - k->n ? count : k->n_want - k->n;
    gvm_status s = sink_reserve(k, take);
    if (s != GVM_OK) return s;
    if (x)
        memcpy(k->data + k->n, x, (size_t)take * sizeof(float));
    else
        memset(k->data + k->n, 0, (size_t)take * sizeof(float));
    k->n += take;
    k->pos += count;
    return GVM_OK;
}

// A segment begins at index g: the first places pos there; later ones fill a gap with silence (an overlap
// is kept: the samples continue where they are).
static gvm_status sink_begin_segment(audio_sink *k, int64_t g) {
    if (!k->started) {
        k->started = true;
        if (g < 0) {
            k->pos = g;
            return GVM_OK;
        }
        k->pos = 0;
    }
    if (g > k->pos) return sink_push(k, NULL, g - k->pos);
    return GVM_OK;
}

// ---- the resampler of one segment ------------------------------------------------------------------------------
typedef struct resampler {
    SwrContext *swr;
    int in_fmt, in_rate;
    AVChannelLayout in_layout;
    int out_rate;
    float *buf;       // float [buf_cap]: one conversion's output
    int buf_cap;
} resampler;

static gvm_status resampler_output(resampler *rs, audio_sink *k, const uint8_t **in, int in_n) {
    int cap = swr_get_out_samples(rs->swr, in_n);
    if (cap < 0) cap = 0;
    cap += 16;
    if (cap > rs->buf_cap) {
        float *p = realloc(rs->buf, (size_t)cap * sizeof(float));
        if (!p) return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory resampling", k->path);
        rs->buf = p;
        rs->buf_cap = cap;
    }
    uint8_t *out[1] = {(uint8_t *)rs->buf};
    int got = swr_convert(rs->swr, out, rs->buf_cap, in, in_n);
    if (got < 0) {
        char eb[AV_ERROR_MAX_STRING_SIZE];
        return gvm_error_set(GVM_ERR_FORMAT, "%s: cannot decode the audio: resampling failed (%s)", k->path,
                             gvm_media_err_str(got, eb, sizeof eb));
    }
    return sink_push(k, rs->buf, got);
}

// Drain the resampler's delayed samples into the sink and free it.
static gvm_status resampler_finish(resampler *rs, audio_sink *k) {
    gvm_status s = GVM_OK;
    if (rs->swr) {
        for (int i = 0; i < 1000 && s == GVM_OK && !sink_full(k); i++) {
            int64_t before = k->pos;
            s = resampler_output(rs, k, NULL, 0);
            if (k->pos == before) break;
        }
        swr_free(&rs->swr);
    }
    av_channel_layout_uninit(&rs->in_layout);
    return s;
}

static gvm_status resampler_start(resampler *rs, const char *path, const AVFrame *f) {
    av_channel_layout_uninit(&rs->in_layout);
    int nch = f->ch_layout.nb_channels;
    if (nch < 1)
        return gvm_error_set(GVM_ERR_FORMAT, "%s: cannot decode the audio: a frame has no channels", path);
    if (f->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC)
        av_channel_layout_default(&rs->in_layout, nch);
    else if (av_channel_layout_copy(&rs->in_layout, &f->ch_layout) < 0)
        return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", path);
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    int ret = swr_alloc_set_opts2(&rs->swr, &mono, AV_SAMPLE_FMT_FLT, rs->out_rate, &rs->in_layout,
                                  (enum AVSampleFormat)f->format, f->sample_rate, 0, NULL);
    // Mono = the mean of the channels, LFE left out (libswresample's own stereo->mono matrix sums at
    // 1/sqrt(2) each, which can exceed 1).
    double matrix[64];
    if (ret >= 0 && nch <= 64) {
        int kept = 0;
        for (int c = 0; c < nch; c++) {
            enum AVChannel ch = av_channel_layout_channel_from_index(&rs->in_layout, c);
            bool lfe = ch == AV_CHAN_LOW_FREQUENCY || ch == AV_CHAN_LOW_FREQUENCY_2;
            matrix[c] = lfe ? 0.0 : 1.0;
            kept += !lfe;
        }
        for (int c = 0; c < nch; c++) matrix[c] = kept ? matrix[c] / kept : 1.0 / nch;
        ret = swr_set_matrix(rs->swr, matrix, nch);
    }
    if (ret >= 0) ret = swr_init(rs->swr);
    if (ret < 0) {
        swr_free(&rs->swr);
        char eb[AV_ERROR_MAX_STRING_SIZE];
        return gvm_error_set(GVM_ERR_FORMAT,
                             "%s: cannot decode the audio: cannot resample %d channels of %s at %d Hz (%s)", path,
                             nch, av_get_sample_fmt_name((enum AVSampleFormat)f->format), f->sample_rate,
                             gvm_media_err_str(ret, eb, sizeof eb));
    }
    rs->in_fmt = f->format;
    rs->in_rate = f->sample_rate;
    return GVM_OK;
}

static bool resampler_matches(const resampler *rs, const AVFrame *f) {
    return rs->swr && rs->in_fmt == f->format && rs->in_rate == f->sample_rate &&
           (f->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC ? rs->in_layout.nb_channels == f->ch_layout.nb_channels
                                                          : !av_channel_layout_compare(&rs->in_layout, &f->ch_layout));
}

// ---- decoding --------------------------------------------------------------------------------------------------
typedef enum { PASS_DONE, PASS_RESTART, PASS_ERROR } pass_result;

typedef struct audio_pass {
    const char *path;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    int stream;
    double origin;
    int64_t decoded;    // frames decoded
    int rejected;       // packets or frames the decoder refused
    int read_error;     // the demuxer error that ended reading (0: clean end)
    double end_s;       // time just after the last decoded sample
} audio_pass;

static void pass_close(audio_pass *p) {
    avcodec_free_context(&p->dec);
    avformat_close_input(&p->fmt);
}

static gvm_status pass_open(audio_pass *p, const char *path) {
    memset(p, 0, sizeof *p);
    p->path = path;
    gvm_status s = gvm_media_open_file(path, &p->fmt);
    if (s != GVM_OK) return s;
    p->stream = gvm_media_find_stream(p->fmt, AVMEDIA_TYPE_AUDIO);
    if (p->stream < 0) {
        pass_close(p);
        return gvm_error_set(GVM_ERR_NOT_FOUND,
                             "%s: no audio stream (the file has no sound track); give its music as a separate "
                             "audio file, or remove this entry from the list", path);
    }
    s = gvm_media_open_decoder(path, p->fmt, p->stream, &p->dec);
    if (s != GVM_OK) {
        pass_close(p);
        return s;
    }
    p->origin = gvm_media_origin_s(p->fmt);
    for (unsigned i = 0; i < p->fmt->nb_streams; i++)  // let the demuxer skip the other streams' packets
        if ((int)i != p->stream) p->fmt->streams[i]->discard = AVDISCARD_ALL;
    return GVM_OK;
}

// Decode from the current position into the sink. seek_t >= 0: the pass began with a seek (to that time),
// and PASS_RESTART says the first frame leaves too little history before start_s (an imprecise seek or a
// bogus index) or has no timestamp.
static pass_result pass_run(audio_pass *p, audio_sink *k, resampler *rs, double start_s, double seek_t,
                            gvm_status *status) {
    AVPacket *pkt = av_packet_alloc();
    AVFrame *f = av_frame_alloc();
    AVRational tb = p->fmt->streams[p->stream]->time_base;
    double seg_t = 0;        // the current segment's start time
    int64_t seg_in = 0;      // input samples in the current segment
    int seg_rate = 1;
    bool drained = false;
    pass_result result = PASS_DONE;
    *status = GVM_OK;
    if (!pkt || !f) {
        *status = gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", p->path);
        result = PASS_ERROR;
    }
    while (result == PASS_DONE && !sink_full(k)) {
        int ret = avcodec_receive_frame(p->dec, f);
        if (ret == AVERROR_EOF) break;
        if (ret < 0) {
            if (drained) break;
            if (ret != AVERROR(EAGAIN)) p->rejected++;
            for (;;) {  // feed the next packet of our stream
                ret = av_read_frame(p->fmt, pkt);
                if (ret < 0) {
                    if (ret != AVERROR_EOF) p->read_error = ret;
                    avcodec_send_packet(p->dec, NULL);
                    drained = true;
                    break;
                }
                if (pkt->stream_index != p->stream) {
                    av_packet_unref(pkt);
                    continue;
                }
                ret = avcodec_send_packet(p->dec, pkt);
                av_packet_unref(pkt);
                if (ret == AVERROR(ENOMEM)) {
                    *status = gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory decoding the audio", p->path);
                    result = PASS_ERROR;
                } else if (ret < 0) {
                    p->rejected++;
                    continue;
                }
                break;
            }
            continue;
        }
        if (f->nb_samples <= 0 || f->sample_rate <= 0) {
            av_frame_unref(f);
            p->rejected++;
            continue;
        }
        int64_t ts = f->best_effort_timestamp;
        bool known = ts != AV_NOPTS_VALUE;
        double t = known ? (double)ts * av_q2d(tb) - p->origin : 0.0;
        double expected = seg_t + (double)seg_in / seg_rate;
        if (p->decoded == 0 && seek_t >= 0 && (!known || t > start_s - HISTORY_MIN_S)) {
            result = PASS_RESTART;
            break;
        }
        bool gap = rs->swr && known && t - expected > GAP_S;
        if (!rs->swr || gap || !resampler_matches(rs, f)) {
            double t0 = !rs->swr ? t : gap ? t : expected;
            *status = resampler_finish(rs, k);
            if (*status == GVM_OK) *status = sink_begin_segment(k, llround((t0 - start_s) * rs->out_rate));
            if (*status == GVM_OK) *status = resampler_start(rs, p->path, f);
            if (*status != GVM_OK) {
                result = PASS_ERROR;
                break;
            }
            seg_t = t0;
            seg_in = 0;
            seg_rate = f->sample_rate;
        }
        *status = resampler_output(rs, k, (const uint8_t **)f->extended_data, f->nb_samples);
        if (*status != GVM_OK) {
            result = PASS_ERROR;
            break;
        }
        seg_in += f->nb_samples;
        p->decoded++;
        p->end_s = seg_t + (double)seg_in / seg_rate;
        av_frame_unref(f);
    }
    if (result == PASS_DONE) {
        *status = resampler_finish(rs, k);
        if (*status != GVM_OK) result = PASS_ERROR;
    }
    av_frame_free(&f);
    av_packet_free(&pkt);
    return result;
}

gvm_status gvm_audio_read(const char *path, int rate, double start_s, double duration_s, float **samples,
                          int64_t *n_samples) {
    GVM_CHECK(samples && n_samples, "gvm_audio_read: NULL output");
    *samples = NULL;
    *n_samples = 0;
    if (rate < 1000 || rate > 384000)
        return gvm_error_set(GVM_ERR_INVALID, "%s: sample rate %d Hz is out of range [1000, 384000]", path, rate);
    if (!(start_s >= 0 && isfinite(start_s)) || !isfinite(duration_s))
        return gvm_error_set(GVM_ERR_INVALID, "%s: start %g s / duration %g s: start must be >= 0 and both finite",
                             path, start_s, duration_s);
    int64_t n_want = INT64_MAX;
    if (duration_s > 0) {
        double n = nearbyint(duration_s * rate);
        if (n < 1)
            return gvm_error_set(GVM_ERR_INVALID, "%s: a duration of %g s holds no sample at %d Hz", path, duration_s,
                                 rate);
        if (n > 4e10) return gvm_error_set(GVM_ERR_INVALID, "%s: %g audio samples requested: too many", path, n);
        n_want = (int64_t)n;
    }
    double seek_t = start_s > SEEK_MARGIN_S ? start_s - SEEK_MARGIN_S : -1.0;
    audio_sink sink;
    resampler rs;
    audio_pass p;
    gvm_status s;
    for (;;) {
        memset(&sink, 0, sizeof sink);
        memset(&rs, 0, sizeof rs);
        sink.path = path;
        sink.n_want = n_want;
        rs.out_rate = rate;
        s = pass_open(&p, path);
        if (s != GVM_OK) break;
        if (seek_t >= 0) {
            int64_t target = llrint((p.origin + seek_t) / av_q2d(p.fmt->streams[p.stream]->time_base));
            if (avformat_seek_file(p.fmt, p.stream, INT64_MIN, target, target, 0) < 0) {
                pass_close(&p);  // cannot seek: decode from the beginning
                seek_t = -1.0;
                continue;
            }
        }
        pass_result res = pass_run(&p, &sink, &rs, start_s, seek_t, &s);
        if (res == PASS_RESTART || (res == PASS_DONE && seek_t >= 0 && p.decoded == 0)) {
            resampler_finish(&rs, &sink);
            free(rs.buf);
            free(sink.data);
            pass_close(&p);
            seek_t = -1.0;
            continue;
        }
        break;
    }
    if (s == GVM_OK && sink.n == 0) {
        char eb[AV_ERROR_MAX_STRING_SIZE];
        const char *codec = avcodec_get_name(p.fmt->streams[p.stream]->codecpar->codec_id);
        if (p.decoded == 0 && p.read_error)
            s = gvm_error_set(GVM_ERR_FORMAT, "%s: cannot decode the audio stream (%s): nothing could be read (%s); "
                              "the file is truncated or corrupt: re-download or re-encode it", path, codec,
                              gvm_media_err_str(p.read_error, eb, sizeof eb));
        else if (p.decoded == 0)
            s = gvm_error_set(GVM_ERR_FORMAT, "%s: cannot decode the audio stream (%s): no frame decodes (%d packets "
                              "rejected); the stream is corrupt or empty: re-encode the file", path, codec,
                              p.rejected);
        else
            s = gvm_error_set(GVM_ERR_INVALID, "%s: start %.3f s is at or past the end of the audio (%.3f s); ask "
                              "for an earlier start", path, start_s, p.end_s);
    }
    if (p.fmt) pass_close(&p);
    resampler_finish(&rs, &sink);
    free(rs.buf);
    if (s != GVM_OK) {
        free(sink.data);
        return s;
    }
    if (sink.n < sink.cap) {  // give back the unused tail of the doubling buffer
        float *shrunk = realloc(sink.data, (size_t)(sink.n ? sink.n : 1) * sizeof(float));
        if (shrunk) sink.data = shrunk;
    }
    *samples = sink.data;
    *n_samples = sink.n;
    return GVM_OK;
}
