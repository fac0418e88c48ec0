// test_data_media_audio.c: audio decoding (gvm_audio_read), WAV files and muxing, against independent oracles
// (a generated tone's known frequency, amplitude and onset time; ffprobe's and ffmpeg's view of what we write).
// All media are made here, in a temporary folder, with the ffmpeg program from lavfi sources.
//
//  * a 997 Hz sine at 44.1 kHz read at 32 kHz keeps its frequency (zero crossings, 0.5%), length (1 ms) and
//    amplitude; a part read from the middle (a seek) equals that part of the whole read (PCM and AAC);
//  * stereo with different tones per side gives both at half amplitude;
//  * a tone onset at a known time lands at the right sample for starts that seek, in WAV, AAC/MP4, Matroska
//    with a 10 s clock, MPEG-TS, and a video whose audio track starts late; a hole in the timestamps is
//    silence;
//  * WAV write -> read round trip, ffprobe's view of the written file, other WAV flavours (u8, s24, s32, f32,
//    f64) read alike by gvm_wav_read and FFmpeg, WAV errors;
//  * mux: the output's video packets hash equal to the input's (copied, not re-encoded), decoded frames too,
//    same frame count, one AAC stream of the WAV's rate and duration that starts with the video; errors leave
//    no file.
#include <sys/stat.h>

#include "tests/media_fixture.h"

#include "data/media.h"
#include "tests/test_util.h"

static void check_onset(const char *name, const char *file, double start, double expect_s, double tol_s) {
    float *x = NULL;
    int64_t n = 0;
    const int rate = 32000;
    gvm_status s = gvm_audio_read(tmp_path(file), rate, start, 2.0, &x, &n);
    if (TEST_CHECK(s == GVM_OK && n == 2 * rate, name, "status %d n %lld: %s", s, (long long)n,
                   gvm_error_message())) {
        double got = (double)onset(x, n, 0.1f) / rate;
        TEST_CHECK(fabs(got - expect_s) <= tol_s, name, "%s from %g s: onset at %.5f s, want %.5f s", file, start,
                   got, expect_s);
    }
    free(x);
}

