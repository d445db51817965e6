"""The benchmark's table and results JSON, from one run directory of scripts/gpu-bench.sh.

  python report.py RUN_DIR --device cuda|cpu --precision P [--meta KEY=VALUE …]

Reads RUN_DIR/{spatia,eager,dataloader}_<round>.json, RUN_DIR/util.txt (sampler.py) and
RUN_DIR/checks.json (compare.py). Per pipeline: tiles/s of each round and their median, the
median's ratio to the eager baseline and Spatia's median divided by it, and the mean
utilisation (GPU: utilization.gpu = nvidia-smi dmon's SM busy; CPU: all CPUs busy) over each
round's measured interval (median over rounds), and tiles per CPU-second (user + system time of
the measured loop, DataLoader workers included; for Spatia its whole process, so model loading,
tissue detection and tiling count against it). Then the issue's targets (reported, never
enforced) and the agreement checks. Writes RUN_DIR/results.json. Exit status 1 when an
agreement check fails (fp32: min cosine < 0.9999 against the DataLoader pipeline; a second Spatia
run not bit-identical), else 0: throughput never fails the run.
"""
import argparse
import glob
import json
import os
import statistics

import common

LABELS = {
    "spatia": "Spatia `extract` (read+decode+transfer+model)",
    "eager": "PyTorch eager: uint8→device, normalise, model",
    "eager_model_only": "PyTorch eager: model only",
    "dataloader": "CLAM/TRIDENT DataLoader + OpenSlide",
}


def load(run, name):
    out = []
    for p in sorted(glob.glob(os.path.join(run, f"{name}_*.json"))):
        with open(p) as f:
            out.append(json.load(f))
    return out


def util_mean(samples, t0, t1):
    v = [u for t, u in samples if t0 <= t <= t1]
    return statistics.fmean(v) if v else None


