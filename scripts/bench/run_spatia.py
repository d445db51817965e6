"""Runs one `spatia extract …` and records its throughput and measured interval.

  python run_spatia.py --out RESULT.json -- SPATIA extract SLIDE … --out BAG.h5

stderr passes through; stdout's last line must be extract's JSON summary (`tiles`,
`tiles_per_s`: the feature pipeline's own rate: read + decode + transfer + model, without model
loading, tissue detection, tiling or writing the bag). The measured interval placed among the
utilisation samples is the last tiles/tiles_per_s seconds before the process exited (so it also
covers writing the bag, a small fraction). Also records the process's wall time and CPU time.
"""
import json
import resource
import subprocess
import sys

import common


def main():
    argv = sys.argv[1:]
    if len(argv) < 4 or argv[0] != "--out" or argv[2] != "--":
        common.die("usage: run_spatia.py --out RESULT.json -- SPATIA extract …")
    out, cmd = argv[1], argv[3:]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    s = common.now()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    except OSError as e:
        common.die(f"cannot run {cmd[0]}: {e}")
    e = common.now()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    if p.returncode != 0:
        common.die(f"`{' '.join(cmd)}` exited with status {p.returncode}; stdout: {p.stdout.strip()[-2000:]}")
    try:
        j = json.loads(lines[-1])
        tiles, tps = int(j["tiles"]), float(j["tiles_per_s"])
    except (IndexError, ValueError, KeyError, TypeError) as err:
        common.die(f"expected extract's JSON summary with tiles and tiles_per_s as its last stdout line, "
                   f"found {p.stdout.strip()[-500:]!r} ({err})")
    secs = tiles / tps if tps > 0 else float("nan")
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    common.write_json(out, {"pipeline": "spatia", "tiles": tiles, "tiles_per_s": tps, "seconds": secs,
                            "t0": e - secs, "t1": e, "process_wall_s": e - s, "process_cpu_s": cpu,
                            "extract": j, "command": cmd})


if __name__ == "__main__":
    main()
