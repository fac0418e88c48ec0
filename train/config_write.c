// config_write.c: a config written back out: YAML (every key, with its doc as a comment; loads back equal,
// so a run folder's config.yaml reproduces the run), JSON for checkpoint metadata, and key-by-key equality.
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "train/config.h"

// A growing text buffer (open_memstream is POSIX, but this keeps the writer plain C11).
typedef struct text {
    char *buf;
    size_t len, cap;
    bool failed;
} text;

static void put(text *t, const char *s, size_t n) {
    if (t->failed) return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 1024;
        while (cap < t->len + n + 1) cap *= 2;
        char *grown = realloc(t->buf, cap);
        if (!grown) {
            t->failed = true;
            return;
        }
        t->buf = grown, t->cap = cap;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = 0;
}
static void puts_(text *t, const char *s) { put(t, s, strlen(s)); }

// Shortest %g form that reads back to the same double, so 0.999 is written as 0.999.
static void put_double(text *t, double v) {
    char buf[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, v);
        if (strtod(buf, NULL) == v) break;
    }
    puts_(t, buf);
}

// A double-quoted string valid in both YAML and JSON. Characters libyaml will not read raw (controls,
// DEL, C1 controls, U+FEFF) are written as \uXXXX; the input is valid UTF-8 (libyaml checked it).
static void put_quoted(text *t, const char *s) {
    puts_(t, "\"");
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        unsigned cp = *u;
        int n = 1;
        if (cp >= 0xC0 && cp < 0xE0 && u[1]) cp = ((cp & 0x1F) << 6) | (u[1] & 0x3F), n = 2;
        else if (cp >= 0xE0 && cp < 0xF0 && u[1] && u[2])
            cp = ((cp & 0x0F) << 12) | ((u[1] & 0x3Fu) << 6) | (u[2] & 0x3F), n = 3;
        else if (cp >= 0xF0 && u[1] && u[2] && u[3]) n = 4, cp = 0x10000;
        if (cp == '"' || cp == '\\') {
            char esc[3] = {'\\', (char)cp, 0};
            puts_(t, esc);
        } else if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || cp == 0xFEFF || cp == 0xFFFE ||
                   cp == 0xFFFF) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04X", cp);
            puts_(t, esc);
        } else {
            put(t, (const char *)u, (size_t)n);
        }
        u += n;
    }
    puts_(t, "\"");
}

static void put_value(text *t, const gvm_config *cfg, const gvm_config_key *k) {
    const char *field = (const char *)cfg + k->offset;
    char buf[32];
    switch (k->type) {
    case GVM_CONFIG_INT:
        snprintf(buf, sizeof buf, "%lld", k->is64 ? (long long)*(const int64_t *)field : (long long)*(const int *)field);
        puts_(t, buf);
        break;
    case GVM_CONFIG_FLOAT: put_double(t, *(const double *)field); break;
    case GVM_CONFIG_BOOL: puts_(t, *(const bool *)field ? "true" : "false"); break;
    case GVM_CONFIG_STRING: put_quoted(t, field); break;
    case GVM_CONFIG_ENUM: {
        int v = *(const int *)field;
        const char *name = NULL;
        for (int c = 0; k->choices[c]; c++)
            if (k->choice_values[c] == v) name = k->choices[c];
        GVM_CHECK(name, "config: %s holds %d, not one of its choices", k->path, v);
        put_quoted(t, name);
        break;
    }
    case GVM_CONFIG_INT_LIST:
    case GVM_CONFIG_FLOAT_LIST: {
        int n = k->type == GVM_CONFIG_INT_LIST ? *(const int *)((const char *)cfg + k->count_offset) : k->min_len;
        puts_(t, "[");
        for (int j = 0; j < n; j++) {
            if (j) puts_(t, ", ");
            if (k->type == GVM_CONFIG_INT_LIST) {
                snprintf(buf, sizeof buf, "%d", ((const int *)field)[j]);
                puts_(t, buf);
            } else {
                put_double(t, ((const double *)field)[j]);
            }
        }
        puts_(t, "]");
        break;
    }
    }
}

// Split "a.b.c" into its parts (at most 8); returns the count.
static int split_path(const char *path, char parts[8][64]) {
    int n = 0;
    while (n < 8) {
        const char *dot = strchr(path, '.');
        size_t len = dot ? (size_t)(dot - path) : strlen(path);
        snprintf(parts[n++], 64, "%.*s", (int)len, path);
        if (!dot) break;
        path = dot + 1;
    }
    return n;
}

