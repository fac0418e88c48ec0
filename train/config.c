// config.c: loading a config: defaults from the schema, YAML files through libyaml's event API, overrides
// "a.b.c=value" (the value read by the same YAML code, so lists and quoting behave as in a file), typed
// and range-checked assignment, and the checks between keys. Writing lives in config_write.c.
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "train/config.h"

#define PATH_MAX_LEN 256  // a dotted key path, as written by a user (longer ones are refused)

// ---- assigning one key from YAML text ---------------------------------------------------------------------
// `where` prefixes every message: "file.yaml:12" or "override 'train.lr=x'".

static const char *expected_what(const gvm_config_key *k) {
    switch (k->type) {
    case GVM_CONFIG_INT: return "a whole number";
    case GVM_CONFIG_FLOAT: return "a number";
    case GVM_CONFIG_BOOL: return "true or false";
    case GVM_CONFIG_STRING: return "a string";
    case GVM_CONFIG_ENUM: return "one of its choices";
    case GVM_CONFIG_INT_LIST: return "a list of whole numbers like [0, 1]";
    case GVM_CONFIG_FLOAT_LIST: return "a list of numbers like [0.9, 0.95]";
    }
    return "?";
}

static bool parse_int(const char *s, long long *out) {
    if (!*s || isspace((unsigned char)*s)) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

static bool parse_float(const char *s, double *out) {
    if (!*s || isspace((unsigned char)*s)) return false;
    // strtod also takes hex floats, "inf" and "nan": only decimal numbers are accepted.
    for (const char *c = s; *c; c++)
        if (!strchr("0123456789+-.eE", *c)) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || !isfinite(v) || errno == ERANGE) return false;
    *out = v;
    return true;
}

static bool is_null(const char *s) { return !*s || strcmp(s, "~") == 0 || strcasecmp(s, "null") == 0; }

static gvm_status range_error(const char *where, const gvm_config_key *k, const char *text) {
    char lo[32], hi[32];
    snprintf(lo, sizeof lo, "%.17g", k->min);
    snprintf(hi, sizeof hi, "%.17g", k->max);
    return gvm_error_set(GVM_ERR_INVALID, "%s: %s: %s is out of range: expected %s in %s%s, %s]", where, k->path,
                         text, k->type == GVM_CONFIG_INT || k->type == GVM_CONFIG_INT_LIST ? "a whole number" : "a number",
                         k->min_open ? "(" : "[", lo, hi);
}

static bool in_range(const gvm_config_key *k, double v) {
    return (k->min_open ? v > k->min : v >= k->min) && v <= k->max;
}

// One number of a numeric key or list element: parsed, range-checked.
static gvm_status parse_number(const char *where, const gvm_config_key *k, const char *text, bool integer,
                               double *out, long long *iout) {
    if (integer) {
        long long v;
        if (!parse_int(text, &v))
            return gvm_error_set(GVM_ERR_INVALID, "%s: %s: expected a whole number, got '%s'", where, k->path, text);
        if (!in_range(k, (double)v)) return range_error(where, k, text);
        *iout = v;
        *out = (double)v;
        return GVM_OK;
    }
    double v;
    if (!parse_float(text, &v))
        return gvm_error_set(GVM_ERR_INVALID, "%s: %s: expected a number, got '%s'", where, k->path, text);
    if (!in_range(k, v)) return range_error(where, k, text);
    *out = v;
    return GVM_OK;
}

