#!/usr/bin/env python3
"""Run the reload scenarios (tests/scenarios/scenarios.md) against the patch
engine, each scenario in a fresh process of each interpreter.

  run_scenarios.py [--via ctypes|cli] [--python PATH ...] [-k S01,S25] [-j N]

--via ctypes (default): the child loads build/tests/pyhot-engine-test.so with
ctypes.PyDLL (the GIL stays held during the call, as at a safe point), takes
the baseline, and calls the engine directly.
--via cli: this driver runs the real `pyhot` (PYHOT_BIN or build/pyhot)
against the child from outside, while the child's main thread keeps running
Python: `pyhot attach <pid>` and `pyhot status <pid>` before the edit (the
agent takes the baseline at its first safe point), then
`pyhot refresh <pid> <mod> --json` whenever the child asks (the refresh of
the scenario, and every patch()/dry()/refresh() of its code). The trigger is the
only difference; the scenario code is the same.

Exit status: 0 when every selected scenario passed on every interpreter.
"""
import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCENARIOS = os.path.join(ROOT, "tests", "scenarios", "scenarios.md")
BUILD = os.environ.get("PYHOT_BUILD", os.path.join(ROOT, "build"))

PYENV = os.path.expanduser("~/.pyenv/versions")
DEFAULT_PYTHONS = [
    os.path.join(PYENV, "3.8.18/bin/python3.8"),
    os.path.join(PYENV, "3.9.18/bin/python3.9"),
    os.path.join(PYENV, "3.10.13/bin/python3.10"),
    os.path.join(PYENV, "3.11.7/bin/python3.11"),
    os.path.join(PYENV, "3.12.1/bin/python3.12"),
    os.path.join(PYENV, "3.13.0/bin/python3.13"),
    "/usr/bin/python3.11",
]


def parse(path):
    """[{id, title, level, old, new, before, after, aux}] in file order."""
    text = open(path, encoding="utf-8").read()
    out = []
    for sec in re.split(r"^## ", text, flags=re.M)[1:]:
        head = sec.splitlines()[0]
        m = re.match(r"([A-Z]\d+)\s+\S+\s+(.*)", head)
        if not m:
            continue
        sc = {"id": m.group(1), "title": m.group(2).strip(), "level": "?"}
        lv = re.search(r"^Level:\s*(\w+)", sec, flags=re.M)
        if lv:
            sc["level"] = lv.group(1)
        opt = re.search(r"^Options:\s*(.*)$", sec, flags=re.M)
        sc["options"] = opt.group(1).split() if opt else []
        for kind, body in re.findall(r"^```python (\w+)\n(.*?)^```", sec,
                                     flags=re.M | re.S):
            sc[kind] = body
        out.append(sc)
    return out


