// prep_journal.c: the journal of `gvm prep`, OUT/prep-state.jsonl, which makes a run resumable.
//
// JSON lines, appended: first the settings that shape the output ({"gvm_prep_state": 1, "options": {...}}),
// then one record per committed shard ({"shard": "train-00003.h5", "split": "train", "clips": 212,
// "sources": [...]}) written and fsync'ed right after the shard's rename, and at the end {"complete": true}.
// A shard is committed only between sources, so the sources of committed shards are exactly the finished
// ones; a resumed run skips them, continues the shard numbers and produces the shards an uninterrupted run
// would. The split of each finished source is that of its shard record: prep_run.c compares it with the split
// the manifest now gives the source, so a changed split cannot mix a source's clips into both splits. A line cut short by a crash is dropped; a shard renamed but not yet recorded (a crash between the
// two) and temporary files are removed, as the resumed run writes them again. An flock on the journal keeps
// two runs out of one folder.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/prep_internal.h"

// ---- a set of names (open addressing) -----------------------------------------------------------------------------
bool prep_keyset_has(const prep_keyset *s, const char *key) {
    if (!s->cap) return false;
    for (uint64_t i = gvm_prep_name_hash(key) & (uint64_t)(s->cap - 1);; i = (i + 1) & (uint64_t)(s->cap - 1)) {
        if (!s->slots[i]) return false;
        if (strcmp(s->slots[i], key) == 0) return true;
    }
}

bool prep_keyset_add(prep_keyset *s, const char *key) {
    if (prep_keyset_has(s, key)) return true;
    if (2 * (s->n + 1) > s->cap) {  // keep it at most half full
        int64_t cap = s->cap ? 2 * s->cap : 256;
        char **slots = calloc((size_t)cap, sizeof *slots);
        if (!slots) return false;
        for (int64_t k = 0; k < s->cap; k++) {
            if (!s->slots[k]) continue;
            uint64_t i = gvm_prep_name_hash(s->slots[k]) & (uint64_t)(cap - 1);
            while (slots[i]) i = (i + 1) & (uint64_t)(cap - 1);
            slots[i] = s->slots[k];
        }
        free(s->slots);
        s->slots = slots;
        s->cap = cap;
    }
    char *copy = strdup(key);
    if (!copy) return false;
    uint64_t i = gvm_prep_name_hash(key) & (uint64_t)(s->cap - 1);
    while (s->slots[i]) i = (i + 1) & (uint64_t)(s->cap - 1);
    s->slots[i] = copy;
    s->n++;
    return true;
}

void prep_keyset_free(prep_keyset *s) {
    for (int64_t i = 0; i < s->cap; i++) free(s->slots[i]);
    free(s->slots);
    memset(s, 0, sizeof *s);
}

// ---- files of the output folder ---------------------------------------------------------------------------------------
void prep_shard_name(int split, int64_t number, char *buf, size_t size) {
    snprintf(buf, size, "%s-%05lld.h5", prep_split_name(split), (long long)number);
}

// "train-00012.h5" -> split, number; *tmp when it ends in ".h5.tmp". False for any other name.
static bool parse_shard_name(const char *name, int *split, int64_t *number, bool *tmp) {
    const char *p;
    if (strncmp(name, "train-", 6) == 0) *split = PREP_TRAIN, p = name + 6;
    else if (strncmp(name, "eval-", 5) == 0) *split = PREP_EVAL, p = name + 5;
    else return false;
    int64_t n = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 15; p++, digits++) n = 10 * n + (*p - '0');
    if (digits < 5) return false;
    *number = n;
    if (strcmp(p, ".h5") == 0) *tmp = false;
    else if (strcmp(p, ".h5.tmp") == 0) *tmp = true;
    else return false;
    return true;
}

static char *path_in(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static gvm_status mkdir_p(const char *dir) {
    char *p = strdup(dir);
    if (!p) return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", dir);
    gvm_status st = GVM_OK;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0') continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            st = gvm_error_set(GVM_ERR_IO, "%s: cannot create the output folder: %s", p, strerror(errno));
            break;
        }
        *s = c;
        if (!c) break;
    }
    struct stat sb;
    if (st == GVM_OK && (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)))
        st = gvm_error_set(GVM_ERR_IO, "%s: the output path is not a folder", dir);
    free(p);
    return st;
}

