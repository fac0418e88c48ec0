#!/usr/bin/env python3
"""check_shards.py: checks the shards build.sh made against its tracks.csv, reading them with h5py only
(an independent reader of the gvm dataset format, docs/dataset-format.md).

usage: python3 datasets/debian-demo/check_shards.py OUT_DIR

Checks: file attributes (format_version 1, 336x336 frames, 1 fps, 32 kHz); every clip's frames
uint8 [30, 336, 336, 3] and audio float32 [960000] finite in [-1, 1]; index rows match the clip groups;
each source gives the clips its length promises; a track's clips are all in its split and carry its mood
label; no track is in both splits. It also prints, per visualizer look, how much the frames follow the
music: the correlation between each frame's brightness and the loudness of the second it shows (footage
pairs, whose picture ignores the music, are the baseline).

Exit status: 0 all good, 1 a check failed, 77 h5py (or numpy) missing.
"""
import csv
import glob
import math
import os
import sys

try:
    import h5py
    import numpy as np
except ImportError as e:
    print(f"check_shards.py: skipped: {e} (pip install h5py)")
    sys.exit(77)

CLIP, FPS, SIZE, RATE = 30, 1, 336, 32000


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def main():
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n")[1])
        return 2
    out = sys.argv[1]
    errors = []

    def fail(msg):
        errors.append(msg)
        print("  FAIL", msg)

    tracks = {}
    with open(os.path.join(out, "tracks.csv"), newline="") as f:
        for row in csv.DictReader(f):
            tracks[row["track"]] = row
    want = {}  # source name -> (track, kind, clips expected)
    for t, row in tracks.items():
        want[f"visualizer/{t}.mp4"] = (t, "visualizer", int(row["visualizer_s"]) // CLIP)
        want[f"footage/{t}.mp4"] = (t, "footage", int(row["footage_s"]) // CLIP)

    got = {}  # source -> clip count
    split_of_track = {}
    corr = {}  # look ("footage" for footage pairs) -> correlations
    n_clips = {"train": 0, "eval": 0}
    files = sorted(glob.glob(os.path.join(out, "shards", "*.h5")))
    if not files:
        fail(f"no shards in {out}/shards/")
    for path in files:
        folder_split = os.path.basename(path).split("-", 1)[0]  # train-00000.h5, eval-00000.h5
        with h5py.File(path, "r") as f:
            a = f.attrs
            if int(a["format_version"]) != 1:
                fail(f"{path}: format_version {a['format_version']}")
            if list(a["frame_size"]) != [SIZE, SIZE] or float(a["fps"]) != FPS or int(a["sample_rate"]) != RATE:
                fail(f"{path}: frame_size {list(a['frame_size'])}, fps {a['fps']}, sample_rate {a['sample_rate']}")
            ids = [text(s) for s in f["index/clip_id"][()]]
            splits = [text(s) for s in f["index/split"][()]]
            styles = [text(s) for s in f["index/style"][()]]
            nf = f["index/num_frames"][()]
            ns = f["index/num_samples"][()]
            if len(f["clips"]) != len(ids):
                fail(f"{path}: {len(f['clips'])} clip groups, {len(ids)} index rows")
            for i in range(len(ids)):
                g = f["clips/%08d" % i]
                src = text(g.attrs["source_file"])
                fr, au = g["frames"], g["audio"]
                where = f"{os.path.basename(path)} clip {i} ({ids[i]})"
                if fr.dtype != np.uint8 or fr.shape != (CLIP * FPS, SIZE, SIZE, 3):
                    fail(f"{where}: frames {fr.dtype} {fr.shape}")
                if au.dtype != np.float32 or au.shape != (CLIP * RATE,):
                    fail(f"{where}: audio {au.dtype} {au.shape}")
                if nf[i] != fr.shape[0] or ns[i] != au.shape[0] or text(g.attrs["clip_id"]) != ids[i]:
                    fail(f"{where}: index row disagrees with the clip group")
                if splits[i] != folder_split or text(g.attrs["split"]) != folder_split:
                    fail(f"{where}: split {splits[i]} in a {folder_split} shard")
                if src not in want:
                    fail(f"{where}: source_file '{src}' is not one build.sh made")
                    continue
                track, kind, _ = want[src]
                if styles[i] != tracks[track]["mood"] or text(g.attrs["style"]) != styles[i]:
                    fail(f"{where}: style '{styles[i]}', the track's mood is '{tracks[track]['mood']}'")
                if split_of_track.setdefault(track, splits[i]) != splits[i]:
                    fail(f"track {track} has clips in both splits")
                if tracks[track]["split"] != splits[i]:
                    fail(f"{where}: track {track} belongs to {tracks[track]['split']}")
                got[src] = got.get(src, 0) + 1
                n_clips[folder_split] += 1
                x = au[()]
                if not np.all(np.isfinite(x)) or np.abs(x).max() > 1.0:
                    fail(f"{where}: audio not finite or outside [-1, 1]")
                # Frame k is the picture at k s into the clip: compare its brightness with the loudness of
                # the second around it (what the visualisations draw at that moment).
                b = fr[()].reshape(fr.shape[0], -1).mean(axis=1)
                half = RATE // 2
                rms = np.array([math.sqrt(float(np.mean(x[max(0, k * RATE - half):k * RATE + half] ** 2)))
                                for k in range(fr.shape[0])])
                if b.std() > 1e-6 and rms.std() > 1e-9:
                    look = tracks[track]["visualizer_look"] if kind == "visualizer" else "footage"
                    corr.setdefault(look, []).append(float(np.corrcoef(b, rms)[0, 1]))
    for src, (track, kind, n) in sorted(want.items()):
        if got.get(src, 0) != n:
            fail(f"{src}: {got.get(src, 0)} clips, its length gives {n}")

    print(f"check_shards.py: {len(files)} shards, {n_clips['train']} train + {n_clips['eval']} eval clips, "
          f"{len(tracks)} tracks, {len(errors)} problems")
    print("  frame brightness vs loudness (median correlation over clips; footage ignores the music):")
    for look, c in sorted(corr.items()):
        print(f"    {look:12s} {np.median(c):+.2f}  ({len(c)} clips)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
