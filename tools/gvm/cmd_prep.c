// cmd_prep.c: `gvm prep`: the command line of the dataset builder. It parses options, installs the
// SIGINT/SIGTERM handlers that ask the run to stop, calls gvm_prep_run (data/prep.h) and turns the outcome
// into the summary and the exit status. docs/prep.md is the reference.
//
// Exit status: 0 every source written (or nothing left to do), 3 the run finished but some sources failed
// (listed), 1 an error stopped the run, 2 a usage error (a bad option, or options or a source's split that
// differ from the run being resumed), 128 + signal (130 SIGINT, 143 SIGTERM) when interrupted.
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/prep.h"
#include "tools/gvm/commands.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    if (g_stop) _exit(128 + sig);  // a second signal: quit at once (committed shards are safe on disk)
    g_stop = sig;
    static const char msg[] = "\ngvm prep: stopping after the files being decoded (signal again to quit at once)\n";
    ssize_t rc = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)rc;
}

static void help(FILE *out) {
    fprintf(out,
            "usage: gvm prep --input DIR|MANIFEST --out OUT_DIR [options]\n"
            "\n"
            "Cut videos into clips (frames + music) and write HDF5 dataset shards, split into train and\n"
            "eval by source file. Re-running the same command resumes an interrupted run.\n"
            "\n"
            "input and output:\n"
            "  -i, --input PATH          a folder (searched recursively for video files) or a manifest:\n"
            "                            .csv with a header video,music,style,split, or .jsonl with one\n"
            "                            {\"video\": ..., \"music\": ..., \"style\": ..., \"split\": ...}\n"
            "                            per line (all but video optional; paths relative to the\n"
            "                            manifest; split: train or eval, empty for the hash rule)\n"
            "  -o, --out DIR             output folder: train-00000.h5 ..., eval-00000.h5 ...,\n"
            "                            and the journal " GVM_PREP_STATE_FILE "\n"
            "clips:\n"
            "      --clip-seconds S      clip length (default 30)\n"
            "      --hop-seconds S       start of clip k is k * S (default: the clip length)\n"
            "      --min-clip-seconds S  drop a last clip shorter than S (default: clip length / 2)\n"
            "      --fps F               video frames per second sampled (default 1)\n"
            "      --size N              frames are N x N: shorter side resized, centre crop (default 336)\n"
            "      --sample-rate HZ      mono audio rate (default 32000)\n"
            "      --style TAG           style tag of sources whose manifest gives none (default none)\n"
            "shards:\n"
            "      --shard-mb MB         close a shard once its clips pass MB MiB (default 1024)\n"
            "      --eval-fraction F     share of source files in the eval split (default 0.1), by a\n"
            "                            hash of each name; a manifest's split column overrides it\n"
            "run:\n"
            "  -j, --threads N           decoding threads (default 0: one per available CPU)\n"
            "      --max-memory-mb MB    decoded media held waiting to be written (default 2048)\n"
            "      --force               start over when the output folder cannot be resumed (other\n"
            "                            options, changed splits, a damaged journal): deletes its shards\n"
            "  -q, --quiet               no progress display and no per-file lines\n"
            "      --progress MODE       auto (bar on a terminal, lines otherwise), bar or lines\n"
            "  -h, --help                this text\n"
            "\n"
            "exit status: 0 all sources written, 3 some sources failed (listed), 1 error, 2 usage,\n"
            "130/143 interrupted by SIGINT/SIGTERM (re-run the same command to resume).\n"
            "Reference: docs/prep.md\n");
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "gvm: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see gvm prep --help)\n");
    return 2;
}

// A number option: the whole text must be a finite number.
static bool parse_number(const char *name, const char *text, double *out) {
    char *end = NULL;
    double v = strtod(text, &end);
    if (!text[0] || *end || !isfinite(v)) {
        fprintf(stderr, "gvm: error: --%s '%s' is not a number (see gvm prep --help)\n", name, text);
        return false;
    }
    *out = v;
    return true;
}

// Options whose 0 would mean "the default" in gvm_prep_options: a 0 typed by hand is a mistake.
static bool parse_positive(const char *name, const char *text, double *out) {
    if (!parse_number(name, text, out)) return false;
    if (*out > 0) return true;
    fprintf(stderr, "gvm: error: --%s must be positive, not %s (see gvm prep --help)\n", name, text);
    return false;
}

static bool parse_int(const char *name, const char *text, int *out) {
    double v;
    if (!parse_number(name, text, &v)) return false;
    if (v != floor(v) || v < -1e9 || v > 1e9) {
        fprintf(stderr, "gvm: error: --%s '%s' is not a whole number (see gvm prep --help)\n", name, text);
        return false;
    }
    *out = (int)v;
    return true;
}

// The command again, quoted for a shell, to say how to resume.
static void print_command(FILE *out, int argc, char **argv) {
    fprintf(out, "  gvm");
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool plain = a[0] != '\0';
        for (const char *p = a; *p; p++)
            plain &= (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                     strchr("-_./=:,+@%", *p) != NULL;
        if (plain) {
            fprintf(out, " %s", a);
            continue;
        }
        fputs(" '", out);
        for (const char *p = a; *p; p++) {
            if (*p == '\'') fputs("'\\''", out);
            else fputc(*p, out);
        }
        fputc('\'', out);
    }
    fputc('\n', out);
}

