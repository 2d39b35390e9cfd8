#!/usr/bin/env python3
"""Mutation run: plant one plausible bug at a time, rebuild, run the tests
that should see it, and say which did.

  scripts/mutate.py [--catalogue tests/mutations.toml] [--only ID,ID]
                    [--check] [--no-tier] [--no-baseline] [--keep]
                    [--json FILE] [--list]

The catalogue (tests/mutations.toml, docs/mutation.md) lists the mutations:
a file, a piece of text found exactly once in it, its replacement, the bug it
stands for, the smallest test selector that should catch it and the tier to
run when that selector does not. The checkout this runs from is never
changed: the tree (with its build/) is copied once into a temporary
directory, and every mutation is applied, built, tested and reverted there.

Selectors (several joined with " ; " run in turn, the first failure kills):
  unit:NAME                   build/tests/unit/NAME
  live:NAME                   build/tests/live/NAME (PYHOT_VICTIMS set)
  engine:S01,X05 | engine:*   tests/engine/run_scenarios.py --via ctypes on
                              Debian's python3.11, scenarios.md and extra.md
  engine-undo:IDS             the same with --apply-fail (each refresh first
                              fails at the end of its apply: all undone)
  engine-all:, engine-undo-all:   the same on every interpreter
  pytest:ARGS                 python3 -m pytest -x -q ARGS (PYHOT_BUILD set)
  make:TARGET                 make TARGET in the copy
Tiers (TIERS below): unit, live, inject, agent, engine, cli, integration
(make check-integration: long), or any selector.

A mutation is killed when a selector exits non-zero (or overruns its
timeout: a hang is a catch), survived when every selector and the tier
pass, and invalid (not counted) when its anchor is missing or not unique,
or the tree does not build with it. The last line is "score KILLED/VALID".
--check only checks that every anchor is found exactly once (no build).
Exit status: 0 when the run finished and every anchor was found; 1 when an
anchor is broken; 2 on a usage error.
"""
import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

try:
    import tomllib
except ImportError:  # pragma: no cover - Python < 3.11
    tomllib = None

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARNESS_PY = os.environ.get("HARNESS_PY", "/usr/bin/python3")
ENGINE_PY = os.environ.get("PYHOT_MUTATE_PY", "/usr/bin/python3.11")
SELECTOR_TIMEOUT = 600
INTEG = "tests/integration/test_%s.py"
TIERS = {
    "unit": "make:check-unit",
    "live": "make:check-live",
    "inject": "live:test_inject ; live:test_python ; pytest:" + " ".join(
        INTEG % n for n in ("loop_targets", "faults_steps", "faults_restart",
                            "cli_attach", "cli_errors")),
    "agent": "unit:test_cli_trust ; pytest:" + " ".join(
        INTEG % n for n in ("agent_inproc", "agent_clients", "trust_agent",
                            "trust_files")),
    "engine": "engine-all:* ; engine-undo-all:* ; pytest:" + " ".join(
        INTEG % n for n in ("engine_undo", "history", "inproc_engine")),
    "cli": "pytest:" + " ".join(INTEG % ("cli_" + n) for n in (
        "attach", "client", "errors", "exec", "help", "ps", "refresh", "rollback",
        "stack", "watch")),
    "integration": "make:check-integration",
}
FIELDS = ("id", "file", "find", "replace", "why", "test", "tier")


def load(path):
    if tomllib is None:
        sys.exit("mutate: tomllib needs Python 3.11 or later (HARNESS_PY)")
    with open(path, "rb") as f:
        data = tomllib.load(f)
    muts = data.get("mutation") or []
    seen = set()
    for m in muts:
        missing = [k for k in FIELDS if not isinstance(m.get(k), str)]
        if missing:
            sys.exit("mutate: %s: mutation %r lacks %s" % (path, m.get("id"),
                                                           ", ".join(missing)))
        if m["id"] in seen:
            sys.exit("mutate: %s: mutation id %r twice" % (path, m["id"]))
        seen.add(m["id"])
    return muts


def anchor_count(tree, m):
    try:
        with open(os.path.join(tree, m["file"])) as f:
            return f.read().count(m["find"])
    except OSError:
        return -1


def copy_tree(dst):
    ignore = shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache")
    shutil.copytree(REPO, dst, symlinks=True, ignore=ignore)