// Remove the shard-named files of the output folder: all of them (keep == NULL), or temporary ones and
// those not in `keep`. Counts what it removed.
static gvm_status remove_shard_files(prep_journal *j, const prep_keyset *keep) {
    DIR *d = opendir(j->out_dir);
    if (!d) return gvm_error_set(GVM_ERR_IO, "%s: cannot read the output folder: %s", j->out_dir, strerror(errno));
    gvm_status st = GVM_OK;
    struct dirent *e;
    while (st == GVM_OK && (e = readdir(d)) != NULL) {
        int split;
        int64_t num;
        bool tmp;
        if (!parse_shard_name(e->d_name, &split, &num, &tmp)) continue;
        if (keep && !tmp && prep_keyset_has(keep, e->d_name)) continue;
        char *p = path_in(j->out_dir, e->d_name);
        if (!p) st = gvm_error_set(GVM_ERR_MEMORY, "out of memory");
        else if (unlink(p) != 0 && errno != ENOENT)
            st = gvm_error_set(GVM_ERR_IO, "%s: cannot remove: %s", p, strerror(errno));
        else j->removed++;
        free(p);
    }
    closedir(d);
    return st;
}

static bool has_shard_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        int split;
        int64_t num;
        bool tmp;
        found = parse_shard_name(e->d_name, &split, &num, &tmp) && !tmp;
    }
    closedir(d);
    return found;
}