// Walk the schema (grouped by section), calling open/close of sections as the path changes.
static void render(text *t, const gvm_config *cfg, bool json) {
    int n, depth = 0;  // sections open
    const gvm_config_key *keys = gvm_config_schema(&n);
    char open[8][64];
    bool first_in_level[9] = {true};
    if (json) puts_(t, "{");
    for (int i = 0; i < n; i++) {
        char parts[8][64];
        int np = split_path(keys[i].path, parts);
        int common = 0;
        while (common < depth && common < np - 1 && strcmp(open[common], parts[common]) == 0) common++;
        for (; depth > common; depth--)
            if (json) puts_(t, "}");
        for (; depth < np - 1; depth++) {
            if (json) {
                if (!first_in_level[depth]) puts_(t, ",");
                put_quoted(t, parts[depth]);
                puts_(t, ":{");
            } else {
                for (int s = 0; s < depth; s++) puts_(t, "  ");
                puts_(t, parts[depth]);
                puts_(t, ":\n");
            }
            first_in_level[depth] = false;
            first_in_level[depth + 1] = true;
            snprintf(open[depth], 64, "%s", parts[depth]);
        }
        if (json) {
            if (!first_in_level[depth]) puts_(t, ",");
            put_quoted(t, parts[np - 1]);
            puts_(t, ":");
            put_value(t, cfg, &keys[i]);
        } else {
            for (int s = 0; s < depth; s++) puts_(t, "  ");
            puts_(t, parts[np - 1]);
            puts_(t, ": ");
            put_value(t, cfg, &keys[i]);
            puts_(t, "  # ");
            puts_(t, keys[i].doc);
            puts_(t, "\n");
        }
        first_in_level[depth] = false;
    }
    if (json) {
        for (; depth > 0; depth--) puts_(t, "}");
        puts_(t, "}");
    }
}

gvm_status gvm_config_fprint_yaml(const gvm_config *cfg, FILE *f) {
    text t = {0};
    puts_(&t, "# gvm config: every key, resolved (defaults included). docs/config.md describes each.\n");
    render(&t, cfg, false);
    if (t.failed) {
        free(t.buf);
        return gvm_error_set(GVM_ERR_MEMORY, "out of memory writing the config");
    }
    bool ok = fwrite(t.buf, 1, t.len, f) == t.len;
    free(t.buf);
    return ok ? GVM_OK : gvm_error_set(GVM_ERR_IO, "cannot write the config: %s", strerror(errno));
}

gvm_status gvm_config_write_yaml(const gvm_config *cfg, const char *path) {
    FILE *f = fopen(path, "wb");
    if (!f) return gvm_error_set(GVM_ERR_IO, "%s: cannot create the config file: %s", path, strerror(errno));
    gvm_status st = gvm_config_fprint_yaml(cfg, f);
    if (fclose(f) != 0 && st == GVM_OK)
        st = gvm_error_set(GVM_ERR_IO, "%s: cannot write the config file: %s", path, strerror(errno));
    else if (st != GVM_OK)
        st = gvm_error_set(st, "%s: %s", path, gvm_error_message());
    return st;
}

char *gvm_config_to_json(const gvm_config *cfg) {
    text t = {0};
    render(&t, cfg, true);
    if (t.failed) {
        free(t.buf);
        return NULL;
    }
    return t.buf;
}

// Compared value by value, not through the writer, so a writer that loses digits fails the round trips.
bool gvm_config_equal(const gvm_config *a, const gvm_config *b) {
    int n;
    const gvm_config_key *keys = gvm_config_schema(&n);
    for (int i = 0; i < n; i++) {
        const gvm_config_key *k = &keys[i];
        const char *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;
        bool same = true;
        switch (k->type) {
        case GVM_CONFIG_INT:
            same = k->is64 ? *(const int64_t *)fa == *(const int64_t *)fb : *(const int *)fa == *(const int *)fb;
            break;
        case GVM_CONFIG_ENUM: same = *(const int *)fa == *(const int *)fb; break;
        case GVM_CONFIG_FLOAT: same = *(const double *)fa == *(const double *)fb; break;
        case GVM_CONFIG_BOOL: same = *(const bool *)fa == *(const bool *)fb; break;
        case GVM_CONFIG_STRING: same = strcmp(fa, fb) == 0; break;
        case GVM_CONFIG_INT_LIST: {
            int na = *(const int *)((const char *)a + k->count_offset);
            same = na == *(const int *)((const char *)b + k->count_offset) && na >= 0 && na <= GVM_CONFIG_LIST_MAX &&
                   memcmp(fa, fb, (size_t)na * sizeof(int)) == 0;
            break;
        }
        case GVM_CONFIG_FLOAT_LIST:
            for (int j = 0; j < k->min_len; j++) same = same && ((const double *)fa)[j] == ((const double *)fb)[j];
            break;
        }
        if (!same) return false;
    }
    return true;
}
