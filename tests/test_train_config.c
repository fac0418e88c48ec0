// test_train_config.c: the config system (train/config.h): the shipped configs load, defaults fill what a
// file leaves out, overrides of every type, every error kind with its message (file:line, key, suggestion),
// YAML write -> load round trips, JSON, garbage YAML never crashes, and docs/config.md matches the schema.
//
// `test_train_config --markdown` prints the generated key table (paste it between the markers of
// docs/config.md).
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"
#include "train/config.h"

static char g_root[1024];  // the source tree (three levels above the golden folder)

static void root_path(char *out, size_t cap, const char *rel) { snprintf(out, cap, "%s/%s", g_root, rel); }

// Apply `yaml` (as file "t.yaml") onto defaults, then validate; returns the status.
static gvm_status load_text(gvm_config *cfg, const char *yaml) {
    gvm_config_default(cfg);
    gvm_status st = gvm_config_apply_string(cfg, yaml, strlen(yaml), "t.yaml");
    return st != GVM_OK ? st : gvm_config_validate(cfg);
}

// The load fails and the message contains every one of the NULL-terminated strings.
static void expect_error(const char *name, const char *yaml, const char *override, ...) {
    gvm_config cfg;
    gvm_error_clear();
    gvm_status st = load_text(&cfg, yaml);
    if (st == GVM_OK && override) {
        st = gvm_config_apply_override(&cfg, override);
        if (st == GVM_OK) st = gvm_config_validate(&cfg);
    }
    if (!TEST_CHECK(st != GVM_OK, name, "loaded without an error")) return;
    const char *msg = gvm_error_message();
    va_list ap;
    va_start(ap, override);
    for (const char *want; (want = va_arg(ap, const char *));)
        TEST_CHECK(strstr(msg, want) != NULL, name, "message '%s' lacks '%s'", msg, want);
    va_end(ap);
}

static void test_shipped_configs(void) {
    const char *files[] = {"configs/demo.yaml", "configs/gvmgen-small.yaml", "configs/gvmgen-medium.yaml"};
    gvm_config cfg[3];
    for (int i = 0; i < 3; i++) {
        char path[1200];
        root_path(path, sizeof path, files[i]);
        gvm_status st = gvm_config_load(&cfg[i], path, 0, NULL);
        TEST_CHECK(st == GVM_OK, files[i], "does not load: %s", gvm_error_message());
    }
    TEST_CHECK(cfg[0].model.lm.width == 128 && cfg[0].train.device == GVM_DEVICE_CPU &&
               cfg[0].train.precision == GVM_F32 && cfg[0].data.batch_size == 4 && cfg[0].model.vision.freeze == false,
               "demo", "unexpected values");
    TEST_CHECK(cfg[1].model.lm.width == 1024 && cfg[1].model.lm.heads == 16 && cfg[1].model.lm.layers == 24 &&
               cfg[1].model.vision.width == 1024 && cfg[1].model.vision.freeze && cfg[1].model.qformer.layers == 6 &&
               cfg[1].train.precision == GVM_BF16 && cfg[1].train.device == GVM_DEVICE_CUDA &&
               cfg[1].train.betas[1] == 0.95 && cfg[1].model.qformer.ln_eps == 1e-12,
               "gvmgen-small", "unexpected values");
    TEST_CHECK(cfg[2].model.lm.width == 1536 && cfg[2].model.lm.heads == 24 && cfg[2].model.lm.layers == 48 &&
               strcmp(cfg[2].run.name, "gvmgen-medium") == 0, "gvmgen-medium", "unexpected values");
    // The schema defaults are the gvmgen-small reference, up to the weight and data paths.
    gvm_config def;
    gvm_config_default(&def);
    strcpy(def.model.vision.init, cfg[1].model.vision.init);
    strcpy(def.model.lm.init, cfg[1].model.lm.init);
    strcpy(def.codec.init, cfg[1].codec.init);
    strcpy(def.data.dir, cfg[1].data.dir);
    def.data.workers = cfg[1].data.workers, def.data.prefetch = cfg[1].data.prefetch;
    TEST_CHECK(gvm_config_equal(&def, &cfg[1]), "defaults=small", "the defaults differ from gvmgen-small.yaml");
    TEST_CHECK(gvm_config_validate(&def) == GVM_OK, "defaults valid", "%s", gvm_error_message());
}

