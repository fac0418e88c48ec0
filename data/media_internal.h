// media_internal.h: helpers shared by the media files (data/media_probe.c defines them): opening a file
// with FFmpeg with the per-file error messages of media.h, choosing streams, opening decoders. Not part of
// the public API.
#ifndef GVM_MEDIA_INTERNAL_H
#define GVM_MEDIA_INTERNAL_H

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

#include "data/media.h"

// Open `path` and read its stream information. Errors: GVM_ERR_IO (missing, a folder, unreadable),
// GVM_ERR_FORMAT ("zero length", "not a media file FFmpeg can open"). *out is NULL on error; close with
// avformat_close_input.
gvm_status gvm_media_open_file(const char *path, AVFormatContext **out);

// Index of the best stream of `type` (video: never an attached picture such as cover art), -1 when none.
int gvm_media_find_stream(AVFormatContext *fmt, enum AVMediaType type);

// Open a decoder for stream `index` (single-threaded: the dataset tools run files in parallel).
// GVM_ERR_FORMAT "cannot decode" when FFmpeg has no decoder for its codec or the decoder will not open.
gvm_status gvm_media_open_decoder(const char *path, AVFormatContext *fmt, int index, AVCodecContext **out);

// The time origin of media.h in seconds of the file's timestamps (container start time; 0 when unknown).
double gvm_media_origin_s(const AVFormatContext *fmt);

// Clockwise quarter turns (0..3) a player applies to the stream's frames (its display matrix, as phones
// record portrait video); mirrored matrices count by their rotation alone.
int gvm_media_rotation(const AVStream *st);

// FFmpeg's text for an error code, in `buf`.
const char *gvm_media_err_str(int err, char *buf, size_t size);

#endif
