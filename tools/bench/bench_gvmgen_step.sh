#!/usr/bin/env bash
# tools/bench/bench_gvmgen_step.sh: the GVMGen CPU training-step benchmark, gvm against its PyTorch twin
# (tools/bench/bench_gvmgen_step.{c,py}) with one thread count, printed as a ratio table
# (docs/benchmarks.md, "GVMGen training step (CPU)").
#
#   tools/bench/bench_gvmgen_step.sh [BUILD_DIR] [THREADS] [-- extra arguments for both programs]
#       defaults: build 2; e.g. tools/bench/bench_gvmgen_step.sh build 2 -- --steps 7
#   BLAS=native (env): unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for the two benchmark commands only, so
#       OpenBLAS picks its own (AVX-512) kernels; by default the workplace's settings are kept.
#   CHECK=0 (env): skip the equivalence check (a small config with dropout 0: gvm writes its initial
#       parameters, the twin loads them by name and both losses of the first two steps must agree).
#
# Rounds alternate gvm and PyTorch (ROUNDS, default 1) so machine noise hits both alike; each program
# reports the median of its --steps (default 5) after --warmup (default 2).
set -euo pipefail
BUILD=${1:-build}
THREADS=${2:-2}
shift $(( $# >= 2 ? 2 : $# ))
[[ "${1:-}" == "--" ]] && shift
EXTRA=("$@")
ROUNDS=${ROUNDS:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
BIN="$BUILD/bench_gvmgen_step"
[[ -x "$BIN" ]] || { echo "bench_gvmgen_step.sh: $BIN not found (cmake --build $BUILD --target bench_gvmgen_step)" >&2; exit 1; }
ENVV=(env)
if [[ "${BLAS:-}" == native ]]; then ENVV+=(-u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE); fi
ENVV+=(OMP_NUM_THREADS="$THREADS")
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); threads $THREADS"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-<unset>} in this shell;" \
     "benchmark commands: $([[ "${BLAS:-}" == native ]] && echo 'both unset (BLAS=native)' || echo 'as set')"

if [[ "${CHECK:-1}" != 0 ]]; then
  params=$(mktemp "${TMPDIR:-/tmp}/bench_gvmgen_XXXXXX.safetensors")
  trap 'rm -f "$params"' EXIT
  small=(--T 60 --frames 4 --layers 2 --qf-layers 3 --steps 1 --warmup 1 --dropout 0)
  g=$("${ENVV[@]}" "$BIN" "${small[@]}" --save-params "$params" | tail -1)
  t=$("${ENVV[@]}" python3 "$HERE/bench_gvmgen_step.py" "${small[@]}" --threads "$THREADS" --check "$params")
  python3 - "$g" "$t" <<'EOF'
import json, sys
g = json.loads(sys.argv[1]); t = sys.argv[2].split()
tl = (float(t[2]), float(t[4]))
gl = (g["loss0"], g["loss_last"])
ok = all(abs(a - b) <= 1e-4 * abs(b) for a, b in zip(gl, tl))
print(f"check (same parameters, dropout 0): loss step 0 gvm {gl[0]:.6f} torch {tl[0]:.6f}, "
      f"step 1 gvm {gl[1]:.6f} torch {tl[1]:.6f}: {'same model' if ok else 'MISMATCH'}")
sys.exit(0 if ok else 1)
EOF
fi

gj=() tj=()
for r in $(seq 1 "$ROUNDS"); do
  out=$("${ENVV[@]}" "$BIN" "${EXTRA[@]}")
  echo "$out" | head -1
  gj+=("$(echo "$out" | tail -1)")
  out=$("${ENVV[@]}" python3 "$HERE/bench_gvmgen_step.py" --threads "$THREADS" "${EXTRA[@]}")
  echo "$out" | head -1
  tj+=("$(echo "$out" | tail -1)")
done
python3 - "${#gj[@]}" "${gj[@]}" "${tj[@]}" <<'EOF'
import json, statistics, sys
n = int(sys.argv[1]); g = [json.loads(s) for s in sys.argv[2:2 + n]]; t = [json.loads(s) for s in sys.argv[2 + n:]]
med = lambda rows, k: statistics.median(r[k] for r in rows)
gm, tm = med(g, "ms"), med(t, "ms")
print()
gc, tc = med(g, "cpu_ms"), med(t, "cpu_ms")
print(f"| impl | ms/step | CPU ms/step | GFLOP/s | peak RSS growth MB | time gvm/torch | CPU time gvm/torch |")
print(f"|---|---:|---:|---:|---:|---:|---:|")
print(f"| gvm (BLAS {g[0]['blas']}) | {gm:.1f} | {gc:.0f} | {med(g, 'gflops'):.1f} | "
      f"{med(g, 'peak_rss_mb'):.0f} | {gm / tm:.2f} | {gc / tc:.2f} |")
print(f"| PyTorch | {tm:.1f} | {tc:.0f} | {med(t, 'gflops'):.1f} | {med(t, 'peak_rss_mb'):.0f} | 1.00 | 1.00 |")
print(f"\nrounds {n}; each program's median over its steps, then the median over rounds. "
      f"model FLOPs per step {g[0]['gflop_per_step']:.1f} GFLOP; {g[0]['params'] / 1e6:.2f}M parameters "
      f"({g[0]['trainable'] / 1e6:.2f}M trainable); gvm's own accounting (arena + parameter blocks) "
      f"{med(g, 'own_mb'):.0f} MB; memory ratio gvm/torch {med(g, 'peak_rss_mb') / med(t, 'peak_rss_mb'):.2f}")
EOF
