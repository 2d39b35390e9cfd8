#!/usr/bin/env python3
"""pyhot's benchmark (make bench): figures for attach, refresh and memory.

    PYHOT_BUILD=build python3 scripts/bench.py [--runs N] [--python PATH]

First, attach time and the target's longest freeze, side by side with a
pyrasite-style gdb injection.

For each run a fresh target (tests/integration/targets/target.py ticker: a
thread ticks every 1 ms and records the largest gap) is started and:
  - pyhot attach (full injection) is timed until the agent answers, then a
    second pyhot attach (reuse of the agent);
  - the largest tick gap during the attach window is read, and the largest
    gap over an equal window without an attach; the freeze is the difference;
  - the same with gdb -p PID -batch calling PyGILState_Ensure /
    PyRun_SimpleString / PyGILState_Release on another fresh target.
Runs alternate pyhot and gdb so that both see the same machine. Prints the
medians (and the 10th/90th percentiles) and the ratios.

Then refresh, on the same interpreter (--refresh-runs N, default 20,
BENCH_REFRESH_RUNS; --no-refresh skips it):
  - modules of 10, 100 and 1000 top-level function definitions, one
    function changed per refresh: the time the refresh ran inside the target
    (the agent's "safepoint" "run_ms") and the `pyhot refresh` wall time,
    against `importlib.reload` of the same module timed inside a process of
    its own (same interpreter, bytecode writing off in both);
  - a module with one class whose method changed, in a target holding 0 and
    one holding 1,000,000 live instances of it: the cost must not grow with
    the instances.
The target's main thread sleeps 1 ms in a loop, so a safe point comes
within a millisecond. The first refresh of each module (it parses the
baseline once) is a warm-up and is not counted.

Then the memory of the generation tracker (--memory-refreshes N, default
1000, BENCH_MEMORY_REFRESHES; --no-memory skips it, --no-memory-history1
skips its second pyhot column): the module of tests/integration/
test_history.py (module_source: 50 functions, decorated ones and a closure
among them, 10 classes, a dataclass, an Enum and a metaclass among them) is
refreshed N times, alternating its two versions,
  - by pyhot, in a target whose main thread calls into the module and sleeps
    1 ms in a loop, attached with the default history (20) and, in a second
    target, with --history 1; each refresh is sent straight to the agent's
    socket and runs as a pending call on the main thread, the usual path for
    a service (grace_ms=0, which makes the agent start a GIL thread for
    every request, adds 100-500 kB of RSS noise: thread stacks and malloc
    arenas);
  - by importlib.reload in a process of its own (file rewritten, mtime
    bumped, caches invalidated, no bytecode written);
the three at once (the figures are memory, not time). After 0, 1, 100 and N
refreshes (and every 100th in between): the gc object count after
gc.collect() (pyhot: the agent's "exec" verb) and VmRSS; printed with the
growth from 100 to N. The goal for pyhot: 0 objects and < 1% of RSS.

Then the safe point (--safepoint-runs N, default 20; --no-safepoint skips
it): on 3.8, 3.11 and 3.12, the median wall time of `pyhot status` and of a
one-function `pyhot refresh` against tests/integration/targets/
safepoint_target.py whose main thread runs Python alone, sleeps or is
blocked in select(), beside `pyhot --version`. The goal: the safe point
adds under 1 ms to the command.
Then process trees (--tree-runs N, default 20; --no-tree skips it): a
prefork server (tests/integration/targets/prefork_target.py) whose master
is attached and then forks 8 workers (each gets its agent at the fork):
the median wall time of `pyhot refresh --tree MASTER app` (all nine
processes, planned everywhere then applied everywhere) beside
`pyhot refresh MASTER app` (the master alone), one function changed each
time, and their ratio. The goal: at most 2.
Figures only, no assertions.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))
from pyhot_testlib import (DEFAULT_PY, PAYLOAD, PYENV_ROOT, PYHOT, TARGET_PY,  # noqa: E402
                           agent_request, start_target, stop_target, target_env)


class BenchTarget:
    """A target process: argv started, its "ready" line read (what: its name
    in the error when it does not come); close() kills and reaps it."""

    def __init__(self, argv, what, stdin=subprocess.DEVNULL, write_bytecode=True):
        self.p = start_target(argv, write_bytecode=write_bytecode, stdin=stdin,
                              stdout=subprocess.PIPE, universal_newlines=True, bufsize=1)
        self.pid = self.p.pid
        line = self.p.stdout.readline()
        if not line.startswith("ready"):
            self.close()
            raise RuntimeError("%s did not start: %r" % (what, line))

    def attach(self, *options):
        """pyhot attach [options], then a status round trip over the socket
        (the baseline is read at the agent's first safe point, which attach
        does not wait for); the status response."""
        p = subprocess.run([PYHOT, "attach", str(self.pid)] + list(options),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=60)
        if p.returncode:
            raise RuntimeError("pyhot attach: exit %d: %s" % (p.returncode, p.stderr.strip()))
        st = agent_request(self.pid, "status")
        if not st.get("ok"):
            raise RuntimeError("status: %s" % st.get("error"))
        return st

    def close(self):
        stop_target(self.p)


def run_program(python, program, args, timeout):
    """Run program (python -c) with args in a process of its own, no
    bytecode written; its stdout (RuntimeError when it fails)."""
    p = subprocess.run([python, "-c", program] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout,
                       env=target_env(write_bytecode=False))
    if p.returncode:
        raise RuntimeError("exit %d: %s" % (p.returncode, p.stderr.strip()[-300:]))
    return p.stdout


class Ticker(BenchTarget):
    """tests/integration/targets/target.py ticker: a thread ticks every 1 ms
    and records the largest gap."""

    def __init__(self, python):
        super().__init__([python, TARGET_PY, "ticker"], "target", stdin=subprocess.PIPE)
        time.sleep(0.05)   # let the ticker thread settle

    def gap(self):
        """The largest gap since the last call, in ms (and reset it)."""
        self.p.stdin.write("gap\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().split()
        if len(line) != 2 or line[0] != "gap":
            raise RuntimeError("target answered %r" % line)
        return float(line[1]) * 1e3


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


# ---- refresh --------------------------------------------------------------

DEF_SIZES = (10, 100, 1000)
INSTANCES = 1000000

# The programs below run in the interpreter under test, as python -c PROGRAM
# DIR ...: each starts with PROLOGUE (DIR first on sys.path, no bytecode
# written, for pyhot and importlib.reload alike).
PROLOGUE = r"""
import os, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, sys.argv[1])
"""

# A target ends with SERVE: it says ready, then, as a service would, runs
# one statement and sleeps 1 ms, forever (a safe point within a millisecond).
SERVE = r"""
print("ready", os.getpid(), flush=True)
while True:
    %s
    time.sleep(0.001)
