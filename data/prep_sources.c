// prep_sources.c: what `gvm prep` reads: the list of sources (video, optional separate music, optional
// style tag, optional split) from a folder scanned for video files or from a manifest (CSV with a header, or
// JSON lines).
// Manifest mistakes are errors naming file:line, found before any decoding starts; a missing or broken
// video is not: that is a per-source failure reported by the run.
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "data/dataset_internal.h"
#include "data/prep.h"

// Extensions of the containers a folder scan takes (case-insensitive). Audio-only and image files are left
// out on purpose: a folder often holds the music or thumbnails next to the videos.
static const char *const g_video_ext[] = {"mp4", "m4v", "mov", "mkv", "webm", "avi", "flv", "mpg", "mpeg",
                                          "ts",  "m2ts", "mts", "wmv", "3gp", "ogv", "vob", "mxf"};

bool gvm_prep_is_video_name(const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base) return false;
    for (size_t i = 0; i < sizeof g_video_ext / sizeof g_video_ext[0]; i++)
        if (strcasecmp(dot + 1, g_video_ext[i]) == 0) return true;
    return false;
}

void gvm_prep_sources_free(gvm_prep_source_list *l) {
    if (!l) return;
    for (int64_t i = 0; i < l->n; i++) {
        free(l->items[i].name);
        free(l->items[i].video);
        free(l->items[i].music);
        free(l->items[i].style);
    }
    free(l->items);
    memset(l, 0, sizeof *l);
}

// ---- a growing list -------------------------------------------------------------------------------------------
typedef struct builder {
    gvm_prep_source_list list;
    int64_t cap;
} builder;

static gvm_prep_source *builder_add(builder *b, int64_t line) {
    if (b->list.n == b->cap) {
        int64_t cap = b->cap ? 2 * b->cap : 64;
        gvm_prep_source *items = realloc(b->list.items, (size_t)cap * sizeof *items);
        if (!items) return NULL;
        b->list.items = items;
        b->cap = cap;
    }
    gvm_prep_source *s = &b->list.items[b->list.n++];
    memset(s, 0, sizeof *s);
    s->split = GVM_PREP_SPLIT_HASH;
    s->line = line;
    return s;
}

static int64_t file_bytes(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) ? (int64_t)sb.st_size : 0;
}

static char *join_path(const char *dir, const char *rel) {
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s%s%s", dir, dir[0] && dir[strlen(dir) - 1] != '/' ? "/" : "", rel);
    return p;
}

// ---- folder scan ----------------------------------------------------------------------------------------------
typedef struct dir_stack {  // the folders on the current path, so a symlink loop is not followed forever
    dev_t dev[64];
    ino_t ino[64];
    int n;
} dir_stack;

static int cmp_names(const void *a, const void *b) {
    return strcmp(((const gvm_prep_source *)a)->name, ((const gvm_prep_source *)b)->name);
}

static gvm_status scan_dir(builder *b, const char *root, const char *rel, dir_stack *stack) {
    char *dir = rel[0] ? join_path(root, rel) : strdup(root);
    if (!dir) return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", root);
    DIR *d = opendir(dir);
    if (!d) {
        gvm_status st = gvm_error_set(GVM_ERR_IO, "%s: cannot read the folder: %s", dir, strerror(errno));
        free(dir);
        return st;
    }
    gvm_status st = GVM_OK;
    struct dirent *e;
    while (st == GVM_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;  // ".", "..", and hidden files (editors' and sync tools' litter)
        char *child_rel = rel[0] ? join_path(rel, e->d_name) : strdup(e->d_name);
        char *child = child_rel ? join_path(root, child_rel) : NULL;
        struct stat sb;
        if (!child_rel || !child) {
            st = gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", dir);
        } else if (stat(child, &sb) != 0) {
            // A dangling symlink or a file removed while we scan: not a video we can use; say nothing here,
            // a video-named one is reported by the run as a failed source.
            if (gvm_prep_is_video_name(child_rel)) {
                gvm_prep_source *s = builder_add(b, 0);
                if (!s) st = gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", dir);
                else {
                    s->name = child_rel, s->video = child;
                    child_rel = child = NULL;
                }
            }
        } else if (S_ISDIR(sb.st_mode)) {
            bool loop = false;
            for (int i = 0; i < stack->n; i++) loop |= stack->dev[i] == sb.st_dev && stack->ino[i] == sb.st_ino;
            if (!loop && stack->n < 64) {
                stack->dev[stack->n] = sb.st_dev;
                stack->ino[stack->n++] = sb.st_ino;
                st = scan_dir(b, root, child_rel, stack);
                stack->n--;
            }
        } else if (gvm_prep_is_video_name(child_rel)) {
            gvm_prep_source *s = builder_add(b, 0);
            if (!s) {
                st = gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", dir);
            } else {
                s->name = child_rel, s->video = child, s->bytes = (int64_t)sb.st_size;
                child_rel = child = NULL;
            }
        }
        free(child_rel);
        free(child);
    }
    closedir(d);
    free(dir);
    return st;
}