# The child: one scenario, one interpreter, one fresh process. It reads the
# scenario as JSON on stdin and prints one JSON line.
CHILD = r'''
import ctypes, json, os, sys, time, importlib, types, gc, inspect, threading
import weakref, pickle, asyncio, subprocess, traceback
spec = json.load(open(sys.argv[1]))
tmp = spec["tmp"]
mod = spec["mod"]
sys.path.insert(0, tmp)
path = os.path.join(tmp, mod + ".py")
result = {"status": "FAIL", "where": "setup", "error": None, "responses": []}

def write(src):
    with open(path, "w") as f:
        f.write(src)

if spec["via"] == "ctypes":
    lib = ctypes.PyDLL(spec["so"])
    lib.pyhot_test_refresh.restype = ctypes.c_void_p
    lib.pyhot_test_refresh.argtypes = [ctypes.c_char_p, ctypes.c_int]
    lib.pyhot_test_free.argtypes = [ctypes.c_void_p]
    def prime():
        lib.pyhot_test_baseline()
    def refresh(name=mod, dry=0):
        p = lib.pyhot_test_refresh(name.encode(), dry)
        try:
            return json.loads(ctypes.string_at(p).decode())
        finally:
            lib.pyhot_test_free(p)
else:
    # The driver (outside) runs pyhot against this process; the main
    # thread keeps running Python while it waits, as a real service would.
    import select
    def ask(cmd):
        sys.stdout.write("@@CMD@@" + json.dumps(cmd) + "\n")
        sys.stdout.flush()
        while True:
            r, _, _ = select.select([sys.stdin], [], [], 0.005)
            if r:
                return json.loads(sys.stdin.readline())
    def prime():
        ask({"op": "prime"})
    def refresh(name=mod, dry=0):
        return ask({"op": "refresh", "name": name, "dry": dry})

ERRORS = []
def do_refresh():
    resp = refresh()
    result["responses"].append(resp)
    if resp.get("exception_left_set"):
        raise AssertionError("engine left a Python exception set")
    if not resp.get("ok"):
        e = RuntimeError(resp.get("error", {}).get("message", "?"))
        ERRORS.append(e)
        return e
    return None

def patch(src=spec["new"]):
    write(src)
    return do_refresh()

def dry(src=spec["new"]):
    """Write src, plan a refresh (dry run); returns the response."""
    write(src)
    return refresh(mod, 1)

try:
    if "nobaseline" in spec["options"]:
        prime()   # attach first: the module is imported after the attach
    write(spec["old"])
    m = importlib.import_module(mod)
    a = None
    if spec.get("aux"):
        with open(os.path.join(tmp, mod + "_aux.py"), "w") as f:
            f.write(spec["aux"].replace("__MOD__", mod))
        a = importlib.import_module(mod + "_aux")
    if "nobaseline" not in spec["options"]:
        prime()
    ns = dict(m=m, a=a, dry=dry, refresh=refresh, RESPONSES=result["responses"],
              MODPATH=path, tmp=tmp, OLD=spec["old"], NEW=spec["new"], ERRORS=ERRORS,
              patch=patch, sys=sys, os=os, time=time, importlib=importlib,
              types=types, gc=gc, inspect=inspect, threading=threading,
              weakref=weakref, pickle=pickle, asyncio=asyncio)
    result["where"] = "before"
    exec(compile(spec.get("before", ""), "<before>", "exec"), ns)
    result["where"] = "refresh"
    write(spec["new"])
    do_refresh()
    result["where"] = "after"
    exec(compile(spec.get("after", ""), "<after>", "exec"), ns)
    result["status"] = "PASS"
    result["where"] = None
except BaseException as e:
    result["error"] = "".join(traceback.format_exception_only(type(e), e)).strip()
    result["tb"] = traceback.format_exc()
sys.stdout.write("\n@@RESULT@@" + json.dumps(result, default=str) + "\n")
sys.stdout.flush()
os._exit(0)
'''


def drive_cli(spec, pyhot, line):
    """Serve one request of a child in --via cli mode."""
    cmd = json.loads(line)
    pid = str(spec["pid"])

    def run(*args):
        import time
        for attempt in range(5):
            try:
                r = subprocess.run([pyhot] + list(args), capture_output=True,
                                   text=True, timeout=60)
                break
            except subprocess.TimeoutExpired:
                return {"ok": False, "error": {"message": "pyhot timed out"}}
            except OSError as e:
                # build/pyhot being relinked by a concurrent make
                if attempt == 4:
                    return {"ok": False, "error": {"message": "cannot run pyhot: %s" % e}}
                time.sleep(0.5)
        try:
            return json.loads(r.stdout)
        except ValueError:
            return {"ok": False, "error": {"message": "pyhot exit %d: %s %s" % (
                r.returncode, r.stdout.strip(), r.stderr.strip())}}
    if cmd["op"] == "prime":
        # attach, then one safe-point verb: the agent takes its baseline
        # at its first safe point, before it serves the verb
        run("attach", pid)
        return run("status", pid, "--json")
    return run("refresh", pid, *([cmd["name"]] if cmd["name"] else []), "--json",
               *(["--dry-run"] if cmd["dry"] else []))


