// media.h: decoding and encoding of media files for the dataset tools (FFmpeg's libraries).
//
//  * probe a file (streams, size, rate, duration);
//  * video frames sampled at a fixed rate by timestamp, resized (shorter side, bicubic) and centre-cropped
//    to size x size RGB, as GVMGen's CLIP preprocessing wants (1 fps, 336 x 336);
//  * the audio track (or a separate music file) as mono float at a chosen rate (32 kHz for EnCodec);
//  * 16-bit PCM WAV write and read;
//  * a copy of a video with a WAV as its AAC sound track (video stream copied, not re-encoded).
//
// The time line. Every time in this API (start_s, a sample's time) is in seconds from the file's start:
// the earliest start time of any stream in the container (FFmpeg's AVFormatContext.start_time), so video
// and audio read from one file stay aligned even when a stream's timestamps do not begin at 0 (MPEG-TS
// starts near 1.4 s; a delayed audio track starts after the video).
//
// Errors: every function returns GVM_OK or a status with a message (gvm_error_message()) that names the
// file, says what is wrong and what to do. The statuses a bad input gives:
//   GVM_ERR_IO         the file cannot be opened (missing, a folder, no permission) or written
//   GVM_ERR_FORMAT     "zero length", "not a media file FFmpeg can open", "cannot decode" (no decoder, or
//                      no frame of the stream decodes), a WAV that is not PCM/float
//   GVM_ERR_NOT_FOUND  "no video stream", "no audio stream"
//   GVM_ERR_INVALID    an argument out of range, or start_s past the end of the stream
//   GVM_ERR_MEMORY     an output too large to allocate
// Outputs are left NULL / 0 on error. docs/media.md lists the messages.
//
// Every output array is malloc'd; the caller frees it with free(). Functions are thread-safe (no shared
// state besides FFmpeg's log level, see gvm_media_init); each call opens the file itself.
#ifndef GVM_MEDIA_H
#define GVM_MEDIA_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

typedef struct gvm_media_info {
    double duration_s;     // container duration (else the longest stream's); 0 when the file does not say
    double start_s;        // the container's start time in the file's own timestamps (the origin above)
    bool has_video;        // a video stream that is not just cover art (attached picture)
    bool has_audio;
    int width, height;     // coded video size in pixels (0 without video); sample aspect ratio is ignored
    int rotation;          // clockwise degrees (0, 90, 180, 270) a player turns the frames (phone video)
    double fps;            // the video's frame rate as FFmpeg guesses it (0 when unknown)
    int64_t video_frames;  // frame count stored in the container (0 when it does not say)
    int audio_rate;        // Hz (0 without audio)
    int audio_channels;
    char video_codec[32];  // FFmpeg's codec names, e.g. "h264", "aac" ("" when absent)
    char audio_codec[32];
} gvm_media_info;

// Silence FFmpeg's own log (its messages go to stderr) down to AV_LOG_FATAL, once per process, unless the
// program has already chosen a level other than FFmpeg's default: our error messages say what went wrong.
// Every function below calls it; a program that wants FFmpeg's diagnostics calls av_log_set_level after.
void gvm_media_init(void);

// Streams of `path`. GVM_ERR_NOT_FOUND when the file has neither a video nor an audio stream.
gvm_status gvm_media_probe(const char *path, gvm_media_info *out);

// Frames of the video stream sampled at `fps`, as RGB.
//   frames: uint8 [n, size, size, 3] (row-major, RGB, rows top to bottom), malloc'd, caller frees.
// Sample i (0 <= i < n) shows the time t_i = start_s + i / fps: it is the frame on screen at t_i, i.e. the
// last frame whose (best-effort) timestamp is <= t_i, or the first frame when t_i is before it. Frames
// are chosen by timestamp, never by index, so variable frame rates, gaps and bogus index entries give the
// frames a player would show. A timestamp that is missing or does not increase is replaced by the previous
// one plus a frame duration.
// n = floor(duration_s * fps) when duration_s > 0, to the end of the stream when duration_s <= 0. Samples
// at or after the end of the stream (the last frame's timestamp plus its duration) are not returned, so
// *n_frames can be less than floor(duration_s * fps) (a 30 s request on a 29.5 s video at 1 fps gives 30
// frames; on a 28.7 s video, 29). GVM_ERR_INVALID when start_s is at or past the end.
// Each frame: the shorter side resized to `size` (bicubic, libswscale; the longer side becomes
// floor(size * long / short) as torchvision's Resize), then the centre size x size crop (offset
// round((long' - size) / 2), half to even). Any pixel format libswscale reads is converted with the
// frame's own colour matrix and range (BT.601 when it does not say). Frames are turned as a player turns
// them (the stream's display matrix: rotation in multiples of 90 degrees). No deinterlacing.
// fps in (0, 1000], size in [1, 8192], start_s >= 0.
gvm_status gvm_video_read_frames(const char *path, double fps, int size, double start_s, double duration_s,
                                 uint8_t **frames, int64_t *n_frames);

// The audio stream of `path` (any file FFmpeg reads: a video's sound track, an mp3/m4a/flac/wav music
// file) as mono float samples in [-1, 1] at `rate` Hz.
//   samples: float [n], malloc'd, caller frees. Sample j is the sound at time start_s + j / rate (to within
//   half a sample: resampling restarts where decoding starts, after a seek or a gap, on the nearest sample).
// Mono is the mean of the channels (LFE channels left out), so a stereo file's left and right each come
// in at half amplitude. Resampling: libswresample. n = round(duration_s * rate) when duration_s > 0, to
// the end of the stream when duration_s <= 0; fewer when the stream ends first. Time before the audio
// stream's first sample (a track that starts after the video) is silence; a gap in the timestamps of
// more than 5 ms is filled with silence; GVM_ERR_INVALID when start_s is at or past the end.
// rate in [1000, 384000], start_s >= 0.
gvm_status gvm_audio_read(const char *path, int rate, double start_s, double duration_s, float **samples,
                          int64_t *n_samples);

// Write float [n] mono samples as a 16-bit PCM WAV at `rate` Hz (values clamped to [-1, 1], scaled by
// 32767, rounded). Written to a temporary name and renamed, so `path` is never left half written.
gvm_status gvm_wav_write(const char *path, const float *samples, int64_t n, int rate);

// Read a WAV (PCM 8/16/24/32-bit or IEEE float 32/64, any channel count, WAVE_FORMAT_EXTENSIBLE too) as
// mono float [n] (mean of the channels), malloc'd, caller frees; *rate gets its sample rate. Compressed
// WAVs (ADPCM, mu-law...) give GVM_ERR_FORMAT: read those with gvm_audio_read.
gvm_status gvm_wav_read(const char *path, float **samples, int64_t *n, int *rate);

// Write `out_path`: the video stream of `video_in` copied packet for packet (not re-encoded), plus the
// audio of `audio_in` (a WAV or any audio file; mixed to mono) encoded as AAC at the audio's own rate
// (48 kHz when AAC cannot use that rate). The video's own sound and every other stream are dropped; the
// new sound starts at the video's time 0 (the origin above) and keeps its whole length. The container
// follows out_path's extension (.mp4, .mov, .mkv); written to a temporary name and renamed.
gvm_status gvm_media_mux_audio(const char *video_in, const char *audio_in, const char *out_path);

#endif
