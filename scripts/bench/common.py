"""Shared pieces of scripts/gpu-bench.sh's Python side.

The PyTorch baselines (eager.py, dataloader.py) and the checks (compare.py) read the tiles that
Spatia chose from Spatia's own bag (`coords`, attributes `patch_size_level0` and `patch_size`), so
every pipeline sees the same tiles in the same order. Pixels are normalised on the device the way
the Spatia plugin does it: `(v * scale - mean[c]) / std[c]` in float32 on the uint8 NHWC batch,
then permuted to NCHW (ImageNet mean and std, scale 1/255).

Needs torch, numpy and h5py; the tile reader (TileDataset) needs openslide-python with
openslide-bin (OpenSlide 4) and Pillow, imported only when it is used.
"""
import contextlib
import json
import os
import sys
import time

import numpy as np
import torch

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SCALE = 1.0 / 255.0


def die(msg):
    """Exits with `msg` on stderr, prefixed with the script's name."""
    sys.exit(f"{os.path.basename(sys.argv[0])}: {msg}")


def read_tiles(bag):
    """(coords N×2 int64, patch_size_level0, patch_size) of a Spatia/TRIDENT bag."""
    import h5py

    try:
        with h5py.File(bag, "r") as f:
            if "coords" not in f:
                die(f"{bag}: no `coords` dataset (expected a Spatia feature bag)")
            c = f["coords"]
            coords = np.asarray(c[()], dtype=np.int64)
            attrs = dict(c.attrs)
    except OSError as e:
        die(f"{bag}: cannot open as HDF5: {e}")
    for k in ("patch_size_level0", "patch_size"):
        if k not in attrs:
            die(f"{bag}: `coords` has no attribute `{k}`")
    if coords.ndim != 2 or coords.shape[1] != 2 or len(coords) == 0:
        die(f"{bag}: `coords` has shape {coords.shape}, expected N×2 with N ≥ 1")
    return coords, int(attrs["patch_size_level0"]), int(attrs["patch_size"])


def device_of(name):
    """torch.device for `cpu` or `cuda`, with a clear error when CUDA is not usable."""
    if name == "cuda":
        if not torch.cuda.is_available():
            die("--device cuda but torch.cuda.is_available() is False in this python")
        return torch.device("cuda", 0)
    if name == "cpu":
        return torch.device("cpu")
    die(f"device must be cpu or cuda, found {name!r}")


def load_model(path, device):
    """The TorchScript model on `device`, in eval mode."""
    try:
        m = torch.jit.load(path, map_location=device)
    except Exception as e:  # noqa: BLE001 - torch raises several types here
        die(f"cannot load TorchScript {path}: {e}")
    return m.eval()


def autocast(device, precision):
    """torch.autocast for bf16/fp16 (the baselines' reduced precision), else a no-op context."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if dtype is None:
        die(f"precision must be fp32, bf16 or fp16, found {precision!r}")
    return torch.autocast(device_type=device.type, dtype=dtype)


class Normaliser:
    """uint8 N×H×W×3 on the device → float32 N×3×H×W, ImageNet-normalised (as the Spatia plugin)."""

    def __init__(self, device):
        self.mean = torch.tensor(MEAN, dtype=torch.float32, device=device).view(1, 1, 1, 3)
        self.std = torch.tensor(STD, dtype=torch.float32, device=device).view(1, 1, 1, 3)

    def __call__(self, x):
        return ((x.float() * SCALE - self.mean) / self.std).permute(0, 3, 1, 2).contiguous()


def forward(model, x):
    """Runs the model; returns float32 N×D on the CPU (first element when it returns a tuple)."""
    y = model(x)
    if isinstance(y, (tuple, list)):
        y = y[0]
    return y.float().reshape(y.shape[0], -1).cpu()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TileDataset(torch.utils.data.Dataset):
    """CLAM/TRIDENT-style tiles: OpenSlide `read_region` at level 0 of `patch_size_level0` px,
    RGBA → RGB, PIL bilinear resize to `size` when different; a uint8 H×W×3 tensor per tile.

    The slide is opened lazily in each DataLoader worker (OpenSlide handles are not shared
    across fork)."""

    def __init__(self, slide, coords, ps0, size):
        self.path, self.coords, self.ps0, self.size = slide, coords, ps0, size
        self.slide = None

    def __len__(self):
        return len(self.coords)

    def __getitem__(self, i):
        if self.slide is None:
            import openslide

            self.slide = openslide.OpenSlide(self.path)
        x, y = (int(v) for v in self.coords[i])
        img = self.slide.read_region((x, y), 0, (self.ps0, self.ps0)).convert("RGB")
        if self.ps0 != self.size:
            from PIL import Image

            img = img.resize((self.size, self.size), Image.BILINEAR)
        return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())


def check_openslide(slide):
    """Imports openslide (OpenSlide 4 from openslide-bin) and opens `slide`; returns its version."""
    try:
        import openslide
    except ImportError as e:
        die(f"cannot import openslide ({e}); gpu-bench.sh installs the carried openslide-python and "
            "openslide-bin wheels onto PYTHONPATH")
    try:
        openslide.OpenSlide(slide).close()
    except Exception as e:  # noqa: BLE001
        die(f"OpenSlide cannot open {slide}: {e}")
    return openslide.__library_version__


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")
    print(json.dumps(obj, sort_keys=True), flush=True)


def cpu_seconds():
    """CPU seconds (user + system) of this process, all threads, plus its waited-for children."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def now():
    """Wall-clock seconds since the epoch (to place a measurement among utilisation samples)."""
    return time.time()
