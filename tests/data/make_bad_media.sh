#!/bin/sh
# make_bad_media.sh DIR: build the corpus of bad (and borderline) media files that tests/test_data_media.c
# feeds to data/media: each file has a documented outcome (docs/media.md). Made at test time from FFmpeg's
# lavfi sources, so no binary is committed. Needs ffmpeg, head, dd, grep (GNU, for -obUa).
#
#   truncated.mp4            an mp4 cut in half, its index (moov, written last) lost: cannot be opened
#   truncated_faststart.mp4  index first (faststart), media data cut at 60%: opens, decodes the first part
#   garbage.mp4              bytes that are no media format, named .mp4
#   empty.mp4                zero length
#   video_only.mp4           video with no audio stream
#   audio_only.m4a           an AAC audio file with no video stream
#   one_frame.mp4            a video of a single frame, no audio
#   corrupt_stream.mp4       a valid index whose media data is overwritten: no frame decodes
#   cover_art.mp3            music with a cover picture (a one-frame "video" stream that is no video)
#   good.mp4                 a sound file (3 s, 320x240, 25 fps, 440 Hz tone) for "a good file after bad ones"
set -eu
dir=$1
mkdir -p "$dir"
ff() { ffmpeg -nostdin -hide_banner -loglevel error -y "$@"; }
src="testsrc2=size=320x240:rate=25"
tone="sine=frequency=440:sample_rate=44100"

ff -f lavfi -i "$src" -f lavfi -i "$tone" -t 3 -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac \
   "$dir/good.mp4"
ff -f lavfi -i "$src" -t 3 -c:v libx264 -preset ultrafast -pix_fmt yuv420p "$dir/video_only.mp4"
ff -f lavfi -i "$tone" -t 2 -c:a aac "$dir/audio_only.m4a"
ff -f lavfi -i "$src" -frames:v 1 -c:v libx264 -preset ultrafast -pix_fmt yuv420p "$dir/one_frame.mp4"
ff -f lavfi -i "$tone" -f lavfi -i "color=c=red:s=64x64" -t 1 -map 0:a -map 1:v -frames:v 1 -c:a libmp3lame \
   -c:v mjpeg -disposition:v attached_pic "$dir/cover_art.mp3"

# Truncations of a 3 s file with audio.
size=$(wc -c < "$dir/good.mp4")
head -c $((size / 2)) "$dir/good.mp4" > "$dir/truncated.mp4"
ff -i "$dir/good.mp4" -c copy -movflags +faststart "$dir/faststart.tmp.mp4"
size=$(wc -c < "$dir/faststart.tmp.mp4")
head -c $((size * 6 / 10)) "$dir/faststart.tmp.mp4" > "$dir/truncated_faststart.mp4"

# Media data overwritten: keep everything up to the payload of the mdat box (after the moov, with
# faststart), fill the rest with a byte pattern that is no valid H.264/AAC data.
ff -i "$dir/video_only.mp4" -c copy -movflags +faststart "$dir/corrupt.tmp.mp4"
size=$(wc -c < "$dir/corrupt.tmp.mp4")
mdat=$(grep -obUa mdat "$dir/corrupt.tmp.mp4" | head -n 1 | cut -d: -f1)
head -c $((mdat + 4)) "$dir/corrupt.tmp.mp4" > "$dir/corrupt_stream.mp4"
yes 'no video here ' | tr -d '\n' | head -c $((size - mdat - 4)) >> "$dir/corrupt_stream.mp4"
rm -f "$dir/faststart.tmp.mp4" "$dir/corrupt.tmp.mp4"

# Not media at all, and nothing at all.
yes 'this is not a video file ' | tr -d '\n' | head -c 8192 > "$dir/garbage.mp4"
: > "$dir/empty.mp4"
