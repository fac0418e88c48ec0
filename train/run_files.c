// run_files.c: run folders, config text, metrics trimming and the ETA (train/run_files.h).
#define _POSIX_C_SOURCE 200809L
#include "train/run_files.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

double gvm_run_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

gvm_status gvm_run_make_dir(const char *path) {
    if (mkdir(path, 0777) == 0 || errno == EEXIST) return GVM_OK;
    return gvm_error_set(GVM_ERR_IO, "%s: cannot create the run folder: %s", path, strerror(errno));
}

bool gvm_run_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

char *gvm_run_config_text(const gvm_config *cfg) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    gvm_config_fprint_yaml(cfg, f);
    fclose(f);
    return buf;
}

gvm_status gvm_run_trim_metrics(const char *path, int64_t keep) {
    FILE *f = fopen(path, "r");
    if (!f) return GVM_OK;
    char *out = NULL;
    size_t out_len = 0;
    FILE *mem = open_memstream(&out, &out_len);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        long long s = -1;
        if (sscanf(line, "{\"step\":%lld", &s) == 1 && s <= keep) fputs(line, mem);
    }
    free(line);
    fclose(f);
    fclose(mem);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *w = fopen(tmp, "w");
    gvm_status st = GVM_OK;
    if (!w || fwrite(out, 1, out_len, w) != out_len || fclose(w) != 0 || rename(tmp, path) != 0)
        st = gvm_error_set(GVM_ERR_IO, "%s: cannot rewrite the metrics file: %s", path, strerror(errno));
    free(out);
    return st;
}

void gvm_run_format_eta(char *buf, size_t n, double seconds) {
    if (!isfinite(seconds) || seconds < 0) seconds = 0;
    long long s = (long long)(seconds + 0.5);
    snprintf(buf, n, "%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
}
