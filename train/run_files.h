// run_files.h: what the training commands (gvm train: train/loop.c, gvm train-codec: train/codec_loop.c)
// share about a run folder and its log: the folder, the resolved config text saved in checkpoints, the
// metrics file cut back to the resumed step, and the wall clock / ETA of the progress line.
#ifndef GVM_TRAIN_RUN_FILES_H
#define GVM_TRAIN_RUN_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "train/config.h"

#ifdef __cplusplus
extern "C" {
#endif

double gvm_run_now(void);                                 // monotonic seconds
gvm_status gvm_run_make_dir(const char *path);            // mkdir unless it exists; errors name the path
bool gvm_run_file_exists(const char *path);
char *gvm_run_config_text(const gvm_config *cfg);         // the config as YAML (malloc'd), NULL on failure
// Keep the lines of a metrics.jsonl whose "step" is <= keep (a resumed run logs the later steps again);
// rewritten atomically. A missing file is fine.
gvm_status gvm_run_trim_metrics(const char *path, int64_t keep);
void gvm_run_format_eta(char *buf, size_t n, double seconds);  // "h:mm:ss"

#ifdef __cplusplus
}
#endif

#endif
