// media_probe.c: opening media files with FFmpeg (the per-file errors of media.h), choosing streams,
// opening decoders, and gvm_media_probe.
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>

#include <libavutil/display.h>
#include <libavutil/log.h>

#include "data/media_internal.h"

static pthread_once_t g_init_once = PTHREAD_ONCE_INIT;

static void media_init_once(void) {
    // A bad file makes FFmpeg print lines that name neither the file nor a remedy; ours do both. Leave
    // a level the program chose itself alone.
    if (av_log_get_level() == AV_LOG_INFO) av_log_set_level(AV_LOG_FATAL);
}

void gvm_media_init(void) { pthread_once(&g_init_once, media_init_once); }

const char *gvm_media_err_str(int err, char *buf, size_t size) {
    if (av_strerror(err, buf, size) < 0) snprintf(buf, size, "FFmpeg error %d", err);
    return buf;
}

gvm_status gvm_media_open_file(const char *path, AVFormatContext **out) {
    gvm_media_init();
    *out = NULL;
    GVM_CHECK(path, "gvm_media_open_file: NULL path");
    struct stat sb;
    if (stat(path, &sb) != 0)
        return gvm_error_set(GVM_ERR_IO, "%s: cannot open: %s; check the path", path, strerror(errno));
    if (S_ISDIR(sb.st_mode))
        return gvm_error_set(GVM_ERR_IO, "%s: is a folder, not a media file; give the path of a file", path);
    if (S_ISREG(sb.st_mode) && sb.st_size == 0)
        return gvm_error_set(GVM_ERR_FORMAT,
                             "%s: zero length (the file is empty); re-download or re-export it, or remove it "
                             "from the list", path);
    // Local files only: a playlist or concat script inside a dataset must not make us open other files
    // or the network.
    AVDictionary *opts = NULL;
    av_dict_set(&opts, "protocol_whitelist", "file", 0);
    AVFormatContext *fmt = NULL;
    int ret = avformat_open_input(&fmt, path, NULL, &opts);
    av_dict_free(&opts);
    char eb[AV_ERROR_MAX_STRING_SIZE];
    if (ret < 0) {
        if (ret == AVERROR(ENOENT) || ret == AVERROR(EACCES) || ret == AVERROR(EISDIR))
            return gvm_error_set(GVM_ERR_IO, "%s: cannot open: %s; check the path and its permissions", path,
                                 gvm_media_err_str(ret, eb, sizeof eb));
        return gvm_error_set(GVM_ERR_FORMAT,
                             "%s: not a media file FFmpeg can open (%s); check it is a complete video or audio "
                             "file (a partial download or truncated copy gives this) and re-download or "
                             "re-export it", path, gvm_media_err_str(ret, eb, sizeof eb));
    }
    ret = avformat_find_stream_info(fmt, NULL);
    if (ret < 0) {
        avformat_close_input(&fmt);
        return gvm_error_set(GVM_ERR_FORMAT,
                             "%s: not a media file FFmpeg can open (reading its stream information failed: %s); "
                             "the file is truncated or corrupt: re-download or re-export it", path,
                             gvm_media_err_str(ret, eb, sizeof eb));
    }
    *out = fmt;
    return GVM_OK;
}

int gvm_media_find_stream(AVFormatContext *fmt, enum AVMediaType type) {
    int best = av_find_best_stream(fmt, type, -1, -1, NULL, 0);
    bool video = type == AVMEDIA_TYPE_VIDEO;
    if (best >= 0 && !(video && (fmt->streams[best]->disposition & AV_DISPOSITION_ATTACHED_PIC))) return best;
    // av_find_best_stream can pick cover art (an mp3's picture is a one-packet "video" stream).
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        const AVStream *st = fmt->streams[i];
        if (st->codecpar->codec_type != type) continue;
        if (video && (st->disposition & AV_DISPOSITION_ATTACHED_PIC)) continue;
        return (int)i;
    }
    return -1;
}

