#!/usr/bin/env bash
# tools/quickstart.sh: the whole gvm pipeline on real demo media, on this machine's CPUs:
#   real music and footage (Debian packages) -> dataset shards (gvm prep) -> a small codec (gvm train-codec)
#   -> codes in the shards (gvm encode) -> a tiny GVMGen (gvm train) -> music for a held-out video, as a WAV and
#   an MP4 (gvm generate) -> a report of the measurements (runs/quickstart-report.md).
#
#   tools/quickstart.sh            # everything (10-40 minutes on 2 cores, most of it the demo codec)
#   tools/quickstart.sh --fast     # fewer steps (a few minutes; checks the pipeline, the music is noise)
#
# Safe to run again: the dataset build resumes, finished runs are resumed (nothing left to do), the codes are
# skipped when present. Everything it writes is under datasets/debian-demo/out and runs/.
set -euo pipefail
cd "$(dirname "$0")/.."

FAST=0
for arg in "$@"; do
  case "$arg" in
    --fast) FAST=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "quickstart.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
step() { printf '\n==== %s\n' "$*"; }

step "1/7 packages"
tools/install-deps.sh

step "2/7 build (Release)"
CUDA=OFF
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then CUDA=AUTO; fi  # GPU kernels only where they run
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGVM_CUDA=$CUDA >/dev/null
cmake --build build -j "$(nproc)" --target gvm_cli
GVM=$PWD/build/gvm

step "3/7 the demo dataset (datasets/debian-demo: download, pair, gvm prep)"
GVM=$GVM datasets/debian-demo/build.sh

CODEC_OVERRIDES=() DEMO_OVERRIDES=()
if ((FAST)); then
  CODEC_OVERRIDES=(codec_train.steps=40 codec_train.warmup_steps=5 codec_train.eval_every=0 codec_train.eval_clips=2)
  DEMO_OVERRIDES=(train.steps=20 train.warmup_steps=5 train.eval_every=10 train.checkpoint_every=10)
fi
# A finished run is resumed (nothing to do); an unfinished one continues where it stopped.
train_or_resume() {  # COMMAND CONFIG RUN_DIR OVERRIDES...
  local cmd=$1 config=$2 run=$3; shift 3
  if [[ -f $run/latest ]]; then "$GVM" "$cmd" "$config" "$@" --resume "$run"
  else "$GVM" "$cmd" "$config" "$@" --run-dir "$run"; fi
}

step "4/7 the demo codec (gvm train-codec configs/codec-demo.yaml)"
mkdir -p runs
train_or_resume train-codec configs/codec-demo.yaml runs/codec-demo "${CODEC_OVERRIDES[@]}"

step "5/7 codes into the shards (gvm encode configs/demo.yaml)"
"$GVM" encode configs/demo.yaml

step "6/7 GVMGen (gvm train configs/demo.yaml)"
train_or_resume train configs/demo.yaml runs/demo "${DEMO_OVERRIDES[@]}"

step "7/7 music for a held-out video (gvm generate)"
# The first footage video of the eval split: its music was never trained on.
VIDEO=datasets/debian-demo/out/$(awk -F, '$4 == "eval" && $1 ~ /^footage\// {print $1; exit}' datasets/debian-demo/out/manifest.csv)
"$GVM" generate --checkpoint runs/demo --video "$VIDEO" --duration 20 --seed 1 \
  --out runs/demo/quickstart.wav --mux runs/demo/quickstart.mp4

python3 tools/quickstart_report.py --video "$VIDEO" --out runs/quickstart-report.md
printf '\nDone. Listen to runs/demo/quickstart.wav, watch runs/demo/quickstart.mp4, read runs/quickstart-report.md.\n'
