"""PyTorch eager baseline: the model-side ceiling for the same tiles, batch and precision.

  python eager.py --bag SPATIA.h5 --slide SLIDE --model M.pt --device cuda|cpu --batch B
                  --precision fp32|bf16|fp16 --workers W --cache TILES.npy --out RESULT.json
                  [--features FEATS.npy] [--model-only]

The tiles of Spatia's bag (its `coords`, read with OpenSlide as in dataloader.py, W worker
processes) are read once into a uint8 N×S×S×3 array in memory (kept in --cache for the next
rounds; on CUDA the array is then pinned). Then, per batch: pinned uint8 slice → device
(non_blocking) → float, ×1/255, ImageNet mean/std on the device → NCHW → model (autocast for
bf16/fp16) → features to the CPU. One warm-up batch runs first; tiles/s is over all N tiles after
it. With --model-only, also the model alone on one normalised batch already on the device,
repeated ⌈N/B⌉ times (the issue's "model only" figure).

Writes RESULT.json: pipeline, tiles, seconds, tiles_per_s, t0/t1 (epoch seconds of the measured
interval, to match utilisation samples), cpu_s (CPU seconds of the process in it), device,
precision, batch, torch threads.
"""
import argparse
import math
import os

import numpy as np
import torch

import common


def read_all(slide, coords, ps0, size, workers, batch):
    ds = common.TileDataset(slide, coords, ps0, size)
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=workers, shuffle=False)
    out = np.empty((len(coords), size, size, 3), dtype=np.uint8)
    i = 0
    for x in dl:
        out[i:i + len(x)] = x.numpy()
        i += len(x)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for k in ("--bag", "--slide", "--model", "--out", "--cache"):
        ap.add_argument(k, required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--features")
    ap.add_argument("--model-only", action="store_true")
    a = ap.parse_args()
    dev = common.device_of(a.device)
    coords, ps0, size = common.read_tiles(a.bag)
    n = len(coords)
    tiles = None
    if os.path.exists(a.cache):
        tiles = np.load(a.cache)
        if tiles.shape != (n, size, size, 3):
            tiles = None
    if tiles is None:
        common.check_openslide(a.slide)
        tiles = read_all(a.slide, coords, ps0, size, a.workers, a.batch)
        np.save(a.cache + ".tmp.npy", tiles)
        os.replace(a.cache + ".tmp.npy", a.cache)
    host = torch.from_numpy(tiles)
    if dev.type == "cuda":
        host = host.pin_memory()
    model = common.load_model(a.model, dev)
    norm = common.Normaliser(dev)
    feats = []
    with torch.inference_mode(), common.autocast(dev, a.precision):
        common.forward(model, norm(host[: a.batch].to(dev, non_blocking=True)))  # warm-up
        common.sync(dev)
        t0, c0 = common.now(), common.cpu_seconds()
        for i in range(0, n, a.batch):
            x = host[i:i + a.batch].to(dev, non_blocking=True)
            feats.append(common.forward(model, norm(x)))
        common.sync(dev)
        t1, c1 = common.now(), common.cpu_seconds()
    res = {"pipeline": "eager", "tiles": n, "seconds": t1 - t0, "tiles_per_s": n / (t1 - t0), "t0": t0,
           "t1": t1, "cpu_s": c1 - c0, "device": a.device, "precision": a.precision, "batch": a.batch,
           "threads": torch.get_num_threads(), "torch": torch.__version__}
    if a.features:
        np.save(a.features, torch.cat(feats).numpy())
    if a.model_only:
        nb = math.ceil(n / a.batch)
        with torch.inference_mode(), common.autocast(dev, a.precision):
            x = norm(host[: a.batch].to(dev))
            model(x)
            common.sync(dev)
            m0 = common.now()
            for _ in range(nb):
                y = model(x)
            common.sync(dev)
            m1 = common.now()
        del y
        k = nb * min(a.batch, n)
        res["model_only"] = {"tiles": k, "seconds": m1 - m0, "tiles_per_s": k / (m1 - m0), "t0": m0, "t1": m1}
    common.write_json(a.out, res)


if __name__ == "__main__":
    main()
