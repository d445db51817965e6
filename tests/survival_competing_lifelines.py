"""Generates tests/data/melanoma_untied.csv and tests/survival_competing_lifelines.json: lifelines'
AalenJohansenFitter on the Melanoma data with its ties broken, the reference of the untied
Aalen-Johansen test in tests/survival_competing.rs (lifelines jitters tied times at random, so
the comparison is made on data without ties).

Ties are broken deterministically: the k-th repeat (k = 1, 2, ...) of a time in file order gets
time + k/100 (days), which keeps the order of all distinct times.

Run from the repository root with a Python that has lifelines (e.g. a venv with
`pip install lifelines`): python3 tests/survival_competing_lifelines.py
"""
import json
import platform

import lifelines
import numpy as np
import pandas as pd
from lifelines import AalenJohansenFitter


def main():
    d = pd.read_csv("tests/data/melanoma.csv")
    seen = {}
    untied = []
    for t in d["time"]:
        k = seen.get(t, 0)
        seen[t] = k + 1
        untied.append(t + k / 100.0)
    d["time"] = untied
    assert d["time"].is_unique
    d.to_csv("tests/data/melanoma_untied.csv", index=False)
    fits = []
    for cause in [1, 2]:
        ajf = AalenJohansenFitter(calculate_variance=False)
        ajf.fit(d["time"], d["status"], event_of_interest=cause)
        cd = ajf.cumulative_density_
        times = [float(t) for t in cd.index]
        # also between event times and at the largest follow-up time
        extra = [100.0, 1000.0, 2500.0, float(d["time"].max())]
        grid = sorted(set(times + extra))
        grid = [t for t in grid if t <= float(d["time"].max())]
        values = [float(ajf.predict(t)) for t in grid]
        fits.append({"cause": cause, "times": grid, "cif": values})
    out = {
        "meta": {
            "generator": "tests/survival_competing_lifelines.py",
            "lifelines": lifelines.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "python": platform.python_version(),
            "data": "tests/data/melanoma_untied.csv",
            "notes": "AalenJohansenFitter(calculate_variance=False).fit(time, status, event_of_interest=cause); "
                     "cif = predict(t) (right-continuous step); no jitter happens because no time is tied",
        },
        "fits": fits,
    }
    with open("tests/survival_competing_lifelines.json", "w") as fh:
        json.dump(out, fh, indent=1)
        fh.write("\n")


if __name__ == "__main__":
    main()
