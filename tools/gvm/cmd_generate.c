// cmd_generate.c: `gvm generate`: music for a video from a trained checkpoint (train/generate_video.h), with a
// progress bar (ETA) on a terminal and plain lines otherwise.
//
// Exit status: 0 written; 1 an error (nothing written); 2 a usage error.
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools/gvm/commands.h"
#include "train/generate_video.h"
#include "train/run_files.h"

static void help(FILE *out) {
    fprintf(out,
            "usage: gvm generate --checkpoint RUN_OR_CKPT --video IN [--out OUT.wav] [--mux OUT.mp4]\n"
            "                    [--seed N] [--cfg 3.0] [--top-k 250] [--top-p 0] [--temperature 1.0]\n"
            "                    [--duration S] [--overlap S] [--codec FILE] [--no-ema] [--no-normalize]\n"
            "\n"
            "Generate music for a video with a GVMGen checkpoint of gvm train. The video is sampled as gvm\n"
            "prep samples it; a video longer than the trained clip is generated in overlapping windows, each\n"
            "conditioned on its own seconds of video and continuing the previous window's music. The music is\n"
            "loudness-normalised (-14 LUFS, peak -1 dBFS) and written as a 16-bit WAV; --mux also writes the\n"
            "video with the music as its sound track (the video stream is copied, not re-encoded).\n"
            "\n"
            "options:\n"
            "      --checkpoint DIR  a run folder (its latest checkpoint) or a ckpt-<step> folder; the EMA\n"
            "                        weights are used when the checkpoint has them\n"
            "      --video FILE      the video (any format FFmpeg reads)\n"
            "      --out FILE        the WAV to write (default: the video's name with .wav)\n"
            "      --mux FILE        also write the video with the music (.mp4, .mov, .mkv)\n"
            "      --seed N          sampling seed (default 0): the same seed gives the same music\n"
            "      --cfg X           classifier-free guidance scale (default 3.0; 0: off)\n"
            "      --top-k K         sample among the K most likely codes (default 250; 0: off)\n"
            "      --top-p P         nucleus sampling mass (default 0: off)\n"
            "      --temperature T   softmax temperature (default 1.0; 0: greedy)\n"
            "      --duration S      seconds of music from the video's start (default: the whole video)\n"
            "      --overlap S       seconds each window continues from (default: a third of the clip)\n"
            "      --codec FILE      the codec (default: codec.init of the checkpoint's config)\n"
            "      --no-ema          use the raw weights, not the EMA\n"
            "      --no-normalize    write the decoder's output level as is\n"
            "  -q, --quiet           no progress\n"
            "  -h, --help            this text\n"
            "\n"
            "exit status: 0 written, 1 error (nothing written), 2 usage.\n");
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "gvm: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see gvm generate --help)\n");
    return 2;
}

typedef struct progress {
    bool tty, quiet;
    double t0, last;
} progress;

static void on_progress(void *user, int64_t step, int64_t total, int window, int windows) {
    progress *p = user;
    if (p->quiet) return;
    const double now = gvm_run_now();
    if (step < total && now - p->last < (p->tty ? 0.2 : 5.0)) return;
    p->last = now;
    const double frac = total > 0 ? (double)step / (double)total : 1.0;
    char eta[32];
    gvm_run_format_eta(eta, sizeof eta, frac > 0 ? (now - p->t0) * (1.0 - frac) / frac : 0.0);
    if (p->tty) {
        char bar[31];
        const int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r[%s] %5.1f%%  window %d/%d  step %lld/%lld  eta %s ", bar, 100 * frac, window + 1, windows,
                (long long)step, (long long)total, eta);
        if (step == total) fputc('\n', stderr);
    } else {
        fprintf(stderr, "gvm generate: %.1f%% (window %d/%d, step %lld/%lld), eta %s\n", 100 * frac, window + 1,
                windows, (long long)step, (long long)total, eta);
    }
    fflush(stderr);
}

static bool parse_double(const char *s, double *out) {
    char *end;
    *out = strtod(s, &end);
    return end != s && *end == 0 && isfinite(*out);
}

