#!/usr/bin/env bash
# tools/bench/bench_prep.sh: throughput of `gvm prep` as a realtime factor per core (seconds of media turned
# into clips per wall second, divided by the cores used), the Data issue's target being >= 30x per core.
#
#   tools/bench/bench_prep.sh [GVM_BINARY] [N_VIDEOS] [SECONDS]     # defaults: build/gvm 10 60
#
# Makes N_VIDEOS lavfi videos of SECONDS each, 640x360 at 25 fps (testsrc2 with light temporal noise, so
# the H.264 bit rate, ~0.8 Mb/s, is that of typical 360p footage rather than of a flat test card;
# x264 veryfast, keyframes every 250 frames) with 44.1 kHz stereo AAC, then runs gvm prep with the
# reference settings (30 s clips, 1 fps, 336 px, 32 kHz) on 1 and 2 threads and prints the factors.
# NOISE=12 (env) makes busier pictures (~5 Mb/s, slower to decode). The media are made in a temporary
# folder, removed at the end.
set -euo pipefail
GVM=${1:-build/gvm}
N=${2:-10}
SECONDS_EACH=${3:-60}
NOISE=${NOISE:-4}
command -v ffmpeg >/dev/null || { echo "bench_prep.sh: needs the ffmpeg program" >&2; exit 1; }
[[ -x "$GVM" ]] || { echo "bench_prep.sh: $GVM is not an executable (build it: cmake --build build --target gvm_cli)" >&2; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench_prep_XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/videos"

echo "making $N videos of $SECONDS_EACH s (640x360, 25 fps, H.264 + AAC) in $WORK ..."
for i in $(seq 0 $((N - 1))); do
  ffmpeg -nostdin -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=640x360:rate=25,noise=alls=$NOISE:allf=t" \
    -f lavfi -i "sine=frequency=$((220 + 40 * i)):sample_rate=44100" \
    -t "$SECONDS_EACH" -c:v libx264 -preset veryfast -crf 23 -pix_fmt yuv420p \
    -c:a aac -ac 2 -b:a 128k "$WORK/videos/v$i.mp4"
done
bytes=$(du -sb "$WORK/videos" | cut -f1)
awk -v b="$bytes" -v s=$((N * SECONDS_EACH)) 'BEGIN { printf "media: %.0f MB, %.2f Mb/s on average\n", b / 1e6, b * 8 / s / 1e6 }'
echo "machine: $(nproc) CPUs available, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"

for t in 1 2; do
  out="$WORK/out$t"
  summary=$("$GVM" prep --input "$WORK/videos" --out "$out" --clip-seconds 30 --fps 1 --size 336 \
            --sample-rate 32000 --threads "$t" --quiet)
  factor=$(sed -n 's/.*decoded, \([0-9.]*\)x realtime per core.*/\1/p' <<<"$summary")
  wall=$(sed -n 's/^gvm prep: finished in \([^ ]*\).*/\1/p' <<<"$summary")
  clips=$(sed -n 's/^  clips: *\(.*\) (this run)/\1/p' <<<"$summary")
  printf '%d thread(s): %6sx realtime per core  (wall %s; %s)\n' "$t" "$factor" "$wall" "$clips"
done