enum {
    OPT_CLIP = 1000, OPT_HOP, OPT_MIN_CLIP, OPT_FPS, OPT_SIZE, OPT_RATE, OPT_STYLE, OPT_SHARD_MB, OPT_EVAL,
    OPT_MEMORY, OPT_FORCE, OPT_PROGRESS,
};

int gvm_cmd_prep(int argc, char **argv) {
    static const struct option longopts[] = {
        {"input", required_argument, NULL, 'i'},
        {"out", required_argument, NULL, 'o'},
        {"clip-seconds", required_argument, NULL, OPT_CLIP},
        {"hop-seconds", required_argument, NULL, OPT_HOP},
        {"min-clip-seconds", required_argument, NULL, OPT_MIN_CLIP},
        {"fps", required_argument, NULL, OPT_FPS},
        {"size", required_argument, NULL, OPT_SIZE},
        {"sample-rate", required_argument, NULL, OPT_RATE},
        {"style", required_argument, NULL, OPT_STYLE},
        {"shard-mb", required_argument, NULL, OPT_SHARD_MB},
        {"eval-fraction", required_argument, NULL, OPT_EVAL},
        {"threads", required_argument, NULL, 'j'},
        {"max-memory-mb", required_argument, NULL, OPT_MEMORY},
        {"force", no_argument, NULL, OPT_FORCE},
        {"quiet", no_argument, NULL, 'q'},
        {"progress", required_argument, NULL, OPT_PROGRESS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    gvm_prep_options o;
    gvm_prep_options_default(&o);
    double hop = 0, min_clip = 0;
    bool ok = true;
    opterr = 0;  // our own messages
    optind = 1;
    int c;
    while (ok && (c = getopt_long(argc, argv, ":i:o:j:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'i': o.input = optarg; break;
        case 'o': o.out_dir = optarg; break;
        case OPT_CLIP: ok = parse_number("clip-seconds", optarg, &o.clip_seconds); break;
        case OPT_HOP: ok = parse_positive("hop-seconds", optarg, &hop); break;
        case OPT_MIN_CLIP: ok = parse_positive("min-clip-seconds", optarg, &min_clip); break;
        case OPT_FPS: ok = parse_number("fps", optarg, &o.fps); break;
        case OPT_SIZE: ok = parse_int("size", optarg, &o.size); break;
        case OPT_RATE: ok = parse_int("sample-rate", optarg, &o.sample_rate); break;
        case OPT_STYLE: o.style = optarg; break;
        case OPT_SHARD_MB: ok = parse_number("shard-mb", optarg, &o.shard_mb); break;
        case OPT_EVAL: ok = parse_number("eval-fraction", optarg, &o.eval_fraction); break;
        case 'j': ok = parse_int("threads", optarg, &o.threads); break;
        case OPT_MEMORY: ok = parse_positive("max-memory-mb", optarg, &o.max_memory_mb); break;
        case OPT_FORCE: o.force = true; break;
        case 'q': o.quiet = true; break;
        case OPT_PROGRESS:
            if (strcmp(optarg, "auto") == 0) o.progress = 0;
            else if (strcmp(optarg, "bar") == 0) o.progress = 1;
            else if (strcmp(optarg, "lines") == 0) o.progress = 2;
            else return usage_error("--progress '%s' (want auto, bar or lines)", optarg);
            break;
        case 'h': help(stdout); return 0;
        case ':': return usage_error("%s needs a value", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (!ok) return 2;
    if (optind < argc) return usage_error("unexpected argument '%s' (options take the form --name value)", argv[optind]);
    if (!o.input) return usage_error("%s", "--input is required (a folder of videos, or a manifest .csv/.jsonl)");
    if (!o.out_dir) return usage_error("%s", "--out is required (the folder for the shards)");
    o.hop_seconds = hop;
    o.min_clip_seconds = min_clip;
    o.stop = &g_stop;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;  // FFmpeg's and HDF5's reads must not see EINTR
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    gvm_prep_summary sum;
    gvm_status st = gvm_prep_run(&o, &sum);
    int rc;
    if (st != GVM_OK) {
        fprintf(stderr, "gvm: error: %s\n", gvm_error_message());
        rc = st == GVM_ERR_INVALID ? 2 : 1;
        if (sum.shards[0] + sum.shards[1] > 0)
            fprintf(stderr, "gvm prep: the %lld shards committed before the error are kept; fix the cause and run the "
                    "same command again to resume\n", (long long)(sum.shards[0] + sum.shards[1]));
    } else {
        gvm_prep_summary_print(&sum, &o, stdout);
        fflush(stdout);
        if (sum.interrupted) {
            fprintf(stderr, "gvm prep: interrupted; committed shards are kept. To resume, run the same command again:\n");
            print_command(stderr, argc, argv);
            rc = 128 + sum.interrupted;
        } else {
            rc = sum.sources_failed > 0 ? 3 : 0;
        }
    }
    gvm_prep_summary_free(&sum);
    return rc;
}