int gvm_cmd_generate(int argc, char **argv) {
    static const struct option longopts[] = {
        {"checkpoint", required_argument, NULL, 'c'}, {"video", required_argument, NULL, 'v'},
        {"out", required_argument, NULL, 'o'},        {"mux", required_argument, NULL, 'm'},
        {"seed", required_argument, NULL, 's'},       {"cfg", required_argument, NULL, 'g'},
        {"top-k", required_argument, NULL, 'k'},      {"top-p", required_argument, NULL, 'p'},
        {"temperature", required_argument, NULL, 't'}, {"duration", required_argument, NULL, 'd'},
        {"overlap", required_argument, NULL, 'O'},    {"codec", required_argument, NULL, 'C'},
        {"no-ema", no_argument, NULL, 'E'},           {"no-normalize", no_argument, NULL, 'N'},
        {"quiet", no_argument, NULL, 'q'},            {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    gvm_generate_request r = gvm_generate_request_default();
    progress p = {.tty = isatty(STDERR_FILENO) != 0};
    int c;
    double v;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': r.checkpoint = optarg; break;
        case 'v': r.video = optarg; break;
        case 'o': r.out_wav = optarg; break;
        case 'm': r.mux = optarg; break;
        case 'C': r.codec = optarg; break;
        case 'E': r.no_ema = true; break;
        case 'N': r.no_normalize = true; break;
        case 'q': p.quiet = true; break;
        case 'h': help(stdout); return 0;
        case 's': {
            char *end;
            unsigned long long s = strtoull(optarg, &end, 10);
            if (end == optarg || *end || optarg[0] == '-') return usage_error("--seed '%s' is not a whole number >= 0", optarg);
            r.seed = s;
            break;
        }
        case 'g': case 'k': case 'p': case 't': case 'd': case 'O':
            if (!parse_double(optarg, &v)) return usage_error("'%s' is not a number", optarg);
            if (c == 'g') {
                if (v < 0) return usage_error("--cfg '%s' must be >= 0 (0: no guidance)", optarg);
                r.cfg_scale = (float)v;
            }
            if (c == 'k') {
                if (v != floor(v) || v < 0) return usage_error("--top-k '%s' is not a whole number >= 0", optarg);
                r.top_k = (int)v;
            }
            if (c == 'p') r.top_p = (float)v;
            if (c == 't') r.temperature = (float)v;
            if (c == 'd') {
                if (v <= 0) return usage_error("--duration '%s' must be > 0 seconds", optarg);
                r.duration = v;
            }
            if (c == 'O') {
                if (v < 0) return usage_error("--overlap '%s' must be >= 0 seconds", optarg);
                r.overlap = v;
            }
            break;
        case ':': return usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);
    if (!r.checkpoint || !r.video) {
        help(stderr);
        return 2;
    }
    char wav[4200];
    if (!r.out_wav) {  // the video's name with .wav, in the current folder
        const char *base = strrchr(r.video, '/') ? strrchr(r.video, '/') + 1 : r.video;
        snprintf(wav, sizeof wav, "%s", base);
        char *dot = strrchr(wav, '.');
        if (dot) *dot = 0;
        strncat(wav, ".wav", sizeof wav - strlen(wav) - 1);
        r.out_wav = wav;
    }
    p.t0 = gvm_run_now();
    r.progress = on_progress;
    r.progress_user = &p;
    gvm_generate_report rep;
    gvm_status st = gvm_generate_video(&r, &rep);
    if (st != GVM_OK) {
        if (p.tty && !p.quiet) fputc('\n', stderr);
        fprintf(stderr, "gvm generate: error: %s\n", gvm_error_message());
        return 1;
    }
    char loud[64];
    if (r.no_normalize)
        snprintf(loud, sizeof loud, "not normalised");
    else
        snprintf(loud, sizeof loud, "loudness %.1f LUFS%s", rep.loudness.output_lufs,
                 rep.loudness.action == GVM_LOUDNESS_PEAK_LIMITED ? " (peak-limited at -1 dBFS)"
                 : rep.loudness.action == GVM_LOUDNESS_UNCHANGED ? " (too quiet to normalise)" : "");
    fprintf(stderr, "gvm generate: %s: %.2f s of music (%lld codec frames, %d window%s) from %s step %lld%s in "
                    "%.1f s (LM %.1f s, %.2fx realtime); %s\n",
            r.out_wav, rep.duration, (long long)rep.codec_frames, rep.windows, rep.windows == 1 ? "" : "s",
            rep.checkpoint, (long long)rep.step, rep.used_ema ? " (EMA weights)" : "", rep.total_seconds,
            rep.lm_seconds, rep.total_seconds > 0 ? rep.duration / rep.total_seconds : 0.0, loud);
    if (r.mux) fprintf(stderr, "gvm generate: wrote %s (the video with the music)\n", r.mux);
    return 0;
}