// Assign a scalar (text of length len, which may hold a NUL from a YAML escape) to a non-list key.
static gvm_status set_scalar(gvm_config *cfg, const gvm_config_key *k, const char *text, size_t len, bool plain,
                             const char *where) {
    char *field = (char *)cfg + k->offset;
    if (strlen(text) != len)
        return gvm_error_set(GVM_ERR_INVALID, "%s: %s: the value contains a NUL character", where, k->path);
    double d;
    long long i;
    gvm_status st;
    switch (k->type) {
    case GVM_CONFIG_INT:
        if ((st = parse_number(where, k, text, true, &d, &i)) != GVM_OK) return st;
        if (k->is64) *(int64_t *)field = (int64_t)i;
        else *(int *)field = (int)i;
        return GVM_OK;
    case GVM_CONFIG_FLOAT:
        if ((st = parse_number(where, k, text, false, &d, &i)) != GVM_OK) return st;
        *(double *)field = d;
        return GVM_OK;
    case GVM_CONFIG_BOOL: {
        static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
        for (int j = 0; j < 3; j++) {
            if (strcasecmp(text, yes[j]) == 0) return *(bool *)field = true, GVM_OK;
            if (strcasecmp(text, no[j]) == 0) return *(bool *)field = false, GVM_OK;
        }
        return gvm_error_set(GVM_ERR_INVALID, "%s: %s: expected true or false, got '%s'", where, k->path, text);
    }
    case GVM_CONFIG_STRING:
        if (plain && is_null(text)) text = "", len = 0;  // "~" and null are no string; '~' is
        if (len >= GVM_CONFIG_STR_MAX)
            return gvm_error_set(GVM_ERR_INVALID, "%s: %s: the value is too long (%zu bytes; at most %d)", where,
                                 k->path, len, GVM_CONFIG_STR_MAX - 1);
        memcpy(field, text, len + 1);
        return GVM_OK;
    case GVM_CONFIG_ENUM: {
        char list[256] = "";
        for (int c = 0; k->choices[c]; c++) {
            if (strcmp(text, k->choices[c]) == 0) return *(int *)field = k->choice_values[c], GVM_OK;
            size_t used = strlen(list);
            snprintf(list + used, sizeof list - used, "%s%s", c ? ", " : "", k->choices[c]);
        }
        return gvm_error_set(GVM_ERR_INVALID, "%s: %s: '%s' is not one of: %s", where, k->path, text, list);
    }
    default:
        return gvm_error_set(GVM_ERR_INVALID, "%s: %s: expected %s, got '%s'", where, k->path, expected_what(k),
                             text);
    }
}

static gvm_status set_list(gvm_config *cfg, const gvm_config_key *k, char **items, int n, const char *where) {
    char *field = (char *)cfg + k->offset;
    if (n < k->min_len || n > k->max_len) {
        if (k->min_len == k->max_len)
            return gvm_error_set(GVM_ERR_INVALID, "%s: %s: expected a list of %d %s, got %d", where, k->path,
                                 k->min_len, k->type == GVM_CONFIG_INT_LIST ? "whole numbers" : "numbers", n);
        return gvm_error_set(GVM_ERR_INVALID, "%s: %s: expected a list of %d to %d items, got %d", where, k->path,
                             k->min_len, k->max_len, n);
    }
    double vals[GVM_CONFIG_LIST_MAX];
    long long ivals[GVM_CONFIG_LIST_MAX];
    for (int j = 0; j < n; j++) {
        gvm_status st = parse_number(where, k, items[j], k->type == GVM_CONFIG_INT_LIST, &vals[j], &ivals[j]);
        if (st != GVM_OK) return st;
    }
    // Assigned only once every element is valid, so a failed override leaves the key as it was.
    for (int j = 0; j < n; j++) {
        if (k->type == GVM_CONFIG_INT_LIST) ((int *)field)[j] = (int)ivals[j];
        else ((double *)field)[j] = vals[j];
    }
    if (k->type == GVM_CONFIG_INT_LIST) *(int *)((char *)cfg + k->count_offset) = n;
    return GVM_OK;
}

void gvm_config_default(gvm_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    int n;
    const gvm_config_key *keys = gvm_config_schema(&n);
    for (int i = 0; i < n; i++) {
        char assignment[PATH_MAX_LEN + 128];
        snprintf(assignment, sizeof assignment, "%s=%s", keys[i].path, keys[i].def);
        // A default that does not parse is a bug in the schema table, not user input.
        GVM_CHECK(gvm_config_apply_override(cfg, assignment) == GVM_OK, "config schema: bad default of %s: %s",
                  keys[i].path, gvm_error_message());
    }
    gvm_error_clear();
}

// ---- key names: sections, suggestions -------------------------------------------------------------------------

static bool is_section(const char *path) {
    int n;
    const gvm_config_key *keys = gvm_config_schema(&n);
    size_t len = strlen(path);
    if (len == 0) return true;
    for (int i = 0; i < n; i++)
        if (strncmp(keys[i].path, path, len) == 0 && keys[i].path[len] == '.') return true;
    return false;
}

static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > PATH_MAX_LEN || lb > PATH_MAX_LEN) return 1 << 20;
    int row[PATH_MAX_LEN + 1];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static const char *last_part(const char *path) {
    const char *dot = strrchr(path, '.');
    return dot ? dot + 1 : path;
}

