"""Agreement checks between the pipelines' features.

  python compare.py --spatia A.h5 [--spatia2 B.h5] [--ref NAME=FEATS.npy …] --out CHECKS.json

- Spatia against each reference (the PyTorch pipelines' features, in the order of Spatia's
  coords): per-tile cosine similarity (min, mean), max |Δ| relative to the largest |value|.
- Spatia against a second Spatia run: `coords` and `features` bit-identical (same dtype, shape
  and bytes); when not, the number of differing values and the max |Δ|.
Prints and writes CHECKS.json; exits 0 whatever the outcome (report.py judges it).
"""
import argparse

import h5py
import numpy as np

import common


def bag(path):
    try:
        with h5py.File(path, "r") as f:
            return np.asarray(f["features"][()]), np.asarray(f["coords"][()])
    except (OSError, KeyError) as e:
        common.die(f"{path}: cannot read `features` and `coords`: {e}")


def cosine(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    c = (a * b).sum(axis=1) / np.maximum(na * nb, 1e-300)
    scale = max(np.abs(a).max(), 1e-300)
    return {"cos_min": float(c.min()), "cos_mean": float(c.mean()), "argmin": int(c.argmin()),
            "max_abs_diff_rel": float(np.abs(a - b).max() / scale), "tiles": len(a)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spatia", required=True)
    ap.add_argument("--spatia2")
    ap.add_argument("--ref", action="append", default=[])
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    fa, ca = bag(a.spatia)
    res = {"spatia": a.spatia, "dim": int(fa.shape[1]), "tiles": int(fa.shape[0])}
    for r in a.ref:
        name, _, path = r.partition("=")
        fr = np.load(path)
        if fr.shape != fa.shape:
            res[f"vs_{name}"] = {"error": f"{path} has shape {fr.shape}, Spatia's bag {fa.shape}"}
            continue
        res[f"vs_{name}"] = cosine(fa, fr)
    if a.spatia2:
        fb, cb = bag(a.spatia2)
        same = (fa.dtype == fb.dtype and fa.shape == fb.shape and fa.tobytes() == fb.tobytes()
                and ca.dtype == cb.dtype and ca.shape == cb.shape and ca.tobytes() == cb.tobytes())
        rep = {"other": a.spatia2, "bit_identical": bool(same)}
        if not same and fa.shape == fb.shape:
            d = fa.astype(np.float64) - fb.astype(np.float64)
            rep.update(differing=int((d != 0).sum()), max_abs_diff=float(np.abs(d).max()),
                       coords_equal=bool(np.array_equal(ca, cb)))
        res["rerun"] = rep
    common.write_json(a.out, res)


if __name__ == "__main__":
    main()
