"""Goldens for the core infrastructure (tests/test_half.c, test_rng.c, test_safetensors.c).

Writes under out_dir (tests/golden/data/infra/):
  half.safetensors        "f32" [N] tricky and random f32 inputs (ties, subnormals, the f16 overflow
                          boundary 65504/65520, f32 subnormals, NaN, inf, -0.0); "f16" [N] numpy's
                          astype(np.float16) of them; "bf16" [N] torch's .to(torch.bfloat16) of them.
  philox.safetensors      Philox4x32-10 blocks: "ctr" [M, 4], "key" [M, 2], "out" [M, 4] (u32 words held
                          in i64). Rows 0-2 are Random123's kat_vectors; the rest come from randomgen's
                          Philox(number=4, width=32), an implementation independent of ours.
  st_python.safetensors   a file written by Python's safetensors with every dtype gvm reads, a 0-d
                          tensor, an empty tensor and metadata; its exact content is restated in
                          tests/test_safetensors.c (keep the two in step).
  st_python_f64.safetensors  a valid file holding an F64 tensor, a dtype gvm refuses.

    pip install numpy torch safetensors randomgen
    python3 tests/golden/generate.py --only infra
"""
import os

import numpy as np
import torch
from safetensors.numpy import save_file as np_save_file
from safetensors.torch import save_file

