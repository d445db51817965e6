"""CLAM/TRIDENT-style PyTorch pipeline on the tiles of Spatia's bag.

  python dataloader.py --bag SPATIA.h5 --slide SLIDE --model M.pt --device cuda|cpu --batch B
                       --precision fp32|bf16|fp16 --workers W --out RESULT.json [--features F.npy]

As CLAM's `extract_features_fp.py` and TRIDENT's patch encoders do it: a torch `Dataset` over the
coordinates whose `__getitem__` calls OpenSlide `read_region` at level 0 for `patch_size_level0`
pixels (PIL bilinear resize to `patch_size` when different) and returns a uint8 tensor;
`DataLoader(num_workers=W, pin_memory=True on CUDA, batch_size=B)`; each batch goes to the device
(non_blocking), is normalised there (ImageNet mean/std) and runs through the same TorchScript
model (autocast for bf16/fp16); features come back to the CPU.

The model is warmed up on one zero batch first; tiles/s is measured from the DataLoader's
creation (its worker start-up included) to the last batch's features. Writes RESULT.json like
eager.py (pipeline "dataloader", plus the OpenSlide version; cpu_s includes the workers').
"""
import argparse
import os

import numpy as np
import torch

import common


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for k in ("--bag", "--slide", "--model", "--out"):
        ap.add_argument(k, required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--features")
    a = ap.parse_args()
    dev = common.device_of(a.device)
    coords, ps0, size = common.read_tiles(a.bag)
    osv = common.check_openslide(a.slide)
    model = common.load_model(a.model, dev)
    norm = common.Normaliser(dev)
    ds = common.TileDataset(a.slide, coords, ps0, size)
    feats = []
    with torch.inference_mode(), common.autocast(dev, a.precision):
        common.forward(model, norm(torch.zeros(a.batch, size, size, 3, dtype=torch.uint8, device=dev)))
        common.sync(dev)
        t0, c0 = common.now(), common.cpu_seconds()
        dl = torch.utils.data.DataLoader(ds, batch_size=a.batch, num_workers=a.workers, shuffle=False,
                                         pin_memory=dev.type == "cuda")
        for x in dl:
            feats.append(common.forward(model, norm(x.to(dev, non_blocking=True))))
        common.sync(dev)
        t1 = common.now()
        del x, dl  # the exhausted loader has joined its workers: their CPU time is counted below
        c1 = common.cpu_seconds()
    n = len(coords)
    if a.features:
        np.save(a.features, torch.cat(feats).numpy())
    common.write_json(a.out, {"pipeline": "dataloader", "tiles": n, "seconds": t1 - t0, "tiles_per_s": n / (t1 - t0),
                              "cpu_s": c1 - c0, "t0": t0, "t1": t1, "device": a.device, "precision": a.precision,
                              "batch": a.batch, "workers": a.workers, "threads": torch.get_num_threads(),
                              "openslide": osv, "torch": torch.__version__})


if __name__ == "__main__":
    main()
