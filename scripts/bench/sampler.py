"""Samples utilisation in the background: one "EPOCH_SECONDS PERCENT" line per sample.

  python sampler.py gpu INDEX OUT.txt [--interval-ms 200]
      `nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 200 -i INDEX`,
      each line stamped on arrival. utilization.gpu is the percentage of the last sample period
      during which a kernel was running on the GPU: the "sm" column of `nvidia-smi dmon -s u`.
  python sampler.py cpu - OUT.txt [--interval-ms 200]
      Busy share of all CPUs from /proc/stat over each interval (the whole machine, not only the
      benchmark's processes).

Runs until killed (SIGTERM); lines are flushed as they come. report.py averages the samples that
fall inside each pipeline's measured interval.
"""
import argparse
import signal
import subprocess
import sys
import time


def cpu_times():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v), idle


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["gpu", "cpu"])
    ap.add_argument("index")
    ap.add_argument("out")
    ap.add_argument("--interval-ms", type=int, default=200)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with open(a.out, "w", buffering=1) as out:
        if a.kind == "gpu":
            cmd = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                   "-lms", str(a.interval_ms), "-i", a.index]
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
            signal.signal(signal.SIGTERM, lambda *_: (p.terminate(), sys.exit(0)))
            for line in p.stdout:
                v = line.strip()
                if v.replace(".", "", 1).isdigit():
                    out.write(f"{time.time():.3f} {v}\n")
            sys.exit(f"sampler.py: nvidia-smi stopped (status {p.wait()})")
        t, i = cpu_times()
        while True:
            time.sleep(a.interval_ms / 1000)
            t2, i2 = cpu_times()
            if t2 > t:
                out.write(f"{time.time():.3f} {100.0 * (1 - (i2 - i) / (t2 - t)):.1f}\n")
            t, i = t2, i2


if __name__ == "__main__":
    main()
