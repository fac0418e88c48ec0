// mux.c: gvm_media_mux_audio: a copy of a video with new music as its AAC sound track. The `generate`
// command uses it to hand back the user's video with the generated music. The video stream is copied
// packet for packet (no quality loss, no re-encode time); only the audio is encoded.
//
// Time line: the input video's packets are shifted by the container's start time (media.h's origin), so
// the video starts where gvm_video_read_frames put time 0 and the music, which starts at 0, lines up with
// the frames it was generated from.
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <libavutil/channel_layout.h>

#include "data/media_internal.h"

#define AAC_BITRATE 128000

typedef struct mux_state {
    const char *video_in, *audio_in, *out_path;
    char tmp_path[4096];
    AVFormatContext *in;     // the video file
    AVFormatContext *out;
    AVCodecContext *enc;     // AAC
    AVStream *vst, *ast;     // output streams
    int in_video;            // index of the copied stream in `in`
    int64_t shift;           // subtracted from the video's timestamps (input time base)
    float *audio;            // float [n_audio]: the music, mono, at enc->sample_rate
    int64_t n_audio, audio_pos;
    AVFrame *frame;
    AVPacket *pkt;
    bool file_open, header_written;
} mux_state;

static void mux_free(mux_state *m) {
    if (m->out) {
        if (m->file_open) avio_closep(&m->out->pb);
        avformat_free_context(m->out);
    }
    avformat_close_input(&m->in);
    avcodec_free_context(&m->enc);
    av_frame_free(&m->frame);
    av_packet_free(&m->pkt);
    free(m->audio);
}

static gvm_status mux_fail(mux_state *m, const char *what, int err) {
    char eb[AV_ERROR_MAX_STRING_SIZE];
    return gvm_error_set(GVM_ERR_IO, "%s: %s (%s)", m->out_path, what, gvm_media_err_str(err, eb, sizeof eb));
}

// The AAC rate for `rate`: itself when the encoder takes it, else 48 kHz.
static int aac_rate(const AVCodec *codec, int rate) {
    if (!codec->supported_samplerates) return rate;
    for (const int *r = codec->supported_samplerates; *r; r++)
        if (*r == rate) return rate;
    return 48000;
}

static gvm_status open_audio(mux_state *m) {
    gvm_media_info info;
    gvm_status s = gvm_media_probe(m->audio_in, &info);
    if (s != GVM_OK) return s;
    if (!info.has_audio)
        return gvm_error_set(GVM_ERR_NOT_FOUND, "%s: no audio stream to put in %s; give a WAV or audio file",
                             m->audio_in, m->out_path);
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_AAC);
    if (!codec) return gvm_error_set(GVM_ERR_FORMAT, "this FFmpeg has no AAC encoder; install a complete FFmpeg");
    int rate = aac_rate(codec, info.audio_rate);
    s = gvm_audio_read(m->audio_in, rate, 0.0, 0.0, &m->audio, &m->n_audio);
    if (s != GVM_OK) return s;
    m->enc = avcodec_alloc_context3(codec);
    if (!m->enc) return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", m->out_path);
    m->enc->sample_fmt = AV_SAMPLE_FMT_FLTP;
    m->enc->sample_rate = rate;
    m->enc->bit_rate = AAC_BITRATE;
    m->enc->time_base = (AVRational){1, rate};
    av_channel_layout_default(&m->enc->ch_layout, 1);
    if (m->out->oformat->flags & AVFMT_GLOBALHEADER) m->enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    int ret = avcodec_open2(m->enc, codec, NULL);
    if (ret < 0) return mux_fail(m, "cannot open the AAC encoder", ret);
    m->ast = avformat_new_stream(m->out, NULL);
    if (!m->ast) return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", m->out_path);
    ret = avcodec_parameters_from_context(m->ast->codecpar, m->enc);
    if (ret < 0) return mux_fail(m, "cannot set up the audio stream", ret);
    m->ast->time_base = m->enc->time_base;
    m->frame = av_frame_alloc();
    if (!m->frame) return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", m->out_path);
    return GVM_OK;
}