"""

# A reload driver reads SPEC next: the versions to write (JSON, argv[2]).
SPEC = r"""
import importlib, json
with open(sys.argv[2]) as f:
    spec = json.load(f)
"""

# The target of the refresh rows: imports the given modules from DIR and
# makes COUNT instances of benchcls.C when asked.
REFRESH_TARGET = PROLOGUE + r"""
import gc, importlib
mods = [importlib.import_module(m) for m in sys.argv[2].split(",")]
count = int(sys.argv[3])
if count:
    import benchcls
    live = [benchcls.C(i) for i in range(count)]
    gc.collect()
""" + SERVE % "pass"

# importlib.reload of the same modules, in a process of its own: for each
# module, write each of its versions (spec: {name: [text, ...]}) and time
# the reload that follows.
RELOAD_DRIVER = PROLOGUE + SPEC + r"""
out = {}
for name, versions in spec.items():
    m = importlib.import_module(name)
    path = m.__file__
    xs = []
    for i, text in enumerate(versions):
        with open(path, "w") as f:
            f.write(text)
        t0 = time.perf_counter()
        importlib.reload(m)
        dt = (time.perf_counter() - t0) * 1e3
        if i:
            xs.append(dt)      # the first one is a warm-up, as for pyhot
    out[name] = xs
