#!/usr/bin/env bash
# build.sh: builds a small, real, paired video-music dataset from Debian packages alone, then HDF5 shards
# with `gvm prep`. The music is real recordings (game soundtracks and free songs Debian ships); the video is
# either (a) a visualisation of that music drawn by FFmpeg's audio filters, so the picture truly follows the
# sound, or (b) real footage looped under music of a matching mood label. The split is by music track, given
# to gvm prep in the manifest's split column.
# README.md beside this file says what it builds, the licences and the timings.
#
# usage: datasets/debian-demo/build.sh [--out DIR] [--gvm PATH_TO_gvm] [--tracks N] [--jobs N]
#                                      [--cache DIR] [--eval-every N] [--no-prep]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=$HERE/out
CACHE=$HERE/cache
GVM=${GVM:-}
NTRACKS=0            # 0: every track of tracks.tsv
JOBS=$(nproc 2>/dev/null || echo 2)
EVAL_EVERY=5         # every 5th track (5th, 10th, ...) is in the eval split
NO_PREP=0
VIS_SECONDS=90       # longest music segment per track: 3 clips of 30 s for the visualizer pair
FOOTAGE_SECONDS=60   # footage pairs use the first 60 s of the same segment: 2 clips
SEG_START=10         # skip the first 10 s of a track (count-ins, silence) when the track is long enough
PAD=0.5              # media are 0.5 s longer than their whole clips, so rounding never shortens the last clip
CLIP=30 FPS=1 SIZE=336 RATE=32000   # the reference settings of gvm prep (docs/prep.md)

usage() {
    cat <<EOF
usage: $0 [--out DIR] [--gvm PATH_TO_gvm] [--tracks N] [--jobs N] [--cache DIR] [--eval-every N] [--no-prep]

Builds a small real paired video-music dataset from Debian packages (apt-get download, no root needed)
and runs 'gvm prep' on it.

  --out DIR         output folder (default: $HERE/out)
  --gvm PATH        the gvm program (default: \$GVM, then gvm on PATH, then $REPO/build/gvm)
  --tracks N        use the first N tracks of tracks.tsv (default: all $(grep -vc '^#' "$HERE/tracks.tsv"))
  --jobs N          parallel ffmpeg jobs and gvm prep threads (default: $JOBS, the CPU count)
  --cache DIR       where downloaded .deb files are kept between runs (default: $HERE/cache)
  --eval-every N    every N-th track goes to the eval split (default: 5)
  --no-prep         stop after the media and the manifest (no gvm needed)
EOF
}

die() { echo "build.sh: error: $*" >&2; exit 1; }
need_value() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"; }
need_int() { [[ $2 =~ ^[0-9]+$ ]] || die "$1 wants a whole number, not '$2'"; }

while [[ $# -gt 0 ]]; do
    case $1 in
    --out) need_value "$@"; OUT=$2; shift 2 ;;
    --gvm) need_value "$@"; GVM=$2; shift 2 ;;
    --tracks) need_value "$@"; need_int "$1" "$2"; NTRACKS=$2; shift 2 ;;
    --jobs) need_value "$@"; need_int "$1" "$2"; JOBS=$2; shift 2 ;;
    --cache) need_value "$@"; CACHE=$2; shift 2 ;;
    --eval-every) need_value "$@"; need_int "$1" "$2"; EVAL_EVERY=$2; shift 2 ;;
    --no-prep) NO_PREP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
((JOBS >= 1)) || die "--jobs must be at least 1"
((EVAL_EVERY >= 2)) || die "--eval-every must be at least 2"

for tool in apt-get dpkg-deb tar ffmpeg ffprobe awk; do
    command -v "$tool" >/dev/null ||
        die "'$tool' is missing: this script needs a Debian system with ffmpeg installed (apt-get install ffmpeg)"