def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--device", required=True)
    ap.add_argument("--precision", required=True)
    ap.add_argument("--meta", action="append", default=[])
    a = ap.parse_args()
    samples = []
    up = os.path.join(a.run, "util.txt")
    if os.path.exists(up):
        with open(up) as f:
            for line in f:
                try:
                    t, u = line.split()
                    samples.append((float(t), float(u)))
                except ValueError:
                    pass
    rows = {}
    for name in ("spatia", "eager", "dataloader"):
        for r in load(a.run, name):
            rows.setdefault(name, []).append(r)
            if "model_only" in r:
                rows.setdefault("eager_model_only", []).append(r["model_only"])
    if "spatia" not in rows:
        common.die(f"{a.run}: no spatia_<round>.json: the Spatia run did not finish")
    summary = {}
    for name, rs in rows.items():
        tps = [r["tiles_per_s"] for r in rs]
        utils = [util_mean(samples, r["t0"], r["t1"]) for r in rs]
        uv = [u for u in utils if u is not None]
        cpu = [r["tiles"] / r[k] for r in rs for k in ("cpu_s", "process_cpu_s") if r.get(k)]
        summary[name] = {"tiles": rs[0]["tiles"], "tiles_per_s": tps, "median_tiles_per_s": statistics.median(tps),
                         "util_percent": utils, "median_util_percent": statistics.median(uv) if uv else None,
                         "tiles_per_cpu_s": cpu, "median_tiles_per_cpu_s": statistics.median(cpu) if cpu else None}
    eager = summary.get("eager", {}).get("median_tiles_per_s")
    sp = summary["spatia"]["median_tiles_per_s"]
    for s in summary.values():
        s["ratio_to_eager"] = s["median_tiles_per_s"] / eager if eager else None
        s["spatia_over_this"] = sp / s["median_tiles_per_s"]
    util_name = "SM busy %" if a.device == "cuda" else "CPU busy %"
    head = (f"{'pipeline':<48} {'tiles':>6} {'tiles/s (median; rounds)':>34} {'÷ eager':>8} {'Spatia ÷':>9}"
            f" {util_name:>10} {'tiles/CPU-s':>11}")
    print()
    print(head)
    print("-" * len(head))
    for name in ("spatia", "eager", "eager_model_only", "dataloader"):
        if name not in summary:
            continue
        s = summary[name]
        per = ", ".join(f"{v:.1f}" for v in s["tiles_per_s"])
        print(f"{LABELS[name]:<48} {s['tiles']:>6} {s['median_tiles_per_s']:>10.1f} ({per})".ljust(91)
              + f" {fmt(s['ratio_to_eager'], '.3f'):>8} {fmt(s['spatia_over_this'], '.3f'):>9}"
              + f" {fmt(s['median_util_percent'], '.1f'):>10} {fmt(s['median_tiles_per_cpu_s'], '.2f'):>11}")
    checks = {}
    cp = os.path.join(a.run, "checks.json")
    if os.path.exists(cp):
        with open(cp) as f:
            checks = json.load(f)
    print()
    targets = {}
    if eager:
        targets["spatia_ge_0.9_eager"] = sp >= 0.9 * eager
        print(f"target  Spatia ≥ 0.9 × eager ({a.device}):            {sp / eager:.3f}  "
              f"{'met' if targets['spatia_ge_0.9_eager'] else 'NOT met'}")
    ce, cs = summary.get("eager", {}).get("median_tiles_per_cpu_s"), summary["spatia"]["median_tiles_per_cpu_s"]
    if a.device == "cpu" and ce and cs:
        print(f"        the same per CPU-second (Spatia: whole process): {cs / ce:.3f}")
    if a.device == "cuda" and "dataloader" in summary:
        d = summary["dataloader"]["median_tiles_per_s"]
        targets["spatia_gt_dataloader"] = sp > d
        print(f"target  Spatia ahead of the DataLoader pipeline:   {sp / d:.3f}  "
              f"{'met' if sp > d else 'NOT met'}")
    if a.device == "cuda" and eager:
        us, ue = summary["spatia"]["median_util_percent"], summary["eager"]["median_util_percent"]
        if us is not None and ue is not None:
            targets["sm_busy_within_10_points"] = ue - us <= 10
            print(f"target  SM busy within 10 points of eager's:      {us:.1f} vs {ue:.1f}  "
                  f"{'met' if ue - us <= 10 else 'NOT met'}")
    failed = []
    for name in ("dataloader", "eager"):
        c = checks.get(f"vs_{name}")
        if not c:
            continue
        if "error" in c:
            failed.append(f"vs {name}: {c['error']}")
            print(f"check   Spatia vs {name}: {c['error']}")
            continue
        print(f"check   Spatia vs {name} features: cosine min {c['cos_min']:.8f}, mean {c['cos_mean']:.8f}, "
              f"max |Δ| {c['max_abs_diff_rel']:.2e} of the largest |value|")
        if name == "dataloader" and a.precision == "fp32" and c["cos_min"] < 0.9999:
            failed.append(f"min cosine vs the DataLoader pipeline {c['cos_min']:.6f} < 0.9999 (tile {c['argmin']})")
    rr = checks.get("rerun")
    if rr:
        why = ""
        if not rr["bit_identical"]:
            why = f" ({rr.get('differing')} values differ, max |Δ| {rr.get('max_abs_diff')})"
        print(f"check   second Spatia run bit-identical: {'yes' if rr['bit_identical'] else 'NO'}{why}")
        if not rr["bit_identical"]:
            failed.append("the second Spatia run's bag is not bit-identical to the first")
    meta = dict(m.partition("=")[::2] for m in a.meta)
    out = {"device": a.device, "precision": a.precision, "meta": meta, "pipelines": summary, "targets": targets,
           "checks": checks, "failed_checks": failed, "util_samples": len(samples)}
    with open(os.path.join(a.run, "results.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"\nresults: {os.path.join(a.run, 'results.json')}")
    if failed:
        print("FAILED checks:\n  " + "\n  ".join(failed))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
