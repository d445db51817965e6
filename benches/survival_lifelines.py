"""Times lifelines on the CSVs written by `cargo bench --bench survival` (same data, same
command) and prints one JSON object: minimum wall seconds and the results to cross-check.

Usage (called by the Rust bench): python3 benches/survival_lifelines.py DIR GBSG2_CSV
"""
import json
import sys
import time

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.utils import concordance_index


def best(f, reps):
    out, ts = None, []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = f()
        ts.append(time.perf_counter() - t0)
    return min(ts), out


def main():
    d, gbsg2 = sys.argv[1], sys.argv[2]
    res = {"lifelines": __import__("lifelines").__version__}
    km = pd.read_csv(f"{d}/km.csv")
    t, r = best(lambda: KaplanMeierFitter().fit(km["time"], km["event"]), 5)
    res["km"] = {"n": len(km), "seconds": t, "median": float(r.median_survival_time_)}
    c = pd.read_csv(f"{d}/c.csv")
    t, r = best(lambda: concordance_index(c["time"], -c["risk"], c["event"]), 2)
    res["harrell"] = {"n": len(c), "seconds": t, "c": float(r)}
    cox = pd.read_csv(f"{d}/cox.csv")
    t, r = best(lambda: CoxPHFitter().fit(cox, "time", "event"), 2)
    res["cox"] = {"n": len(cox), "seconds": t, "coef": [float(v) for v in r.params_.values]}
    g = pd.read_csv(gbsg2)
    t, r = best(lambda: CoxPHFitter().fit(g, "time", "event"), 5)
    res["cox_gbsg2"] = {"n": len(g), "seconds": t, "coef": [float(v) for v in r.params_.values]}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
