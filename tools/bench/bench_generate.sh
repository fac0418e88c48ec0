#!/usr/bin/env bash
# tools/bench/bench_generate.sh: CPU generation speed (codec frames/s, realtime factor at the codec's 50
# frames/s) of gvm (tools/bench/bench_generate.c), its PyTorch KV-cache twin and transformers'
# MusicgenForCausalLM.generate (tools/bench/bench_generate.py), with and without guidance, at the demo and
# gvmgen-small LM sizes, one thread count for all; prints a ratio table (docs/benchmarks.md,
# "Generation (CPU)").
#
#   tools/bench/bench_generate.sh [BUILD_DIR] [THREADS]        defaults: build 2
# Environment:
#   SIZES="demo small"     which LM sizes;  CFGS="0 3"  guidance scales (0 = off, 3 = GVMGen's, 2 LM rows)
#   FRAMES_DEMO=500 FRAMES_SMALL=100   codec frames per generation (10 s / 2 s of music)
#   RUNS=3                 generations timed per program (median), after one short warm-up generation
#   ROUNDS=1               rounds alternating the three programs (the median over rounds is reported)
#   IMPLS="gvm torch hf"   which programs
#   BLAS=native            unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for the benchmark commands only
set -euo pipefail
BUILD=${1:-build}
THREADS=${2:-2}
SIZES=${SIZES:-demo small}
CFGS=${CFGS:-0 3}
RUNS=${RUNS:-3}
ROUNDS=${ROUNDS:-1}
IMPLS=${IMPLS:-gvm torch hf}
HERE=$(cd "$(dirname "$0")" && pwd)
BIN="$BUILD/bench_generate"
[[ -x "$BIN" ]] || { echo "bench_generate.sh: $BIN not found (cmake --build $BUILD --target bench_generate)" >&2; exit 1; }
ENVV=(env OMP_NUM_THREADS="$THREADS")
if [[ "${BLAS:-}" == native ]]; then ENVV+=(-u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE); fi
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); threads $THREADS;" \
     "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-<unset>} in this shell;" \
     "benchmark commands: $([[ "${BLAS:-}" == native ]] && echo 'both unset (BLAS=native)' || echo 'as set')"

results=$(mktemp "${TMPDIR:-/tmp}/bench_generate_XXXXXX.jsonl")
trap 'rm -f "$results"' EXIT
for size in $SIZES; do
  if [[ $size == demo ]]; then frames=${FRAMES_DEMO:-500}; warm=32; else frames=${FRAMES_SMALL:-100}; warm=8; fi
  for cfg in $CFGS; do
    for r in $(seq 1 "$ROUNDS"); do
      for impl in $IMPLS; do
        args=(--size "$size" --frames "$frames" --cfg "$cfg" --runs "$RUNS" --warmup-frames "$warm")
        if [[ $impl == gvm ]]; then
          out=$("${ENVV[@]}" "$BIN" "${args[@]}")
        else
          out=$("${ENVV[@]}" python3 "$HERE/bench_generate.py" --impl "$impl" --threads "$THREADS" "${args[@]}" 2>/dev/null)
        fi
        echo "$out" | head -1
        echo "$out" | tail -1 >> "$results"
      done
    done
  done
done
python3 - "$results" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault((r["size"], float(r["cfg"]), r["impl"]), []).append(r["fps"])
med = {k: statistics.median(v) for k, v in by.items()}
print()
print("| LM | guidance | frames | gvm frames/s | gvm realtime | PyTorch twin frames/s | transformers generate frames/s "
      "| gvm / twin | gvm / transformers |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
seen = []
for r in rows:
    k = (r["size"], float(r["cfg"]))
    if k in seen:
        continue
    seen.append(k)
    g, t, h = (med.get(k + (i,)) for i in ("gvm", "torch-twin", "hf-generate"))
    f = lambda x: f"{x:.1f}" if x else "-"
    q = lambda a, b: f"{a / b:.2f}x" if a and b else "-"
    print(f"| {k[0]} | {'cfg ' + format(k[1], 'g') + ' (2 rows)' if k[1] > 0 else 'off'} | {r['frames']} | {f(g)} | "
          f"{'x%.1f' % (g / 50) if g else '-'} | {f(t)} | {f(h)} | {q(g, t)} | {q(g, h)} |")
EOF