// The valid key or section nearest to `path`: by edit distance over the whole dotted path, or by the last
// part alone plus one (so "lr" finds "train.lr" and "model.lm.patch" finds "model.vision.patch"); ties go to
// the shorter path.
static void closest_key(const char *path, char *out, size_t cap) {
    int n, best = 1 << 30;
    const gvm_config_key *keys = gvm_config_schema(&n);
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        // Candidates: the key and each of its sections ("model", "model.lm", "model.lm.width").
        char cand[PATH_MAX_LEN];
        snprintf(cand, sizeof cand, "%s", keys[i].path);
        for (;;) {
            int d = edit_distance(path, cand);
            int d2 = edit_distance(last_part(path), last_part(cand)) + 1;
            if (d2 < d) d = d2;
            // Ties go to the shorter path ("lr": train.lr, not codec_train.lr).
            if (d < best || (d == best && strlen(cand) < strlen(out))) best = d, snprintf(out, cap, "%s", cand);
            char *dot = strrchr(cand, '.');
            if (!dot) break;
            *dot = 0;
        }
    }
}

static gvm_status unknown_key(const char *where, const char *path) {
    char near[PATH_MAX_LEN];
    closest_key(path, near, sizeof near);
    return gvm_error_set(GVM_ERR_INVALID, "%s: unknown key '%s'; did you mean '%s'? (docs/config.md lists every key)",
                         where, path, near);
}

// ---- the YAML reader ----------------------------------------------------------------------------------------

typedef struct seen_key {
    char *path;
    size_t line;
} seen_key;

typedef struct reader {
    yaml_parser_t parser;
    gvm_config *cfg;
    const char *name;      // file name in messages (NULL: an override)
    const char *override;  // the override's text
    seen_key *seen;        // keys set by this document, for duplicate detection
    int num_seen, cap_seen;
    int depth;
} reader;

static void where_at(const reader *r, size_t line, char *buf, size_t cap) {
    if (r->name) snprintf(buf, cap, "%s:%zu", r->name, line + 1);
    else snprintf(buf, cap, "override '%s'", r->override);
}

static gvm_status next_event(reader *r, yaml_event_t *ev) {
    if (yaml_parser_parse(&r->parser, ev)) return GVM_OK;
    const yaml_parser_t *p = &r->parser;
    const char *problem = p->problem ? p->problem : "malformed YAML";
    char ctx[160] = "";
    if (p->context) snprintf(ctx, sizeof ctx, " (%s)", p->context);
    if (r->name)
        return gvm_error_set(GVM_ERR_FORMAT, "%s:%zu:%zu: YAML syntax error: %s%s", r->name,
                             p->problem_mark.line + 1, p->problem_mark.column + 1, problem, ctx);
    return gvm_error_set(GVM_ERR_INVALID, "override '%s': the value is not valid YAML: %s%s (quote it?)",
                         r->override, problem, ctx);
}

static const char *node_kind(const yaml_event_t *ev) {
    return ev->type == YAML_MAPPING_START_EVENT ? "a mapping" : ev->type == YAML_SEQUENCE_START_EVENT ? "a list" : "an alias";
}

// Every error ends the read at once (the parser is discarded), so no node is ever skipped.

static gvm_status read_node(reader *r, const char *path, yaml_event_t *ev);

static gvm_status read_mapping(reader *r, const char *path) {
    for (;;) {
        yaml_event_t kev, vev;
        gvm_status st = next_event(r, &kev);
        if (st != GVM_OK) return st;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            return GVM_OK;
        }
        char where[PATH_MAX_LEN + 64];
        size_t line = kev.start_mark.line;
        where_at(r, line, where, sizeof where);
        if (kev.type != YAML_SCALAR_EVENT) {
            const char *kind = node_kind(&kev);
            yaml_event_delete(&kev);
            return gvm_error_set(GVM_ERR_INVALID, "%s: a key must be a plain name, not %s", where, kind);
        }
        const char *name = (const char *)kev.data.scalar.value;
        char child[PATH_MAX_LEN];
        int w = snprintf(child, sizeof child, "%s%s%s", path, *path ? "." : "", name);
        bool bad_name = !*name || strlen(name) != kev.data.scalar.length || w >= (int)sizeof child;
        yaml_event_delete(&kev);
        if (bad_name) return gvm_error_set(GVM_ERR_INVALID, "%s: a key under '%s' is empty or too long", where, path);
        if (!gvm_config_find_key(child) && !is_section(child)) return unknown_key(where, child);
        for (int i = 0; i < r->num_seen; i++)
            if (strcmp(r->seen[i].path, child) == 0)
                return gvm_error_set(GVM_ERR_INVALID, "%s: duplicate key '%s' (first given on line %zu)", where, child,
                                     r->seen[i].line + 1);
        if (r->num_seen == r->cap_seen) {
            int cap = r->cap_seen ? 2 * r->cap_seen : 32;
            seen_key *grown = realloc(r->seen, (size_t)cap * sizeof *grown);
            if (!grown) return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", where);
            r->seen = grown, r->cap_seen = cap;
        }
        char *copy = strdup(child);
        if (!copy) return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", where);
        r->seen[r->num_seen++] = (seen_key){copy, line};
        if ((st = next_event(r, &vev)) != GVM_OK) return st;
        if ((st = read_node(r, child, &vev)) != GVM_OK) return st;
    }
}