def build_targets(tree):
    """The programs the tests run, as make targets."""
    def names(folder, skip_lib=False, suffix=""):
        out = []
        for n in sorted(os.listdir(os.path.join(tree, folder))):
            if not n.endswith(".c"):
                continue
            lib = n.startswith("lib")
            if skip_lib and lib:
                continue
            out.append(n[:-2] + (".so" if lib else suffix))
        return out
    t = ["all", "build/pyhot-test-hooks", "build/tests/pyhot-engine-test.so"]
    t += ["build/tests/unit/" + n for n in names("tests/unit", skip_lib=True)
          if n.startswith("test_")]
    t += ["build/tests/live/" + n for n in names("tests/live", skip_lib=True)
          if n.startswith("test_")]
    t += ["build/tests/victims/" + n for n in names("tests/victims")]
    return t


def make_cmd(tree, targets):
    return ["make", "-C", tree, "-j2", "GIT_REV=mutate"] + targets


def build(tree, log):
    r = subprocess.run(make_cmd(tree, build_targets(tree)), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    if r.returncode != 0:
        log.write(r.stdout)
    return r.returncode == 0, r.stdout


def selector_cmd(tree, sel):
    """(argv, env) for one selector."""
    kind, _, arg = sel.partition(":")
    arg = arg.strip()
    build_dir = os.path.join(tree, "build")
    env = dict(os.environ, PYHOT_BUILD=build_dir, PYHOT_VICTIMS=os.path.join(
        build_dir, "tests", "victims"), PYHOT_BIN=os.path.join(build_dir, "pyhot"))
    for k in ("PYHOT_TRACE", "PYHOT_TEST_HOOK", "PYHOT_PAYLOAD"):
        env.pop(k, None)
    files = ["--file", os.path.join(tree, "tests", "engine", "extra.md")]
    runner = os.path.join(tree, "tests", "engine", "run_scenarios.py")
    if kind == "unit":
        return [os.path.join(build_dir, "tests", "unit", arg)], env
    if kind == "live":
        return [os.path.join(build_dir, "tests", "live", arg)], env
    if kind in ("engine", "engine-all", "engine-undo", "engine-undo-all"):
        argv = [HARNESS_PY, runner, "-j", "2"] + files
        if arg not in ("", "*"):
            argv += ["-k", arg]
        if not kind.endswith("-all"):
            argv += ["--python", ENGINE_PY]
        if kind.startswith("engine-undo"):
            argv.append("--apply-fail")
        return argv, env
    if kind == "pytest":
        return [HARNESS_PY, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"] + \
            shlex.split(arg), env
    if kind == "make":
        return make_cmd(tree, [arg]), env
    raise ValueError("unknown selector %r" % sel)


def run_selector(tree, sel, log):
    """(passed, seconds) for one selector; a timeout counts as a failure.
    The selector runs in a process group of its own, killed whole on a
    timeout or when this script is interrupted: nothing is left behind."""
    argv, env = selector_cmd(tree, sel)
    t0 = time.monotonic()
    log.write("\n$ %s\n" % " ".join(shlex.quote(a) for a in argv))
    log.flush()
    p = subprocess.Popen(argv, cwd=tree, env=env, stdin=subprocess.DEVNULL,
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ok = p.wait(timeout=SELECTOR_TIMEOUT) == 0
    except subprocess.TimeoutExpired:
        log.write("\n(timed out after %d s)\n" % SELECTOR_TIMEOUT)
        ok = False
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)   # stragglers of a finished one too
        except ProcessLookupError:
            pass
        p.wait()
    return ok, time.monotonic() - t0


def selectors(spec):
    return [s.strip() for s in spec.split(" ; ") if s.strip()]


def run_tests(tree, m, use_tier, log):
    """('killed', by) or ('survived', None)."""
    for sel in selectors(m["test"]):
        ok, _ = run_selector(tree, sel, log)
        if not ok:
            return "killed", sel
    if use_tier and m["tier"]:
        tier = TIERS.get(m["tier"], m["tier"])
        for sel in selectors(tier):
            ok, _ = run_selector(tree, sel, log)
            if not ok:
                return "killed", "tier %s (%s)" % (m["tier"], sel)
    return "survived", None


def apply(tree, m):
    path = os.path.join(tree, m["file"])
    with open(path) as f:
        orig = f.read()
    with open(path, "w") as f:
        f.write(orig.replace(m["find"], m["replace"], 1))
    return orig


def revert(tree, m, orig):
    with open(os.path.join(tree, m["file"]), "w") as f:
        f.write(orig)


def on_term(signum, frame):
    raise KeyboardInterrupt


def main():
    signal.signal(signal.SIGTERM, on_term)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalogue", default=os.path.join(REPO, "tests", "mutations.toml"))
    ap.add_argument("--only", help="comma-separated mutation ids")
    ap.add_argument("--check", action="store_true", help="check the anchors only")
    ap.add_argument("--list", action="store_true", help="list the mutations")
    ap.add_argument("--no-tier", action="store_true",
                    help="do not run the tier when the selector passes")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip running each selector on the unmutated tree")
    ap.add_argument("--keep", action="store_true", help="keep the copy and its logs")
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args()

    muts = load(args.catalogue)
    if args.only:
        want = set(args.only.split(","))
        unknown = want - {m["id"] for m in muts}
        if unknown:
            print("mutate: no mutation %s" % ", ".join(sorted(unknown)), file=sys.stderr)
            return 2
        muts = [m for m in muts if m["id"] in want]
    if args.list:
        for m in muts:
            print("%-28s %-28s %s" % (m["id"], m["file"], m["why"]))
        return 0
    broken = []
    for m in muts:
        n = anchor_count(REPO, m)
        if n != 1:
            broken.append(m["id"])
            print("mutate: %s: anchor found %d times in %s: %r" % (
                m["id"], max(n, 0), m["file"], m["find"][:60]), file=sys.stderr)
    if args.check:
        print("%d mutations, %d anchors broken" % (len(muts), len(broken)))
        return 1 if broken else 0

    t_start = time.monotonic()
    work = tempfile.mkdtemp(prefix="pyhot-mutate-")
    tree = os.path.join(work, "tree")
    logdir = os.path.join(work, "logs")
    os.makedirs(logdir)
    print("mutate: copying %s to %s" % (REPO, tree), flush=True)
    copy_tree(tree)
    results = []
    try:
        with open(os.path.join(logdir, "build-baseline.log"), "w") as log:
            ok, out = build(tree, log)
        if not ok:
            print("mutate: the unmutated tree does not build (%s)" % logdir)
            return 1
        print("mutate: baseline built in %.0f s" % (time.monotonic() - t_start), flush=True)
        bad_sel = set()
        if not args.no_baseline:
            sels = sorted({s for m in muts for s in selectors(m["test"])})
            with open(os.path.join(logdir, "baseline.log"), "w") as log:
                for s in sels:
                    ok, secs = run_selector(tree, s, log)
                    print("mutate: baseline %-60s %s (%.1f s)" % (
                        s[:60], "pass" if ok else "FAILS UNMUTATED", secs), flush=True)
                    if not ok:
                        bad_sel.add(s)
        for i, m in enumerate(muts, 1):
            t0 = time.monotonic()
            res = {"id": m["id"], "file": m["file"], "why": m["why"]}
            log_path = os.path.join(logdir, m["id"] + ".log")
            with open(log_path, "w") as log:
                if m["id"] in broken:
                    res.update(fate="invalid", detail="anchor not found exactly once")
                elif bad_sel & set(selectors(m["test"])):
                    res.update(fate="invalid", detail="its selector fails unmutated")
                else:
                    orig = apply(tree, m)
                    try:
                        ok, _ = build(tree, log)
                        if not ok:
                            res.update(fate="invalid", detail="build failed")
                        else:
                            fate, by = run_tests(tree, m, not args.no_tier, log)
                            res.update(fate=fate, detail=by)
                    finally:
                        revert(tree, m, orig)
            res["seconds"] = round(time.monotonic() - t0, 1)
            results.append(res)
            fate = res["fate"].upper()
            if res["fate"] == "killed":
                fate += " by " + res["detail"]
            elif res["fate"] == "invalid":
                fate += " (%s, not counted)" % res["detail"]
            print("[%2d/%d] %-28s %s  %.0f s" % (i, len(muts), m["id"], fate,
                                                res["seconds"]), flush=True)
        # Leave the copy's build as the checkout's: nothing mutated in it.
    finally:
        if not args.keep:
            shutil.rmtree(tree, ignore_errors=True)
    killed = sum(r["fate"] == "killed" for r in results)
    valid = sum(r["fate"] in ("killed", "survived") for r in results)
    survivors = [r for r in results if r["fate"] == "survived"]
    elapsed = time.monotonic() - t_start
    if survivors:
        print("survivors:")
        for r in survivors:
            print("  %s (%s): %s" % (r["id"], r["file"], r["why"]))
    print("logs in %s; %d mutations in %.0f s (%.1f min)" % (
        logdir, len(results), elapsed, elapsed / 60))
    print("score %d/%d%s" % (killed, valid,
                             " (%.0f%%)" % (100.0 * killed / valid) if valid else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "killed": killed, "valid": valid,
                       "seconds": round(elapsed)}, f, indent=1)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
