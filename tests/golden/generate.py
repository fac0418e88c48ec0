"""Write the PyTorch golden files the C tests compare against.

    pip install torch safetensors numpy
    python3 tests/golden/generate.py                 # every family, into tests/golden/data
    python3 tests/golden/generate.py --only matmul   # one family

Each family is a module gen_<family>.py beside this file with a function `generate(out_dir)` that
writes its cases under out_dir/<family>/. Goldens are deterministic (fixed seeds), small, committed.
"""
import argparse
import glob
import importlib
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, "data"))
    ap.add_argument("--only", action="append", help="family name (gen_<family>.py); repeatable")
    args = ap.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, HERE)
    families = sorted(os.path.basename(p)[4:-3] for p in glob.glob(os.path.join(HERE, "gen_*.py")))
    for fam in families:
        if args.only and fam not in args.only:
            continue
        mod = importlib.import_module("gen_" + fam)
        mod.generate(os.path.join(args.out, fam))
        print(f"wrote {fam}")


if __name__ == "__main__":
    main()