static void test_defaults_fill(void) {
    gvm_config cfg, def;
    gvm_config_default(&def);
    gvm_status st = load_text(&cfg, "# only two keys\ntrain:\n  lr: 0.002\nmodel:\n  lm: {layers: 3}\n");
    TEST_CHECK(st == GVM_OK, "fill", "%s", gvm_error_message());
    TEST_CHECK(cfg.train.lr == 0.002 && cfg.model.lm.layers == 3, "fill set", "keys not set");
    TEST_CHECK(cfg.model.lm.width == 1024 && cfg.train.betas[0] == 0.9 && cfg.train.schedule == GVM_SCHEDULE_COSINE &&
               cfg.model.lm.num_delays == 4 && cfg.model.lm.delays[3] == 3 && strcmp(cfg.codec.name, "encodec_32khz") == 0,
               "fill defaults", "defaults not filled");
    cfg.train.lr = def.train.lr, cfg.model.lm.layers = def.model.lm.layers;
    TEST_CHECK(gvm_config_equal(&cfg, &def), "fill rest", "other keys changed");
    // Empty documents and empty sections apply nothing.
    TEST_CHECK(load_text(&cfg, "") == GVM_OK && gvm_config_equal(&cfg, &def), "empty file", "%s", gvm_error_message());
    TEST_CHECK(load_text(&cfg, "train:\nrun:\n") == GVM_OK && gvm_config_equal(&cfg, &def), "empty sections", "%s",
               gvm_error_message());
    // Dotted keys inside a file mean the same as nesting.
    TEST_CHECK(load_text(&cfg, "train.steps: 777\nmodel:\n  lm.width: 512\n") == GVM_OK && cfg.train.steps == 777 &&
               cfg.model.lm.width == 512, "dotted keys", "%s", gvm_error_message());
}

static void test_overrides(void) {
    gvm_config cfg;
    const char *ov[] = {
        "model.lm.width=512",              // int
        "train.seed=9007199254740991",     // int64
        "train.lr=3e-4",                   // float
        "train.weight_decay = 0",          // spaces, float from an int text
        "model.vision.freeze=no",          // bool
        "run.name=my run",                 // string with a space
        "data.dir=\"/tmp/a: b # c\"",     // quoted string with YAML specials
        "train.schedule=constant",         // enum
        "train.device=cpu",
        "train.precision=f32",
        "model.lm.delays=[0, 2]",          // int list
        "model.lm.codebooks=2",
        "train.betas=[0.8, 0.99]",         // float list
        "train={steps: 50, warmup_steps: 5}",  // a section as a flow mapping
    };
    gvm_status st = gvm_config_load(&cfg, NULL, (int)(sizeof ov / sizeof ov[0]), ov);
    TEST_CHECK(st == GVM_OK, "overrides", "%s", gvm_error_message());
    TEST_CHECK(cfg.model.lm.width == 512, "ov int", "%d", cfg.model.lm.width);
    TEST_CHECK(cfg.train.seed == 9007199254740991LL, "ov int64", "%lld", (long long)cfg.train.seed);
    TEST_CHECK(cfg.train.lr == 3e-4 && cfg.train.weight_decay == 0, "ov float", "%g", cfg.train.lr);
    TEST_CHECK(!cfg.model.vision.freeze, "ov bool", "still true");
    TEST_CHECK(strcmp(cfg.run.name, "my run") == 0, "ov string", "'%s'", cfg.run.name);
    TEST_CHECK(strcmp(cfg.data.dir, "/tmp/a: b # c") == 0, "ov quoted", "'%s'", cfg.data.dir);
    TEST_CHECK(cfg.train.schedule == GVM_SCHEDULE_CONSTANT && cfg.train.device == GVM_DEVICE_CPU &&
               cfg.train.precision == GVM_F32, "ov enum", "not set");
    TEST_CHECK(cfg.model.lm.num_delays == 2 && cfg.model.lm.delays[1] == 2, "ov int list", "n %d", cfg.model.lm.num_delays);
    TEST_CHECK(cfg.train.betas[0] == 0.8 && cfg.train.betas[1] == 0.99, "ov float list", "%g %g", cfg.train.betas[0],
               cfg.train.betas[1]);
    TEST_CHECK(cfg.train.steps == 50 && cfg.train.warmup_steps == 5, "ov section", "%d", cfg.train.steps);
    // The later of two overrides of one key wins; an override beats the file.
    const char *ov2[] = {"train.steps=10", "train.steps=20", "train.warmup_steps=1"};
    char path[1200];
    root_path(path, sizeof path, "configs/demo.yaml");
    TEST_CHECK(gvm_config_load(&cfg, path, 3, ov2) == GVM_OK && cfg.train.steps == 20, "ov order", "%d", cfg.train.steps);
    // A failed list override leaves the key as it was.
    gvm_config_default(&cfg);
    TEST_CHECK(gvm_config_apply_override(&cfg, "train.betas=[0.5, fast]") != GVM_OK && cfg.train.betas[0] == 0.9,
               "ov atomic list", "betas changed to %g", cfg.train.betas[0]);
}

