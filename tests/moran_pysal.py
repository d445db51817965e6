"""Writes tests/data/moran_pysal.json: Moran's I of small tile grids (rook, binary weights) from
PySAL (esda.Moran, libpysal.weights.lat2W restricted to the present cells), the reference
src/slide/moran.rs is checked against (tests/moran_pysal.rs). Run from the repository root: python3 tests/moran_pysal.py"""
import json
import warnings

import esda
import libpysal
import numpy as np

warnings.filterwarnings("ignore")
rng = np.random.default_rng(16)
cases = []
for rows, cols, missing, kind in [(4, 5, 0.0, "noise"), (6, 6, 0.2, "gradient"), (5, 8, 0.3, "hotspot"),
                                  (7, 3, 0.1, "noise"), (8, 8, 0.25, "hotspot")]:
    r, c = np.mgrid[0:rows, 0:cols]
    if kind == "noise":
        v = rng.random((rows, cols))
    elif kind == "gradient":
        v = c / cols + 0.2 * rng.random((rows, cols))
    else:
        v = np.exp(-((r - rows / 3) ** 2 + (c - cols / 2) ** 2) / 4) + 0.1 * rng.random((rows, cols))
    v = np.round(v, 6).ravel()
    present = rng.random(rows * cols) >= missing
    w = libpysal.weights.lat2W(rows, cols, rook=True)
    ids = [i for i in range(rows * cols) if present[i]]
    ws = libpysal.weights.w_subset(w, ids)
    m = esda.Moran(v[ids], ws, transformation="B", permutations=0)
    cases.append({
        "rows": rows, "cols": cols,
        "values": [float(v[i]) if present[i] else None for i in range(rows * cols)],
        "i": float(m.I), "expected": float(m.EI), "n": int(m.n), "weights": float(ws.s0),
    })
with open("tests/data/moran_pysal.json", "w") as f:
    json.dump({"source": f"esda {esda.__version__}, libpysal {libpysal.__version__}", "cases": cases}, f, indent=1)
print(json.dumps([(c["i"], c["n"]) for c in cases]))