// ---- manifests ------------------------------------------------------------------------------------------------
// A manifest path as a source name: "./a.mp4" and "a.mp4" are the same source.
static const char *clean_name(const char *p) {
    while (p[0] == '.' && p[1] == '/') {
        p += 2;
        while (*p == '/') p++;
    }
    return p;
}

// Fill one source from a manifest line's fields (NULL: no such column or key); errors name file:line.
static gvm_status add_entry(builder *b, const char *manifest, const char *base_dir, int64_t line, const char *video,
                            const char *music, const char *style, const char *split) {
    if (!video || !video[0])
        return gvm_error_set(GVM_ERR_FORMAT, "%s:%lld: no video path (every line needs one)", manifest,
                             (long long)line);
    const char *fields[3] = {video, music, style};
    const char *names[3] = {"video path", "music path", "style tag"};
    for (int i = 0; i < 3; i++)
        if (fields[i] && !gvm_ds_utf8_valid(fields[i]))
            return gvm_error_set(GVM_ERR_FORMAT, "%s:%lld: the %s is not valid UTF-8; save the manifest as UTF-8",
                                 manifest, (long long)line, names[i]);
    // Exact values only: a "test" or "val" of an official split must be mapped on purpose (val is often
    // trained on), and a typo must not silently fall back to the hash.
    int sp = GVM_PREP_SPLIT_HASH;
    if (split && strcmp(split, "train") == 0) sp = GVM_PREP_SPLIT_TRAIN;
    else if (split && strcmp(split, "eval") == 0) sp = GVM_PREP_SPLIT_EVAL;
    else if (split && split[0])
        return gvm_error_set(GVM_ERR_FORMAT, "%s:%lld: split '%s' is not valid: the valid values are 'train' and "
                             "'eval' (lower case), or empty for the hash rule of --eval-fraction", manifest,
                             (long long)line, gvm_ds_utf8_valid(split) ? split : "(not UTF-8)");
    gvm_prep_source *s = builder_add(b, line);
    if (!s) return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", manifest);
    s->split = sp;
    const char *name = clean_name(video);
    s->name = strdup(name[0] ? name : video);
    s->video = video[0] == '/' ? strdup(video) : join_path(base_dir, video);
    if (music && music[0]) s->music = music[0] == '/' ? strdup(music) : join_path(base_dir, music);
    if (style && style[0]) s->style = strdup(style);
    if (!s->name || !s->video || (music && music[0] && !s->music) || (style && style[0] && !s->style))
        return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", manifest);
    s->bytes = file_bytes(s->video);
    return GVM_OK;
}

enum { COL_VIDEO, COL_MUSIC, COL_STYLE, COL_SPLIT, N_COLS };
static const char *const g_col_names[N_COLS] = {"video", "music", "style", "split"};