static void test_errors(void) {
    gvm_config cfg;
    // missing file: the path and what happened
    gvm_status st = gvm_config_load(&cfg, "/nonexistent/dir/x.yaml", 0, NULL);
    TEST_CHECK(st == GVM_ERR_IO && strstr(gvm_error_message(), "/nonexistent/dir/x.yaml: cannot open the config"),
               "missing file", "%d %s", st, gvm_error_message());
    // YAML syntax: file:line:column
    expect_error("syntax", "train:\n  lr: 1\n bad: [\n", NULL, "t.yaml:3:2: YAML syntax error: did not find expected key",
                 NULL);
    expect_error("syntax col", "train:\n  betas: [1, 2\n", NULL, "t.yaml:3:1: YAML syntax error", NULL);
    expect_error("tab", "train:\n\tlr: 1\n", NULL, "t.yaml:2:", "YAML syntax error", NULL);
    // unknown keys with a suggestion
    expect_error("unknown", "model:\n  lm:\n    widht: 5\n", NULL,
                 "t.yaml:3: unknown key 'model.lm.widht'; did you mean 'model.lm.width'?", NULL);
    expect_error("unknown top", "lr: 0.1\n", NULL, "t.yaml:1: unknown key 'lr'; did you mean 'train.lr'?", NULL);
    expect_error("unknown section", "modle:\n  lm: {width: 5}\n", NULL, "unknown key 'modle'; did you mean 'model'?",
                 NULL);
    expect_error("unknown other section", "model:\n  lm:\n    patch: 5\n", NULL,
                 "did you mean 'model.vision.patch'?", NULL);
    expect_error("unknown override", "", "train.lrr=1", "override 'train.lrr=1': unknown key 'train.lrr'; did you mean "
                 "'train.lr'?", NULL);
    // wrong types
    expect_error("type float", "train:\n  lr: fast\n", NULL, "t.yaml:2: train.lr: expected a number, got 'fast'", NULL);
    expect_error("type float ov", "", "train.lr=fast", "override 'train.lr=fast': train.lr: expected a number, got 'fast'",
                 NULL);
    expect_error("type nan", "train:\n  lr: .nan\n", NULL, "expected a number, got '.nan'", NULL);
    expect_error("type int", "train:\n  steps: 1.5\n", NULL, "train.steps: expected a whole number, got '1.5'", NULL);
    expect_error("type bool", "model:\n  vision:\n    freeze: maybe\n", NULL,
                 "t.yaml:3: model.vision.freeze: expected true or false, got 'maybe'", NULL);
    expect_error("type list", "train:\n  betas: 0.9\n", NULL, "train.betas: expected a list of numbers", NULL);
    expect_error("type list len", "train:\n  betas: [0.9]\n", NULL, "train.betas: expected a list of 2 numbers, got 1",
                 NULL);
    expect_error("type list item", "", "model.lm.delays=[0, x]", "model.lm.delays: expected a whole number, got 'x'",
                 NULL);
    expect_error("type mapping for leaf", "train:\n  lr: {a: 1}\n", NULL, "train.lr: expected a number, got a mapping",
                 NULL);
    expect_error("type list for int", "train:\n  steps: [1]\n", NULL, "train.steps: expected a whole number, got a list",
                 NULL);
    // range and enums
    expect_error("range", "train:\n  lr: -1\n", NULL, "t.yaml:2: train.lr: -1 is out of range: expected a number in (0, 10]",
                 NULL);
    expect_error("range int", "", "model.lm.layers=0", "model.lm.layers: 0 is out of range", NULL);
    expect_error("range dropout", "model:\n  qformer:\n    dropout: 1.5\n", NULL, "model.qformer.dropout: 1.5 is out of range",
                 NULL);
    expect_error("range list", "", "train.betas=[0.9, 1.0]", "train.betas: 1.0 is out of range", NULL);
    expect_error("enum", "train:\n  schedule: cos\n", NULL, "t.yaml:2: train.schedule: 'cos' is not one of: cosine, constant",
                 NULL);
    expect_error("enum precision", "", "train.precision=fp16", "'fp16' is not one of: f32, bf16, f16", NULL);
    // sections given scalars
    expect_error("section scalar", "model:\n  lm: 5\n", NULL, "t.yaml:2: 'model.lm' is a section", "not the value '5'",
                 NULL);
    expect_error("section scalar ov", "", "train=fast", "'train' is a section", NULL);
    expect_error("top scalar", "hello\n", NULL, "the top level must be a mapping", NULL);
    expect_error("section list", "train: [1, 2]\n", NULL, "'train' is a section", NULL);
    // duplicates
    expect_error("duplicate", "train:\n  lr: 1e-4\n  lr: 2e-4\n", NULL,
                 "t.yaml:3: duplicate key 'train.lr' (first given on line 2)", NULL);
    expect_error("duplicate section", "train:\n  lr: 1e-4\nrun:\n  name: a\ntrain:\n  steps: 5\n", NULL,
                 "t.yaml:5: duplicate key 'train' (first given on line 1)", NULL);
    expect_error("duplicate dotted", "train:\n  lr: 1e-4\ntrain.lr: 2e-4\n", NULL, "t.yaml:3: duplicate key 'train.lr'",
                 NULL);
    // other malformed input
    expect_error("alias", "train:\n  lr: &x 0.1\n  eps: *x\n", NULL, "aliases", NULL);
    expect_error("two docs", "train:\n  lr: 0.1\n---\nrun:\n  name: x\n", NULL, "second", NULL);
    expect_error("no equals", "", "train.lr", "expected key=value", NULL);
    expect_error("empty value", "", "train.lr=", "override 'train.lr=': no value", NULL);
    expect_error("empty quoted", "", "train.lr=''", "train.lr: expected a number, got ''", NULL);
    expect_error("nul", "run:\n  name: \"a\\0b\"\n", NULL, "run.name: the value contains a NUL character", NULL);
    // checks between keys
    expect_error("heads", "", "model.lm.heads=7", "model.lm.width (1024) must be divisible by model.lm.heads (7)", NULL);
    expect_error("bf16 cpu", "", "train.device=cpu", "train.precision bf16 needs train.device=cuda", NULL);
    expect_error("delays", "", "model.lm.codebooks=2", "model.lm.delays has 4 entries but model.lm.codebooks is 2", NULL);
    expect_error("card", "model:\n  lm:\n    card: 2048\n", "codec.card=1024",
                 "model.lm.card (2048) must equal codec.card (1024)", NULL);
    expect_error("clip", "", "data.clip_seconds=2.51", "data.clip_seconds (2.51) must hold a whole number", NULL);
}