gvm_status gvm_media_open_decoder(const char *path, AVFormatContext *fmt, int index, AVCodecContext **out) {
    *out = NULL;
    const AVCodecParameters *par = fmt->streams[index]->codecpar;
    const char *kind = par->codec_type == AVMEDIA_TYPE_VIDEO ? "video" : "audio";
    const AVCodec *codec = avcodec_find_decoder(par->codec_id);
    if (!codec)
        return gvm_error_set(GVM_ERR_FORMAT,
                             "%s: cannot decode the %s stream: this FFmpeg has no decoder for codec '%s'; "
                             "convert the file with an ffmpeg that has one", path, kind,
                             avcodec_get_name(par->codec_id));
    AVCodecContext *dec = avcodec_alloc_context3(codec);
    if (!dec) return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory opening a decoder", path);
    char eb[AV_ERROR_MAX_STRING_SIZE];
    int ret = avcodec_parameters_to_context(dec, par);
    if (ret >= 0) {
        dec->pkt_timebase = fmt->streams[index]->time_base;
        dec->thread_count = 1;
        ret = avcodec_open2(dec, codec, NULL);
    }
    if (ret < 0) {
        avcodec_free_context(&dec);
        return gvm_error_set(GVM_ERR_FORMAT,
                             "%s: cannot decode the %s stream: the '%s' decoder will not open (%s); the stream "
                             "is corrupt: re-encode the file", path, kind, avcodec_get_name(par->codec_id),
                             gvm_media_err_str(ret, eb, sizeof eb));
    }
    *out = dec;
    return GVM_OK;
}

int gvm_media_rotation(const AVStream *st) {
    const uint8_t *matrix = NULL;
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(60, 30, 100)
    const AVPacketSideData *sd = av_packet_side_data_get(st->codecpar->coded_side_data,
                                                         st->codecpar->nb_coded_side_data, AV_PKT_DATA_DISPLAYMATRIX);
    if (sd && sd->size >= 9 * 4) matrix = sd->data;
#else
    size_t size = 0;
    matrix = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
    if (size < 9 * 4) matrix = NULL;
#endif
    if (!matrix) return 0;
    // av_display_rotation_get: counter-clockwise degrees; a player turns clockwise by its negation.
    double deg = -av_display_rotation_get((const int32_t *)matrix);
    if (deg != deg) return 0;  // NaN: a degenerate matrix
    long q = lround(deg / 90.0);
    return (int)(((q % 4) + 4) % 4);
}

double gvm_media_origin_s(const AVFormatContext *fmt) {
    if (fmt->start_time != AV_NOPTS_VALUE) return (double)fmt->start_time / AV_TIME_BASE;
    return 0.0;
}

gvm_status gvm_media_probe(const char *path, gvm_media_info *out) {
    GVM_CHECK(out, "gvm_media_probe: NULL output");
    memset(out, 0, sizeof *out);
    AVFormatContext *fmt;
    gvm_status s = gvm_media_open_file(path, &fmt);
    if (s != GVM_OK) return s;
    gvm_media_info info;
    memset(&info, 0, sizeof info);
    info.start_s = gvm_media_origin_s(fmt);
    if (fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0) info.duration_s = (double)fmt->duration / AV_TIME_BASE;
    for (unsigned i = 0; i < fmt->nb_streams && info.duration_s == 0; i++) {
        const AVStream *st = fmt->streams[i];
        if (st->duration != AV_NOPTS_VALUE && st->duration > 0) {
            double d = (double)st->duration * av_q2d(st->time_base);
            if (d > info.duration_s) info.duration_s = d;
        }
    }
    int vs = gvm_media_find_stream(fmt, AVMEDIA_TYPE_VIDEO);
    if (vs >= 0) {
        AVStream *st = fmt->streams[vs];
        info.has_video = true;
        info.width = st->codecpar->width;
        info.height = st->codecpar->height;
        info.rotation = 90 * gvm_media_rotation(st);
        AVRational fr = av_guess_frame_rate(fmt, st, NULL);
        info.fps = fr.num > 0 && fr.den > 0 ? av_q2d(fr) : 0.0;
        info.video_frames = st->nb_frames > 0 ? st->nb_frames : 0;
        snprintf(info.video_codec, sizeof info.video_codec, "%s", avcodec_get_name(st->codecpar->codec_id));
    }
    int as = gvm_media_find_stream(fmt, AVMEDIA_TYPE_AUDIO);
    if (as >= 0) {
        const AVCodecParameters *par = fmt->streams[as]->codecpar;
        info.has_audio = true;
        info.audio_rate = par->sample_rate;
        info.audio_channels = par->ch_layout.nb_channels;
        snprintf(info.audio_codec, sizeof info.audio_codec, "%s", avcodec_get_name(par->codec_id));
    }
    avformat_close_input(&fmt);
    if (!info.has_video && !info.has_audio)
        return gvm_error_set(GVM_ERR_NOT_FOUND,
                             "%s: no video stream and no audio stream (FFmpeg opens it, but it holds neither); "
                             "check this is the right file", path);
    *out = info;
    return GVM_OK;
}
