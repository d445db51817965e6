"""Models and PyTorch-side helpers for Spatia's TorchScript tests and benchmarks.

Run with the venv made by scripts/setup-torch.sh (torch 2.11.0, numpy); torchvision is not
needed: ResNet-18 is defined here in plain torch.nn (same layer shapes as torchvision's).

  python torch_models.py trace {tiny,resnet18} SIZE OUT.pt
      Traces the model (weights from torch.manual_seed(0)) with torch.jit.trace and saves it.
  python torch_models.py run MODEL.pt INPUT.f32 B SIZE OUTPUT.f32
      Loads a TorchScript file, runs it on INPUT (raw little-endian float32, B x 3 x SIZE x SIZE)
      on CPU and writes the output (raw float32, B x D); prints D.
  python torch_models.py bench {tiny,resnet18} SIZE BATCH THREADS BATCHES
      PyTorch eager, model only, on pre-decoded random tensors: prints one JSON line with
      tiles_per_s (after one warm-up batch).
  python torch_models.py serve {tiny,resnet18} SIZE BATCH THREADS
      The same, as a server for interleaved measurements: warms up, prints "ready", then for
      each line "N" on stdin runs N batches and prints one JSON line (seconds, cpu_seconds).
"""
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn


class Tiny(nn.Module):
    """A small conv net: 3 -> 8 -> 16 channels, global average pool, linear to 10."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(torch.flatten(self.features(x), 1))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.down is None else self.down(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + idt)


class ResNet18(nn.Module):
    """ResNet-18 trunk (torchvision layout) returning the 512-d pooled features (no fc)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        layers, cin = [], 64
        for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return torch.flatten(self.pool(self.layers(self.stem(x))), 1)


def make(name):
    # weights from seed 0 unless SPATIA_MODEL_SEED says otherwise (tests use it for "new weights")
    torch.manual_seed(int(os.environ.get("SPATIA_MODEL_SEED", "0")))
    m = {"tiny": Tiny, "resnet18": ResNet18}[name]()
    return m.eval()


def main(argv):
    cmd = argv[1]
    if cmd == "trace":
        name, size, out = argv[2], int(argv[3]), argv[4]
        m = make(name)
        with torch.no_grad():
            traced = torch.jit.trace(m, torch.zeros(1, 3, size, size))
        traced.save(out)
    elif cmd == "run":
        path, inp, b, size, out = argv[2], argv[3], int(argv[4]), int(argv[5]), argv[6]
        torch.set_num_threads(1)
        m = torch.jit.load(path, map_location="cpu").eval()
        x = torch.from_numpy(np.fromfile(inp, dtype="<f4").reshape(b, 3, size, size))
        with torch.no_grad():
            y = m(x).float().reshape(b, -1)
        y.numpy().astype("<f4").tofile(out)
        print(y.shape[1])
    elif cmd == "bench":
        name, size, batch, threads, batches = argv[2], int(argv[3]), int(argv[4]), int(argv[5]), int(argv[6])
        torch.set_num_threads(threads)
        m = make(name)
        x = torch.rand(batch, 3, size, size)
        with torch.inference_mode():
            m(x)
            t0 = time.perf_counter()
            for _ in range(batches):
                m(x)
            dt = time.perf_counter() - t0
        print(json.dumps({"model": name, "size": size, "batch": batch, "threads": torch.get_num_threads(),
                          "tiles": batch * batches, "seconds": dt, "tiles_per_s": batch * batches / dt,
                          "torch": torch.__version__}))
    elif cmd == "serve":
        name, size, batch, threads = argv[2], int(argv[3]), int(argv[4]), int(argv[5])
        torch.set_num_threads(threads)
        m = make(name)
        x = torch.rand(batch, 3, size, size)
        with torch.inference_mode():
            m(x)
            print("ready", torch.get_num_threads(), flush=True)
            for line in sys.stdin:
                n = int(line)
                c0, t0 = time.process_time(), time.perf_counter()
                for _ in range(n):
                    m(x)
                dt, dc = time.perf_counter() - t0, time.process_time() - c0
                print(json.dumps({"tiles": n * batch, "seconds": dt, "cpu_seconds": dc}), flush=True)
    else:
        sys.exit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main(sys.argv)
