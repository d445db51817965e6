"""Writes the benchmark's TorchScript encoder: torchvision ResNet-50 with random weights.

  python make_resnet50.py OUT.pt [--size 224]

`torchvision.models.resnet50(weights=None)` after `torch.manual_seed(0)` (no download), `fc`
replaced by `nn.Identity()` so it returns the 2048-d pooled features, in eval mode, traced with
`torch.jit.trace` on a 1×3×SIZE×SIZE zero tensor on the CPU. The same seed and torch/torchvision
versions give the same file. Prints one JSON line (path, dim, torch and torchvision versions).
"""
import argparse
import json
import os
import sys

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--size", type=int, default=224)
    a = ap.parse_args()
    try:
        import torchvision
    except ImportError as e:
        sys.exit(f"make_resnet50.py: torchvision is needed to build ResNet-50 ({e})")
    torch.manual_seed(0)
    m = torchvision.models.resnet50(weights=None)
    m.fc = torch.nn.Identity()
    m.eval()
    x = torch.zeros(1, 3, a.size, a.size)
    with torch.no_grad():
        traced = torch.jit.trace(m, x)
        dim = traced(x).shape[1]
    tmp = a.out + ".tmp"
    traced.save(tmp)
    os.replace(tmp, a.out)
    print(json.dumps({"model": a.out, "dim": int(dim), "size": a.size, "torch": torch.__version__,
                      "torchvision": torchvision.__version__}))


if __name__ == "__main__":
    main()