# Random123's kat_vectors, philox4x32 10 lines: counter words, key words, expected output words.
KAT = [
    ([0x00000000] * 4, [0x00000000] * 2, [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
]


def f32_from_bits(bits):
    return np.array(bits, dtype=np.uint32).view(np.float32)


def tricky_f32():
    """Values where f32 -> f16 / bf16 rounding is easy to get wrong, as uint32 bit patterns."""
    v = []
    f = lambda x: int(np.array([x], dtype=np.float32).view(np.uint32)[0])  # noqa: E731
    # Signed zeros, ones, infinities, NaNs (quiet, signalling, negative, payload only in low bits).
    v += [0x00000000, 0x80000000, f(1.0), f(-1.0), 0x7F800000, 0xFF800000,
          0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FA00000, 0xFF800001, 0x7FFFFFFF]
    # f16 overflow boundary: 65504 is the largest f16; 65520 is the tie with 2^16 and rounds to inf.
    for x in [65504.0, 65519.0, 65520.0, 65536.0, 1e5, 3.4028234663852886e38]:
        v += [f(x), f(-x)]
    v += [f(65520.0) - 1, f(65520.0) + 1, f(65504.0) + 1, f(65504.0) - 1]
    # f16 ties in the normal range: 1 + 2^-11 rounds down to 1 (even), 1 + 3*2^-11 rounds up.
    for x in [1 + 2.0**-11, 1 + 3 * 2.0**-11, 2 + 2.0**-10, 1024 + 0.5, 2048 + 1, 0.5 + 3 * 2.0**-12]:
        b = f(x)
        v += [b, b - 1, b + 1, b | 0x80000000]
    # f16 subnormals: 2^-24 is the smallest, 2^-25 ties to 0, 3*2^-25 ties to 2*2^-24, 2^-14 - 2^-25 ties
    # up to the smallest normal.
    for x in [2.0**-24, 2.0**-25, 3 * 2.0**-25, 5 * 2.0**-25, 1023 * 2.0**-24, 2.0**-14 - 2.0**-25,
              2.0**-14, 2.0**-15, 6e-8, 1e-6, 3e-5]:
        b = f(x)
        v += [b, b - 1, b + 1, b | 0x80000000]
    # Far below f16: f32 min normal, f32 subnormals, tiny values.
    v += [0x00800000, 0x00000001, 0x00000002, 0x007FFFFF, 0x80000001, f(1e-30), f(-1e-20)]
    # bf16 ties: 1 + 2^-8 rounds to 1, 1 + 3*2^-8 rounds up; the tie below inf rounds to inf (even).
    v += [0x3F808000, 0x3F818000, 0x3F808001, 0x3F807FFF, 0x7F7F7FFF, 0x7F7F8000, 0x7F7FFFFF,
          0xFF7F8000, 0x00008000, 0x00018000, 0x00018001, 0x4B7FFF80]
    return v


def gen_half(out):
    rng = np.random.default_rng(5)
    bits = tricky_f32()
    bits += [int(x) for x in rng.integers(0, 2**32, size=384, dtype=np.uint64)]
    # Values spread over the f16 range and a little beyond, on a log scale, both signs.
    mags = np.exp2(rng.uniform(-27, 17, size=384)).astype(np.float32)
    signs = np.where(rng.integers(0, 2, size=384) == 1, -1, 1).astype(np.float32)
    bits += [int(x) for x in (mags * signs).view(np.uint32)]
    x = f32_from_bits(bits)
    with np.errstate(over="ignore", invalid="ignore"):
        h = x.astype(np.float16)
    bf = torch.from_numpy(x.copy()).to(torch.bfloat16)
    save_file({"f32": torch.from_numpy(x.copy()), "f16": torch.from_numpy(h), "bf16": bf},
              os.path.join(out, "half.safetensors"))


def gen_philox(out):
    rows = [(c, k, o) for c, k, o in KAT]
    try:
        from randomgen import Philox
    except ImportError:
        if os.path.exists(os.path.join(out, "philox.safetensors")):
            print("gen_infra: randomgen missing; keeping the existing philox.safetensors")
            return
        print("gen_infra: randomgen missing; philox.safetensors gets Random123's three vectors only")
        Philox = None
    if Philox is not None:
        def block(ctr, key):
            c = sum(int(w) << (32 * i) for i, w in enumerate(ctr))
            k = sum(int(w) << (32 * i) for i, w in enumerate(key))
            # randomgen increments the counter before each block: start one below.
            p = Philox(number=4, width=32, counter=(c - 1) % (1 << 128), key=k)
            return [int(w) for w in p.random_raw(4)]

        for c, k, o in KAT:  # the oracle must agree with Random123 before we trust it
            assert block(c, k) == o, "randomgen disagrees with Random123's known answers"
        rng = np.random.default_rng(11)
        extra = [([5, 0, 0, 0], [42, 0]), ([0, 1, 0, 0], [42, 0]), ([0, 0, 1, 0], [42, 0]),
                 ([0, 0, 0, 1], [0, 42]), ([0xFFFFFFFF, 0, 7, 0], [0xDEADBEEF, 0xCAFEF00D])]
        for _ in range(27):
            extra.append(([int(w) for w in rng.integers(0, 2**32, 4)], [int(w) for w in rng.integers(0, 2**32, 2)]))
        rows += [(c, k, block(c, k)) for c, k in extra]
    t = lambda i: torch.tensor([r[i] for r in rows], dtype=torch.int64)  # noqa: E731
    save_file({"ctr": t(0), "key": t(1), "out": t(2)}, os.path.join(out, "philox.safetensors"))


def gen_st_python(out):
    # Restated in tests/test_safetensors.c (check_python_file): change both together.
    tensors = {
        "f32": (torch.arange(6, dtype=torch.float32) * 0.5 - 1.0).reshape(2, 3),
        "f16": torch.tensor([1.0, -2.5, 65504.0, 2.0**-24, -0.0], dtype=torch.float16),
        "bf16": torch.tensor([1.0, -3.0, 0.15625, 3.0e38], dtype=torch.bfloat16),
        "i64": torch.tensor([[2**40 + 1, -5], [0, -(2**62)]], dtype=torch.int64),
        "i32": torch.tensor([-(2**31), 2**31 - 1, 7], dtype=torch.int32),
        "i16": torch.tensor([-32768, 32767], dtype=torch.int16),
        "u8": torch.tensor([0, 255, 17], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True, True], dtype=torch.bool),
        "scalar": torch.tensor(3.5, dtype=torch.float32),
        "empty": torch.zeros(0, 3, dtype=torch.float32),
        "nested.name.weight": torch.tensor([[[1.0]], [[2.0]]], dtype=torch.float32),
    }
    save_file(tensors, os.path.join(out, "st_python.safetensors"),
              # One key only: the Rust writer stores metadata in hash order, which would make the file
              # differ from run to run.
              metadata={"note": "h\u00e9llo from gen_infra.py"})
    np_save_file({"ok": np.ones(2, np.float32), "double": np.array([1.5, -2.0], np.float64)},
                 os.path.join(out, "st_python_f64.safetensors"))


def generate(out):
    os.makedirs(out, exist_ok=True)
    gen_half(out)
    gen_philox(out)
    gen_st_python(out)


if __name__ == "__main__":
    generate(os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "infra"))
