"""Generates tests/survival_lifelines_penalized.json: lifelines CoxPHFitter with an L2
`penalizer` on ../shared/data/clinical/gbsg2.csv, the golden values of the penalised Cox test
in tests/survival_reference.rs (the shared reference files have no penalised fit).

Run from the repository root: python3 tests/survival_lifelines_penalized.py
"""
import json
import platform

import lifelines
import pandas as pd
from lifelines import CoxPHFitter

COVARIATES = ["age", "tsize", "pnodes", "progrec", "estrec", "tgrade", "horTh", "menostat"]


def main():
    g = pd.read_csv("../shared/data/clinical/gbsg2.csv")
    fits = []
    for penalizer in [0.01, 0.1, 1.0]:
        f = CoxPHFitter(penalizer=penalizer).fit(
            g[COVARIATES + ["time", "event"]], "time", "event",
            fit_options=dict(precision=1e-12, max_steps=500),
        )
        fits.append({
            "penalizer": penalizer,
            "coef": [float(v) for v in f.params_.values],
            "se": [float(v) for v in f.standard_errors_.values],
            "log_likelihood_penalized": float(f.log_likelihood_),
        })
    out = {
        "meta": {
            "generator": "tests/survival_lifelines_penalized.py",
            "lifelines": lifelines.__version__,
            "pandas": pd.__version__,
            "python": platform.python_version(),
            "data": "../shared/data/clinical/gbsg2.csv",
            "notes": "CoxPHFitter(penalizer=p) (l1_ratio 0, Efron ties), covariates in the order of 'covariates'; log_likelihood_ with a penalizer is lifelines' penalised objective",
        },
        "covariates": COVARIATES,
        "fits": fits,
    }
    with open("tests/survival_lifelines_penalized.json", "w") as fh:
        json.dump(out, fh, indent=1)
        fh.write("\n")


if __name__ == "__main__":
    main()
