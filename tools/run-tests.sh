#!/usr/bin/env bash
# tools/run-tests.sh: install what the project needs, build, and run the whole test suite with ctest.
#
#   tools/run-tests.sh              # Release build in build/, full suite
#   tools/run-tests.sh --sanitize   # the same suite built with AddressSanitizer + UBSan in build-asan/
#
# On a fresh Debian machine (as root) it installs the system packages first (skipped when present).
# Exits non-zero when anything fails; the last lines are ctest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."

SANITIZE=0
for arg in "$@"; do
  case "$arg" in
    --sanitize) SANITIZE=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "run-tests.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

# ---- system packages (tools/install-deps.sh) ---------------------------------------------------------
tools/install-deps.sh

# ---- build and test -----------------------------------------------------------------------------------
JOBS=$(nproc)
if ((SANITIZE)); then
  BUILD=build-asan
  # The CUDA backend is left out here: its device code cannot run under the sanitizers (nor without a
  # GPU); the Release pass compiles it and runs its tests (skipped without a GPU).
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DGVM_SANITIZE=address,undefined -DGVM_CUDA=OFF >/dev/null
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
else
  BUILD=build
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD" -j "$JOBS"
cd "$BUILD"
ctest --output-on-failure -j 1