done
if ((!NO_PREP)); then
    if [[ -z $GVM ]]; then
        if command -v gvm >/dev/null; then GVM=$(command -v gvm)
        elif [[ -x $REPO/build/gvm ]]; then GVM=$REPO/build/gvm
        else die "no gvm program found: build it (cmake -S $REPO -B $REPO/build && cmake --build $REPO/build -j)" \
            "and pass --gvm PATH, or use --no-prep"
        fi
    fi
    [[ -x $GVM ]] || die "--gvm '$GVM' is not an executable"
    prep_help=$("$GVM" prep --help 2>&1 || true)
    [[ $prep_help == *--eval-fraction* ]] ||
        die "'$GVM prep --help' does not list --eval-fraction: is '$GVM' the gvm program (with its prep command)?"
    [[ $prep_help == *video,music,style,split* ]] ||
        die "'$GVM' is a gvm from before the manifest's split column (see its 'prep --help'): rebuild it"
fi

mkdir -p "$OUT" "$CACHE"
OUT=$(cd "$OUT" && pwd)
CACHE=$(cd "$CACHE" && pwd)
LOGS=$OUT/logs
TMP=$OUT/tmp
rm -rf "$TMP" "$LOGS"
mkdir -p "$TMP" "$LOGS"
SECONDS=0
step_start=0
step() { echo "== [$((SECONDS))s] $*"; step_start=$SECONDS; }
step_done() { echo "   done in $((SECONDS - step_start)) s"; }