// Split one CSV line (RFC 4180 quoting, no line breaks inside quotes) into at most `max` fields, in place.
// Unquoted fields are trimmed of spaces. Returns the field count, or -1 with *why set.
static int csv_split(char *line, char **fields, int max, const char **why) {
    int n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        char *out = p, *start = p;
        if (*p == '"') {
            p++;
            for (;;) {
                if (!*p) {
                    *why = "a quoted field is not closed (line breaks inside quotes are not supported)";
                    return -1;
                }
                if (*p == '"' && p[1] == '"') *out++ = '"', p += 2;
                else if (*p == '"') {
                    p++;
                    break;
                } else *out++ = *p++;
            }
            while (*p == ' ' || *p == '\t') p++;
            if (*p && *p != ',') {
                *why = "text after a closing quote (write a quote inside a quoted field as \"\")";
                return -1;
            }
        } else {
            while (*p && *p != ',') p++;
            out = p;
            while (out > start && (out[-1] == ' ' || out[-1] == '\t')) out--;
        }
        char sep = *p;
        *out = '\0';
        if (n == max) {
            *why = "more fields than the header has columns";
            return -1;
        }
        fields[n++] = start;
        if (sep != ',') return n;
        p++;
    }
}

static void strip_eol(char *s) {
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = '\0';
}

static bool blank(const char *s) {
    while (*s && isspace((unsigned char)*s)) s++;
    return !*s;
}

static gvm_status parse_csv(builder *b, FILE *f, const char *manifest, const char *base_dir) {
    char *line = NULL;
    size_t cap = 0;
    int64_t lineno = 0;
    int col_of[8];  // column index -> COL_*
    int n_cols = 0;
    gvm_status st = GVM_OK;
    while (st == GVM_OK && getline(&line, &cap, f) >= 0) {
        lineno++;
        strip_eol(line);
        char *text = line;
        if (lineno == 1 && (unsigned char)text[0] == 0xEF && (unsigned char)text[1] == 0xBB &&
            (unsigned char)text[2] == 0xBF)
            text += 3;  // a UTF-8 byte-order mark (spreadsheet exports)
        if (blank(text)) continue;
        char *fields[8];
        const char *why = "";
        int n = csv_split(text, fields, 8, &why);
        if (n < 0) {
            st = gvm_error_set(GVM_ERR_FORMAT, "%s:%lld: %s", manifest, (long long)lineno, why);
            break;
        }
        if (n_cols == 0) {  // the header
            bool seen[N_COLS] = {false};
            for (int i = 0; i < n && st == GVM_OK; i++) {
                int c = -1;
                for (int k = 0; k < N_COLS; k++)
                    if (strcasecmp(fields[i], g_col_names[k]) == 0) c = k;
                if (c < 0)
                    st = gvm_error_set(GVM_ERR_FORMAT, "%s:%lld: unknown column '%s' in the header (the columns are "
                                       "video, music, style, split; video is required)", manifest, (long long)lineno,
                                       fields[i]);
                else if (seen[c])
                    st = gvm_error_set(GVM_ERR_FORMAT, "%s:%lld: column '%s' appears twice in the header", manifest,
                                       (long long)lineno, g_col_names[c]);
                else seen[c] = true, col_of[i] = c;
            }
            if (st == GVM_OK && !seen[COL_VIDEO])
                st = gvm_error_set(GVM_ERR_FORMAT, "%s:%lld: the header has no 'video' column (the first line must "
                                   "name the columns, e.g. video,music,style)", manifest, (long long)lineno);
            n_cols = n;
            continue;
        }
        if (n > n_cols) {
            st = gvm_error_set(GVM_ERR_FORMAT, "%s:%lld: %d fields but the header has %d columns (quote a field "
                               "that holds a comma)", manifest, (long long)lineno, n, n_cols);
            break;
        }
        const char *v[N_COLS] = {NULL};
        for (int i = 0; i < n; i++) v[col_of[i]] = fields[i];
        st = add_entry(b, manifest, base_dir, lineno, v[COL_VIDEO], v[COL_MUSIC], v[COL_STYLE], v[COL_SPLIT]);
    }
    if (st == GVM_OK && ferror(f)) st = gvm_error_set(GVM_ERR_IO, "%s: read error: %s", manifest, strerror(errno));
    if (st == GVM_OK && n_cols == 0)
        st = gvm_error_set(GVM_ERR_FORMAT, "%s: empty manifest (want a header line video,music,style and one line "
                           "per video)", manifest);
    free(line);
    return st;
}

