#!/usr/bin/env python3
"""Python's safetensors reads a checkpoint written by gvm (train/checkpoint.h).

    python3 tests/check_checkpoint_python.py BUILD/test_train_checkpoint

Runs `test_train_checkpoint --write-for-python RUN_DIR`, then follows RUN_DIR/latest and loads
model.safetensors, ema.safetensors and optim.safetensors with Python's safetensors: names, dtypes, shapes,
values and metadata as write_for_python() in tests/test_train_checkpoint.c writes them (keep the two in
step), and each file's "checksum" recomputed here from the documented algorithm. Exits 77 (ctest:
skipped) when numpy or safetensors is missing; prints "N passed, M failed" and exits 1 on any mismatch.
"""
import os
import sys
import tempfile

from interop_check import Checks, write_with_c

try:
    import numpy as np
    from safetensors import safe_open
except ImportError as e:  # not an error: CI machines without Python packages skip this check
    print(f"SKIPPED: {e} (pip install numpy safetensors)")
    sys.exit(77)

PARAMS = [("lm.embed.weight", (7, 5)), ("lm.layers.0.norm.bias", (5,)), ("lm.scale", ()),
          ("lm.head.weight", (1, 3, 1))]
MODEL_KEYS = ["format", "gvm_version", "step", "optim_step", "config", "rng_seed", "rng_offset", "data_epoch",
              "data_batch", "loss_scale", "loss_scale_growth_factor", "loss_scale_backoff_factor",
              "loss_scale_growth_interval", "loss_scale_growth_tracker", "files"]
PART_KEYS = ["format", "step"]
CONFIG = 'model:\n  dim: 64  # "quoted" \\ h\u00e9llo\ntrain: {lr: 3.0e-4}\n'
EXPECTED_META = {"format": "gvm-checkpoint-1", "step": "1234", "optim_step": "1231", "config": CONFIG,
                 "rng_seed": str(0xfedcba9876543210), "rng_offset": "123456789012345", "data_epoch": "3",
                 "data_batch": "41", "loss_scale_growth_factor": "2", "loss_scale_backoff_factor": "0.5",
                 "loss_scale_growth_interval": "1999", "loss_scale_growth_tracker": "17", "files": "model,ema,optim"}
MASK = (1 << 64) - 1


def gvm_hash(h, data):
    """gvm_checkpoint_hash: 64-bit LE words, tail zero-padded, h = (h ^ w) * FNV prime, then h ^= h >> 29."""
    data = bytes(data)
    if len(data) % 8:
        data += b"\0" * (8 - len(data) % 8)
    for w in np.frombuffer(data, dtype="<u8").tolist():
        h = ((h ^ w) * 0x100000001B3) & MASK
    return h ^ (h >> 29)


def base_values(i, shape):
    n = int(np.prod(shape)) if shape else 1
    return (i + np.arange(n, dtype=np.float32) / 8).astype(np.float32).reshape(shape)


def check_file(check, path, blocks, keys):
    """blocks: [(prefix, multiplier)]; checks tensors, metadata and checksum; returns the metadata."""
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata()
        want_names = {p + n for p, _ in blocks for n, _ in PARAMS}
        check(set(f.keys()) == want_names, f"{path}: names {sorted(f.keys())}")
        h = 0xCBF29CE484222325
        for prefix, mult in blocks:
            for i, (name, shape) in enumerate(PARAMS):
                if prefix + name not in f.keys():
                    continue
                t = f.get_tensor(prefix + name)
                want = (base_values(i, shape) * np.float32(mult)).astype(np.float32)
                check(t.dtype == np.float32 and t.shape == shape, f"{path}: {prefix + name} {t.dtype} {t.shape}")
                check(np.array_equal(t, want), f"{path}: {prefix + name} values {t.ravel().tolist()}")
                h = gvm_hash(h, t.astype("<f4").tobytes())
        for k in keys:
            v = meta.get(k)
            check(v is not None, f"{path}: metadata {k} missing")
            h = gvm_hash(h, k.encode() + b"\0")
            h = gvm_hash(h, (v or "").encode() + b"\0")
        check(meta.get("checksum") == f"{h:016x}", f"{path}: checksum {meta.get('checksum')} (computed {h:016x})")
        return meta


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    check = Checks()
    with tempfile.TemporaryDirectory() as tmp:
        run = os.path.join(tmp, "run")
        if not write_with_c(sys.argv[1], "--write-for-python", run):
            return 1
        with open(os.path.join(run, "latest")) as f:
            name = f.read().strip()
        check(name == "ckpt-000000001234", f"latest names {name!r}")
        ckpt = os.path.join(run, name)
        check(sorted(os.listdir(ckpt)) == ["ema.safetensors", "model.safetensors", "optim.safetensors"],
              f"files {sorted(os.listdir(ckpt))}")
        meta = check_file(check, os.path.join(ckpt, "model.safetensors"), [("", 1)], MODEL_KEYS)
        for k, v in EXPECTED_META.items():
            check(meta.get(k) == v, f"metadata {k} = {meta.get(k)!r} (want {v!r})")
        scale = np.float32(0.0009765625) * np.float32(3.1)
        check(np.float32(float(meta.get("loss_scale", "nan"))) == scale, f"loss_scale {meta.get('loss_scale')}")
        check(bool(meta.get("gvm_version")), "gvm_version present")
        ema = check_file(check, os.path.join(ckpt, "ema.safetensors"), [("", -1)], PART_KEYS)
        opt = check_file(check, os.path.join(ckpt, "optim.safetensors"), [("m.", 2), ("v.", 3)], PART_KEYS)
        for m in (ema, opt):
            check(m.get("format") == "gvm-checkpoint-1" and m.get("step") == "1234", f"part metadata {m}")
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
