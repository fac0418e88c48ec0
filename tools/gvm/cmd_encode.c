// cmd_encode.c: `gvm encode`: fill the codes of dataset shards with a codec (train/encode_shards.h).
//
// Exit status: 0 every clip has codes; 3 some shards or clips failed (each reported; the rest were encoded);
// 1 nothing could be done (no codec, no shard); 2 a usage or config error.
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/gvm/commands.h"
#include "train/config.h"
#include "train/encode_shards.h"

static void help(FILE *out) {
    fprintf(out,
            "usage: gvm encode CONFIG [KEY=VALUE ...] [--codec FILE] [--force] [SHARD.h5 ...]\n"
            "\n"
            "Encode the audio of every clip of the dataset shards with a codec and store the codes in the\n"
            "shards (the codes slot of docs/dataset-format.md), so gvm train trains on them. The codec is\n"
            "the file codec.init names (gvm train-codec's codec.safetensors, or gvm import's); the shards are\n"
            "every data.dir/*.h5 unless listed. Clips that already have this codec's codes are skipped.\n"
            "The config's codec.name must be the codec file's name (gvm train checks the codes by it).\n"
            "\n"
            "options:\n"
            "      --codec FILE   the codec file (default: codec.init of the config)\n"
            "      --force        re-encode clips that already have this codec's codes\n"
            "  -q, --quiet        no per-shard lines\n"
            "  -h, --help         this text\n"
            "\n"
            "exit status: 0 all encoded, 3 some shards or clips failed (reported; the rest are done),\n"
            "1 nothing could be done, 2 usage or config error.\n");
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "gvm: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see gvm encode --help)\n");
    return 2;
}

int gvm_cmd_encode(int argc, char **argv) {
    static const struct option longopts[] = {
        {"codec", required_argument, NULL, 'c'}, {"force", no_argument, NULL, 'f'},
        {"quiet", no_argument, NULL, 'q'},       {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *codec_path = NULL;
    bool force = false, quiet = false;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': codec_path = optarg; break;
        case 'f': force = true; break;
        case 'q': quiet = true; break;
        case 'h': help(stdout); return 0;
        case ':': return usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    const char *config_path = NULL;
    const char **overrides = calloc((size_t)argc + 1, sizeof *overrides);
    const char **shards = calloc((size_t)argc + 1, sizeof *shards);
    int n_over = 0, n_shards = 0;
    for (int i = optind; i < argc; i++) {
        if (strchr(argv[i], '='))
            overrides[n_over++] = argv[i];
        else if (!config_path)
            config_path = argv[i];
        else
            shards[n_shards++] = argv[i];
    }
    int rc = 0;
    gvm_config *cfg = malloc(sizeof *cfg);
    glob_t g = {0};
    bool globbed = false;
    gvm_codec codec;
    bool codec_ready = false;
    if (!config_path) {
        help(stderr);
        rc = 2;
        goto out;
    }
    if (gvm_config_load(cfg, config_path, n_over, overrides) != GVM_OK) {
        fprintf(stderr, "gvm encode: error: %s\n", gvm_error_message());
        rc = 2;
        goto out;
    }
    if (!codec_path) codec_path = cfg->codec.init;
    if (!codec_path[0]) {
        fprintf(stderr, "gvm encode: error: no codec: set codec.init in %s (or pass --codec FILE): train one with "
                        "gvm train-codec, or import EnCodec with gvm import\n", config_path);
        rc = 2;
        goto out;
    }
    if (gvm_codec_load(codec_path, &codec) != GVM_OK) {
        fprintf(stderr, "gvm encode: error: %s\n", gvm_error_message());
        rc = 1;
        goto out;
    }
    codec_ready = true;
    if (strcmp(codec.name, cfg->codec.name) != 0 || codec.model.cfg.num_quantizers < cfg->codec.codebooks ||
        codec.model.cfg.codebook_size != cfg->codec.card) {
        fprintf(stderr, "gvm encode: error: the codec file %s is '%s' (%lld codebooks of %lld) but the config says "
                        "codec.name '%s', %d codebooks of %d: make the config's codec.* keys describe this codec\n",
                codec_path, codec.name, (long long)codec.model.cfg.num_quantizers,
                (long long)codec.model.cfg.codebook_size, cfg->codec.name, cfg->codec.codebooks, cfg->codec.card);
        rc = 2;
        goto out;
    }
    if (n_shards == 0) {
        char pattern[GVM_CONFIG_STR_MAX + 16];
        snprintf(pattern, sizeof pattern, "%s/*.h5", cfg->data.dir);
        globbed = true;
        if (glob(pattern, 0, NULL, &g) != 0 || g.gl_pathc == 0) {
            fprintf(stderr, "gvm encode: error: no shards in %s (data.dir): build them with gvm prep\n", cfg->data.dir);
            rc = 1;
            goto out;
        }
        for (size_t i = 0; i < g.gl_pathc; i++) shards[n_shards++] = g.gl_pathv[i];
    }
    gvm_encode_stats s;
    gvm_status st = gvm_encode_shards(&codec, shards, n_shards, force, quiet ? NULL : stderr, &s);
    fprintf(stderr, "gvm encode: %lld clips in %lld shards: %lld encoded (%.0f s of audio in %.1f s, %.0fx realtime), "
                    "%lld already encoded, %lld failed\n", (long long)s.clips, (long long)s.shards, (long long)s.encoded,
            s.audio_seconds, s.seconds, s.seconds > 0 ? s.audio_seconds / s.seconds : 0.0, (long long)s.skipped,
            (long long)s.failed);
    if (st != GVM_OK) rc = s.encoded + s.skipped > 0 ? 3 : 1;
out:
    if (codec_ready) gvm_codec_free(&codec);
    if (globbed) globfree(&g);
    free(cfg);
    free(overrides);
    free(shards);
    return rc;
}