static void test_audio(void) {
    const int rate = 32000;
    // A 997 Hz sine (amplitude 1/8, the sine source's) of 3 s at 44.1 kHz, read at 32 kHz.
    if (TEST_CHECK(ffmpeg("sine.wav", "-f lavfi -i sine=frequency=997:sample_rate=44100:duration=3 -c:a pcm_s16le"),
                   "sine clip", "ffmpeg failed")) {
        float *x = NULL;
        int64_t n = 0;
        gvm_status s = gvm_audio_read(tmp_path("sine.wav"), rate, 0, 0, &x, &n);
        if (TEST_CHECK(s == GVM_OK, "resample sine", "%s", gvm_error_message())) {
            TEST_CHECK(llabs(n - 3 * rate) <= rate / 1000, "resample keeps length", "%lld samples, want %d +- 1 ms",
                       (long long)n, 3 * rate);
            double f = zero_crossing_freq(x, n, rate);
            TEST_CHECK(fabs(f - 997) <= 997 * 0.005, "resample keeps frequency", "%.3f Hz, want 997", f);
            double a = tone_amplitude(x, 3200, n - 3200, 997, rate);
            TEST_CHECK(fabs(a - 0.125) < 0.125 * 0.02, "resample keeps amplitude", "%.5f, want 0.125", a);
            float peak = 0;
            for (int64_t i = 0; i < n; i++) peak = fmaxf(peak, fabsf(x[i]));
            TEST_CHECK(peak < 0.14f, "no overshoot", "peak %g", peak);
        }
        free(x);
        // A part: [1.25, 1.75) s is 16000 samples.
        s = gvm_audio_read(tmp_path("sine.wav"), rate, 1.25, 0.5, &x, &n);
        TEST_CHECK(s == GVM_OK && n == 16000, "audio part length", "status %d n %lld", s, (long long)n);
        free(x);
        // Past the end: fewer samples; start past the end: an error.
        s = gvm_audio_read(tmp_path("sine.wav"), rate, 2.5, 2.0, &x, &n);
        TEST_CHECK(s == GVM_OK && llabs(n - rate / 2) <= rate / 1000, "audio past the end", "status %d n %lld", s,
                   (long long)n);
        free(x);
        s = gvm_audio_read(tmp_path("sine.wav"), rate, 3.5, 2.0, &x, &n);
        TEST_CHECK(s == GVM_ERR_INVALID && x == NULL && contains(gvm_error_message(), "past the end"),
                   "audio start past the end", "status %d: %s", s, gvm_error_message());
        s = gvm_audio_read(tmp_path("sine.wav"), 10, 0, 1, &x, &n);
        TEST_CHECK(s == GVM_ERR_INVALID, "audio rate 10 Hz is invalid", "status %d", s);
    }

    // A part read from the middle (which seeks) equals the same part of the whole read, for PCM and for AAC
    // (whose first frame after a seek is wrong unless decoding starts a frame earlier). The resampler restarts
    // at the seek, so its output grid may sit up to half an output sample off the whole read's: for a 997 Hz
    // sine of amplitude 1/8 that allows 2 pi 997 / 8 / (2 * 32000) = 0.0122, plus AAC's own noise.
    if (TEST_CHECK(ffmpeg("sine.m4a", "-f lavfi -i sine=frequency=997:sample_rate=44100:duration=3 -c:a aac "
                          "-b:a 192k"), "sine m4a", "ffmpeg failed")) {
        static const char *files[] = {"sine.wav", "sine.m4a"};
        for (int k = 0; k < 2; k++) {
            float *whole = NULL, *part = NULL;
            int64_t nw = 0, np = 0;
            gvm_status s1 = gvm_audio_read(tmp_path(files[k]), rate, 0, 0, &whole, &nw);
            gvm_status s2 = gvm_audio_read(tmp_path(files[k]), rate, 1.7, 1.0, &part, &np);
            int64_t off = (int64_t)(1.7 * rate);
            if (TEST_CHECK(s1 == GVM_OK && s2 == GVM_OK && np == rate && nw >= off + np, "seek consistency",
                           "%s: status %d/%d n %lld/%lld", files[k], s1, s2, (long long)nw, (long long)np)) {
                double worst = 0;
                for (int64_t i = 0; i < np; i++) worst = fmax(worst, fabs(part[i] - whole[off + i]));
                TEST_CHECK(worst < 0.0122 + 0.002, "seek consistency", "%s: part from 1.7 s differs from the whole by %g",
                           files[k], worst);
            }
            free(whole);
            free(part);
        }
    }

    // Stereo: 440 Hz left, 1000 Hz right, each 1/8: mono has each at 1/16.
    if (TEST_CHECK(ffmpeg("stereo.wav", "-f lavfi -i sine=frequency=440:sample_rate=44100:duration=2 "
                          "-f lavfi -i sine=frequency=1000:sample_rate=44100:duration=2 "
                          "-filter_complex \"[0][1]amerge=inputs=2\" -c:a pcm_s16le"), "stereo clip", "ffmpeg failed")) {
        TEST_CHECK(probe_value(tmp_path("stereo.wav"), "a:0", "stream=channels") == 2, "stereo clip has 2 channels",
                   "ffprobe disagrees");
        float *x = NULL;
        int64_t n = 0;
        gvm_status s = gvm_audio_read(tmp_path("stereo.wav"), rate, 0, 0, &x, &n);
        if (TEST_CHECK(s == GVM_OK && n > rate, "stereo read", "%s", gvm_error_message())) {
            double a440 = tone_amplitude(x, 0, n, 440, rate), a1000 = tone_amplitude(x, 0, n, 1000, rate);
            TEST_CHECK(fabs(a440 - 0.0625) < 0.0625 * 0.03 && fabs(a1000 - 0.0625) < 0.0625 * 0.03,
                       "stereo downmix at half amplitude", "440 Hz %.5f, 1000 Hz %.5f, want 0.0625", a440, a1000);
        }
        free(x);
        // gvm_wav_read mixes the same way.
        int r = 0;
        s = gvm_wav_read(tmp_path("stereo.wav"), &x, &n, &r);
        if (TEST_CHECK(s == GVM_OK && r == 44100 && n == 88200, "wav_read stereo", "status %d rate %d n %lld: %s", s,
                       r, (long long)n, gvm_error_message())) {
            double a440 = tone_amplitude(x, 0, n, 440, r);
            TEST_CHECK(fabs(a440 - 0.0625) < 0.0625 * 0.03, "wav_read downmix", "440 Hz %.5f", a440);
        }
        free(x);
    }

    // A 1 kHz tone that starts at 2.0 s of a 4 s file: starts above 0.5 s seek.
    const char *burst = "-f lavfi -i \"aevalsrc='if(gte(t,2),0.5*sin(2*PI*1000*t),0)':s=44100:d=4\"";
    char args[512];
    snprintf(args, sizeof args, "%s -c:a pcm_s16le", burst);
    if (TEST_CHECK(ffmpeg("burst.wav", args), "burst wav", "ffmpeg failed")) {
        check_onset("onset wav from 0", "burst.wav", 0.5, 1.5, 0.001);
        check_onset("onset wav from 1.5 s", "burst.wav", 1.5, 0.5, 0.001);
        check_onset("onset wav from 1.9 s", "burst.wav", 1.9, 0.1, 0.001);
    }
    snprintf(args, sizeof args, "%s -c:a aac -b:a 128k", burst);
    if (TEST_CHECK(ffmpeg("burst.m4a", args), "burst m4a", "ffmpeg failed")) {
        check_onset("onset aac from 0.5 s", "burst.m4a", 0.5, 1.5, 0.005);
        check_onset("onset aac from 1.5 s", "burst.m4a", 1.5, 0.5, 0.005);
    }
    // A clock that starts at 10 s.
    snprintf(args, sizeof args, "%s -c:a flac -output_ts_offset 10", burst);
    if (TEST_CHECK(ffmpeg("burst_offset.mkv", args), "burst mkv at 10 s", "ffmpeg failed")) {
        check_onset("onset with start time 10 s, from 0.5 s", "burst_offset.mkv", 0.5, 1.5, 0.001);
        check_onset("onset with start time 10 s, from 1.5 s", "burst_offset.mkv", 1.5, 0.5, 0.001);
    }
    // MPEG-TS (clock near 1.4 s) with MP2, whose encoder delays the sound by 481 samples (10.9 ms) without
    // saying so: a seek must not move it (same onset from 0.5 s and from 1.5 s).
    snprintf(args, sizeof args, "%s -c:a mp2", burst);
    if (TEST_CHECK(ffmpeg("burst.ts", args), "burst ts", "ffmpeg failed")) {
        check_onset("onset MPEG-TS from 0.5 s", "burst.ts", 0.5, 1.5 + 481.0 / 44100, 0.001);
        check_onset("onset MPEG-TS from 1.5 s", "burst.ts", 1.5, 0.5 + 481.0 / 44100, 0.001);
    }
    // A 0.5 s hole in the timestamps after 1 s of tone (PCM in Matroska keeps each 10 ms frame's time): read
    // from 0.5 s, the hole is silence at [0.5, 1.0) and the tone comes back at 1.0 s.
    if (TEST_CHECK(ffmpeg("hole.mkv", "-f lavfi -i \"aevalsrc='0.5*sin(2*PI*1000*t)':s=44100:n=441:d=2\" "
                          "-af \"asetpts='PTS+gte(T\\,1)*0.5/TB'\" -c:a pcm_s16le"), "hole clip", "ffmpeg failed")) {
        float *x = NULL;
        int64_t n = 0;
        gvm_status s = gvm_audio_read(tmp_path("hole.mkv"), rate, 0.5, 1.5, &x, &n);
        if (TEST_CHECK(s == GVM_OK && n == 3 * rate / 2, "timestamp hole", "status %d n %lld: %s", s, (long long)n,
                       gvm_error_message())) {
            double r[3];
            for (int k = 0; k < 3; k++) {
                double acc = 0;
                int64_t from = (int64_t)((0.05 + 0.5 * k) * rate), to = (int64_t)((0.45 + 0.5 * k) * rate);
                for (int64_t i = from; i < to; i++) acc += (double)x[i] * x[i];
                r[k] = sqrt(acc / (double)(to - from));
            }
            TEST_CHECK(fabs(r[0] - 0.3536) < 0.01 && r[1] < 0.001 && fabs(r[2] - 0.3536) < 0.01, "timestamp hole",
                       "RMS before / in / after the hole: %.4f %.4f %.4f", r[0], r[1], r[2]);
            double back = (double)onset(x + rate / 2 + rate / 4, n - rate / 2 - rate / 4, 0.1f) / rate + 0.75;
            TEST_CHECK(fabs(back - 1.0) < 0.001, "timestamp hole", "tone back at %.5f s, want 1.0", back);
        }
        free(x);
    }
    // A video whose audio starts 0.5 s after its picture: the onset moves to 2.5 s of the file.
    snprintf(args, sizeof args, "-f lavfi -i testsrc2=size=160x120:rate=10:d=5 -itsoffset 0.5 %s -map 0:v -map 1:a "
             "-c:v ffv1 -c:a flac", burst);
    if (TEST_CHECK(ffmpeg("late_audio.mkv", args), "late audio clip", "ffmpeg failed")) {
        check_onset("onset of a late track from 1 s", "late_audio.mkv", 1.0, 1.5, 0.002);
        check_onset("onset of a late track from 1.5 s", "late_audio.mkv", 1.5, 1.0, 0.002);
        float *x = NULL;
        int64_t n = 0;
        gvm_status s = gvm_audio_read(tmp_path("late_audio.mkv"), rate, 0, 1, &x, &n);
        bool silent = s == GVM_OK && n == rate;
        for (int64_t i = 0; silent && i < n; i++) silent = x[i] == 0.0f;
        TEST_CHECK(silent, "late track: silence before it", "status %d n %lld", s, (long long)n);
        free(x);
    }
}


