#!/usr/bin/env python3
"""The report of tools/quickstart.sh: what each stage measured, read from the run folders and the media files.

Reads runs/codec-demo/metrics.jsonl (the codec's losses and held-out reconstruction: SI-SNR, mel distance),
runs/demo/metrics.jsonl (GVMGen's training and evaluation losses), and probes runs/demo/quickstart.wav and
runs/demo/quickstart.mp4 with ffprobe. Standard library only. Writes Markdown.

    python3 tools/quickstart_report.py --video VIDEO --out runs/quickstart-report.md
"""
import argparse
import json
import math
import os
import subprocess
import sys


def metrics(path):
    """Step lines and evaluation lines of a metrics.jsonl."""
    steps, evals = [], []
    if not os.path.exists(path):
        return steps, evals
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            (evals if any(k.startswith("eval_") for k in rec) else steps).append(rec)
    return steps, evals


def probe(path, stream, entries):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", stream, "-show_entries",
                          "stream=" + entries, "-of", "default=nw=1", path], capture_output=True, text=True)
    return dict(line.split("=", 1) for line in out.stdout.split() if "=" in line)


def fmt(x, spec=".4f"):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--runs", default="runs")
    a = ap.parse_args()
    lines = ["# gvm quick start report", "",
             "Everything below was measured by this run of `tools/quickstart.sh` on this machine.", ""]

    cs, ce = metrics(os.path.join(a.runs, "codec-demo", "metrics.jsonl"))
    lines += ["## The demo codec (`gvm train-codec configs/codec-demo.yaml`)", ""]
    if cs:
        lines += [f"- steps: {cs[-1]['step']}; loss {fmt(cs[0]['loss'])} at step {cs[0]['step']} -> "
                  f"{fmt(cs[-1]['loss'])} (L1 {fmt(cs[-1]['l1'])}, mel {fmt(cs[-1]['mel'])}, "
                  f"commitment {fmt(cs[-1]['commit'])})"]
    for e in ce:
        lines += [f"- held-out reconstruction at step {e['step']}: SI-SNR {fmt(e['eval_si_snr'], '.2f')} dB, "
                  f"mel distance {fmt(e['eval_mel_distance'])} ({e['eval_clips']} eval clips)"]
    lines += [""]

    ds, de = metrics(os.path.join(a.runs, "demo", "metrics.jsonl"))
    lines += ["## GVMGen (`gvm train configs/demo.yaml`)", ""]
    if ds:
        lines += [f"- steps: {ds[-1]['step']}; training loss {fmt(ds[0]['loss'])} at step {ds[0]['step']} -> "
                  f"{fmt(ds[-1]['loss'])}; {fmt(ds[-1].get('tokens_per_s'), '.0f')} codec frames/s of training",
                  f"- uniform guessing would score ln(card) per codebook; the losses are in nats"]
    for e in de:
        lines += [f"- eval loss at step {e['step']}: {fmt(e['eval_loss'])} (EMA weights "
                  f"{fmt(e.get('eval_loss_ema'))}) on {e['eval_clips']} held-out clips"]
    lines += [""]

    wav, mp4 = os.path.join(a.runs, "demo", "quickstart.wav"), os.path.join(a.runs, "demo", "quickstart.mp4")
    lines += ["## Generation (`gvm generate`)", "", f"- video: `{a.video}` (held out: eval split)"]
    if os.path.exists(wav):
        w = probe(wav, "a:0", "sample_rate,duration")
        lines += [f"- `{wav}`: {w.get('duration', '?')} s at {w.get('sample_rate', '?')} Hz"]
    if os.path.exists(mp4):
        v, src = probe(mp4, "v:0", "codec_name,width,height"), probe(a.video, "v:0", "codec_name,width,height")
        au = probe(mp4, "a:0", "codec_name,duration")
        same = "the source's stream, copied" if v == src else "DIFFERS from the source"
        lines += [f"- `{mp4}`: video {v.get('codec_name')} {v.get('width')}x{v.get('height')} ({same}), "
                  f"audio {au.get('codec_name')} {au.get('duration')} s"]
    lines += ["", "The demo model is tiny and trained for minutes from random weights: the music shows the pipeline "
              "working, not GVMGen's quality. docs/benchmarks.md has the speed measurements.", ""]
    with open(a.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