// Read the node whose first event is *ev (deleted here) as the value of `path` ("" : the top level).
static gvm_status read_node(reader *r, const char *path, yaml_event_t *ev) {
    char where[PATH_MAX_LEN + 64];
    where_at(r, ev->start_mark.line, where, sizeof where);
    const gvm_config_key *k = *path ? gvm_config_find_key(path) : NULL;
    yaml_event_type_t type = ev->type;
    if (type == YAML_SCALAR_EVENT) {
        const char *text = (const char *)ev->data.scalar.value;
        size_t len = ev->data.scalar.length;
        bool quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        gvm_status st = GVM_OK;
        if (k) {
            if (k->type == GVM_CONFIG_INT_LIST || k->type == GVM_CONFIG_FLOAT_LIST)
                st = gvm_error_set(GVM_ERR_INVALID, "%s: %s: expected %s, got '%s'", where, k->path, expected_what(k),
                                   text);
            else st = set_scalar(r->cfg, k, text, len, !quoted, where);
        } else if (quoted || !is_null(text)) {
            // An empty section ("train:" with nothing under it) is allowed; a value is not.
            st = *path ? gvm_error_set(GVM_ERR_INVALID, "%s: '%s' is a section: give it keys (e.g. %s.<key>: value), "
                                       "not the value '%s'", where, path, path, text)
                       : gvm_error_set(GVM_ERR_INVALID, "%s: the top level must be a mapping of sections (model:, "
                                       "train:, ...), not '%s'", where, text);
        }
        yaml_event_delete(ev);
        return st;
    }
    yaml_event_delete(ev);
    if (type == YAML_ALIAS_EVENT)
        return gvm_error_set(GVM_ERR_INVALID, "%s: YAML aliases (*name) are not supported in configs", where);
    if (++r->depth > 8) return gvm_error_set(GVM_ERR_INVALID, "%s: nested too deeply", where);
    gvm_status st;
    if (type == YAML_MAPPING_START_EVENT) {
        if (k) return gvm_error_set(GVM_ERR_INVALID, "%s: %s: expected %s, got a mapping", where, k->path,
                                    expected_what(k));
        st = read_mapping(r, path);
    } else if (type == YAML_SEQUENCE_START_EVENT) {
        if (!k)
            return *path ? gvm_error_set(GVM_ERR_INVALID, "%s: '%s' is a section: give it keys, not a list", where, path)
                         : gvm_error_set(GVM_ERR_INVALID, "%s: the top level must be a mapping of sections, not a list",
                                         where);
        if (k->type != GVM_CONFIG_INT_LIST && k->type != GVM_CONFIG_FLOAT_LIST)
            return gvm_error_set(GVM_ERR_INVALID, "%s: %s: expected %s, got a list", where, k->path, expected_what(k));
        char *items[GVM_CONFIG_LIST_MAX + 1];
        int n = 0;
        st = GVM_OK;
        for (;;) {
            yaml_event_t item;
            if ((st = next_event(r, &item)) != GVM_OK) break;
            if (item.type == YAML_SEQUENCE_END_EVENT) {
                yaml_event_delete(&item);
                break;
            }
            if (item.type != YAML_SCALAR_EVENT) {
                st = gvm_error_set(GVM_ERR_INVALID, "%s: %s: list items must be numbers, not %s", where, k->path,
                                   node_kind(&item));  // (read before the delete below clears the event)
                yaml_event_delete(&item);
                break;
            }
            if (n <= GVM_CONFIG_LIST_MAX) items[n] = strdup((const char *)item.data.scalar.value);
            if (n <= GVM_CONFIG_LIST_MAX && !items[n]) st = gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", where);
            n++;
            yaml_event_delete(&item);
            if (st != GVM_OK) {
                n--;
                break;
            }
        }
        if (st == GVM_OK) st = set_list(r->cfg, k, items, n, where);
        for (int j = 0; j < n && j <= GVM_CONFIG_LIST_MAX; j++) free(items[j]);
    } else {
        st = gvm_error_set(GVM_ERR_FORMAT, "%s: unexpected YAML event", where);
    }
    r->depth--;
    return st;
}

