"""PyTorch twin of tools/bench/bench_core.c, and the comparison table.

    python3 tools/bench/bench_core.py [--gvm build/bench_core] [--threads 2] [--iters 7] [--rounds 3]
                                      [--only NAME] [--markdown]

Runs the C benchmark (as a subprocess, OMP_NUM_THREADS = --threads) and the same cases in PyTorch
(torch.set_num_threads(--threads)) on the same machine in the same session, then prints one table: median
milliseconds of forward+backward for each, their ratio (gvm / torch: below 1 means gvm is faster), and for
GEMM-shaped cases the achieved GFLOP/s as a fraction of a plain sgemm measured in the same run.
Needs: pip install torch.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F


def rn(*shape, std=1.0, grad=True):
    return (torch.randn(*shape) * std).requires_grad_(grad)


def block_inputs():
    B, T, D = 2, 1500, 512
    return [rn(B, T, D), rn(D), rn(D), rn(D, D, std=0.02), rn(D, D, std=0.02), rn(D, D, std=0.02),
            rn(D, D, std=0.02), rn(D), rn(D), rn(4 * D, D, std=0.02), rn(4 * D, std=0.02), rn(D, 4 * D, std=0.02),
            rn(D, std=0.02)]


def block(x, l1w, l1b, wq, wk, wv, wo, l2w, l2b, w1, b1, w2, b2):
    B, T, D = x.shape
    H = 8
    h = F.layer_norm(x, (D,), l1w, l1b, 1e-5)
    q = F.linear(h, wq).view(B, T, H, D // H).transpose(1, 2)
    k = F.linear(h, wk).view(B, T, H, D // H).transpose(1, 2)
    v = F.linear(h, wv).view(B, T, H, D // H).transpose(1, 2)
    a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, D)
    x = x + F.linear(a, wo)
    h = F.layer_norm(x, (D,), l2w, l2b, 1e-5)
    return x + F.linear(F.gelu(F.linear(h, w1, b1)), w2, b2)


def attn(q, k, v):
    return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                          is_causal=True).transpose(1, 2)


# name (must equal the C names) -> (inputs factory, function)
CASES = {
    "linear 3000x512->2048": (lambda: [rn(3000, 512), rn(2048, 512, std=0.02), rn(2048, std=0.02)], F.linear),
    "bmm 16x256x64x256": (lambda: [rn(16, 256, 64), rn(16, 64, 256)], torch.matmul),
    "add [2,1500,512]+[512]": (lambda: [rn(2, 1500, 512), rn(512)], torch.add),
    "mul [2,1500,512]": (lambda: [rn(2, 1500, 512), rn(2, 1500, 512)], torch.mul),
    "gelu [2,1500,2048]": (lambda: [rn(2, 1500, 2048)], F.gelu),
    "silu [2,1500,2048]": (lambda: [rn(2, 1500, 2048)], F.silu),
    "softmax [2,1500,2048]": (lambda: [rn(2, 1500, 2048)], lambda x: torch.softmax(x, -1)),
    "sum axis1 [2,1500,2048]": (lambda: [rn(2, 1500, 2048)], lambda x: x.sum(1)),
    "transpose12 [2,1500,2048]": (lambda: [rn(2, 1500, 2048)], lambda x: x.transpose(1, 2).contiguous()),
    "layer_norm [2,1500,512]": (lambda: [rn(2, 1500, 512), rn(512), rn(512)],
                                lambda x, w, b: F.layer_norm(x, (512,), w, b, 1e-5)),
    "cross_entropy [6000,2048]": (lambda: [rn(6000, 2048), torch.randint(0, 2048, (6000,))], F.cross_entropy),
    "embedding 2049x512 [2,1500]": (lambda: [rn(2049, 512), torch.randint(0, 2049, (2, 1500))],
                                    lambda w, i: F.embedding(i, w)),
    "attention B2 T1500 H8 D64 causal": (lambda: [rn(2, 1500, 8, 64) for _ in range(3)], attn),
    "conv1d [4,64,8000] k7": (lambda: [rn(4, 64, 8000), rn(64, 64, 7, std=0.05), rn(64, std=0.05)],
                              lambda x, w, b: F.conv1d(x, w, b, padding=3)),
    "conv_transpose1d [4,128,1000] k8 s4": (lambda: [rn(4, 128, 1000), rn(128, 64, 8, std=0.05), rn(64, std=0.05)],
                                            lambda x, w, b: F.conv_transpose1d(x, w, b, stride=4, padding=2)),
    "lstm [4,250,256] h256": (lambda: [rn(4, 250, 256), rn(1024, 256, std=0.05), rn(1024, 256, std=0.05),
                                       rn(1024, std=0.05), rn(1024, std=0.05)],
                              lambda x, wi, wh, bi, bh: torch._VF.lstm(
                                  x, (torch.zeros(1, 4, 256), torch.zeros(1, 4, 256)), [wi, wh, bi, bh],
                                  True, 1, 0.0, True, False, True)[0]),
    "block d512 h8 T1500 B2": (block_inputs, block),
}


def time_torch(factory, fn, iters, min_ms):
    """Median fwd+bwd milliseconds: at least `iters` runs, more for fast cases (about min_ms of work)."""
    inputs = factory()
    times = []
    it = -1
    while it < iters:
        for t in inputs:
            if t.is_floating_point():
                t.grad = None
        t0 = time.perf_counter()
        out = fn(*inputs)
        out.backward(torch.ones_like(out))
        dt = (time.perf_counter() - t0) * 1e3
        if it < 0:
            iters = max(iters, min(200, int(min_ms / max(dt, 1e-3))))
        else:
            times.append(dt)
        it += 1
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--gvm", default=os.path.join(here, "..", "..", "build", "bench_core"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--iters", type=int, default=7)
    ap.add_argument("--min-ms", type=float, default=300, help="time at least this much work per case")
    ap.add_argument("--rounds", type=int, default=3, help="alternating gvm / PyTorch rounds")
    ap.add_argument("--only", default=None, help="cases whose name contains this")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table (for docs/benchmarks.md)")
    args = ap.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    cmd = [args.gvm, "--iters", str(args.iters), "--min-ms", str(args.min_ms)]
    cmd += ["--only", args.only] if args.only else []
    # Rounds alternate gvm and PyTorch so that a noisy spell on a shared machine hits both; each case's
    # figure is the median over rounds of the per-round medians.
    ours, theirs, rates = {}, {}, []
    for _ in range(args.rounds):
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
        rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        sgemm = rows[0]
        rates.append(sgemm["gflops"])
        for r in rows[1:]:
            ours.setdefault(r["name"], []).append(r)
        for name, (factory, fn) in CASES.items():
            if name in ours:
                theirs.setdefault(name, []).append(time_torch(factory, fn, args.iters, args.min_ms))
    sgemm["gflops"] = statistics.median(rates)

    table = []
    for name in CASES:
        if name not in ours:
            continue
        g_ms = statistics.median(r["ms"] for r in ours[name])
        t_ms = statistics.median(theirs[name])
        gflop = ours[name][0]["gflop"]
        frac = (gflop / (g_ms / 1e3)) / sgemm["gflops"] if gflop > 0 else math.nan
        table.append((name, g_ms, t_ms, g_ms / t_ms, frac))

    print(f"sgemm 2048^3 (median of rounds): {sgemm['gflops']:.1f} GFLOP/s, {args.threads} threads, OpenBLAS core {sgemm['blas']}, "
          f"torch {torch.__version__}")
    if args.markdown:
        print("\n| case (fwd+bwd) | gvm ms | PyTorch ms | gvm / PyTorch | of sgemm rate |")
        print("|---|---:|---:|---:|---:|")
        for name, g, t, r, f in table:
            print(f"| {name} | {g:.2f} | {t:.2f} | {r:.2f} | {'' if math.isnan(f) else f'{f:.2f}'} |")
    else:
        print(f"{'case (fwd+bwd)':40s} {'gvm ms':>10s} {'torch ms':>10s} {'ratio':>7s} {'sgemm frac':>10s}")
        for name, g, t, r, f in table:
            print(f"{name:40s} {g:10.2f} {t:10.2f} {r:7.2f} {'' if math.isnan(f) else f'{f:10.2f}'}")


if __name__ == "__main__":
    sys.exit(main())
