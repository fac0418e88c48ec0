#!/usr/bin/env bash
# tools/install-deps.sh: install what gvm needs to build, test and run on Debian (bookworm): the system packages
# (as root, skipped when present) and the small Python packages the interoperability tests use. Called by
# tools/run-tests.sh and tools/quickstart.sh; safe to run again.
set -euo pipefail

# ---- system packages -------------------------------------------------------------------------------
PACKAGES=(build-essential cmake pkg-config libopenblas-openmp-dev libcjson-dev libyaml-dev python3
          libavformat-dev libavcodec-dev libswscale-dev libswresample-dev libavutil-dev ffmpeg libhdf5-dev zlib1g-dev)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps.sh: missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "install-deps.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python's safetensors and h5py read the files our C writers make (interoperability tests). They are
# small; if pip cannot install them those tests report themselves as skipped.
if command -v python3 >/dev/null && ! python3 -c "import safetensors.numpy, numpy, h5py" 2>/dev/null; then
  python3 -m pip install -q safetensors numpy h5py 2>/dev/null ||
    echo "install-deps.sh: could not pip-install safetensors/numpy/h5py; the Python interop tests will be skipped"
fi