// A JSON value that must be a string or null (or absent); NULL on success with *out set, else the type name.
static const char *json_string_field(const cJSON *obj, const char *key, const char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v)) return NULL;
    if (cJSON_IsString(v)) {
        *out = v->valuestring;
        return NULL;
    }
    return cJSON_IsNumber(v) ? "a number" : cJSON_IsBool(v) ? "a boolean" : cJSON_IsArray(v) ? "an array" : "an object";
}

static gvm_status parse_jsonl(builder *b, FILE *f, const char *manifest, const char *base_dir) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int64_t lineno = 0;
    gvm_status st = GVM_OK;
    while (st == GVM_OK && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        strip_eol(line);
        if (blank(line)) continue;
        const char *end = NULL;
        cJSON *obj = cJSON_ParseWithOpts(line, &end, false);
        if (!obj) {
            const char *at = cJSON_GetErrorPtr();
            long col = at && at >= line && at <= line + strlen(line) ? (long)(at - line) + 1 : 0;
            st = gvm_error_set(GVM_ERR_FORMAT, "%s:%lld: not valid JSON (near column %ld); each line must be one "
                               "object like {\"video\": \"a.mp4\", \"music\": \"a.wav\", \"style\": \"rock\"}",
                               manifest, (long long)lineno, col);
            break;
        }
        while (end && isspace((unsigned char)*end)) end++;
        if (end && *end) {
            st = gvm_error_set(GVM_ERR_FORMAT, "%s:%lld: text after the JSON object (one object per line)", manifest,
                               (long long)lineno);
        } else if (!cJSON_IsObject(obj)) {
            st = gvm_error_set(GVM_ERR_FORMAT, "%s:%lld: %s, not an object; each line must be one object like "
                               "{\"video\": \"a.mp4\"} (JSON lines, not a JSON array)", manifest, (long long)lineno,
                               cJSON_IsArray(obj) ? "an array" : "a plain value");
        } else {
            for (const cJSON *it = obj->child; it && st == GVM_OK; it = it->next) {
                bool known = false;
                for (int k = 0; k < N_COLS; k++) known |= it->string && strcmp(it->string, g_col_names[k]) == 0;
                if (!known)
                    st = gvm_error_set(GVM_ERR_FORMAT, "%s:%lld: unknown key '%s' (the keys are video, music, "
                                       "style, split)", manifest, (long long)lineno, it->string ? it->string : "");
            }
            const char *v[N_COLS];
            for (int k = 0; k < N_COLS && st == GVM_OK; k++) {
                const char *bad = json_string_field(obj, g_col_names[k], &v[k]);
                if (bad)
                    st = gvm_error_set(GVM_ERR_FORMAT, "%s:%lld: '%s' is %s (want a string)", manifest,
                                       (long long)lineno, g_col_names[k], bad);
            }
            if (st == GVM_OK)
                st = add_entry(b, manifest, base_dir, lineno, v[COL_VIDEO], v[COL_MUSIC], v[COL_STYLE], v[COL_SPLIT]);
        }
        cJSON_Delete(obj);
    }
    if (st == GVM_OK && ferror(f)) st = gvm_error_set(GVM_ERR_IO, "%s: read error: %s", manifest, strerror(errno));
    free(line);
    return st;
}

static int cmp_index_by_name(const void *a, const void *b, void *arg) {
    const gvm_prep_source *items = arg;
    return strcmp(items[*(const int64_t *)a].name, items[*(const int64_t *)b].name);
}