static gvm_status open_video(mux_state *m) {
    gvm_status s = gvm_media_open_file(m->video_in, &m->in);
    if (s != GVM_OK) return s;
    m->in_video = gvm_media_find_stream(m->in, AVMEDIA_TYPE_VIDEO);
    if (m->in_video < 0)
        return gvm_error_set(GVM_ERR_NOT_FOUND, "%s: no video stream to copy into %s; give the video file itself",
                             m->video_in, m->out_path);
    AVStream *ist = m->in->streams[m->in_video];
    m->vst = avformat_new_stream(m->out, NULL);
    if (!m->vst) return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", m->out_path);
    int ret = avcodec_parameters_copy(m->vst->codecpar, ist->codecpar);
    if (ret < 0) return mux_fail(m, "cannot copy the video stream's parameters", ret);
    // The input container's codec tag may mean nothing in the output's: let the muxer choose.
    m->vst->codecpar->codec_tag = 0;
    m->vst->time_base = ist->time_base;
    m->vst->avg_frame_rate = ist->avg_frame_rate;
    m->vst->r_frame_rate = ist->r_frame_rate;
    m->vst->sample_aspect_ratio = ist->sample_aspect_ratio;
    m->vst->disposition = ist->disposition;
#if LIBAVCODEC_VERSION_INT < AV_VERSION_INT(60, 30, 100)
    // Rotation (display matrix) and other stream side data; newer FFmpeg keeps it in codecpar.
    for (int i = 0; i < ist->nb_side_data; i++) {
        const AVPacketSideData *sd = &ist->side_data[i];
        uint8_t *dst = av_stream_new_side_data(m->vst, sd->type, sd->size);
        if (!dst) return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", m->out_path);
        memcpy(dst, sd->data, sd->size);
    }
#endif
    if (m->in->start_time != AV_NOPTS_VALUE)
        m->shift = av_rescale_q(m->in->start_time, AV_TIME_BASE_Q, ist->time_base);
    return GVM_OK;
}

// Write the encoder's finished packets. Returns GVM_OK, sets *done at the end of the encoder's stream.
static gvm_status drain_encoder(mux_state *m, bool *done) {
    for (;;) {
        int ret = avcodec_receive_packet(m->enc, m->pkt);
        if (ret == AVERROR(EAGAIN)) return GVM_OK;
        if (ret == AVERROR_EOF) {
            *done = true;
            return GVM_OK;
        }
        if (ret < 0) return mux_fail(m, "AAC encoding failed", ret);
        av_packet_rescale_ts(m->pkt, m->enc->time_base, m->ast->time_base);
        m->pkt->stream_index = m->ast->index;
        ret = av_interleaved_write_frame(m->out, m->pkt);
        if (ret < 0) return mux_fail(m, "cannot write the audio", ret);
    }
}

// Encode the next frame of music (or, after the last, the end of the stream).
static gvm_status encode_next(mux_state *m, bool *done) {
    int ret;
    if (m->audio_pos < m->n_audio) {
        int fs = m->enc->frame_size > 0 ? m->enc->frame_size : 1024;
        int64_t left = m->n_audio - m->audio_pos;
        int nb = left < fs ? (int)left : fs;
        av_frame_unref(m->frame);
        m->frame->format = AV_SAMPLE_FMT_FLTP;
        m->frame->sample_rate = m->enc->sample_rate;
        m->frame->nb_samples = nb;
        av_channel_layout_default(&m->frame->ch_layout, 1);
        if ((ret = av_frame_get_buffer(m->frame, 0)) < 0) return mux_fail(m, "out of memory", ret);
        memcpy(m->frame->data[0], m->audio + m->audio_pos, (size_t)nb * sizeof(float));
        m->frame->pts = m->audio_pos;
        m->audio_pos += nb;
        ret = avcodec_send_frame(m->enc, m->frame);
    } else {
        ret = avcodec_send_frame(m->enc, NULL);
        if (ret == AVERROR_EOF) ret = 0;
    }
    if (ret < 0) return mux_fail(m, "AAC encoding failed", ret);
    return drain_encoder(m, done);
}

