"""Goldens for BS.1770 loudness (data/loudness.c): pyloudnorm's integrated loudness of test signals.

    pip install pyloudnorm        # 0.2.0 wrote these; it needs scipy
    python3 tests/golden/generate.py --only data_loudness

Oracle: pyloudnorm.Meter(rate, filter_class="DeMan").integrated_loudness on float64 copies of the float32
signals (so the golden is the loudness of exactly the samples the C test measures, with no f32 filtering).
No audio is stored: each signal is a list of segments the C test rebuilds with the same formulas:
    sine  x[i] = float32(amp * sin(2 * pi * f * i / rate))          i counted from the segment start
    noise state = state * 1664525 + 1013904223 (mod 2^32), starting from state = seed, then
          x[i] = float32(amp * (((state >> 8) / 2^24) * 2 - 1))    (uniform in [-1, 1), 24-bit exact)
    zero  x[i] = 0
File cases.txt, one case per block:
    case <name> <rate> <channels> <lufs>          lufs as Python's repr ("-inf" for no loudness)
    seg <channel> <sine|noise|zero> <f or seed> <amp> <n>     (segments of a channel in order)
    end
Also written per case, for the report only (not checked): pyloudnorm's default "K-weighting" (RBJ
approximation) reading, as "# rbj <lufs>" comment lines.
"""
import math
import os

import numpy as np
import pyloudnorm

RATES = (16000, 32000, 44100, 48000)


def seg_samples(kind, param, amp, n, rate):
    if kind == "sine":
        i = np.arange(n, dtype=np.float64)
        return (amp * np.sin(2 * math.pi * param * i / rate)).astype(np.float32)
    if kind == "noise":
        out = np.empty(n, dtype=np.float64)
        state = int(param) & 0xFFFFFFFF
        for k in range(n):
            state = (state * 1664525 + 1013904223) & 0xFFFFFFFF
            out[k] = ((state >> 8) / 16777216.0) * 2.0 - 1.0
        return (amp * out).astype(np.float32)
    if kind == "zero":
        return np.zeros(n, dtype=np.float32)
    raise ValueError(kind)


def build(rate, channels, segs):
    chans = []
    for c in range(channels):
        parts = [seg_samples(k, p, a, n, rate) for (ch, k, p, a, n) in segs if ch == c]
        chans.append(np.concatenate(parts))
    assert all(len(x) == len(chans[0]) for x in chans), "channels differ in length"
    return chans[0] if channels == 1 else np.stack(chans, axis=1)


def measure(x, rate, filt):
    x = x.astype(np.float64)
    n = x.shape[0]
    if n < 0.4 * rate:  # pyloudnorm raises; our API documents -inf
        return -math.inf
    return float(pyloudnorm.Meter(rate, filter_class=filt).integrated_loudness(x))


def cases():
    out = []
    db = lambda d: 10.0 ** (d / 20.0)
    # The BS.1770 reference: a 0 dBFS 997 Hz sine reads -3.01 LUFS (mono, 48 kHz).
    out.append(("ref997", 48000, 1, [(0, "sine", 997.0, 1.0, 48000 * 5)]))
    for rate in RATES:
        for lvl in (0, -6, -20, -40):
            out.append((f"sine1k_{lvl}dB_{rate}", rate, 1, [(0, "sine", 1000.0, db(lvl), rate * 3)]))
        out.append((f"noise_{rate}", rate, 1, [(0, "noise", 12345 + rate, 0.5, rate * 3)]))
        # Far from 1 kHz the filter shape (and its rate dependence) matters.
        out.append((f"sine60_{rate}", rate, 1, [(0, "sine", 60.0, 0.5, rate * 2)]))
        out.append((f"sine6k_{rate}", rate, 1, [(0, "sine", 6000.0, 0.25, rate * 2)]))
        # Stereo: a tone left, noise right.
        out.append((f"stereo_{rate}", rate, 2, [(0, "sine", 440.0, 0.3, rate * 3),
                                                (1, "noise", 777, 0.2, rate * 3)]))
        # Gating: loud noise, digital silence (absolute gate), a tone 30 dB down (relative gate drops it),
        # a tone 6 dB down (kept), and a length that is not a whole number of 100 ms steps.
        n_odd = int(rate * 0.537)
        out.append((f"gated_{rate}", rate, 1, [(0, "noise", 99, 0.5, rate), (0, "zero", 0, 0, rate * 2),
                                               (0, "sine", 1000.0, db(-30), rate), (0, "sine", 500.0, 0.25, rate),
                                               (0, "noise", 5, 0.3, n_odd)]))
    # Stereo gating: left silent for a while, right quiet all along.
    out.append(("stereo_gated_48000", 48000, 2, [(0, "noise", 1, 0.5, 48000), (0, "zero", 0, 0, 96000),
                                                 (1, "sine", 250.0, 0.05, 144000)]))
    # Block-count rounding and short signals (44.1 kHz: block edges are not whole milliseconds apart).
    for name, n in (("len400ms", 17640), ("len449ms", 19800), ("len451ms", 19890), ("len550ms", 24255),
                    ("len1234ms", 54420), ("short", 17639)):
        out.append((f"{name}_44100", 44100, 1, [(0, "noise", 3, 0.4, n)]))
    # No loudness: digital silence; a tone at about -80 LUFS (below the absolute gate).
    out.append(("silence_48000", 48000, 1, [(0, "zero", 0, 0, 48000 * 2)]))
    out.append(("below_gate_48000", 48000, 1, [(0, "sine", 1000.0, db(-77), 48000 * 2)]))
    # Near the absolute gate: loud enough to pass, with blocks either side of -70 (partly gated).
    out.append(("near_gate_32000", 32000, 1, [(0, "sine", 1000.0, db(-60), 32000),
                                              (0, "sine", 1000.0, db(-68.5), 32000),
                                              (0, "sine", 1000.0, db(-72), 32000)]))
    return out


def generate(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    lines = ["# gen_data_loudness.py: pyloudnorm %s, filter_class DeMan" % getattr(pyloudnorm, "__version__", "?")]
    for name, rate, channels, segs in cases():
        x = build(rate, channels, segs)
        lufs = measure(x, rate, "DeMan")
        rbj = measure(x, rate, "K-weighting")
        lines.append(f"case {name} {rate} {channels} {lufs!r}")
        lines.append(f"# rbj {rbj!r} diff {rbj - lufs if math.isfinite(lufs) else 0.0:.4f}")
        for (ch, kind, param, amp, n) in segs:
            lines.append(f"seg {ch} {kind} {param!r} {float(amp)!r} {n}")
        lines.append("end")
    with open(os.path.join(out_dir, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