// Read a whole stream: at most one document, whose top node is the value of `path`.
static gvm_status read_stream(reader *r, const char *path) {
    yaml_event_t ev;
    gvm_status st;
    if ((st = next_event(r, &ev)) != GVM_OK) return st;  // STREAM-START
    yaml_event_delete(&ev);
    if ((st = next_event(r, &ev)) != GVM_OK) return st;
    if (ev.type == YAML_STREAM_END_EVENT) {  // an empty file (or only comments): nothing to apply
        yaml_event_delete(&ev);
        if (!r->name) return gvm_error_set(GVM_ERR_INVALID, "override '%s': no value (give key=VALUE)", r->override);
        return GVM_OK;
    }
    yaml_event_delete(&ev);  // DOCUMENT-START
    if ((st = next_event(r, &ev)) != GVM_OK) return st;
    if ((st = read_node(r, path, &ev)) != GVM_OK) return st;
    if ((st = next_event(r, &ev)) != GVM_OK) return st;  // DOCUMENT-END
    yaml_event_delete(&ev);
    if ((st = next_event(r, &ev)) != GVM_OK) return st;
    bool more = ev.type != YAML_STREAM_END_EVENT;
    char where[PATH_MAX_LEN + 64];
    where_at(r, ev.start_mark.line, where, sizeof where);
    yaml_event_delete(&ev);
    if (more) return gvm_error_set(GVM_ERR_INVALID, "%s: a config holds one YAML document, found a second", where);
    return GVM_OK;
}

static gvm_status read_text(gvm_config *cfg, const char *text, size_t len, const char *name, const char *override,
                            const char *path) {
    reader r = {.cfg = cfg, .name = name, .override = override};
    if (!yaml_parser_initialize(&r.parser)) return gvm_error_set(GVM_ERR_MEMORY, "out of memory for the YAML parser");
    yaml_parser_set_input_string(&r.parser, (const unsigned char *)text, len);
    gvm_status st = read_stream(&r, path);
    yaml_parser_delete(&r.parser);
    for (int i = 0; i < r.num_seen; i++) free(r.seen[i].path);
    free(r.seen);
    return st;
}

gvm_status gvm_config_apply_string(gvm_config *cfg, const char *text, size_t len, const char *name) {
    return read_text(cfg, text, len, name ? name : "<config>", NULL, "");
}

gvm_status gvm_config_apply_file(gvm_config *cfg, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return gvm_error_set(GVM_ERR_IO, "%s: cannot open the config: %s", path, strerror(errno));
    size_t cap = 1 << 14, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap) break;
        char *grown = cap < ((size_t)1 << 26) ? realloc(buf, cap *= 2) : NULL;
        if (!grown) free(buf);
        buf = grown;
    }
    bool failed = ferror(f);
    fclose(f);
    if (!buf) return gvm_error_set(GVM_ERR_MEMORY, "%s: the config is too large (over 64 MiB) or memory ran out", path);
    if (failed) {
        free(buf);
        return gvm_error_set(GVM_ERR_IO, "%s: cannot read the config", path);
    }
    gvm_status st = gvm_config_apply_string(cfg, buf, len, path);
    free(buf);
    return st;
}

gvm_status gvm_config_apply_override(gvm_config *cfg, const char *assignment) {
    if (!assignment) return GVM_OK;
    const char *eq = strchr(assignment, '=');
    if (!eq)
        return gvm_error_set(GVM_ERR_INVALID, "override '%s': expected key=value (e.g. train.lr=3e-4)", assignment);
    char path[PATH_MAX_LEN];
    const char *b = assignment, *e = eq;
    while (b < e && isspace((unsigned char)*b)) b++;
    while (e > b && isspace((unsigned char)e[-1])) e--;
    if (e == b || (size_t)(e - b) >= sizeof path)
        return gvm_error_set(GVM_ERR_INVALID, "override '%s': the key is empty or too long", assignment);
    memcpy(path, b, (size_t)(e - b));
    path[e - b] = 0;
    char where[PATH_MAX_LEN + 64];
    snprintf(where, sizeof where, "override '%.*s'", PATH_MAX_LEN, assignment);
    if (!gvm_config_find_key(path) && !is_section(path)) return unknown_key(where, path);
    return read_text(cfg, eq + 1, strlen(eq + 1), NULL, assignment, path);
}

