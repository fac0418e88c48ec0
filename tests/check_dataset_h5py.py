#!/usr/bin/env python3
"""h5py reads a dataset shard written by gvm's C writer (format v1, docs/dataset-format.md).

    python3 tests/check_dataset_h5py.py BUILD/test_data_dataset

Runs `test_data_dataset --write-sample FILE`, then opens FILE with h5py and checks the file attributes
(format_version, frame_size, fps, sample_rate, created_by), the index, and every clip's attributes,
datasets, shapes, dtypes, values, chunking and filters against the values that write_sample() in
tests/test_data_dataset.c writes, computed here from the same formulas (keep the two in step). Exits 77
(ctest: skipped) when numpy or h5py is missing; prints "N passed, M failed" and exits 1 on any mismatch.
"""
import os
import sys
import tempfile

from interop_check import Checks, write_with_c

try:
    import h5py
    import numpy as np
except ImportError as e:  # not an error: machines without the Python packages skip this check
    print(f"SKIPPED: {e} (pip install h5py)")
    sys.exit(77)

H, W = 6, 10
IDS = ["clip-000", "clip/001", "clip-002"]
STYLES = ["taiko 太鼓", "guzheng 古筝 — ①", ""]
SPLITS = ["train", "eval", "train"]
TV = [3, 2, 1]
TA = [4000, 70001, 1]
SOURCE = "videos/太鼓 drums.mp4"


def expected_frames(i):
    t, y, x, c = np.meshgrid(np.arange(TV[i]), np.arange(H), np.arange(W), np.arange(3), indexing="ij")
    return ((t * 31 + y * 17 + x * 7 + c * 101 + i * 13) % 256).astype(np.uint8)


def expected_audio(i):
    n = np.arange(TA[i], dtype=np.int64)
    return (((n * 7 + i) % 256 - 128) / 128.0).astype(np.float32)


def expected_codes():
    k, t = np.meshgrid(np.arange(4), np.arange(9), indexing="ij")
    return ((k * 1000 + t * 37) % 4096 - 2048).astype(np.int16)


def expected_features(i):
    s, d = (3, 4) if i == 1 else (1, 2)
    n = np.arange(TV[i] * s * d, dtype=np.int64)
    return ((n - 20) * 0.125).astype(np.float16).reshape(TV[i], s, d)


def as_str(v):
    return v.decode("utf-8") if isinstance(v, bytes) else v


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    check = Checks()

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sample.h5")
        if not write_with_c(sys.argv[1], "--write-sample", path):
            return 1
        check(not os.path.exists(path + ".tmp"), "temporary file left behind")
        with h5py.File(path, "r") as f:
            a = f.attrs
            check(a.get("format_version") == 1 and np.asarray(a["format_version"]).dtype == np.int32,
                  f"format_version {a.get('format_version')!r}")
            check(list(np.asarray(a.get("frame_size", []))) == [H, W], f"frame_size {a.get('frame_size')!r}")
            check(a.get("fps") == 1.0 and np.asarray(a["fps"]).dtype == np.float64, f"fps {a.get('fps')!r}")
            check(a.get("sample_rate") == 32000, f"sample_rate {a.get('sample_rate')!r}")
            check(as_str(a.get("created_by")) == "gvm test_data_dataset --write-sample",
                  f"created_by {a.get('created_by')!r}")

            idx = f["index"]
            check([as_str(s) for s in idx["clip_id"][()]] == IDS, f"index clip_id {idx['clip_id'][()]!r}")
            check([as_str(s) for s in idx["split"][()]] == SPLITS, f"index split {idx['split'][()]!r}")
            check([as_str(s) for s in idx["style"][()]] == STYLES, f"index style {idx['style'][()]!r}")
            check(idx["num_frames"][()].tolist() == TV and idx["num_frames"].dtype == np.int64, "index num_frames")
            check(idx["num_samples"][()].tolist() == TA, "index num_samples")
            check(sorted(f["clips"].keys()) == ["00000000", "00000001", "00000002"], f"clips {list(f['clips'])}")

            for i in range(3):
                g = f[f"clips/{i:08d}"]
                name = f"clip {i}"
                for key, want in [("clip_id", IDS[i]), ("style", STYLES[i]), ("split", SPLITS[i]),
                                  ("source_file", SOURCE)]:
                    got = g.attrs.get(key)
                    check(isinstance(got, str) and got == want, f"{name}: {key} {got!r} (want {want!r})")
                check(g.attrs.get("start_time") == 12.5 + 30.0 * i, f"{name}: start_time {g.attrs.get('start_time')}")
                check(g.attrs.get("duration") == TA[i] / 32000.0, f"{name}: duration {g.attrs.get('duration')}")
                check(g.attrs.get("fps") == 1.0 and g.attrs.get("sample_rate") == 32000, f"{name}: fps, sample_rate")

                fr = g["frames"]
                check(fr.dtype == np.uint8 and fr.shape == (TV[i], H, W, 3), f"{name}: frames {fr.dtype} {fr.shape}")
                check(fr.chunks == (1, H, W, 3) and fr.compression == "gzip" and fr.compression_opts == 4,
                      f"{name}: frames chunks {fr.chunks} compression {fr.compression} {fr.compression_opts}")
                check(np.array_equal(fr[()], expected_frames(i)), f"{name}: frame values")
                check(np.array_equal(fr[TV[i] - 1], expected_frames(i)[TV[i] - 1]), f"{name}: one frame by index")

                au = g["audio"]
                check(au.dtype == np.float32 and au.shape == (TA[i],), f"{name}: audio {au.dtype} {au.shape}")
                check(au.shuffle and au.compression == "gzip", f"{name}: audio filters")
                check(np.array_equal(au[()], expected_audio(i)), f"{name}: audio values")

                if i == 1:
                    co = g["codes"]
                    check(co.dtype == np.int16 and co.shape == (4, 9), f"{name}: codes {co.dtype} {co.shape}")
                    check(np.array_equal(co[()], expected_codes()), f"{name}: codes values")
                    check(co.attrs.get("codec") == "encodec_32khz" and co.attrs.get("frame_rate") == 50.0,
                          f"{name}: codes attributes {dict(co.attrs)}")
                else:
                    check("codes" not in g, f"{name}: unexpected codes")
                if i >= 1:
                    fe = g["features"]
                    check(fe.dtype == np.float16 and fe.shape == expected_features(i).shape,
                          f"{name}: features {fe.dtype} {fe.shape}")
                    check(np.array_equal(fe[()], expected_features(i)), f"{name}: features values")
                    check(fe.attrs.get("source") == "test-vit layer -2", f"{name}: features source")
                else:
                    check("features" not in g, f"{name}: unexpected features")
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
