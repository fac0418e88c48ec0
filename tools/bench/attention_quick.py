"""Quick timing of gvm_attention (fwd+bwd) against torch's F.scaled_dot_product_attention.

    python3 tools/bench/attention_quick.py [build_dir] [--threads 2] [--rounds 15]

A throwaway script, not the benchmark suite: it compiles a tiny C driver against build_dir/libgvm.a and
keeps it running as a co-process, then alternates one gvm iteration with one torch iteration so that both
see the same machine load (on a shared VM the wall time drifts by 2x within seconds). Prints medians and
minima of the wall time and the process CPU time for each side, at the same thread count.
"""
import argparse
import os
import statistics
import subprocess
import tempfile
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

DRIVER = r"""
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "core/gvm.h"
static double wall(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static double cpu(void) { struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char **argv) {
    int B, T, H, D;
    if (sscanf(argv[1], "%d,%d,%d,%d", &B, &T, &H, &D) != 4) return 2;
    int64_t shape[4] = {B, T, H, D};
    gvm_tensor *q = gvm_tensor_new(GVM_F32, 4, shape), *k = gvm_tensor_new(GVM_F32, 4, shape),
               *v = gvm_tensor_new(GVM_F32, 4, shape);
    gvm_rng rng;
    gvm_rng_init(&rng, 1);
    gvm_rng_normal(&rng, q->data, q->numel, 0, 1);
    gvm_rng_normal(&rng, k->data, k->numel, 0, 1);
    gvm_rng_normal(&rng, v->data, v->numel, 0, 1);
    q->requires_grad = k->requires_grad = v->requires_grad = true;
    gvm_ctx *ctx = gvm_ctx_new(1);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        gvm_attention_opts o = {atoi(line) != 0, NULL, 0};
        double w0 = wall(), c0 = cpu();
        gvm_tensor *out = gvm_attention(ctx, q, k, v, &o);
        double w1 = wall();
        gvm_backward(ctx, out);
        printf("%.6f %.6f %.6f\n", w1 - w0, wall() - w0, cpu() - c0);
        fflush(stdout);
        gvm_zero_grad(q), gvm_zero_grad(k), gvm_zero_grad(v);
        gvm_ctx_reset(ctx);
    }
    return 0;
}
"""


def build_driver(build_dir, tmp):
    src = os.path.join(tmp, "driver.c")
    exe = os.path.join(tmp, "driver")
    with open(src, "w") as f:
        f.write(DRIVER)
    libs = subprocess.run(["pkg-config", "--libs", "openblas"], capture_output=True, text=True, check=True).stdout.split()
    subprocess.run(["cc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-fopenmp", "-I", ROOT, src,
                    os.path.join(build_dir, "libgvm.a"), "-o", exe, *libs, "-lcjson", "-lm"], check=True)
    return exe


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build_dir", nargs="?", default=os.path.join(ROOT, "build"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--shape", default="2,1500,8,64", help="B,T,H,D")
    args = ap.parse_args()
    B, T, H, D = map(int, args.shape.split(","))
    torch.set_num_threads(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_driver(args.build_dir, tmp)
        proc = subprocess.Popen([exe, args.shape], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(B, T, H, D, generator=g).requires_grad_() for _ in range(3))
        print(f"B={B} T={T} H={H} D={D}, {args.threads} threads; seconds for fwd+bwd (fwd alone in brackets)")
        for causal in (0, 1):
            ours, theirs = [], []
            for r in range(args.rounds + 1):
                proc.stdin.write(f"{causal}\n")
                proc.stdin.flush()
                fw, tw, tc = map(float, proc.stdout.readline().split())
                w0, c0 = time.perf_counter(), time.process_time()
                o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                                   is_causal=bool(causal))
                w1 = time.perf_counter()
                o.backward(torch.ones_like(o))
                w2, c2 = time.perf_counter(), time.process_time()
                q.grad = k.grad = v.grad = None
                if r:  # the first round warms up both
                    ours.append((fw, tw, tc))
                    theirs.append((w1 - w0, w2 - w0, c2 - c0))
            for name, rows in (("gvm  ", ours), ("torch", theirs)):
                fw, tw, tc = zip(*rows)
                print(f"causal={causal} {name} wall median {statistics.median(tw):.4f} min {min(tw):.4f} "
                      f"[fwd {statistics.median(fw):.4f}]  cpu median {statistics.median(tc):.4f}")
            ratio = statistics.median(t[1] for t in ours) / statistics.median(t[1] for t in theirs)
            print(f"causal={causal} gvm/torch wall-median ratio {ratio:.3f}")
        proc.stdin.close()
        proc.wait()


if __name__ == "__main__":
    main()