static bool round_trip(const char *name, const gvm_config *cfg) {
    char path[] = "/tmp/gvm_test_config_XXXXXX";
    int fd = mkstemp(path);
    if (!TEST_CHECK(fd >= 0, name, "mkstemp failed")) return false;
    close(fd);
    gvm_config back;
    gvm_status st = gvm_config_write_yaml(cfg, path);
    bool ok = TEST_CHECK(st == GVM_OK, name, "write: %s", gvm_error_message());
    if (ok) {
        gvm_config_default(&back);
        memset(&back.train, 0x5a, sizeof back.train);  // every key must come from the file
        st = gvm_config_apply_file(&back, path);
        ok = TEST_CHECK(st == GVM_OK, name, "reload: %s", gvm_error_message()) &&
             TEST_CHECK(gvm_config_equal(cfg, &back), name, "reloaded config differs");
    }
    unlink(path);
    return ok;
}

static void test_round_trip(void) {
    gvm_config cfg;
    gvm_config_default(&cfg);
    round_trip("rt defaults", &cfg);
    const char *files[] = {"configs/demo.yaml", "configs/gvmgen-small.yaml", "configs/gvmgen-medium.yaml",
                           "configs/smoke.yaml"};
    for (int i = 0; i < 4; i++) {
        char path[1200];
        root_path(path, sizeof path, files[i]);
        gvm_status st = gvm_config_load(&cfg, path, 0, NULL);
        TEST_CHECK(st == GVM_OK, files[i], "does not load: %s", gvm_error_message());
        if (st == GVM_OK) round_trip(files[i], &cfg);
    }
    // Awkward values: quotes, backslashes, controls, non-ASCII, YAML words, odd floats.
    gvm_config_default(&cfg);
    const char *ov[] = {
        "run.name=\"he said \\\"hi\\\"\\\\ \\t\\n\\u0085\\u0080\\u007f é 音楽 \\U0001F3B5\"",
        "run.dir='true'", "data.dir='~'", "data.train_split='0x10'", "data.eval_split=\"# not a comment\"",
        "train.lr=0.30000000000000004", "train.eps=1e-300", "train.ema_decay=0.999999", "train.seed=0",
        "model.lm.delays=[5, 0, 4095, 1]", "train.betas=[0, 0.123456789012345]", "model.qformer.ln_eps=1",
    };
    for (size_t i = 0; i < sizeof ov / sizeof ov[0]; i++)
        TEST_CHECK(gvm_config_apply_override(&cfg, ov[i]) == GVM_OK, "rt set", "%s: %s", ov[i], gvm_error_message());
    TEST_CHECK(strcmp(cfg.run.dir, "true") == 0 && strcmp(cfg.data.dir, "~") == 0, "rt quoted words", "'%s' '%s'",
               cfg.run.dir, cfg.data.dir);
    round_trip("rt awkward", &cfg);
    // Equality notices a change in any one key.
    gvm_config other = cfg;
    other.train.betas[1] = 0.1234567890123451;
    TEST_CHECK(!gvm_config_equal(&cfg, &other), "equal detects", "a changed beta compared equal");
}