// Two lines naming the same video would put its clips in a shard twice (and collide on clip ids).
static gvm_status check_duplicates(const builder *b, const char *manifest) {
    int64_t n = b->list.n;
    int64_t *idx = malloc((size_t)(n ? n : 1) * sizeof *idx);
    if (!idx) return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", manifest);
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    qsort_r(idx, (size_t)n, sizeof *idx, cmp_index_by_name, b->list.items);
    gvm_status st = GVM_OK;
    for (int64_t i = 1; i < n && st == GVM_OK; i++) {
        int64_t x = idx[i - 1], y = idx[i];
        if (strcmp(b->list.items[x].name, b->list.items[y].name) == 0) {
            int64_t lx = b->list.items[x].line, ly = b->list.items[y].line;
            int64_t l1 = lx < ly ? lx : ly, l2 = lx < ly ? ly : lx;
            st = gvm_error_set(GVM_ERR_FORMAT, "%s:%lld: video '%s' is already listed on line %lld (list each video "
                               "once)", manifest, (long long)l2, b->list.items[x].name, (long long)l1);
        }
    }
    free(idx);
    return st;
}

static bool has_ext(const char *path, const char *ext) {
    size_t n = strlen(path), m = strlen(ext);
    return n > m && strcasecmp(path + n - m, ext) == 0;
}

gvm_status gvm_prep_sources_load(const char *input, gvm_prep_source_list *out) {
    memset(out, 0, sizeof *out);
    struct stat sb;
    if (!input || !input[0]) return gvm_error_set(GVM_ERR_INVALID, "no input: give a folder of videos or a manifest");
    if (stat(input, &sb) != 0)
        return gvm_error_set(GVM_ERR_NOT_FOUND, "%s: cannot open the input: %s; give a folder of videos or a "
                             "manifest (.csv or .jsonl)", input, strerror(errno));
    builder b;
    memset(&b, 0, sizeof b);
    gvm_status st = GVM_OK;
    if (S_ISDIR(sb.st_mode)) {
        dir_stack stack = {.n = 1};
        stack.dev[0] = sb.st_dev;
        stack.ino[0] = sb.st_ino;
        st = scan_dir(&b, input, "", &stack);
        if (st == GVM_OK) qsort(b.list.items, (size_t)b.list.n, sizeof *b.list.items, cmp_names);
        if (st == GVM_OK && b.list.n == 0)
            st = gvm_error_set(GVM_ERR_NOT_FOUND, "%s: no video files in this folder or below (looked for the "
                               "extensions .mp4 .m4v .mov .mkv .webm .avi .flv .mpg .mpeg .ts .m2ts .mts .wmv .3gp "
                               ".ogv .vob .mxf; hidden files are skipped)", input);
    } else {
        bool csv = has_ext(input, ".csv");
        bool jsonl = has_ext(input, ".jsonl") || has_ext(input, ".ndjson") || has_ext(input, ".json");
        if (!csv && !jsonl)
            return gvm_error_set(GVM_ERR_INVALID, "%s: not a folder or a manifest: a manifest's name ends in .csv "
                                 "(header video,music,style) or .jsonl (one JSON object per line)", input);
        FILE *f = fopen(input, "r");
        if (!f)
            return gvm_error_set(GVM_ERR_IO, "%s: cannot open the manifest: %s", input, strerror(errno));
        char *base = strdup(input);
        if (!base) {
            fclose(f);
            return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", input);
        }
        char *slash = strrchr(base, '/');
        if (slash) slash[slash == base ? 1 : 0] = '\0';
        else strcpy(base, ".");
        // Relative paths in a manifest are relative to the manifest's folder, not to where gvm runs.
        st = csv ? parse_csv(&b, f, input, base) : parse_jsonl(&b, f, input, base);
        fclose(f);
        free(base);
        if (st == GVM_OK && b.list.n == 0)
            st = gvm_error_set(GVM_ERR_FORMAT, "%s: the manifest lists no videos", input);
        if (st == GVM_OK) st = check_duplicates(&b, input);
        b.list.is_manifest = true;
    }
    if (st != GVM_OK) {
        gvm_prep_sources_free(&b.list);
        return st;
    }
    *out = b.list;
    return GVM_OK;
}