// Copy the next video packet; *done at the end of the file. *t gets its time in seconds.
static gvm_status copy_next(mux_state *m, bool *done, double *t) {
    for (;;) {
        int ret = av_read_frame(m->in, m->pkt);
        if (ret < 0) {  // end of file, or a truncated tail: keep what was copied
            *done = true;
            return GVM_OK;
        }
        if (m->pkt->stream_index != m->in_video) {
            av_packet_unref(m->pkt);
            continue;
        }
        AVRational itb = m->in->streams[m->in_video]->time_base;
        if (m->pkt->pts != AV_NOPTS_VALUE) m->pkt->pts -= m->shift;
        if (m->pkt->dts != AV_NOPTS_VALUE) m->pkt->dts -= m->shift;
        int64_t ts = m->pkt->dts != AV_NOPTS_VALUE ? m->pkt->dts : m->pkt->pts;
        if (ts != AV_NOPTS_VALUE) *t = (double)ts * av_q2d(itb);
        av_packet_rescale_ts(m->pkt, itb, m->vst->time_base);
        m->pkt->stream_index = m->vst->index;
        m->pkt->pos = -1;
        ret = av_interleaved_write_frame(m->out, m->pkt);
        if (ret < 0) {
            char what[256];
            snprintf(what, sizeof what, "cannot copy the video stream (%s) of %s into this container; re-encode the "
                     "video first (ffmpeg -i IN -c:v libx264 OUT.mp4) or use an .mkv output",
                     avcodec_get_name(m->vst->codecpar->codec_id), m->video_in);
            return mux_fail(m, what, ret);
        }
        return GVM_OK;
    }
}

static gvm_status mux_run(mux_state *m) {
    const AVOutputFormat *ofmt = av_guess_format(NULL, m->out_path, NULL);
    if (!ofmt)
        return gvm_error_set(GVM_ERR_INVALID, "%s: cannot tell the container from the file name; end it in .mp4, "
                             ".mov or .mkv", m->out_path);
    if (snprintf(m->tmp_path, sizeof m->tmp_path, "%s.tmp%d", m->out_path, (int)getpid()) >= (int)sizeof m->tmp_path)
        return gvm_error_set(GVM_ERR_INVALID, "%s: path too long", m->out_path);
    int ret = avformat_alloc_output_context2(&m->out, ofmt, NULL, m->tmp_path);
    if (ret < 0) return mux_fail(m, "cannot set up the output", ret);
    gvm_status s = open_video(m);
    if (s == GVM_OK) s = open_audio(m);
    if (s != GVM_OK) return s;
    m->pkt = av_packet_alloc();
    if (!m->pkt) return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", m->out_path);
    if ((ret = avio_open(&m->out->pb, m->tmp_path, AVIO_FLAG_WRITE)) < 0) {
        char eb[AV_ERROR_MAX_STRING_SIZE];
        return gvm_error_set(GVM_ERR_IO, "%s: cannot write (%s); check the folder exists and is writable", m->out_path,
                             gvm_media_err_str(ret, eb, sizeof eb));
    }
    m->file_open = true;
    if ((ret = avformat_write_header(m->out, NULL)) < 0) {
        char what[256];
        snprintf(what, sizeof what, "a %s file cannot hold the video '%s' of %s with AAC audio; use an .mp4, .mov "
                 "or .mkv output, or re-encode the video first (ffmpeg -i IN -c:v libx264 OUT.mp4)", ofmt->name,
                 avcodec_get_name(m->vst->codecpar->codec_id), m->video_in);
        return mux_fail(m, what, ret);
    }
    m->header_written = true;
    // Interleave by time: advance whichever stream is behind.
    bool v_done = false, a_done = false;
    double v_t = -1e30, a_t = -1e30;
    while (s == GVM_OK && (!v_done || !a_done)) {
        if (!a_done && (v_done || a_t <= v_t)) {
            s = encode_next(m, &a_done);
            a_t = (double)m->audio_pos / m->enc->sample_rate;
        } else {
            s = copy_next(m, &v_done, &v_t);
        }
    }
    if (s != GVM_OK) return s;
    if ((ret = av_write_trailer(m->out)) < 0) return mux_fail(m, "cannot finish the file", ret);
    m->file_open = false;
    if ((ret = avio_closep(&m->out->pb)) < 0) return mux_fail(m, "cannot finish the file", ret);
    if (rename(m->tmp_path, m->out_path) != 0)
        return gvm_error_set(GVM_ERR_IO, "%s: cannot write: %s", m->out_path, strerror(errno));
    m->tmp_path[0] = '\0';
    return GVM_OK;
}

gvm_status gvm_media_mux_audio(const char *video_in, const char *audio_in, const char *out_path) {
    GVM_CHECK(video_in && audio_in && out_path, "gvm_media_mux_audio: NULL path");
    gvm_media_init();
    mux_state m;
    memset(&m, 0, sizeof m);
    m.video_in = video_in;
    m.audio_in = audio_in;
    m.out_path = out_path;
    gvm_status s = mux_run(&m);
    mux_free(&m);
    if (m.tmp_path[0]) unlink(m.tmp_path);  // a failed write leaves nothing behind
    return s;
}