static void test_json(void) {
    gvm_config cfg;
    gvm_config_default(&cfg);
    gvm_config_apply_override(&cfg, "run.name=a\"b");
    char *json = gvm_config_to_json(&cfg);
    if (!TEST_CHECK(json != NULL, "json", "NULL")) return;
    const char *want[] = {"{\"model\":{\"vision\":{\"width\":1024,", "\"lm\":{\"width\":1024,",
                          "\"delays\":[0, 1, 2, 3]", "\"cond_dim\":768}", "\"betas\":[0.9, 0.95]",
                          "\"schedule\":\"cosine\"", "\"precision\":\"bf16\"", "\"ln_eps\":1e-12",
                          "\"run\":{\"dir\":\"runs\",\"name\":\"a\\\"b\"}}"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        TEST_CHECK(strstr(json, want[i]) != NULL, "json", "lacks %s in %s", want[i], json);
    int depth = 0, min_depth = 0;
    bool in_str = false;
    for (const char *c = json; *c; c++) {
        if (in_str) {
            if (*c == '\\') c++;
            else if (*c == '"') in_str = false;
        } else if (*c == '"') in_str = true;
        else if (*c == '{') depth++;
        else if (*c == '}' && --depth < min_depth) min_depth = depth;
    }
    TEST_CHECK(depth == 0 && min_depth == 0 && !in_str && json[strlen(json) - 1] == '}', "json balanced", "%s", json);
    free(json);
}

// Garbage never crashes (run under ASan) and every failure leaves a message.
static void test_fuzz(void) {
    char path[1200];
    root_path(path, sizeof path, "configs/demo.yaml");
    FILE *f = fopen(path, "rb");
    char base[8192];
    size_t blen = f ? fread(base, 1, sizeof base - 1, f) : 0;
    if (f) fclose(f);
    base[blen] = 0;
    static const char *const tokens[] = {"model", "lm", "train", "lr", ":", " ", "\n", "  ", "-", "[", "]", "{", "}",
                                         ",", "&a", "*a", "!!str", "'", "\"", "#", "---", "...", "?", "|", ">", "1e9",
                                         "width", "0", "-1", "true", "\t", "%YAML 1.2", "\\", "é", ".", "betas"};
    uint64_t s = 0x9e3779b97f4a7c15ull;
    int ok = 0, failed = 0, silent = 0, rt_bad = 0;
    char buf[9000];
    for (int it = 0; it < 3000; it++) {
        size_t len = 0;
        int mode = it % 3;
        if (mode == 0) {  // random bytes
            len = (s >> 40) % 200;
            for (size_t i = 0; i < len; i++) s = s * 6364136223846793005ull + 1442695040888963407ull, buf[i] = (char)(s >> 56);
        } else if (mode == 1) {  // demo.yaml with a few bytes changed and maybe cut short
            memcpy(buf, base, blen);
            len = blen;
            for (int m = 0; m < 1 + it % 4; m++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                buf[(s >> 33) % (len ? len : 1)] = ":[]{}-#'\"\n &*!|\t0x"[(s >> 20) % 19];
            }
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            if (s & 1) len = (s >> 33) % (len + 1);
        } else {  // a soup of YAML tokens
            int nt = 1 + it % 60;
            for (int t = 0; t < nt; t++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                const char *tok = tokens[(s >> 33) % (sizeof tokens / sizeof tokens[0])];
                size_t tl = strlen(tok);
                memcpy(buf + len, tok, tl);
                len += tl;
            }
        }
        gvm_config cfg;
        gvm_config_default(&cfg);
        gvm_error_clear();
        gvm_status st = gvm_config_apply_string(&cfg, buf, len, "fuzz.yaml");
        if (st == GVM_OK) {
            ok++;
            // Whatever loaded (odd strings included) writes back and reloads equal.
            char *text = NULL;
            size_t tlen = 0;
            FILE *m = open_memstream(&text, &tlen);
            gvm_config_fprint_yaml(&cfg, m);
            fclose(m);
            gvm_config back;
            gvm_config_default(&back);
            bool same = gvm_config_apply_string(&back, text, tlen, "rewritten.yaml") == GVM_OK &&
                        gvm_config_equal(&cfg, &back);
            if (!same) rt_bad++;
            free(text);
        } else {
            failed++;
            if (!*gvm_error_message()) silent++;
        }
        // Overrides get the same garbage as their value.
        char ov[300];
        snprintf(ov, sizeof ov, "train.betas=%.*s", (int)(len < 200 ? len : 200), buf);
        if (!memchr(ov, 0, strlen(ov))) gvm_config_apply_override(&cfg, ov);
    }
    TEST_CHECK(rt_bad == 0, "fuzz round trip", "%d loaded configs did not write back equal", rt_bad);
    TEST_CHECK(silent == 0, "fuzz messages", "%d failures without a message", silent);
    TEST_CHECK(failed > 100 && ok > 10, "fuzz coverage", "ok %d failed %d", ok, failed);
}

// docs/config.md holds the generated table between its markers, byte for byte.
static void test_docs(void) {
    char path[1200];
    root_path(path, sizeof path, "docs/config.md");
    FILE *f = fopen(path, "rb");
    if (!TEST_CHECK(f != NULL, "docs", "cannot open %s", path)) return;
    static char doc[1 << 16];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[n] = 0;
    char *gen = NULL;
    size_t gen_len = 0;
    FILE *m = open_memstream(&gen, &gen_len);
    gvm_config_fprint_markdown(m);
    fclose(m);
    const char *begin_marker = "<!-- BEGIN GENERATED: test_train_config --markdown -->\n";
    const char *b = strstr(doc, begin_marker), *e = strstr(doc, "<!-- END GENERATED -->");
    bool ok = b && e && e > b;
    if (ok) {
        b += strlen(begin_marker);
        ok = (size_t)(e - b) == gen_len && memcmp(b, gen, gen_len) == 0;
    }
    TEST_CHECK(ok, "docs up to date", "docs/config.md's table differs from the schema: run "
               "`test_train_config --markdown` and paste its output between the markers");
    free(gen);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--markdown") == 0) {
        gvm_config_fprint_markdown(stdout);
        return 0;
    }
    test_init(argc, argv);
    snprintf(g_root, sizeof g_root, "%s/../../..", test_golden_dir());
    test_shipped_configs();
    test_defaults_fill();
    test_overrides();
    test_errors();
    test_round_trip();
    test_json();
    test_fuzz();
    test_docs();
    return test_finish();
}
