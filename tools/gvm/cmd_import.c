// cmd_import.c: `gvm import`: convert a downloaded Hugging Face repository into the files gvm starts from
// (train/import_common.h; docs/pretrained.md): the CLIP ViT (model.vision.init), the MusicGen LM
// (model.lm.init) and EnCodec codecs (codec.init).
//
// Exit status: 0 written; 1 the import failed (a missing file or tensor, a wrong shape, an unsupported
// config: the message names it; nothing is left at the output path); 2 a usage error.
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "tools/gvm/commands.h"
#include "train/import_common.h"

static void help(FILE *out) {
    fprintf(out,
            "usage: gvm import --format FORMAT SRC_DIR --out FILE.safetensors [--codec-out FILE.safetensors]\n"
            "                  [--codec-name NAME]\n"
            "\n"
            "Convert a downloaded Hugging Face repository (config.json and model.safetensors, or shards with\n"
            "model.safetensors.index.json) into a gvm weight file. Every tensor the architecture needs must\n"
            "be there with its shape; weights are written as f32 (f16/bf16 inputs are converted).\n"
            "\n"
            "formats:\n"
            "  hf-clip-vision  CLIPModel / CLIPVisionModel (openai/clip-vit-large-patch14-336) -> the ViT\n"
            "                  (vision_model.*), for model.vision.init\n"
            "  hf-musicgen     MusicgenForConditionalGeneration (facebook/musicgen-small, -medium) or\n"
            "                  MusicgenForCausalLM -> the LM (model.decoder.*, lm_heads.*, enc_to_dec_proj.*),\n"
            "                  for model.lm.init; with --codec-out also its EnCodec as a codec file\n"
            "  hf-encodec      EncodecModel (facebook/encodec_32khz) -> a codec file, for codec.init\n"
            "\n"
            "options:\n"
            "      --format FORMAT    one of the formats above (required)\n"
            "  -o, --out FILE         the output file (required)\n"
            "      --codec-out FILE   hf-musicgen: write the repository's EnCodec there too\n"
            "      --codec-name NAME  the codec's name (default encodec_<k>khz from its sampling rate, e.g.\n"
            "                         encodec_32khz): the config's codec.name must match it\n"
            "  -q, --quiet            no summary lines\n"
            "  -h, --help             this text\n"
            "\n"
            "exit status: 0 written, 1 import failed (message names the file, tensor or config key), 2 usage.\n");
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "gvm: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see gvm import --help)\n");
    return 2;
}

int gvm_cmd_import(int argc, char **argv) {
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'}, {"out", required_argument, NULL, 'o'},
        {"codec-out", required_argument, NULL, 'c'}, {"codec-name", required_argument, NULL, 'n'},
        {"quiet", no_argument, NULL, 'q'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    const char *format = NULL, *src = NULL;
    gvm_import_opts opts = {.log = stderr};
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":o:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': format = optarg; break;
        case 'o': opts.out = optarg; break;
        case 'c': opts.codec_out = optarg; break;
        case 'n': opts.codec_name = optarg; break;
        case 'q': opts.log = NULL; break;
        case 'h': help(stdout); return 0;
        case ':': return usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    for (int i = optind; i < argc; i++) {
        if (src) return usage_error("one SRC_DIR only ('%s' is extra)", argv[i]);
        src = argv[i];
    }
    if (!format || !src || !opts.out) {
        help(stderr);
        return 2;
    }
    gvm_status (*run)(const char *, const gvm_import_opts *) = NULL;
    if (strcmp(format, "hf-clip-vision") == 0) run = gvm_import_clip_vision;
    else if (strcmp(format, "hf-musicgen") == 0) run = gvm_import_musicgen;
    else if (strcmp(format, "hf-encodec") == 0) run = gvm_import_encodec;
    else return usage_error("unknown --format '%s' (hf-clip-vision, hf-musicgen, hf-encodec)", format);
    if (opts.codec_out && run != gvm_import_musicgen)
        return usage_error("--codec-out is for --format hf-musicgen (%s writes a single file)", format);
    if (run(src, &opts) != GVM_OK) {
        fprintf(stderr, "gvm import: error: %s\n", gvm_error_message());
        return 1;
    }
    return 0;
}
