#!/usr/bin/env python3
"""Python's safetensors reads a file written by gvm's C writer.

    python3 tests/check_safetensors_python.py BUILD/test_safetensors

Runs `test_safetensors --write-for-python FILE`, then loads FILE with Python's safetensors and checks
every tensor's name, dtype, shape and values and the metadata against what write_for_python() in
tests/test_safetensors.c writes (keep the two in step). Exits 77 (ctest: skipped) when numpy or
safetensors is missing; prints "N passed, M failed" and exits 1 on any mismatch.
"""
import os
import sys
import tempfile

from interop_check import Checks, write_with_c

try:
    import numpy as np
    from safetensors import deserialize, safe_open
except ImportError as e:  # not an error: CI machines without Python packages skip this check
    print(f"SKIPPED: {e} (pip install numpy safetensors)")
    sys.exit(77)

NP = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "I16": np.int16,
      "U8": np.uint8, "BOOL": np.bool_}


def bf16_to_f32(raw):
    return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)


EXPECTED = {  # name: (dtype, shape, values)
    "mask": ("BOOL", [5], [True, False, True, True, False]),
    "weight": ("F32", [2, 3], [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]),
    "half": ("F16", [4], [1.0, -2.5, 65504.0, 2.0**-24]),
    "brain": ("BF16", [3], [1.0, -3.0, 0.15625]),
    "ids": ("I64", [2, 2], [2**40 + 1, -5, 0, -(2**62)]),
    "i32": ("I32", [3], [-(2**31), 2**31 - 1, 7]),
    "i16": ("I16", [2], [-32768, 32767]),
    "bytes": ("U8", [3], [0, 255, 17]),
    "scalar": ("F32", [], [3.5]),
    "empty": ("F32", [0, 3], []),
    "layers.0.deep": ("F32", [1, 1, 1, 1, 1, 2], [7.0, 8.0]),
}
METADATA = {"format": "gvm", "note": 'h\u00e9llo "quoted"', "step": "42"}


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    check = Checks()

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "from_c.safetensors")
        if not write_with_c(sys.argv[1], "--write-for-python", path):
            return 1
        with open(path, "rb") as f:
            blob = f.read()
        # deserialize validates the whole file (header, offsets) and needs no framework for bf16.
        tensors = {name: info for name, info in deserialize(blob)}
        check(set(tensors) == set(EXPECTED), f"names: {sorted(tensors)}")
        for name, (dtype, shape, values) in EXPECTED.items():
            info = tensors.get(name)
            if info is None:
                check(False, f"{name}: missing")
                continue
            check(info["dtype"] == dtype, f"{name}: dtype {info['dtype']} (want {dtype})")
            check(list(info["shape"]) == shape, f"{name}: shape {info['shape']} (want {shape})")
            raw = bytes(info["data"])
            if dtype == "BF16":
                got = bf16_to_f32(raw)
            else:
                got = np.frombuffer(raw, dtype=np.dtype(NP[dtype]).newbyteorder("<"))
            want = np.array(values, dtype=got.dtype)
            check(got.shape == want.shape and np.array_equal(got, want),
                  f"{name}: values {got.tolist()} (want {values})")
        # The standard reader opens it too, with the metadata.
        with safe_open(path, framework="numpy") as f:
            check(f.metadata() == METADATA, f"metadata {f.metadata()} (want {METADATA})")
            check(set(f.keys()) == set(EXPECTED), "safe_open keys")
            w = f.get_tensor("weight")
            check(w.shape == (2, 3) and w.dtype == np.float32 and w[1, 2] == 1.5, "safe_open get_tensor")
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