def run_one(py, sc, via, timeout):
    import queue
    import threading
    import time
    for opt in sc.get("options", []):
        if opt.startswith("timeout="):
            timeout = max(timeout, int(opt.split("=", 1)[1]))
        if opt.startswith("requires="):
            mod = opt.split("=", 1)[1]
            r = subprocess.run([py, "-c", "import " + mod], capture_output=True)
            if r.returncode != 0:
                return {"status": "SKIP", "error": "no " + mod}
    with tempfile.TemporaryDirectory(prefix="pyhot-scn-") as tmp:
        spec = dict(sc, tmp=tmp, mod="scn_" + sc["id"].lower(), via=via,
                    so=os.path.join(BUILD, "tests", "pyhot-engine-test.so"))
        pyhot = os.environ.get("PYHOT_BIN", os.path.join(BUILD, "pyhot"))
        spec_path = os.path.join(tmp, "spec.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        p = subprocess.Popen([py, "-c", CHILD, spec_path], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env, cwd=tmp)
        spec["pid"] = p.pid
        lines = queue.Queue()

        def reader():
            for line in p.stdout:
                lines.put(line)
            lines.put(None)
        threading.Thread(target=reader, daemon=True).start()
        deadline = time.monotonic() + timeout
        result = None
        try:
            while True:
                try:
                    line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    return {"status": "FAIL", "error": "timeout after %ds" % timeout}
                if line is None:
                    break
                if line.startswith("@@CMD@@"):
                    resp = drive_cli(spec, pyhot, line[len("@@CMD@@"):])
                    p.stdin.write(json.dumps(resp) + "\n")
                    p.stdin.flush()
                elif line.startswith("@@RESULT@@"):
                    result = json.loads(line[len("@@RESULT@@"):])
                if time.monotonic() > deadline:
                    return {"status": "FAIL", "error": "timeout after %ds" % timeout}
        finally:
            if p.poll() is None:
                p.kill()
            p.wait()
            err = p.stderr.read()
        if result is None:
            return {"status": "FAIL",
                    "error": "child died (rc %d): %s" % (p.returncode, err[-800:])}
        return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--via", choices=["ctypes", "cli"], default="ctypes")
    ap.add_argument("--python", action="append")
    ap.add_argument("-k", help="comma-separated scenario ids")
    ap.add_argument("--file", action="append",
                    help="more scenarios in the same format (tests/engine/extra.md)")
    ap.add_argument("-j", type=int, default=4)
    ap.add_argument("-v", action="store_true", help="print tracebacks")
    ap.add_argument("--timeout", type=int, default=60)
    ap.add_argument("--json", help="write all results to this file")
    args = ap.parse_args()
    pythons = [p for p in (args.python or DEFAULT_PYTHONS) if os.path.exists(p)]
    scs = parse(SCENARIOS)
    for extra in args.file or []:
        scs += parse(extra)
    if args.k:
        keep = set(args.k.split(","))
        scs = [s for s in scs if s["id"] in keep]
    jobs = {}
    with concurrent.futures.ThreadPoolExecutor(args.j) as ex:
        for sc in scs:
            for py in pythons:
                jobs[(sc["id"], py)] = ex.submit(run_one, py, sc, args.via, args.timeout)
    results = {k: f.result() for k, f in jobs.items()}
    short = {py: re.sub(r".*/versions/([\d.]+)/.*", r"\1", py) for py in pythons}
    short["/usr/bin/python3.11"] = "deb3.11"
    failed = 0
    for sc in scs:
        for py in pythons:
            r = results[(sc["id"], py)]
            if r["status"] == "FAIL":
                failed += 1
                print("FAIL %-4s %-7s %-8s [%s] %s" % (sc["id"], sc["level"], short[py],
                                                     r.get("where"), r.get("error")))
                if args.v and r.get("tb"):
                    print("    " + r["tb"].replace("\n", "\n    "))
                    for resp in r.get("responses", []):
                        if not resp.get("ok"):
                            print("    response:", json.dumps(resp)[:1500])
    print()
    print("%-5s %-8s " % ("id", "level") + " ".join("%-8s" % short[p] for p in pythons))
    for sc in scs:
        print("%-5s %-8s " % (sc["id"], sc["level"]) + " ".join(
            "%-8s" % results[(sc["id"], p)]["status"] for p in pythons))
    tot = {p: sum(results[(s["id"], p)]["status"] == "PASS" for s in scs) for p in pythons}
    ran = {p: sum(results[(s["id"], p)]["status"] != "SKIP" for s in scs) for p in pythons}
    print("%-14s " % "passed" + " ".join("%-8s" % ("%d/%d" % (tot[p], ran[p])) for p in pythons))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"%s %s" % k: v for k, v in results.items()}, f, indent=1, default=str)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