print(json.dumps(out))
"""


def defs_text(n, version):
    """n top-level functions; f<n/2> carries the version."""
    parts = ['"""bench module: %d top-level functions."""\nimport os\n' % n]
    for i in range(n):
        parts.append("def f%d(x, y=1):\n    z = x * %d + y\n    return z + %s\n"
                     % (i, i, version if i == n // 2 else 0))
    return "\n\n".join(parts)


def cls_text(version):
    """One class; C.target carries the version."""
    methods = "".join("    def m%d(self):\n        return self.i + %d\n\n" % (k, k)
                      for k in range(10))
    return ('"""bench module: one class."""\n\n\nclass C:\n'
            "    def __init__(self, i):\n        self.i = i\n\n%s"
            "    def target(self):\n        return self.i * 2 + %s\n" % (methods, version))


def clos_text(version):
    """A closure factory and 100 closures made by it; inner carries the
    version (its maker's nested code changes: the closures follow)."""
    return ('"""bench module: a closure factory."""\n\n\ndef make(n):\n'
            "    def inner(x):\n        return x + n + %s\n    return inner\n\n\n"
            "HELD = [make(i) for i in range(100)]\n" % version)


def closure_changed(resp, name):
    """None when resp is a successful refresh of name whose changes are all
    functions (the factory and the closures that follow it)."""
    if not resp.get("ok"):
        return "refresh %s: %s" % (name, resp.get("error", {}).get("message", resp))
    got = [(c.get("action"), c.get("kind")) for m in resp.get("modules") or []
           for c in m.get("changes", []) if c.get("action") != "kept"]
    if not got or any(g != ("changed", "function") for g in got):
        return "refresh %s: expected functions changed, got %s" % (name, got)
    return None


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def refresh_target(python, moddir, modules, count):
    """A target of the refresh rows (REFRESH_TARGET), attached."""
    t = BenchTarget([python, "-c", REFRESH_TARGET, moddir, ",".join(modules), str(count)],
                    "refresh target", write_bytecode=False)
    try:
        t.attach()
    except BaseException:
        t.close()
        raise
    return t


def one_changed(resp, name):
    """None when resp is a successful refresh of name that changed exactly one
    function or method (a class holding it is reported too, "in place");
    else what went wrong."""
    if not resp.get("ok"):
        return "refresh %s: %s" % (name, resp.get("error", {}).get("message", resp))
    mods = resp.get("modules") or []
    got = [(c.get("action"), c.get("kind"), c.get("detail")) for m in mods
           for c in m.get("changes", []) if c.get("action") != "kept"]
    fns = [g for g in got if g[:2] in (("changed", "function"), ("changed", "method"))]
    rest = [g for g in got if g not in fns and g != ("changed", "class", "in place")]
    if len(mods) != 1 or len(fns) != 1 or rest:
        return "refresh %s: expected one function changed, got %s" % (name, got)
    return None


def refresh_series(t, name, path, make, runs, res, key, failures, check=one_changed):
    """Refresh name in t once per version 0 .. runs (version 0 is the
    warm-up), writing make(version) first: res[key + "_run"] gets the
    in-target run_ms, res[key + "_cli"] the wall time of `pyhot refresh`.
    When the CLI's JSON carries no "safepoint", each version is refreshed
    twice: by the CLI (wall time), then, after a change of the same size
    (version + 0.5), straight over the socket (run_ms). Returns the version
    last written."""
    res.setdefault(key + "_run", [])
    res.setdefault(key + "_cli", [])
    last = None
    for v in range(1, runs + 2):
        write(path, make(v))
        last = v
        wall, p = timed([PYHOT, "refresh", str(t.pid), name, "--json"])
        try:
            resp = json.loads(p.stdout)
        except ValueError:
            resp = {"ok": False, "error": {"message": "exit %d: %s" % (
                p.returncode, p.stderr.strip())}}
        bad = check(resp, name)
        if bad:
            failures.append(bad)
            continue
        sp = resp.get("safepoint")
        if sp is None:
            write(path, make(v + 0.5))
            last = v + 0.5
            resp = agent_request(t.pid, "refresh", [("module", name)])
            bad = check(resp, name)
            if bad:
                failures.append(bad + " (socket)")
                continue
            sp = resp.get("safepoint") or {}
        if v == 1:
            continue
        res[key + "_cli"].append(wall)
        res[key + "_run"].append(sp.get("run_ms", float("nan")))
    return last


def bench_refresh(python, runs, res, failures):
    tmp = tempfile.mkdtemp(prefix="pyhot-bench-")
    targets = []
    try:
        hot, cold, many = (os.path.join(tmp, d) for d in ("hot", "cold", "many"))
        makers = {"benchdefs%d" % n: (lambda v, n=n: defs_text(n, v)) for n in DEF_SIZES}
        for d in (hot, cold):
            os.mkdir(d)
            for name, make in makers.items():
                write(os.path.join(d, name + ".py"), make(0))
        os.mkdir(many)
        for d in (hot, many):
            write(os.path.join(d, "benchcls.py"), cls_text(0))
            write(os.path.join(d, "benchclos.py"), clos_text(0))

        # importlib.reload in a process of its own: versions 1 .. runs + 1,
        # the first a warm-up.
        spec = {name: [make(v) for v in range(1, runs + 2)] for name, make in makers.items()}
        spec_path = os.path.join(tmp, "reload.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        try:
            out = run_program(python, RELOAD_DRIVER, [cold, spec_path], 300)
            for name, xs in json.loads(out).items():
                res["reload_" + name] = xs
        except RuntimeError as e:
            failures.append("importlib.reload driver: %s" % e)

        # pyhot refresh of the same modules, and of the class with no instance.
        t = refresh_target(python, hot, list(makers) + ["benchcls", "benchclos"], 0)
        targets.append(t)
        for name, make in makers.items():
            refresh_series(t, name, os.path.join(hot, name + ".py"), make, runs, res, name,
                           failures)
        refresh_series(t, "benchcls", os.path.join(hot, "benchcls.py"), cls_text, runs, res,
                       "cls0", failures)
        refresh_series(t, "benchclos", os.path.join(hot, "benchclos.py"), clos_text, runs,
                       res, "clos0", failures, closure_changed)

        # The class again, in a target holding 1,000,000 instances of it.
        t = refresh_target(python, many, ["benchcls", "benchclos"], INSTANCES)
        targets.append(t)
        last = refresh_series(t, "benchcls", os.path.join(many, "benchcls.py"), cls_text,
                              runs, res, "cls1m", failures)
        refresh_series(t, "benchclos", os.path.join(many, "benchclos.py"), clos_text, runs,
                       res, "clos1m", failures, closure_changed)
        check = subprocess.run([PYHOT, "exec", str(t.pid), "-c",
                                "import __main__\n"
                                "(len(__main__.live), __main__.live[7].target())"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=True, timeout=60)
        want = "(%d, %r)" % (INSTANCES, 7 * 2 + last)
        if check.stdout.strip() != want:
            failures.append("1M instances: (len(live), live[7].target()) after the refreshes: "
                            "%r, expected %r %s" % (check.stdout.strip(), want,
                                                    check.stderr.strip()))
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as e:
        failures.append("refresh bench: %s" % e)
    finally:
        for t in targets:
            t.close()
        shutil.rmtree(tmp, ignore_errors=True)


# ---- memory of the generation tracker -------------------------------------

MEM_REFRESHES = 1000
INTEG = os.path.join(REPO, "tests", "integration")
COUNT_CODE = "import gc; gc.collect(); len(gc.get_objects())"

# The target of the memory rows: imports usermod from DIR, and its
# statement between two sleeps is a call into the module. The call returns
# an int and makes no gc-tracked object, so that a count taken at any safe
# point sees the same heap.
MEM_TARGET = PROLOGUE + "import usermod\n" + SERVE % "usermod.f3(2)"

# importlib.reload of the same module, in a process of its own: rewrite the
# file (alternating the two versions of the spec: [text, text]), bump its
# mtime, invalidate the finders' caches, reload. No bytecode is written, so
# each reload compiles the source. At each checkpoint: "CP i objects
# rss_kb" printed at once (nothing kept: a list of results would be counted
# too).
MEM_RELOAD = PROLOGUE + SPEC + r"""
import gc
checkpoints = frozenset(int(x) for x in sys.argv[3].split(","))
import usermod
path = usermod.__file__
base = os.stat(path).st_mtime_ns

def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1

def checkpoint(i):
    gc.collect()
    n = len(gc.get_objects())
    sys.stdout.write("CP %d %d %d\n" % (i, n, rss_kb()))
    sys.stdout.flush()

checkpoint(0)
t0 = time.perf_counter()
for i in range(1, max(checkpoints) + 1):
    with open(path, "w") as f:
        f.write(spec[i % 2])
    os.utime(path, ns=(base + i * 10**9, base + i * 10**9))
    importlib.invalidate_caches()
    importlib.reload(usermod)
    if i in checkpoints:
        checkpoint(i)
sys.stdout.write("SECONDS %.3f\n" % (time.perf_counter() - t0))
"""


def module_source_fn():
    """module_source(v) of tests/integration/test_history.py: the module the
    tracker's memory tests refresh."""
    if INTEG not in sys.path:
        sys.path.insert(0, INTEG)
    import test_history
    return test_history.module_source


def vm_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/%d/status" % pid)


def mem_shown(n):
    """The checkpoints printed in the table: 0, 1, 100 and n refreshes."""
    return sorted({0, 1, min(100, n), n})


def mem_checkpoints(n):
    """Those, and every 100th refresh in between: RSS moves by a few hundred
    kB from one checkpoint to the next (the agent's threads, malloc's
    arenas), so the trend is fitted over all of them too."""
    return sorted(set(mem_shown(n)) | set(range(100, n + 1, 100)))


def slope(points, lo):
    """Least-squares slope of points {i: y} for i >= lo, per 100 refreshes."""
    xy = [(i, y) for i, y in points.items() if i >= lo]
    if len(xy) < 3:
        return float("nan")
    mx = sum(x for x, _ in xy) / len(xy)
    my = sum(y for _, y in xy) / len(xy)
    sxx = sum((x - mx) ** 2 for x, _ in xy)
    return 100.0 * sum((x - mx) * (y - my) for x, y in xy) / sxx if sxx else float("nan")


def mem_pyhot(python, tmp, label, history, source, n, out, failures):
    """Refresh usermod n times in a target of its own (pyhot attach
    [--history H]), alternating the two versions, each request straight to
    the agent (taken as a pending call by the main thread); at each
    checkpoint the target's gc object count after gc.collect() (exec verb)
    and its VmRSS. out[label] gets
    {"points": {i: (objects, rss_kb)}, "run_ms": [...], "seconds": s,
    "history_bytes": {i: b}, "leaks": n}."""
    d = os.path.join(tmp, label)
    os.mkdir(d)
    path = os.path.join(d, "usermod.py")
    write(path, source(0))
    keys = []   # the default grace: the main thread takes the pending call
    t = None
    try:
        t = BenchTarget([python, "-c", MEM_TARGET, d], "memory target", write_bytecode=False)
        st = t.attach(*(["--history", str(history)] if history else []))
        res = out[label] = {"points": {}, "run_ms": [], "history_bytes": {},
                            "limit": (st.get("history") or {}).get("limit")}

        def checkpoint(i):
            r = agent_request(t.pid, "exec", [("code", COUNT_CODE)] + keys)
            if not r.get("ok"):
                raise RuntimeError("exec: %s" % r.get("error"))
            res["points"][i] = (int(r["value"]), vm_rss_kb(t.pid))
            s = agent_request(t.pid, "status", keys)
            res["history_bytes"][i] = (s.get("history") or {}).get("bytes")

        cps = set(mem_checkpoints(n))
        agent_request(t.pid, "exec", [("code", COUNT_CODE)] + keys)   # warm-up
        checkpoint(0)
        t0 = time.perf_counter()
        for i in range(1, n + 1):
            write(path, source(i % 2))
            r = agent_request(t.pid, "refresh", [("module", "usermod")] + keys)
            if not r.get("ok"):
                raise RuntimeError("refresh %d: %s" % (
                    i, (r.get("error") or {}).get("message", r)))
            res["run_ms"].append((r.get("safepoint") or {}).get("run_ms", float("nan")))
            if i in cps:
                checkpoint(i)
        res["seconds"] = time.perf_counter() - t0
        lk = agent_request(t.pid, "status", [("leaks", "1")] + keys)
        res["leaks"] = len(lk.get("leaks") or [])
        if t.p.poll() is not None:
            raise RuntimeError("target exited: %s" % t.p.returncode)
    except (RuntimeError, OSError, ValueError, KeyError, subprocess.SubprocessError) as e:
        failures.append("memory bench, %s: %s" % (label, e))
        out.pop(label, None)
    finally:
        if t is not None:
            t.close()


def mem_reload(python, tmp, source, n, out, failures):
    d = os.path.join(tmp, "reload")
    os.mkdir(d)
    write(os.path.join(d, "usermod.py"), source(0))
    spec = os.path.join(tmp, "reload-versions.json")
    with open(spec, "w") as f:
        json.dump([source(0), source(1)], f)
    try:
        stdout = run_program(python, MEM_RELOAD, [d, spec, ",".join(
            str(c) for c in mem_checkpoints(n))], 600)
        res = {"points": {}}
        for line in stdout.splitlines():
            w = line.split()
            if w and w[0] == "CP":
                res["points"][int(w[1])] = (int(w[2]), int(w[3]))
            elif w and w[0] == "SECONDS":
                res["seconds"] = float(w[1])
        out["reload"] = res
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as e:
        failures.append("memory bench, importlib.reload: %s" % e)


def bench_memory(python, n, history1, res, failures):
    """The three runs at once (two targets and the reload process: about
    1,000 x 50 ms of CPU each for pyhot): the figures are memory, which
    does not depend on the machine's load."""
    import threading
    try:
        source = module_source_fn()
    except Exception as e:    # pytest missing from the harness, say
        failures.append("memory bench: cannot import module_source from %s: %s" % (
            os.path.join(INTEG, "test_history.py"), e))
        return
    tmp = tempfile.mkdtemp(prefix="pyhot-bench-mem-")
    out = res.setdefault("memory", {})
    t0 = time.perf_counter()
    try:
        jobs = [threading.Thread(target=mem_pyhot, args=(python, tmp, "pyhot", 0, source, n,
                                                         out, failures))]
        if history1:
            jobs.append(threading.Thread(target=mem_pyhot, args=(
                python, tmp, "pyhot_h1", 1, source, n, out, failures)))
        jobs.append(threading.Thread(target=mem_reload, args=(python, tmp, source, n, out,
                                                              failures)))
        for j in jobs:
            j.start()
        for j in jobs:
            j.join()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["memory_seconds"] = time.perf_counter() - t0


def memory_rows(res, n):
    mem = res.get("memory") or {}
    cps = mem_shown(n)
    mid = min(100, n)
    so = PAYLOAD
    try:
        built = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.stat(so).st_mtime))
    except OSError:
        built = "?"
    print("\n  memory over %d refreshes of test_history.module_source (50 functions, "
          "10 classes),\n  alternating its two versions; gc objects after gc.collect() "
          "and VmRSS in kB (section: %.0f s;\n  payload %s built %s)" % (
              n, res.get("memory_seconds", float("nan")), so, built))
    rows = [("pyhot", "pyhot, history %s" % (mem.get("pyhot", {}).get("limit") or 20)),
            ("pyhot_h1", "pyhot, --history 1"),
            ("reload", "importlib.reload")]
    head = "  %-22s %-7s" % ("after N refreshes", "") + "".join(
        "%11d" % c for c in cps) + "   %d -> %d" % (mid, n)
    print(head)
    for key, label in rows:
        r = mem.get(key)
        if not r:
            if key != "pyhot_h1":
                print("  %-22s %s" % (label, "-"))
            continue
        pts = r["points"]
        objs = [pts.get(c, (None, None))[0] for c in cps]
        rss = [pts.get(c, (None, None))[1] for c in cps]
        cell = lambda x: "%11s" % ("-" if x is None else x)
        go = ("%+d" % (pts[n][0] - pts[mid][0])) if n in pts and mid in pts else "-"
        if n in pts and mid in pts and pts[mid][1]:
            gr = "%+d kB (%+.2f%%)" % (pts[n][1] - pts[mid][1],
                                       100.0 * (pts[n][1] - pts[mid][1]) / pts[mid][1])
        else:
            gr = "-"
        print("  %-22s %-7s" % (label, "objects") + "".join(cell(x) for x in objs) +
              "   %s" % go)
        print("  %-22s %-7s" % ("", "RSS kB") + "".join(cell(x) for x in rss) +
              "   %s" % gr)
    every = [c for c in mem_checkpoints(n) if c >= mid]
    if len(every) > 2:
        print("\n  every 100 refreshes from %d: RSS kB (least-squares trend per 100 "
              "refreshes); gc objects" % mid)
    for key, label in rows if len(every) > 2 else ():
        r = mem.get(key)
        if not r:
            continue
        pts = r["points"]
        objs = sorted({pts[c][0] for c in every if c in pts})
        print("  %-22s %s  (%+.0f kB/100); objects %s" % (
            label, " ".join(str(pts[c][1]) if c in pts else "-" for c in every),
            slope({c: pts[c][1] for c in every if c in pts}, mid),
            "always %d" % objs[0] if len(objs) == 1 else
            " ".join(str(pts[c][0]) if c in pts else "-" for c in every)))
    print()
    for key, label in rows[:2]:
        r = mem.get(key)
        if not r:
            continue
        hb = r.get("history_bytes", {})
        xs = [x for x in r["run_ms"] if x == x]
        print("  %s: refresh in the target %.1f ms median (p90 %.1f), %.0f s for %d; "
              "history bytes %s; leaks at the end: %s" % (
                  label, statistics.median(xs) if xs else float("nan"), pct(xs, 0.9),
                  r.get("seconds", float("nan")), n,
                  "/".join(str(hb.get(c, "-")) for c in cps), r.get("leaks", "-")))
    r = mem.get("reload")
    if r:
        print("  importlib.reload: %.1f s for %d" % (r.get("seconds", float("nan")), n))
    p = mem.get("pyhot")
    if p and n in p["points"] and mid in p["points"]:
        do = p["points"][n][0] - p["points"][mid][0]
        dr = 100.0 * (p["points"][n][1] - p["points"][mid][1]) / p["points"][mid][1]
        tr = slope({c: p["points"][c][1] for c in every if c in p["points"]}, mid)
        print("  goal, pyhot %d -> %d: 0 objects and < 1%% of RSS: %s (%+d objects, "
              "%+.2f%%; trend %+.2f%% per 100 refreshes)" % (
                  mid, n, "met" if do == 0 and dr < 1.0 else "NOT met", do, dr,
                  100.0 * tr / p["points"][mid][1]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "20")))
    ap.add_argument("--python", default=os.environ.get("BENCH_PYTHON", DEFAULT_PY))
    ap.add_argument("--no-gdb", action="store_true")
    ap.add_argument("--refresh-runs", type=int,
                    default=int(os.environ.get("BENCH_REFRESH_RUNS", "20")))
    ap.add_argument("--no-refresh", action="store_true")
    ap.add_argument("--no-attach", action="store_true", help="skip the attach rows")
    ap.add_argument("--memory-refreshes", type=int,
                    default=int(os.environ.get("BENCH_MEMORY_REFRESHES", str(MEM_REFRESHES))),
                    help="refreshes of the memory rows (checkpoints 1, 100 and this)")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory rows")
    ap.add_argument("--no-memory-history1", action="store_true",
                    help="memory rows: skip the pyhot --history 1 column")
    ap.add_argument("--safepoint-runs", type=int,
                    default=int(os.environ.get("BENCH_SAFEPOINT_RUNS", "20")),
                    help="safe-point rows: commands per interpreter and case")
    ap.add_argument("--no-safepoint", action="store_true", help="skip the safe-point rows")
    ap.add_argument("--compare", nargs="+", metavar="BUILD_DIR", default=[],
                    help="attach rows side by side with the pyhot of these build "
                    "directories (make bench-compare REF=rev builds one)")
    ap.add_argument("--compare-runs", type=int, default=10)
    ap.add_argument("--tree-runs", type=int,
                    default=int(os.environ.get("BENCH_TREE_RUNS", "20")),
                    help="process-tree rows: refreshes of each kind")
    ap.add_argument("--no-tree", action="store_true", help="skip the process-tree rows")
    args = ap.parse_args()
    if not os.access(PYHOT, os.X_OK):
        sys.exit("bench: no %s; run make first" % PYHOT)
    use_gdb = not args.no_gdb and shutil.which("gdb")
    res = {k: [] for k in ("attach_ms", "reuse_ms", "remap_ms", "remap_stopped_ms",
                           "stopped_ms", "freeze_ms", "gap_ms",
                           "quiet_ms", "gdb_ms", "gdb_freeze_ms", "gdb_gap_ms")}
    failures = []
    version = subprocess.run([args.python, "-c", "import sys; print(sys.version.split()[0])"],
                             stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
    print("bench: %d runs, target CPython %s (%s), %d CPUs" % (
        args.runs, version, args.python, os.cpu_count()), flush=True)
    for i in range(0 if args.no_attach else args.runs):
        t = Ticker(args.python)
        try:
            wall, frz, during, quiet, p = freeze(t, [PYHOT, "attach", str(t.pid), "--json"])
            if p.returncode:
                failures.append("pyhot attach: exit %d: %s" % (p.returncode, p.stderr.strip()))
            else:
                j = json.loads(p.stdout)
                res["stopped_ms"].append(j.get("inject", {}).get("stopped_ms", float("nan")))
                res["attach_ms"].append(wall)
                res["freeze_ms"].append(frz)
                res["gap_ms"].append(during)
                res["quiet_ms"].append(quiet)
                wall2, p2 = timed([PYHOT, "attach", str(t.pid)])
                if p2.returncode == 0:
                    res["reuse_ms"].append(wall2)
                # After a detach the payload is mapped: only its boot is called.
                if timed([PYHOT, "detach", str(t.pid)])[1].returncode == 0:
                    wall3, p3 = timed([PYHOT, "attach", str(t.pid), "--json"])
                    if p3.returncode == 0:
                        res["remap_ms"].append(wall3)
                        res["remap_stopped_ms"].append(
                            json.loads(p3.stdout).get("inject", {}).get("stopped_ms",
                                                                        float("nan")))
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
    if sys.stdout.isatty() and not args.no_attach:
        print(" " * 20)
    if not args.no_refresh:
        bench_refresh(args.python, max(1, args.refresh_runs), res, failures)
    if not args.no_memory:
        bench_memory(args.python, max(1, args.memory_refreshes), not args.no_memory_history1,
                     res, failures)

    def row(label, key):
        xs = [x for x in res.get(key, []) if x == x]
        if not xs:
            print("  %-46s %10s" % (label, "-"))
            return
        print("  %-46s %10.2f %10.2f %10.2f %4d" % (
            label, statistics.median(xs), pct(xs, 0.1), pct(xs, 0.9), len(xs)))

    if not args.no_attach:
        attach_rows(row, res, use_gdb)
    if not args.no_refresh:
        refresh_rows(row, res)
    if not args.no_memory:
        memory_rows(res, max(1, args.memory_refreshes))
    if not args.no_safepoint:
        bench_safepoint(max(1, args.safepoint_runs))
    if args.compare:
        bench_compare(args.python, [os.path.dirname(PYHOT)] +
                      [os.path.abspath(b) for b in args.compare], max(1, args.compare_runs))
    if not args.no_tree:
        bench_tree(args.python, max(1, args.tree_runs), failures)
    if failures:
        print("\n%d failed runs:" % len(failures))
        for f in failures[:10]:
            print("  " + f)


SP_TARGET = os.path.join(REPO, "tests", "integration", "targets", "safepoint_target.py")
SP_PYTHONS = ["3.8.18", "3.11.7", "3.12.1"]
SP_MODES = ["alone", "sleep", "select"]


def bench_safepoint(runs):
    """Median wall ms of `pyhot status` and of a one-function refresh against
    a target whose main thread runs Python alone, sleeps or is blocked in
    select(), on 3.8, 3.11 and 3.12, beside `pyhot --version` (start-up) and
    `pyhot attach` of the attached target (start-up, inspection, trust
    checks and one ping: everything of a command but the safe point). The
    safe point's cost is status minus that; the agent's "wait_ms" (queued to
    running) and "run_ms" (the status handler's own work, which a ping does
    not do: threads, frames, history) are printed too, and status minus
    ping minus run_ms: what is left of the difference for the safe point
    itself (its wait, the hand-over of the GIL, and the larger answer).
    sp_added is the safe point's own share, measured in the target: the
    agent's total_ms (from taking the request to the safe point to having
    its results back) minus run_ms; the rest of status minus ping is the
    command's work on the larger answer, which a ping does not have."""
    print("\nsafe point (median wall ms of %d commands; --version: start-up; ping: "
          "`attach` of an attached target, all of a command but the safe point; "
          "run_ms: the status handler's own work; sp_added: what the safe point "
          "added, measured in the target (goal: under 1 ms))" % runs)
    print("  %-8s %-8s %10s %8s %8s %8s %12s %9s %8s %12s %9s" % (
        "python", "main", "--version", "ping", "status", "refresh", "status-ping",
        "wait_ms", "run_ms", "-ping-run", "sp_added"))
    for v in SP_PYTHONS:
        py = os.path.join(PYENV_ROOT, "versions", v, "bin", "python" + v.rsplit(".", 1)[0])
        if not os.access(py, os.X_OK):
            continue
        for mode in SP_MODES:
            tmp = tempfile.mkdtemp(prefix="pyhot-bench-sp-")
            shutil.copy(SP_TARGET, tmp)
            write(os.path.join(tmp, "spmod.py"), "def f():\n    return 0\n")
            p = subprocess.Popen([py, os.path.join(tmp, "safepoint_target.py"), mode],
                                 stdout=subprocess.PIPE, universal_newlines=True)
            try:
                p.stdout.readline()
                subprocess.run([PYHOT, "attach", str(p.pid)], stdout=subprocess.DEVNULL,
                               check=True)
                ver, ping, st, rf, wait, run, added = [], [], [], [], [], [], []
                for i in range(runs):
                    ver.append(timed([PYHOT, "--version"])[0])
                    ping.append(timed([PYHOT, "attach", str(p.pid)])[0])
                    wall, sp = timed([PYHOT, "status", str(p.pid), "--json"])
                    st.append(wall)
                    if sp.returncode == 0:
                        spi = json.loads(sp.stdout)["status"].get("safepoint", {})
                        wait.append(spi.get("wait_ms", float("nan")))
                        run.append(spi.get("run_ms", float("nan")))
                        added.append(spi.get("total_ms", float("nan")) -
                                     spi.get("run_ms", float("nan")))
                    write(os.path.join(tmp, "spmod.py"), "def f():\n    return %d\n" % (i + 1))
                    rf.append(timed([PYHOT, "refresh", str(p.pid), "spmod"])[0])
                m = [statistics.median(x) if x else float("nan")
                     for x in (ver, ping, st, rf, wait, run, added)]
                print("  %-8s %-8s %10.2f %8.2f %8.2f %8.2f %12.2f %9.3f %8.3f %12.2f %9.3f" % (
                    v.rsplit(".", 1)[0], mode, m[0], m[1], m[2], m[3], m[2] - m[1], m[4],
                    m[5], m[2] - m[1] - m[5], m[6]), flush=True)
            finally:
                p.kill()
                p.wait()
                shutil.rmtree(tmp, ignore_errors=True)


COMPARE_TARGETS = [("ticker", "ticker: main asleep, a thread ticks every 1 ms"),
                   ("alone", "main thread runs Python alone"),
                   ("select", "main thread blocked in select()")]


def attach_once(pyhot, python, kind, tmp):
    """One fresh target of kind (COMPARE_TARGETS), attached by pyhot:
    (wall ms, borrowed thread stopped ms, freeze ms or nan)."""
    if kind == "ticker":
        t = Ticker(python)
        try:
            wall, frz, _, _, p = freeze(t, [pyhot, "attach", str(t.pid), "--json"])
        finally:
            t.close()
    else:
        shutil.copy(SP_TARGET, tmp)
        t = BenchTarget([python, os.path.join(tmp, "safepoint_target.py"), kind], "target")
        try:
            time.sleep(0.05)
            wall, p = timed([pyhot, "attach", str(t.pid), "--json"])
            frz = float("nan")
        finally:
            t.close()
    if p.returncode:
        raise RuntimeError("%s attach: exit %d: %s" % (pyhot, p.returncode, p.stderr.strip()))
    return wall, json.loads(p.stdout).get("inject", {}).get("stopped_ms", float("nan")), frz


def bench_compare(python, builds, runs):
    """Attach, side by side: every build in turn on a fresh target of each
    kind, the order rotated from run to run, so that all see the same
    machine. Prints medians per build and the ratio to the first."""
    names = []
    for b in builds:
        rev = subprocess.run(["git", "-C", b, "rev-parse", "--short", "HEAD"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             universal_newlines=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", b, "diff", "--quiet", "HEAD"],
                               stderr=subprocess.DEVNULL).returncode
        names.append((rev + ("+" if dirty else "")) if rev else os.path.basename(b))
    res = {}
    tmp = tempfile.mkdtemp(prefix="pyhot-bench-cmp-")
    print("\nattach side by side (%d runs, CPython %s; medians in ms)" % (runs, python),
          flush=True)
    try:
        for i in range(runs):
            order = builds[i % len(builds):] + builds[:i % len(builds)]
            for kind, _ in COMPARE_TARGETS:
                for b in order:
                    wall, stop, frz = attach_once(os.path.join(b, "pyhot"), python, kind, tmp)
                    for key, v in (("wall", wall), ("stop", stop), ("freeze", frz)):
                        res.setdefault((b, kind, key), []).append(v)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("  %-44s" % "" + "".join("%12s" % n[:12] for n in names) +
          "".join("%12s" % ("/" + n[:10]) for n in names[1:]))
    for kind, label in COMPARE_TARGETS:
        for key, what in (("wall", "attach wall"), ("stop", "borrowed thread stopped"),
                          ("freeze", "ticker freeze (gap - quiet)")):
            ms = []
            for b in builds:
                xs = [x for x in res.get((b, kind, key), []) if x == x]
                ms.append(statistics.median(xs) if xs else float("nan"))
            if all(m != m for m in ms):
                continue
            print("  %-44s" % ("%s, %s" % (what, kind)) + "".join("%12.2f" % m for m in ms) +
                  "".join("%11.2fx" % ratio(ms[0], m) for m in ms[1:]))
        print("    (%s)" % label)


TREE_TARGET = os.path.join(REPO, "tests", "integration", "targets", "prefork_target.py")
TREE_WORKERS = 8


def bench_tree(python, runs, failures):
    """Median wall ms of `pyhot refresh --tree` over a master and 8 workers
    forked after the attach, beside a refresh of the master alone."""
    tmp = tempfile.mkdtemp(prefix="pyhot-bench-tree-")
    app = os.path.join(tmp, "app.py")
    write(app, "def answer():\n    return 0\n")
    p = subprocess.Popen([python, TREE_TARGET, tmp, "0"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, universal_newlines=True, bufsize=1)
    workers = []
    try:
        if p.stdout.readline().strip() != "ready":
            failures.append("tree: the prefork target did not start")
            return
        subprocess.run([PYHOT, "attach", str(p.pid)], stdout=subprocess.DEVNULL, check=True)
        for _ in range(TREE_WORKERS):
            p.stdin.write("fork\n")
            p.stdin.flush()
            workers.append(int(p.stdout.readline().split()[1]))
        one, tree, version = [], [], 0
        for i in range(runs + 1):
            for argv, out in (([PYHOT, "refresh", str(p.pid), "app"], one),
                              ([PYHOT, "refresh", "--tree", str(p.pid), "app"], tree)):
                version += 1
                write(app, "def answer():\n    return %d\n" % version)
                wall, r = timed(argv)
                if r.returncode:
                    failures.append("tree: %s: exit %d: %s" % (
                        " ".join(argv[1:]), r.returncode, r.stderr.strip()[-200:]))
                elif i:   # the first of each is a warm-up
                    out.append(wall)
        if one and tree:
            a, b = statistics.median(one), statistics.median(tree)
            print("\nprocess trees (median wall ms of %d refreshes, one function changed)"
                  % len(tree))
            print("  %-46s %10.2f" % ("pyhot refresh, the master alone", a))
            print("  %-46s %10.2f" % ("pyhot refresh --tree, master + %d workers"
                                      % TREE_WORKERS, b))
            print("  %-46s %9.2fx (goal: at most 2x)" % ("--tree / one process", b / a))
    finally:
        for w in workers:
            try:
                os.kill(w, 9)
            except OSError:
                pass
        p.kill()
        p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def ratio(a, b):
    return a / b if b and b == b else float("nan")


def med(res, key):
    xs = [x for x in res.get(key, []) if x == x]
    return statistics.median(xs) if xs else float("nan")


def refresh_rows(row, res):
    print("\n  refresh with one function changed, medians in ms (the first refresh of "
          "each module, a warm-up, not counted)")
    print("  %-12s %14s %14s %16s %14s %14s" % (
        "module", "pyhot in", "pyhot CLI", "importlib.reload", "reload /", "reload /"))
    print("  %-12s %14s %14s %16s %14s %14s" % (
        "", "target run_ms", "wall", "own process", "pyhot run_ms", "pyhot wall"))
    for n in DEF_SIZES:
        name = "benchdefs%d" % n
        run, cli, rel = med(res, name + "_run"), med(res, name + "_cli"), \
            med(res, "reload_" + name)
        print("  %-12s %14.3f %14.2f %16.3f %13.1fx %13.1fx" % (
            "%d defs" % n, run, cli, rel, ratio(rel, run), ratio(rel, cli)))
    print()
    print("  %-46s %10s %10s %10s %4s" % ("ms", "median", "p10", "p90", "n"))
    for n in DEF_SIZES:
        name = "benchdefs%d" % n
        row("%d defs: pyhot refresh, in the target" % n, name + "_run")
        row("%d defs: pyhot refresh, CLI wall time" % n, name + "_cli")
        row("%d defs: importlib.reload, own process" % n, "reload_" + name)
    row("class, 0 instances: refresh in the target", "cls0_run")
    row("class, 1,000,000 instances: in the target", "cls1m_run")
    row("class, 0 instances: CLI wall time", "cls0_cli")
    row("class, 1,000,000 instances: CLI wall time", "cls1m_cli")
    row("closure factory, 0 instances: in the target", "clos0_run")
    row("closure factory, 1,000,000 instances: in the target", "clos1m_run")
    print("\n  method changed, 1,000,000 live instances / none:  in the target %.2fx, "
          "CLI wall %.2fx" % (ratio(med(res, "cls1m_run"), med(res, "cls0_run")),
                              ratio(med(res, "cls1m_cli"), med(res, "cls0_cli"))))
    print("  closure factory changed, 1,000,000 live instances / none:  in the target "
          "%.2fx" % ratio(med(res, "clos1m_run"), med(res, "clos0_run")))


def attach_rows(row, res, use_gdb):
    print("  %-46s %10s %10s %10s %4s" % ("ms", "median", "p10", "p90", "n"))
    row("pyhot attach, fresh target (full injection)", "attach_ms")
    row("pyhot attach, agent already there (reuse)", "reuse_ms")
    row("pyhot: borrowed thread stopped", "stopped_ms")
    row("pyhot attach after detach (payload mapped)", "remap_ms")
    row("pyhot: borrowed thread stopped, payload mapped", "remap_stopped_ms")
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


if __name__ == "__main__":
    main()