// ---- WAV ----------------------------------------------------------------------------------------------------------------
static void test_wav(void) {
    const int rate = 32000, n = 48000;  // 1.5 s
    float *x = malloc(n * sizeof(float));
    for (int i = 0; i < n; i++) x[i] = (float)(0.7 * sin(2 * M_PI * 523.25 * i / rate));
    x[10] = 1.5f;   // clamped to 1
    x[11] = -1.5f;  // clamped to -1
    const char *path = tmp_path("written.wav");
    gvm_status s = gvm_wav_write(path, x, n, rate);
    if (TEST_CHECK(s == GVM_OK, "wav write", "%s", gvm_error_message())) {
        float *y = NULL;
        int64_t m = 0;
        int r = 0;
        s = gvm_wav_read(path, &y, &m, &r);
        if (TEST_CHECK(s == GVM_OK && m == n && r == rate, "wav round trip size", "status %d n %lld rate %d", s,
                       (long long)m, r)) {
            double worst = 0;
            for (int i = 0; i < n; i++) {
                float want = x[i] > 1 ? 1 : x[i] < -1 ? -1 : x[i];
                worst = fmax(worst, fabs(y[i] - want));
            }
            // Written as x * 32767, read as v / 32768 (FFmpeg's convention): half a step plus x / 32768.
            TEST_CHECK(worst <= 1.5 / 32768 + 1e-7, "wav round trip values", "worst error %g", worst);
        }
        free(y);
        // ffprobe's view of the file.
        TEST_CHECK(probe_value(path, "a:0", "stream=sample_rate") == rate, "ffprobe: wav rate", "ffprobe disagrees");
        TEST_CHECK(probe_value(path, "a:0", "stream=channels") == 1, "ffprobe: wav channels", "ffprobe disagrees");
        TEST_CHECK(probe_value(path, "a:0", "stream=duration_ts") == n, "ffprobe: wav length", "%g samples",
                   probe_value(path, "a:0", "stream=duration_ts"));
        char codec[64];
        capture(codec, sizeof codec, "ffprobe -v error -show_entries stream=codec_name -of default=nw=1:nk=1 '%s'", path);
        TEST_CHECK(!strcmp(codec, "pcm_s16le"), "ffprobe: wav codec", "'%s'", codec);
        // FFmpeg's decoder reads the same samples.
        int64_t m2 = 0;
        s = gvm_audio_read(path, rate, 0, 0, &y, &m2);
        if (TEST_CHECK(s == GVM_OK && m2 == n, "wav via FFmpeg", "status %d n %lld", s, (long long)m2)) {
            double worst = 0;
            for (int i = 0; i < n; i++) worst = fmax(worst, fabs(y[i] - fminf(fmaxf(x[i], -1), 1)));
            TEST_CHECK(worst <= 1.5 / 32768 + 1e-7, "wav via FFmpeg values", "worst error %g", worst);
        }
        free(y);
    }
    free(x);
    // Other flavours that ffmpeg writes, read by gvm_wav_read and by FFmpeg alike.
    static const char *codecs[] = {"pcm_u8", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_f64le"};
    for (size_t i = 0; i < sizeof codecs / sizeof codecs[0]; i++) {
        char name[64], file[64], args[256];
        snprintf(file, sizeof file, "flavour_%s.wav", codecs[i]);
        snprintf(name, sizeof name, "wav flavour %s", codecs[i]);
        snprintf(args, sizeof args, "-f lavfi -i sine=frequency=300:sample_rate=16000:duration=1 -ac 2 -c:a %s",
                 codecs[i]);
        if (!TEST_CHECK(ffmpeg(file, args), name, "ffmpeg failed")) continue;
        float *a = NULL, *b = NULL;
        int64_t na = 0, nb = 0;
        int r = 0;
        gvm_status s1 = gvm_wav_read(tmp_path(file), &a, &na, &r);
        gvm_status s2 = gvm_audio_read(tmp_path(file), 16000, 0, 0, &b, &nb);
        if (TEST_CHECK(s1 == GVM_OK && s2 == GVM_OK && r == 16000 && na == 16000 && nb == na, name,
                       "status %d/%d rate %d n %lld/%lld: %s", s1, s2, r, (long long)na, (long long)nb,
                       gvm_error_message())) {
            double worst = 0;
            for (int64_t j = 0; j < na; j++) worst = fmax(worst, fabs(a[j] - b[j]));
            TEST_CHECK(worst < 1e-4, name, "gvm_wav_read and FFmpeg differ by %g", worst);
            // -ac 2 upmixes the 1/8 sine at 1/sqrt(2) per side; the mean of the two sides keeps that.
            double amp = tone_amplitude(a, 0, na, 300, 16000);
            TEST_CHECK(fabs(amp - 0.125 * M_SQRT1_2) < 0.005, name, "amplitude %g", amp);
        }
        free(a);
        free(b);
    }
    // Errors.
    float *y = NULL;
    int64_t m = 0;
    int r = 0;
    s = gvm_wav_read(tmp_path("no_such.wav"), &y, &m, &r);
    TEST_CHECK(s == GVM_ERR_IO && contains(gvm_error_message(), "no_such.wav"), "wav read missing", "%d %s", s,
               gvm_error_message());
    sh("printf 'RIFF\\044\\0\\0\\0WAVEfmt ' > '%s'", tmp_path("cut.wav"));
    s = gvm_wav_read(tmp_path("cut.wav"), &y, &m, &r);
    TEST_CHECK(s == GVM_ERR_FORMAT && contains(gvm_error_message(), "cut.wav"), "wav read truncated header", "%d %s",
               s, gvm_error_message());
    sh("ffmpeg -nostdin -loglevel error -y -f lavfi -i sine=duration=0.2 -c:a adpcm_ms '%s'", tmp_path("adpcm.wav"));
    s = gvm_wav_read(tmp_path("adpcm.wav"), &y, &m, &r);
    TEST_CHECK(s == GVM_ERR_FORMAT && contains(gvm_error_message(), "gvm_audio_read"), "wav read adpcm", "%d %s", s,
               gvm_error_message());
    float one = 0.5f;
    s = gvm_wav_write(tmp_path("no_such_dir/out.wav"), &one, 1, rate);
    TEST_CHECK(s == GVM_ERR_IO && contains(gvm_error_message(), "out.wav"), "wav write into a missing folder", "%d %s",
               s, gvm_error_message());
}


// ---- mux ------------------------------------------------------------------------------------------------------------------
// MD5 of the first video stream's packets (ffmpeg's hash muxer), or of its decoded frames when `decoded`.
static const char *video_hash(const char *path, bool decoded, char *buf, size_t size) {
    if (decoded)
        return capture(buf, size, "ffmpeg -nostdin -v error -i '%s' -map 0:v:0 -fps_mode passthrough -f md5 -", path);
    return capture(buf, size, "ffmpeg -nostdin -v error -i '%s' -map 0:v:0 -c copy -f hash -hash md5 -", path);
}

// Mux music.wav (wav_s seconds of a 660 Hz tone at 0.5) into `video`. Packets of the video must hash equal
// when the container keeps the bitstream's framing (`same_framing`: not so from MPEG-TS's Annex B to MP4's
// length prefixes), decoded frames always.
static void check_mux(const char *name, const char *video, const char *out, double wav_s, bool same_framing) {
    gvm_status s = gvm_media_mux_audio(tmp_path(video), tmp_path("music.wav"), tmp_path(out));
    if (!TEST_CHECK(s == GVM_OK, name, "%s", gvm_error_message())) return;
    const char *o = tmp_path(out);
    char h_in[128], h_out[128], buf[512];
    if (same_framing) {
        video_hash(tmp_path(video), false, h_in, sizeof h_in);
        video_hash(o, false, h_out, sizeof h_out);
        TEST_CHECK(h_in[0] && !strcmp(h_in, h_out), name, "video packets differ: %s vs %s", h_in, h_out);
    }
    video_hash(tmp_path(video), true, h_in, sizeof h_in);
    video_hash(o, true, h_out, sizeof h_out);
    TEST_CHECK(h_in[0] && !strcmp(h_in, h_out), name, "decoded video differs: %s vs %s", h_in, h_out);
    double frames_in = probe_value(tmp_path(video), "v:0", "stream=nb_read_packets");
    double frames_out = probe_value(o, "v:0", "stream=nb_read_packets");
    TEST_CHECK(frames_in > 0 && frames_in == frames_out, name, "video frames %g -> %g", frames_in, frames_out);
    capture(buf, sizeof buf, "ffprobe -v error -show_entries stream=codec_type,codec_name -of csv=p=0 '%s' | tr '\\n' ' '",
            o);
    TEST_CHECK(!strcmp(buf, "h264,video aac,audio"), name, "streams: '%s'", buf);
    TEST_CHECK(probe_value(o, "a:0", "stream=sample_rate") == 32000 && probe_value(o, "a:0", "stream=channels") == 1,
               name, "audio rate/channels differ");
    // The music's length as ffmpeg decodes it: the WAV's, plus at most the AAC encoder's 1024-sample delay and
    // the last frame's padding where the container cannot say to trim them (MP4 can, with an edit list).
    capture(buf, sizeof buf, "ffmpeg -nostdin -v error -i '%s' -map 0:a:0 -ac 1 -ar 32000 -f s16le - | wc -c", o);
    double ff_n = atof(buf) / 2, wav_n = wav_s * 32000;
    TEST_CHECK(ff_n >= wav_n - 32 && ff_n <= wav_n + 2048, name, "ffmpeg decodes %g samples, the WAV has %g", ff_n,
               wav_n);
    if (strstr(out, ".mp4")) {
        double dur = probe_value(o, "a:0", "stream=duration");
        TEST_CHECK(fabs(dur - wav_s) < 0.005, name, "audio duration %g s, want %g", dur, wav_s);
    }
    // Decoded, the music is the WAV's 660 Hz tone at 0.5, and it starts with the video's first frame.
    float *x = NULL;
    int64_t n = 0;
    s = gvm_audio_read(o, 32000, 0, 0, &x, &n);
    if (TEST_CHECK(s == GVM_OK && fabs((double)n - ff_n) <= 32, name, "decoded %lld samples, ffmpeg %g: %s",
                   (long long)n, ff_n, s ? gvm_error_message() : "")) {
        double a = tone_amplitude(x, 3200, n - 3200, 660, 32000);
        TEST_CHECK(fabs(a - 0.5) < 0.02, name, "decoded tone amplitude %g, want 0.5", a);
        double on = (double)onset(x, n, 0.1f) / 32000;
        double vstart = probe_value(o, "v:0", "stream=start_time") - probe_value(o, NULL, "format=start_time");
        TEST_CHECK(fabs(on - vstart) < 0.005, name, "music starts at %.4f s, the video at %.4f s", on, vstart);
    }
    free(x);
}

static void test_mux(void) {
    const int rate = 32000, n = 64000;  // 2 s
    float *x = malloc(n * sizeof(float));
    for (int i = 0; i < n; i++) x[i] = (float)(0.5 * sin(2 * M_PI * 660 * i / rate));
    gvm_status s = gvm_wav_write(tmp_path("music.wav"), x, n, rate);
    free(x);
    if (!TEST_CHECK(s == GVM_OK, "mux: music.wav", "%s", gvm_error_message())) return;
    // A 3 s video with its own sound (dropped), B-frames; and one without sound (no music to take from it).
    TEST_CHECK(ffmpeg("silent.mp4", "-f lavfi -i testsrc2=size=160x120:rate=10 -t 1 -c:v libx264 -preset veryfast "
                      "-pix_fmt yuv420p"), "mux: silent film", "ffmpeg failed");
    if (TEST_CHECK(ffmpeg("film.mp4", "-f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=frequency=440 -t 3 "
                          "-c:v libx264 -preset veryfast -bf 2 -pix_fmt yuv420p -c:a aac"), "mux: film", "ffmpeg failed")) {
        check_mux("mux mp4", "film.mp4", "film_music.mp4", 2.0, true);
        check_mux("mux mkv", "film.mp4", "film_music.mkv", 2.0, true);
        // Errors leave nothing behind.
        s = gvm_media_mux_audio(tmp_path("film.mp4"), tmp_path("music.wav"), tmp_path("no_such_dir/out.mp4"));
        TEST_CHECK(s == GVM_ERR_IO && contains(gvm_error_message(), "out.mp4"), "mux into a missing folder", "%d %s",
                   s, gvm_error_message());
        s = gvm_media_mux_audio(tmp_path("film.mp4"), tmp_path("music.wav"), tmp_path("out.unknownext"));
        TEST_CHECK(s == GVM_ERR_INVALID, "mux: unknown container", "%d %s", s, gvm_error_message());
        s = gvm_media_mux_audio(tmp_path("sine.wav"), tmp_path("music.wav"), tmp_path("noframes.mp4"));
        TEST_CHECK(s == GVM_ERR_NOT_FOUND && contains(gvm_error_message(), "no video stream"), "mux: no video",
                   "%d %s", s, gvm_error_message());
        s = gvm_media_mux_audio(tmp_path("film.mp4"), tmp_path("silent.mp4"), tmp_path("nomusic.mp4"));
        TEST_CHECK(s == GVM_ERR_NOT_FOUND && contains(gvm_error_message(), "no audio stream"), "mux: no music",
                   "%d %s", s, gvm_error_message());
        struct stat sb;
        TEST_CHECK(stat(tmp_path("noframes.mp4"), &sb) != 0 && stat(tmp_path("nomusic.mp4"), &sb) != 0 &&
                       stat(tmp_path("out.unknownext"), &sb) != 0,
                   "mux: failures write no file", "a file was left");
        char cmd_out[256];
        capture(cmd_out, sizeof cmd_out, "ls '%s' | grep -c '\\.tmp' || true", g_dir);
        TEST_CHECK(!strcmp(cmd_out, "0"), "mux: no temporary files left", "%s found", cmd_out);
    }
    // MPEG-TS video (clock starts near 1.4 s): the copy starts at 0, where the music starts.
    if (TEST_CHECK(ffmpeg("film.ts", "-f lavfi -i testsrc2=size=320x240:rate=25 -t 3 -c:v libx264 -preset veryfast "
                          "-bf 0 -pix_fmt yuv420p"), "mux: ts film", "ffmpeg failed")) {
        check_mux("mux from MPEG-TS", "film.ts", "film_ts_music.mp4", 2.0, false);
        double vstart = probe_value(tmp_path("film_ts_music.mp4"), "v:0", "stream=start_time");
        TEST_CHECK(fabs(vstart) < 0.05, "mux from MPEG-TS: video starts at 0", "video start %g s", vstart);
    }
}


int main(int argc, char **argv) {
    test_init(argc, argv);
    media_fixture_init("gvm_media_audio");
    test_audio();
    test_wav();
    test_mux();
    return media_fixture_finish(test_finish());
}