gvm_status gvm_config_load(gvm_config *cfg, const char *path, int num_overrides, const char *const *overrides) {
    gvm_config_default(cfg);
    gvm_status st;
    if (path && (st = gvm_config_apply_file(cfg, path)) != GVM_OK) return st;
    for (int i = 0; i < num_overrides; i++)
        if ((st = gvm_config_apply_override(cfg, overrides[i])) != GVM_OK) return st;
    return gvm_config_validate(cfg);
}

// ---- checks between keys ------------------------------------------------------------------------------------

static gvm_status check_divisible(const char *a, int va, const char *b, int vb) {
    if (va % vb == 0) return GVM_OK;
    return gvm_error_set(GVM_ERR_INVALID, "config: %s (%d) must be divisible by %s (%d)", a, va, b, vb);
}

gvm_status gvm_config_validate(const gvm_config *cfg) {
    const gvm_config_model *m = &cfg->model;
    gvm_status st;
    if ((st = check_divisible("model.vision.width", m->vision.width, "model.vision.heads", m->vision.heads)) ||
        (st = check_divisible("model.vision.image_size", m->vision.image_size, "model.vision.patch", m->vision.patch)) ||
        (st = check_divisible("model.qformer.width", m->qformer.width, "model.qformer.heads", m->qformer.heads)) ||
        (st = check_divisible("model.lm.width", m->lm.width, "model.lm.heads", m->lm.heads)))
        return st;
    if (m->lm.num_delays != m->lm.codebooks)
        return gvm_error_set(GVM_ERR_INVALID, "config: model.lm.delays has %d entries but model.lm.codebooks is %d: "
                             "give one delay per codebook (e.g. [0, 1, 2, 3])", m->lm.num_delays, m->lm.codebooks);
    if (m->lm.codebooks > cfg->codec.codebooks)
        return gvm_error_set(GVM_ERR_INVALID, "config: model.lm.codebooks (%d) exceeds codec.codebooks (%d)",
                             m->lm.codebooks, cfg->codec.codebooks);
    if (m->lm.card != 0 && m->lm.card != cfg->codec.card)
        return gvm_error_set(GVM_ERR_INVALID, "config: model.lm.card (%d) must equal codec.card (%d)", m->lm.card,
                             cfg->codec.card);
    if (cfg->data.image_size != m->vision.image_size)
        return gvm_error_set(GVM_ERR_INVALID, "config: data.image_size (%d) must equal model.vision.image_size (%d)",
                             cfg->data.image_size, m->vision.image_size);
    double frames = cfg->data.clip_seconds * cfg->data.fps, steps = cfg->data.clip_seconds * cfg->codec.frame_rate;
    if (fabs(frames - round(frames)) > 1e-9 || fabs(steps - round(steps)) > 1e-9)
        return gvm_error_set(GVM_ERR_INVALID, "config: data.clip_seconds (%g) must hold a whole number of video frames "
                             "(data.fps %d) and codec frames (codec.frame_rate %d)", cfg->data.clip_seconds,
                             cfg->data.fps, cfg->codec.frame_rate);
    if (m->vision.cache_features && !m->vision.freeze)
        return gvm_error_set(GVM_ERR_INVALID, "config: model.vision.cache_features needs model.vision.freeze: a ViT "
                             "that trains changes its output every step, so a cache of it would be stale");
    if (cfg->train.warmup_steps > cfg->train.steps)
        return gvm_error_set(GVM_ERR_INVALID, "config: train.warmup_steps (%d) exceeds train.steps (%d)",
                             cfg->train.warmup_steps, cfg->train.steps);
    if (cfg->train.precision != GVM_F32 && cfg->train.device != GVM_DEVICE_CUDA)
        return gvm_error_set(GVM_ERR_INVALID, "config: train.precision %s needs train.device=cuda; on the CPU use "
                             "train.precision=f32", cfg->train.precision == GVM_BF16 ? "bf16" : "f16");
    return GVM_OK;
}