// Append one record; fsync when `sync`.
static gvm_status write_record(prep_journal *j, cJSON *rec, bool sync) {
    char *text = rec ? cJSON_PrintUnformatted(rec) : NULL;
    cJSON_Delete(rec);
    if (!text) return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", j->path);
    size_t n = strlen(text);
    char *line = realloc(text, n + 2);
    if (!line) {
        free(text);
        return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory", j->path);
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    size_t done = 0;
    while (done < n + 1) {  // O_APPEND: one write per record, so records never interleave
        ssize_t w = write(j->fd, line + done, n + 1 - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            free(line);
            return gvm_error_set(GVM_ERR_IO, "%s: cannot write the journal: %s", j->path, strerror(errno));
        }
        done += (size_t)w;
    }
    free(line);
    if (sync && fsync(j->fd) != 0)
        return gvm_error_set(GVM_ERR_IO, "%s: cannot fsync the journal: %s", j->path, strerror(errno));
    return GVM_OK;
}

static gvm_status start_over(prep_journal *j, const cJSON *options) {
    prep_keyset_free(&j->done);
    prep_keyset_free(&j->in_split[PREP_TRAIN]);
    prep_keyset_free(&j->in_split[PREP_EVAL]);
    memset(j->next_shard, 0, sizeof j->next_shard);
    memset(j->shards, 0, sizeof j->shards);
    memset(j->clips, 0, sizeof j->clips);
    j->resumed = j->complete = false;
    gvm_status st = remove_shard_files(j, NULL);
    if (st != GVM_OK) return st;
    if (ftruncate(j->fd, 0) != 0)
        return gvm_error_set(GVM_ERR_IO, "%s: cannot truncate: %s", j->path, strerror(errno));
    cJSON *head = cJSON_CreateObject();
    cJSON_AddNumberToObject(head, "gvm_prep_state", 1);
    cJSON_AddStringToObject(head, "created_by", "gvm " GVM_VERSION " prep");
    cJSON_AddItemToObject(head, "options", cJSON_Duplicate(options, true));
    return write_record(j, head, true);
}

static void value_text(const cJSON *v, char *buf, size_t size) {
    if (!v) snprintf(buf, size, "(not recorded)");
    else if (cJSON_IsNumber(v)) snprintf(buf, size, "%.17g", v->valuedouble);
    else if (cJSON_IsString(v)) snprintf(buf, size, "'%s'", v->valuestring);
    else snprintf(buf, size, "(a value of another kind)");
    // %.17g shows 0.10000000000000001 for 0.1: prefer the short form when it reads back the same
    if (v && cJSON_IsNumber(v)) {
        char shortest[64];
        snprintf(shortest, sizeof shortest, "%g", v->valuedouble);
        if (strtod(shortest, NULL) == v->valuedouble) snprintf(buf, size, "%s", shortest);
    }
}

// NULL when the stored options equal `options`; else the first difference, in `buf`.
static const char *options_differ(const cJSON *stored, const cJSON *options, char *buf, size_t size) {
    for (const cJSON *cur = options->child; cur; cur = cur->next) {
        const cJSON *old = cJSON_GetObjectItemCaseSensitive(stored, cur->string);
        bool same = old && ((cJSON_IsNumber(cur) && cJSON_IsNumber(old) && old->valuedouble == cur->valuedouble) ||
                            (cJSON_IsString(cur) && cJSON_IsString(old) &&
                             strcmp(old->valuestring, cur->valuestring) == 0));
        if (same) continue;
        char a[600], b[600];
        value_text(old, a, sizeof a);
        value_text(cur, b, sizeof b);
        snprintf(buf, size, "--%s was %s in the run that made it, and is %s now", cur->string, a, b);
        return buf;
    }
    return NULL;
}

// Read every complete record after the first line. *bad_line > 0 names a damaged line.
static gvm_status load_records(prep_journal *j, char *buf, prep_keyset *listed, int64_t *bad_line, char *why,
                               size_t why_size) {
    int64_t lineno = 1;
    char *line = strchr(buf, '\n') + 1;
    while (*line) {
        char *nl = strchr(line, '\n');  // every line here is complete (a torn tail was cut off)
        *nl = '\0';
        lineno++;
        cJSON *rec = cJSON_Parse(line);
        const cJSON *shard = rec ? cJSON_GetObjectItemCaseSensitive(rec, "shard") : NULL;
        const cJSON *noclip = rec ? cJSON_GetObjectItemCaseSensitive(rec, "no_clips") : NULL;
        bool ok = rec && cJSON_IsObject(rec);
        if (ok && shard) {
            const cJSON *srcs = cJSON_GetObjectItemCaseSensitive(rec, "sources");
            const cJSON *clips = cJSON_GetObjectItemCaseSensitive(rec, "clips");
            int split;
            int64_t num;
            bool tmp;
            ok = cJSON_IsString(shard) && parse_shard_name(shard->valuestring, &split, &num, &tmp) && !tmp &&
                 cJSON_IsArray(srcs) && cJSON_IsNumber(clips);
            for (const cJSON *s = ok ? srcs->child : NULL; s && ok; s = s->next)
                ok = cJSON_IsString(s) && prep_keyset_add(&j->done, s->valuestring) &&
                     prep_keyset_add(&j->in_split[split], s->valuestring);
            if (ok) {
                char *p = path_in(j->out_dir, shard->valuestring);
                struct stat sb;
                if (p && stat(p, &sb) != 0) {
                    snprintf(why, why_size, "%s is listed in %s but missing", p, j->path);
                    free(p);
                    cJSON_Delete(rec);
                    return GVM_ERR_NOT_FOUND;
                }
                free(p);
                ok = prep_keyset_add(listed, shard->valuestring);
                if (num + 1 > j->next_shard[split]) j->next_shard[split] = num + 1;
                j->shards[split]++;
                j->clips[split] += (int64_t)clips->valuedouble;
                j->complete = false;
            }
        } else if (ok && noclip) {
            ok = cJSON_IsString(noclip) && prep_keyset_add(&j->done, noclip->valuestring);
            j->complete = false;
        } else if (ok && cJSON_GetObjectItemCaseSensitive(rec, "complete")) {
            j->complete = true;
        }  // "failed" records, and any other, are for people
        cJSON_Delete(rec);
        if (!ok) {
            *bad_line = lineno;
            snprintf(why, why_size, "%s:%lld: damaged record", j->path, (long long)lineno);
            return GVM_ERR_FORMAT;
        }
        line = nl + 1;
    }
    return GVM_OK;
}

gvm_status prep_journal_open(prep_journal *j, const char *out_dir, const cJSON *options, bool force) {
    memset(j, 0, sizeof *j);
    j->fd = -1;
    gvm_status st = mkdir_p(out_dir);
    if (st != GVM_OK) return st;
    j->out_dir = strdup(out_dir);
    j->path = path_in(out_dir, GVM_PREP_STATE_FILE);
    if (!j->out_dir || !j->path) return gvm_error_set(GVM_ERR_MEMORY, "out of memory");
    struct stat sb;
    bool existed = stat(j->path, &sb) == 0;
    if (!existed && has_shard_files(out_dir) && !force)
        return gvm_error_set(GVM_ERR_INVALID, "%s: the folder holds shards but no %s (they were not made by gvm prep, "
                             "or its journal was deleted): add --force to delete them and start over, or choose "
                             "another --out folder", out_dir, GVM_PREP_STATE_FILE);
    j->fd = open(j->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (j->fd < 0) return gvm_error_set(GVM_ERR_IO, "%s: cannot open: %s", j->path, strerror(errno));
    if (flock(j->fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK)
        return gvm_error_set(GVM_ERR_IO, "%s: another gvm prep is writing to this folder (its journal is locked); "
                             "wait for it to finish or stop it", out_dir);
    // (no locks on this file system: ENOLCK/EOPNOTSUPP are ignored, as HDF5 does)

    off_t size = lseek(j->fd, 0, SEEK_END);
    char *buf = size >= 0 ? malloc((size_t)size + 1) : NULL;
    if (!buf) return gvm_error_set(GVM_ERR_MEMORY, "%s: out of memory reading the journal", j->path);
    ssize_t got = size > 0 ? pread(j->fd, buf, (size_t)size, 0) : 0;
    if (got != (ssize_t)size) {
        free(buf);
        return gvm_error_set(GVM_ERR_IO, "%s: cannot read: %s", j->path, strerror(errno));
    }
    buf[size] = '\0';
    // A record cut short by a crash (no newline yet) was never acted on: drop it.
    char *last_nl = strrchr(buf, '\n');
    size_t keep = last_nl ? (size_t)(last_nl - buf) + 1 : 0;
    buf[keep] = '\0';
    if (keep < (size_t)size && ftruncate(j->fd, (off_t)keep) != 0) {
        free(buf);
        return gvm_error_set(GVM_ERR_IO, "%s: cannot truncate: %s", j->path, strerror(errno));
    }

    if (keep == 0) {  // a new journal (or one whose first record never made it to disk)
        free(buf);
        if (has_shard_files(out_dir) && !force)
            return gvm_error_set(GVM_ERR_INVALID, "%s: the folder holds shards but %s is empty: add --force to delete "
                                 "them and start over, or choose another --out folder", out_dir, GVM_PREP_STATE_FILE);
        return start_over(j, options);
    }
    char why[1600] = "", diff[1400];
    const char *differs = NULL;
    char *nl = strchr(buf, '\n');
    *nl = '\0';
    cJSON *head = cJSON_Parse(buf);
    *nl = '\n';
    const cJSON *version = head ? cJSON_GetObjectItemCaseSensitive(head, "gvm_prep_state") : NULL;
    const cJSON *stored = head ? cJSON_GetObjectItemCaseSensitive(head, "options") : NULL;
    if (!cJSON_IsNumber(version) || !cJSON_IsObject(stored)) {
        snprintf(why, sizeof why, "%s:1: not a gvm prep journal, or damaged", j->path);
        st = GVM_ERR_FORMAT;
    } else if (version->valuedouble != 1) {
        snprintf(why, sizeof why, "%s: journal version %g, but this gvm knows version 1", j->path,
                 version->valuedouble);
        st = GVM_ERR_FORMAT;
    } else if ((differs = options_differ(stored, options, diff, sizeof diff)) != NULL) {
        st = GVM_ERR_INVALID;
    }
    cJSON_Delete(head);
    prep_keyset listed = {0};
    int64_t bad_line = 0;
    if (st == GVM_OK) st = load_records(j, buf, &listed, &bad_line, why, sizeof why);
    free(buf);
    if (st == GVM_OK) {
        j->resumed = true;
        st = remove_shard_files(j, &listed);  // temporary files, and a shard renamed but never recorded
        prep_keyset_free(&listed);
        return st;
    }
    prep_keyset_free(&listed);
    if (force) return start_over(j, options);
    if (differs)
        return gvm_error_set(GVM_ERR_INVALID, "%s: %s. Resume with the options of that run, add --force to delete its "
                             "shards and start over, or choose another --out folder", out_dir, differs);
    return gvm_error_set(st, "%s: add --force to delete this folder's shards and start over, or choose another --out "
                         "folder", why);
}

gvm_status prep_journal_restart(prep_journal *j, const cJSON *options) { return start_over(j, options); }

int prep_journal_split_of(const prep_journal *j, const char *source) {
    if (prep_keyset_has(&j->in_split[PREP_TRAIN], source)) return PREP_TRAIN;
    return prep_keyset_has(&j->in_split[PREP_EVAL], source) ? PREP_EVAL : -1;
}

gvm_status prep_journal_commit(prep_journal *j, int split, const char *shard, int64_t clips, char *const *sources,
                               int64_t n_sources) {
    cJSON *rec = cJSON_CreateObject();
    cJSON_AddStringToObject(rec, "shard", shard);
    cJSON_AddStringToObject(rec, "split", prep_split_name(split));
    cJSON_AddNumberToObject(rec, "clips", (double)clips);
    cJSON *arr = cJSON_AddArrayToObject(rec, "sources");
    for (int64_t i = 0; arr && i < n_sources; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(sources[i]));
    return write_record(j, rec, true);
}

void prep_journal_note(prep_journal *j, const char *kind, const char *source, const char *reason) {
    cJSON *rec = cJSON_CreateObject();
    cJSON_AddStringToObject(rec, kind, source);
    if (reason) cJSON_AddStringToObject(rec, "reason", reason);
    (void)write_record(j, rec, false);  // for people reading the journal; a failed write changes nothing
}

gvm_status prep_journal_finish(prep_journal *j, int64_t sources, int64_t failed) {
    cJSON *rec = cJSON_CreateObject();
    cJSON_AddBoolToObject(rec, "complete", true);
    cJSON_AddNumberToObject(rec, "sources", (double)sources);
    cJSON_AddNumberToObject(rec, "failed", (double)failed);
    return write_record(j, rec, true);
}

void prep_journal_close(prep_journal *j) {
    if (j->fd >= 0) close(j->fd);  // releases the flock
    prep_keyset_free(&j->done);
    prep_keyset_free(&j->in_split[PREP_TRAIN]);
    prep_keyset_free(&j->in_split[PREP_EVAL]);
    free(j->out_dir);
    free(j->path);
    memset(j, 0, sizeof *j);
    j->fd = -1;
}