# ---- the tables ----------------------------------------------------------------------------------------------
# A "#" line is a comment; fields are tab-separated.
declare -A PKG_PREFIX PKG_DOCS
PKGS=()
while IFS=$'\t' read -r pkg prefix docs _what; do
    [[ -z $pkg || $pkg == \#* ]] && continue
    PKGS+=("$pkg"); PKG_PREFIX[$pkg]=$prefix; PKG_DOCS[$pkg]=$docs
done <"$HERE/packages.tsv"

T_ID=() T_PKG=() T_FILES=() T_MOOD=() T_TITLE=() T_CREDIT=() T_LIC=()
while IFS=$'\t' read -r id pkg files mood title credit lic; do
    [[ -z $id || $id == \#* ]] && continue
    T_ID+=("$id"); T_PKG+=("$pkg"); T_FILES+=("$files"); T_MOOD+=("$mood")
    T_TITLE+=("$title"); T_CREDIT+=("$credit"); T_LIC+=("$lic")
done <"$HERE/tracks.tsv"
if ((NTRACKS == 0 || NTRACKS > ${#T_ID[@]})); then
    ((NTRACKS > ${#T_ID[@]})) && echo "note: --tracks $NTRACKS, but tracks.tsv has ${#T_ID[@]}: using all of them"
    NTRACKS=${#T_ID[@]}
fi

F_ID=() F_PKG=() F_FILE=() F_MOODS=()
while IFS=$'\t' read -r id pkg file moods _desc _lic; do
    [[ -z $id || $id == \#* ]] && continue
    F_ID+=("$id"); F_PKG+=("$pkg"); F_FILE+=("$file"); F_MOODS+=("$moods")
done <"$HERE/footage.tsv"
for pkg in "${T_PKG[@]}" "${F_PKG[@]}"; do
    [[ -n ${PKG_PREFIX[$pkg]+set} ]] ||
        die "tracks.tsv or footage.tsv names the package '$pkg', which packages.tsv does not list"
done

# ---- step 1: download the packages (cached) and extract only the files used ----------------------------------
apt_unknown() {  # log: apt does not know the package (no package lists, or another Debian release)
    grep -qiE 'Unable to locate package|no installation candidate|Can.t select candidate|has no candidate' "$1"
}
apt_offline() {  # log: apt could not reach a mirror
    grep -qiE 'Failed to fetch|Could not resolve|Temporary failure|Could not connect|Unable to connect' "$1" ||
        grep -qiE 'Connection (failed|timed out|refused)|Network is unreachable' "$1"
}
apt_failed() {  # package, log: say why apt-get download failed, in words a user can act on, and stop
    local pkg=$1 log=$2
    echo "build.sh: error: 'apt-get download $pkg' failed:" >&2
    sed 's/^/    /' "$log" | tail -n 8 >&2
    if apt_unknown "$log"; then
        echo "apt knows none of the packages of packages.tsv: run 'apt-get update' (as root) so apt has Debian's" >&2
        echo "package lists. They were checked on Debian 12 (bookworm)." >&2
    elif apt_offline "$log"; then
        echo "apt cannot reach the Debian mirrors. This script needs apt's access to a mirror (or a proxy or" >&2
        echo "local mirror set in /etc/apt/sources.list) once; later runs reuse the downloads in $CACHE." >&2
    fi
    exit 1
}

step "1/5 packages: apt-get download into $CACHE (cached), extract the files used"
# The files each package must give: the tracks' stems, the footage, the copyright file and the listed docs;
# a package none of them needs (--tracks N) is not downloaded.
declare -A WANT
for ((i = 0; i < NTRACKS; i++)); do
    IFS=';' read -ra stems <<<"${T_FILES[i]}"
    for s in "${stems[@]}"; do WANT[${T_PKG[i]}]+="${PKG_PREFIX[${T_PKG[i]}]}$s"$'\n'; done
done
for ((j = 0; j < ${#F_ID[@]}; j++)); do WANT[${F_PKG[j]}]+="${PKG_PREFIX[${F_PKG[j]}]}${F_FILE[j]}"$'\n'; done
shopt -s nullglob
declare -A DEB
for pkg in "${PKGS[@]}"; do
    [[ -n ${WANT[$pkg]:-} ]] || continue
    debs=("$CACHE/${pkg}_"*.deb)
    if ((${#debs[@]})) && dpkg-deb --info "${debs[-1]}" >/dev/null 2>&1; then
        DEB[$pkg]=${debs[-1]}
        echo "   cached: $(basename "${debs[-1]}")"
        continue
    fi
    rm -f "${debs[@]}"
    log=$LOGS/apt-$pkg.log
    # Downloaded into a folder of its own and moved once apt has checked it, so an interrupted download
    # never leaves a partial .deb in the cache.
    rm -rf "$CACHE/incoming"
    mkdir -p "$CACHE/incoming"
    if ! (cd "$CACHE/incoming" && apt-get download "$pkg") >"$log" 2>&1; then
        # A package this Debian release lacks costs its tracks or footage, not the whole build.
        if apt_unknown "$log"; then
            echo "   warning: apt does not know '$pkg' (not in this Debian release?): its files are left out"
            continue
        fi
        apt_failed "$pkg" "$log"
    fi
    mv "$CACHE/incoming/${pkg}_"*.deb "$CACHE/" 2>/dev/null || true
    rm -rf "$CACHE/incoming"
    debs=("$CACHE/${pkg}_"*.deb)
    ((${#debs[@]})) || apt_failed "$pkg" "$log"
    DEB[$pkg]=${debs[-1]}
    echo "   downloaded: $(basename "${debs[-1]}") ($(du -h "${debs[-1]}" | cut -f1))"
done
shopt -u nullglob
((${#DEB[@]})) || apt_failed "${T_PKG[0]}" "$LOGS/apt-${T_PKG[0]}.log"

rm -rf "$OUT/sources"
for pkg in "${PKGS[@]}"; do
    [[ -n ${WANT[$pkg]:-} && -n ${DEB[$pkg]:-} ]] || continue
    dest=$OUT/sources/$pkg x=$TMP/extract-$pkg
    mkdir -p "$dest" "$x"
    members=("./usr/share/doc/$pkg/copyright")
    [[ ${PKG_DOCS[$pkg]} != - ]] && for d in ${PKG_DOCS[$pkg]}; do members+=("./usr/share/doc/$pkg/$d"); done
    while IFS= read -r f; do [[ -n $f ]] && members+=("./$f"); done <<<"${WANT[$pkg]}"
    # tar reports members this version of the package lacks; each file is checked below instead.
    dpkg-deb --fsys-tarfile "${DEB[$pkg]}" | tar -x -C "$x" -f - "${members[@]}" 2>"$LOGS/extract-$pkg.log" || true
    [[ -f $x/usr/share/doc/$pkg/copyright ]] ||
        die "${DEB[$pkg]} has no /usr/share/doc/$pkg/copyright (see $LOGS/extract-$pkg.log):" \
            "the licence must travel with the files, so this package cannot be used"
    cp "$x/usr/share/doc/$pkg/copyright" "$dest/copyright"
    for d in ${PKG_DOCS[$pkg]}; do
        [[ $d == - || ! -f $x/usr/share/doc/$pkg/$d ]] && continue
        if [[ $d == *.gz ]]; then gzip -dc "$x/usr/share/doc/$pkg/$d" >"$dest/${d%.gz}"
        else cp "$x/usr/share/doc/$pkg/$d" "$dest/"; fi
    done
    while IFS= read -r f; do
        [[ -z $f ]] && continue
        rel=${f#"${PKG_PREFIX[$pkg]}"}
        if [[ -f $x/$f ]]; then
            mkdir -p "$dest/$(dirname "$rel")"
            mv "$x/$f" "$dest/$rel"
        else
            echo "   warning: $(basename "${DEB[$pkg]}") has no /$f (another Debian release?): left out"
        fi
    done <<<"${WANT[$pkg]}"
done
rm -rf "$TMP"/extract-*
step_done

# ---- the job runner: up to $JOBS background jobs; a job that finishes leaves a file in $TMP/done ------------
mkdir -p "$TMP/done"
run_parallel() {  # function, then one argument per job
    local fn=$1; shift
    for a in "$@"; do
        while (($(jobs -rp | wc -l) >= JOBS)); do wait -n 2>/dev/null || true; done
        # A subshell of its own (not part of a || list), so set -e stops the job at its first failure.
        ( "$fn" "$a"; touch "$TMP/done/$fn-$a" ) &
    done
    wait
    local bad=0 log
    for a in "$@"; do
        log=$LOGS/$fn-$a.log
        if [[ -e $TMP/done/$fn-$a ]]; then
            # ffmpeg runs with -v error: anything in the log is a decoding or encoding error worth a look.
            if [[ -s $log ]]; then echo "   warning: $fn $a: ffmpeg reported errors (log: $log)"; fi
            continue
        fi
        bad=1
        echo "build.sh: error: $fn $a failed${log:+ (log: $log)}:" >&2
        if [[ -f $log ]]; then sed 's/^/    /' "$log" | tail -n 12 >&2; fi
    done
    ((bad == 0)) || exit 1
}

seconds_of() { ffprobe -v error -show_entries format=duration -of csv=p=0 "$1"; }

# ---- step 2: music: a segment of each track, stems mixed, peak-normalised, FLAC -------------------------------
# music/<id>.flac holds SEG + PAD seconds from SEG_START on (SEG a multiple of 30 s, at most VIS_SECONDS);
# $TMP/<id>.seg records "start seg channels" for the later steps.
make_music() {
    local i=$1 id=${T_ID[$1]} pkg=${T_PKG[$1]} log=$LOGS/make_music-$1.log
    local stems inputs=() n=0 f
    IFS=';' read -ra stems <<<"${T_FILES[i]}"
    local first=$OUT/sources/$pkg/${stems[0]}
    local dur channels
    dur=$(seconds_of "$first")
    channels=$(ffprobe -v error -select_streams a:0 -show_entries stream=channels -of csv=p=0 "$first")
    local start seg len
    start=$(awk -v d="$dur" -v s="$SEG_START" -v c="$CLIP" 'BEGIN { print (d - s >= c) ? s : 0 }')
    seg=$(awk -v d="$dur" -v s="$start" -v c="$CLIP" -v m="$VIS_SECONDS" \
        'BEGIN { n = int((d - s) / c) * c; if (n > m) n = int(m / c) * c; print n }')
    if ((seg < CLIP)); then
        echo "skip   note: $id is $dur s long, shorter than one $CLIP s clip: left out" >"$TMP/$id.seg"
        return 0
    fi
    len=$(awk -v s="$seg" -v p="$PAD" 'BEGIN { print s + p }')
    for f in "${stems[@]}"; do inputs+=(-ss "$start" -t "$len" -i "$OUT/sources/$pkg/$f"); n=$((n + 1)); done
    # Stems of one song are summed (amix without its 1/n scaling); the sum can exceed full scale, so every
    # track is then scaled to a -1 dBFS peak, which also lifts quiet recordings to a comparable level.
    local chain="[0:a]anull"
    if ((n > 1)); then
        chain="$(for ((k = 0; k < n; k++)); do printf '[%d:a]' "$k"; done)amix=inputs=$n:normalize=0:duration=longest"
    fi
    local peak gain
    peak=$(ffmpeg -nostdin -hide_banner "${inputs[@]}" \
        -filter_complex "$chain,astats=measure_perchannel=none:measure_overall=Peak_level" -f null - 2>&1 |
        awk '/Peak level dB/ { p = $NF } END { print p }')
    gain=$(awk -v p="$peak" 'BEGIN { if (p + 0 == p && p > -90) printf "%.2f", -1 - p; else print 0 }')
    ffmpeg -nostdin -v error -y "${inputs[@]}" \
        -filter_complex "$chain,volume=${gain}dB,apad=whole_dur=${len}[a]" -map "[a]" -t "$len" \
        -c:a flac -sample_fmt s16 "$OUT/music/$id.flac" >"$log" 2>&1
    echo "$start $seg $channels" >"$TMP/$id.seg"
}

HAVE=()   # indices of the tracks whose files were extracted
for ((i = 0; i < NTRACKS; i++)); do
    IFS=';' read -ra stems <<<"${T_FILES[i]}"
    ok=1
    for f in "${stems[@]}"; do [[ -f $OUT/sources/${T_PKG[i]}/$f ]] || ok=0; done
    if ((ok)); then HAVE+=("$i")
    else echo "   warning: track ${T_ID[i]} left out: its files are missing (see above)"; fi
done
((${#HAVE[@]})) || die "none of the tracks' files could be extracted (see the warnings above)"

step "2/5 music: ${#HAVE[@]} tracks, segments of up to $VIS_SECONDS s, FLAC"
rm -rf "$OUT/music" "$OUT/visualizer" "$OUT/footage"
mkdir -p "$OUT/music" "$OUT/visualizer" "$OUT/footage"
run_parallel make_music "${HAVE[@]}"
USED=()   # indices of the tracks with music
for i in "${HAVE[@]}"; do
    read -r s rest <"$TMP/${T_ID[i]}.seg"
    if [[ $s == skip ]]; then echo "$rest"; else USED+=("$i"); fi
done
((${#USED[@]})) || die "no track is long enough for one $CLIP s clip"
step_done

# ---- step 3: visualizer pairs: the picture drawn from the music, the music as the video's own sound -----------
# Four looks, rotating over the tracks: a constant-Q spectrum with its scrolling sonogram, a scrolling
# spectrogram, the waveform, a stereo vectorscope (mono tracks get the waveform). Each frame depends on the
# sound at that moment (and, for the scrolling ones, the seconds before), so a model can learn the
# correspondence.
VIS_LOOKS=(cqt spectrum waves vectorscope)
encoders=$(ffmpeg -hide_banner -encoders 2>/dev/null || true)  # not piped into grep -q: pipefail + SIGPIPE
if [[ $encoders == *libx264* ]]; then
    VCODEC=(-c:v libx264 -preset veryfast -pix_fmt yuv420p -g 30)
    VQ_VIS=(-crf 28) VQ_FOOT=(-crf 23)
else  # an FFmpeg built without x264: MPEG-4 part 2 decodes everywhere too
    VCODEC=(-c:v mpeg4 -pix_fmt yuv420p -g 30)
    VQ_VIS=(-q:v 5) VQ_FOOT=(-q:v 4)
fi
vis_look() {  # track index -> look name
    # (i + i/4) mod 4 rather than i mod 4: tracks.tsv interleaves genres, and a plain rotation would give
    # every track of a genre the same look (a shortcut from picture to genre that skips the music).
    local i=$1 look=${VIS_LOOKS[$((($1 + $1 / 4) % ${#VIS_LOOKS[@]}))]} channels
    read -r _ _ channels <"$TMP/${T_ID[i]}.seg"
    [[ $look == vectorscope && $channels -lt 2 ]] && look=waves
    echo "$look"
}
make_visualizer() {
    local i=$1 id=${T_ID[$1]} log=$LOGS/make_visualizer-$1.log filter
    case $(vis_look "$i") in
    cqt) filter="showcqt=s=${SIZE}x${SIZE}:r=15:axis_h=0:sono_h=$((SIZE / 2)):bar_g=2:sono_g=4" ;;
    # showspectrum's cost grows with its picture: drawn at a third of the size, then enlarged.
    spectrum) filter="showspectrum=s=$((SIZE / 3))x$((SIZE / 3)):slide=scroll:mode=combined:color=intensity"
        filter+=":scale=cbrt:fscale=log:fps=15,scale=${SIZE}:${SIZE}:flags=bicubic" ;;
    waves) filter="showwaves=s=${SIZE}x${SIZE}:mode=cline:rate=15:split_channels=1:scale=cbrt"
        filter+=":colors=0x33ccff|0xff8844" ;;
    vectorscope) filter="avectorscope=s=${SIZE}x${SIZE}:r=15:mode=lissajous:draw=line:scale=sqrt:zoom=1.3"
        filter+=":rc=40:gc=160:bc=255:rf=30:gf=20:bf=10" ;;
    esac
    ffmpeg -nostdin -v error -y -i "$OUT/music/$id.flac" -filter_complex "[0:a]$filter,format=yuv420p[v]" \
        -map "[v]" -map 0:a "${VCODEC[@]}" "${VQ_VIS[@]}" -c:a aac -b:a 160k -movflags +faststart \
        "$OUT/visualizer/$id.mp4" >"$log" 2>&1
}
step "3/5 visualizer pairs: ${#USED[@]} videos drawn from their music ($JOBS jobs)"
run_parallel make_visualizer "${USED[@]}"
step_done

# ---- step 4: footage pairs: real footage looped to the music's length, the music as a separate file ---------
declare -A FOOT_PATH
for ((j = 0; j < ${#F_ID[@]}; j++)); do
    p=$OUT/sources/${F_PKG[j]}/${F_FILE[j]}
    [[ -f $p ]] && FOOT_PATH[${F_ID[j]}]=$p
done
((${#FOOT_PATH[@]})) || die "no footage file could be extracted (see the warnings above)"
footage_for() {  # mood -> footage id
    local mood=$1 j
    for ((j = 0; j < ${#F_ID[@]}; j++)); do
        [[ -n ${FOOT_PATH[${F_ID[j]}]:-} && ,${F_MOODS[j]}, == *,$mood,* ]] && { echo "${F_ID[j]}"; return; }
    done
    for ((j = 0; j < ${#F_ID[@]}; j++)); do [[ -n ${FOOT_PATH[${F_ID[j]}]:-} ]] && { echo "${F_ID[j]}"; return; }; done
}
footage_seconds() {  # track index -> whole seconds of its footage pair
    local seg
    read -r _ seg _ <"$TMP/${T_ID[$1]}.seg"
    echo $((seg < FOOTAGE_SECONDS ? seg : FOOTAGE_SECONDS / CLIP * CLIP))
}
make_footage() {
    local i=$1 id=${T_ID[$1]} log=$LOGS/make_footage-$1.log
    local fid src fdur offset len
    fid=$(footage_for "${T_MOOD[i]}")
    src=${FOOT_PATH[$fid]}
    fdur=$(seconds_of "$src")
    # Tracks that share a footage start it at different points, so their pictures differ.
    offset=$(awk -v i="$i" -v d="$fdur" 'BEGIN { o = (i * 7) % int(d); print (o < d - 1) ? o : 0 }')
    len=$(awk -v s="$(footage_seconds "$i")" -v p="$PAD" 'BEGIN { print s + p }')
    # The offset is an output option (decode and drop): as an input seek it would also apply at every loop
    # and land between keyframes, which gives broken pictures.
    ffmpeg -nostdin -v error -y -stream_loop -1 -i "$src" -ss "$offset" -t "$len" -an \
        -vf "scale=-2:${SIZE}:flags=bicubic,fps=15,format=yuv420p" "${VCODEC[@]}" "${VQ_FOOT[@]}" \
        -movflags +faststart "$OUT/footage/$id.mp4" >"$log" 2>&1
    echo "$fid" >"$TMP/$id.footage"
}
step "4/5 footage pairs: ${#USED[@]} footage videos under music of a matching mood label"
run_parallel make_footage "${USED[@]}"
step_done

# ---- step 5: the manifest, split by track, then gvm prep ------------------------------------------------------
# gvm prep's own rule splits by source file (a hash of its name), but a track's visualizer and footage pairs
# are two sources with the same music, so the split is decided here, per track, and written in the
# manifest's split column, which gvm prep follows whatever --eval-fraction says. One run writes shards/
# (train-*.h5 and eval-*.h5, what the loader lists, and gvm prep's journal).
csv_field() {  # RFC 4180 quoting when needed
    local v=$1
    if [[ $v == *[,\"$'\n']* ]]; then v=${v//\"/\"\"}; printf '"%s"' "$v"; else printf '%s' "$v"; fi
}
declare -A SPLIT
n_eval=0
for ((k = 0; k < ${#USED[@]}; k++)); do
    i=${USED[k]}
    if (((k + 1) % EVAL_EVERY == 0)); then SPLIT[$i]="eval"; n_eval=$((n_eval + 1)); else SPLIT[$i]="train"; fi
done
# Fewer tracks than --eval-every: the last one is the eval split, unless it is the only track.
((n_eval == 0 && ${#USED[@]} > 1)) && SPLIT[${USED[-1]}]="eval"

echo "video,music,style,split" >"$OUT/manifest.csv"
echo "track,split,mood,package,files,title,credit,licence,start_s,visualizer_s,visualizer_look,footage,footage_s" \
    >"$OUT/tracks.csv"
media_s=0 n_pairs=0 want_clips_train=0 want_clips_eval=0 n_train=0 n_eval=0
for i in "${USED[@]}"; do
    id=${T_ID[i]} split=${SPLIT[$i]}
    read -r start seg _ <"$TMP/$id.seg"
    fs=$(footage_seconds "$i")
    fid=$(cat "$TMP/$id.footage")
    {
        echo "visualizer/$id.mp4,,$(csv_field "${T_MOOD[i]}"),$split"
        echo "footage/$id.mp4,music/$id.flac,$(csv_field "${T_MOOD[i]}"),$split"
    } >>"$OUT/manifest.csv"
    row=("$id" "$split" "${T_MOOD[i]}" "${T_PKG[i]}" "${T_FILES[i]}" "${T_TITLE[i]}" "${T_CREDIT[i]}" "${T_LIC[i]}"
        "$start" "$seg" "$(vis_look "$i")" "$fid" "$fs")
    line=""
    for v in "${row[@]}"; do line+="$(csv_field "$v"),"; done
    echo "${line%,}" >>"$OUT/tracks.csv"
    media_s=$((media_s + seg + fs))
    n_pairs=$((n_pairs + 2))
    c=$((seg / CLIP + fs / CLIP))
    if [[ $split == eval ]]; then want_clips_eval=$((want_clips_eval + c)); n_eval=$((n_eval + 1))
    else want_clips_train=$((want_clips_train + c)); n_train=$((n_train + 1)); fi
done
# The media were rebuilt above, so the shards are too (and the files of an older build.sh, which wrote one
# manifest and one gvm prep folder per split, are removed).
rm -rf "$OUT/shards" "$OUT/prep-train" "$OUT/prep-eval" "$OUT/manifest-train.csv" "$OUT/manifest-eval.csv"

clips_train="-" clips_eval="-"
if ((NO_PREP)); then
    step "5/5 manifest written; gvm prep skipped (--no-prep)"
else
    step "5/5 gvm prep: $CLIP s clips, $FPS fps, ${SIZE} px, $RATE Hz, by track ($n_train train, $n_eval eval)"
    rc=0
    # Every source has a split, so --eval-fraction decides nothing (0 would send a source without one to train).
    "$GVM" prep --input "$OUT/manifest.csv" --out "$OUT/shards" \
        --clip-seconds "$CLIP" --fps "$FPS" --size "$SIZE" --sample-rate "$RATE" \
        --eval-fraction 0 --threads "$JOBS" --progress lines 2>&1 | tee "$LOGS/prep.log" || rc=$?
    ((rc == 0)) || die "gvm prep failed (exit status $rc; log: $LOGS/prep.log)"
    for split in train eval; do
        n=$(awk -v s="$split" '$1 == "clips:" { for (k = 2; k < NF; k++) if ($k == s) print $(k + 1) }' \
            "$LOGS/prep.log")
        [[ $split == train ]] && clips_train=${n:-?} || clips_eval=${n:-?}
    done
fi
step_done
rm -rf "$TMP"

# ---- step 6: summary -----------------------------------------------------------------------------------------
size_of() { [[ -e $1 ]] && du -sh "$1" | cut -f1 || echo "-"; }
cat <<EOF

debian-demo built in $SECONDS s ($JOBS jobs) in $OUT
  tracks:   ${#USED[@]} ($n_train train, $n_eval eval; split by track, every ${EVAL_EVERY}th is eval)
  pairs:    $n_pairs (${#USED[@]} visualizer videos with their music inside,
            ${#USED[@]} footage videos with their music in a separate file)
  media:    $((media_s / 60)) min $((media_s % 60)) s of paired media
  clips:    train $clips_train, eval $clips_eval (expected $want_clips_train and $want_clips_eval clips of $CLIP s)
  sizes:    shards $(size_of "$OUT/shards"), sources $(size_of "$OUT/sources"), music $(size_of "$OUT/music"),
            visualizer $(size_of "$OUT/visualizer"), footage $(size_of "$OUT/footage"); cache $(size_of "$CACHE")
  files:    shards/{train,eval}-*.h5, manifest.csv (with the split), tracks.csv (credits, licences, split),
            sources/<package>/ (the extracted files and the package's copyright)
EOF
if ((!NO_PREP)); then
    if [[ $clips_train != "$want_clips_train" || $clips_eval != "$want_clips_eval" ]]; then
        die "gvm prep wrote $clips_train train and $clips_eval eval clips," \
            "expected $want_clips_train and $want_clips_eval"
    fi
    if python3 -c 'import h5py' 2>/dev/null; then
        python3 "$HERE/check_shards.py" "$OUT" || die "the shards do not hold what tracks.csv says (above)"
    else
        echo "  (python3 with h5py would check the shards: pip install h5py; python3 $HERE/check_shards.py $OUT)"
    fi
fi
