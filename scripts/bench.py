#!/usr/bin/env python3
"""pyhot benchmark: attach time and the target's longest freeze, side by side
with a pyrasite-style gdb injection.

    PYHOT_BUILD=build python3 scripts/bench.py [--runs N] [--python PATH]

For each run a fresh target (tests/integration/targets/target.py ticker: a
thread ticks every 1 ms and records the largest gap) is started and:
  - pyhot attach (full injection) is timed until the agent answers, then a
    second pyhot attach (reuse of the agent);
  - the largest tick gap during the attach window is read, and the largest
    gap over an equal window without an attach; the freeze is the difference;
  - the same with gdb -p PID -batch calling PyGILState_Ensure /
    PyRun_SimpleString / PyGILState_Release on another fresh target.
Runs alternate pyhot and gdb so that both see the same machine. Prints the
medians (and the 10th/90th percentiles) and the ratios. Figures only, no
assertions.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BUILD = os.environ.get("PYHOT_BUILD") or os.path.join(REPO, "build")
PYHOT = os.path.join(BUILD, "pyhot")
TARGET = os.path.join(REPO, "tests", "integration", "targets", "target.py")
PYENV = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
DEFAULT_PY = os.path.join(PYENV, "versions", "3.11.7", "bin", "python3.11")


class Ticker:
    def __init__(self, python):
        self.p = subprocess.Popen([python, TARGET, "ticker"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, universal_newlines=True, bufsize=1)
        line = self.p.stdout.readline()
        if not line.startswith("ready"):
            self.close()
            raise RuntimeError("target did not start: %r" % line)
        self.pid = self.p.pid
        time.sleep(0.05)   # let the ticker thread settle

    def gap(self):
        """The largest gap since the last call, in ms (and reset it)."""
        self.p.stdin.write("gap\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().split()
        if len(line) != 2 or line[0] != "gap":
            raise RuntimeError("target answered %r" % line)
        return float(line[1]) * 1e3

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(timeout=10)
        try:
            os.unlink("/tmp/pyhot-%d/agent-%d.sock" % (os.geteuid(), self.p.pid))
        except OSError:
            pass


def timed(argv):
    t0 = time.perf_counter()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=60)
    return (time.perf_counter() - t0) * 1e3, p


def freeze(t, argv):
    """Run argv against t; return (wall ms, freeze ms, process)."""
    t.gap()
    t0 = time.perf_counter()
    wall, p = timed(argv)
    window = max(0.2, wall / 1e3 + 0.05)
    rest = t0 + window - time.perf_counter()
    if rest > 0:
        time.sleep(rest)
    during = t.gap()
    time.sleep(window)
    quiet = t.gap()
    return wall, max(0.0, during - quiet), during, quiet, p


def gdb_argv(pid):
    return ["gdb", "-p", str(pid), "-batch", "-nx", "-q",
            "-ex", "call (int)PyGILState_Ensure()",
            "-ex", "call (int)PyRun_SimpleString(\"pass\")",
            "-ex", "call (void)PyGILState_Release($1)"]


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "20")))
    ap.add_argument("--python", default=os.environ.get("BENCH_PYTHON", DEFAULT_PY))
    ap.add_argument("--no-gdb", action="store_true")
    args = ap.parse_args()
    if not os.access(PYHOT, os.X_OK):
        sys.exit("bench: no %s; run make first" % PYHOT)
    use_gdb = not args.no_gdb and shutil.which("gdb")
    res = {k: [] for k in ("attach_ms", "reuse_ms", "stopped_ms", "freeze_ms", "gap_ms",
                           "quiet_ms", "gdb_ms", "gdb_freeze_ms", "gdb_gap_ms")}
    failures = []
    version = subprocess.run([args.python, "-c", "import sys; print(sys.version.split()[0])"],
                             stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
    print("bench: %d runs, target CPython %s (%s), %d CPUs" % (
        args.runs, version, args.python, os.cpu_count()), flush=True)
    for i in range(args.runs):
        t = Ticker(args.python)
        try:
            wall, frz, during, quiet, p = freeze(t, [PYHOT, "attach", str(t.pid), "--json"])
            if p.returncode:
                failures.append("pyhot attach: exit %d: %s" % (p.returncode, p.stderr.strip()))
            else:
                import json
                j = json.loads(p.stdout)
                res["stopped_ms"].append(j.get("inject", {}).get("stopped_ms", float("nan")))
                res["attach_ms"].append(wall)
                res["freeze_ms"].append(frz)
                res["gap_ms"].append(during)
                res["quiet_ms"].append(quiet)
                wall2, p2 = timed([PYHOT, "attach", str(t.pid)])
                if p2.returncode == 0:
                    res["reuse_ms"].append(wall2)
        finally:
            t.close()
        if use_gdb:
            t = Ticker(args.python)
            try:
                wall, frz, during, quiet, p = freeze(t, gdb_argv(t.pid))
                if p.returncode:
                    failures.append("gdb: exit %d: %s" % (p.returncode, p.stderr.strip()[-200:]))
                else:
                    res["gdb_ms"].append(wall)
                    res["gdb_freeze_ms"].append(frz)
                    res["gdb_gap_ms"].append(during)
            finally:
                t.close()
        if sys.stdout.isatty():
            print("  run %2d/%d" % (i + 1, args.runs), end="\r", flush=True)
    if sys.stdout.isatty():
        print(" " * 20)

    def row(label, key):
        xs = res[key]
        if not xs:
            print("  %-46s %10s" % (label, "-"))
            return
        print("  %-46s %10.2f %10.2f %10.2f %4d" % (
            label, statistics.median(xs), pct(xs, 0.1), pct(xs, 0.9), len(xs)))

    print("  %-46s %10s %10s %10s %4s" % ("ms", "median", "p10", "p90", "n"))
    row("pyhot attach, fresh target (full injection)", "attach_ms")
    row("pyhot attach, agent already there (reuse)", "reuse_ms")
    row("pyhot: borrowed thread stopped", "stopped_ms")
    row("pyhot: largest tick gap during attach", "gap_ms")
    row("largest tick gap without attach (same window)", "quiet_ms")
    row("pyhot: target freeze (gap - gap without)", "freeze_ms")
    if use_gdb:
        row("gdb injection wall time", "gdb_ms")
        row("gdb: largest tick gap during injection", "gdb_gap_ms")
        row("gdb: target freeze (gap - gap without)", "gdb_freeze_ms")
    if res["attach_ms"] and res["gdb_ms"]:
        a, g = statistics.median(res["attach_ms"]), statistics.median(res["gdb_ms"])
        f, gf = statistics.median(res["freeze_ms"]), statistics.median(res["gdb_freeze_ms"])
        print("\n  wall time, gdb / pyhot:          %8.1fx" % (g / a))
        if f > 0.05:
            print("  target freeze, gdb / pyhot:      %8.1fx" % (gf / f))
        else:
            print("  target freeze, gdb / pyhot:      > %.0fx (pyhot's freeze %.3f ms is "
                  "below the ticker's noise; ratio against 0.05 ms)" % (gf / 0.05, f))
    if failures:
        print("\n%d failed runs:" % len(failures))
        for f in failures[:10]:
            print("  " + f)


if __name__ == "__main__":
    main()
