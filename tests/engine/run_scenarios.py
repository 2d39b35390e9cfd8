#!/usr/bin/env python3
"""Run the reload scenarios (tests/scenarios/scenarios.md) against the patch
engine, on each interpreter.

  run_scenarios.py [--via ctypes|cli] [--python PATH ...] [-k S01,S25] [-j N]
                   [--file tests/engine/extra.md] [--fresh] [-v] [--json F]

Scenarios run in batches: one child process of an interpreter writes and
imports the module of every scenario of its batch (each under its own name,
scn_<id>, in one temporary directory), takes the baseline once, then runs the
scenarios one after the other, each in a namespace of its own. A scenario
with `Options: isolated` (it has process-wide effects, such as a refresh of
every changed module) gets a child of its own, and so does every scenario
with --fresh. A scenario that times out or kills its child fails; the
scenarios after it run again in a new child.

--via ctypes (default): the child loads build/tests/pyhot-engine-test.so with
ctypes.PyDLL (the GIL stays held during the call, as at a safe point), takes
the baseline, and calls the engine directly.
--via cli: this driver runs the real `pyhot` (PYHOT_BIN or build/pyhot)
against the child from outside, while the child's main thread keeps running
Python (it polls its stdin every millisecond): `pyhot attach <pid>` and
`pyhot status <pid>` once per child, after the imports and before the first
edit (the agent takes the baseline at its first safe point), then
`pyhot refresh <pid> <mod> --json` whenever the child asks (the refresh of
the scenario, and every patch()/dry()/refresh() of its code). The trigger is the
only difference; the scenario code is the same.

--apply-fail (ctypes only): before the scenario's refresh, the same
refresh is made to fail at the end of its apply through the engine's test
hook (pyhot_test_apply_fail_after(), ops.h): it must fail, say so, leave no
exception set, and leave the module exactly as the snapshot (as for a
rollback, below) took it; the `before` block holds again; then the
scenario goes on as usual, and its first rollback is made to fail the same
way (the refresh's inverse ops done, then undone): the module must be as
it was after the refresh.

Dry run: before the scenario's refresh, a dry run of it must report the
same change lines (action, kind, name) and counts as the refresh then does
(`Options: nodrycheck` skips that, for an edit whose statements act beyond
the names they bind, which the plan, and so a dry run, runs too).

Rollback: a scenario with a `before` block is rolled back once its `after`
block passed (the trigger as for refresh: pyhot_test_rollback(), or `pyhot
rollback <pid> <mod> --json` run by the driver when the child asks):
 1. just before the scenario's refresh the child takes a snapshot of the
    module: its top-level bindings, the members of each class it defines
    (nested ones too), the items of its plain lists, dicts and sets, and,
    for each function of the module reachable from those (through
    properties, class and static methods, closure cells, __wrapped__), its
    __code__ (held weakly), __defaults__, __kwdefaults__, __closure__ and
    __doc__; all by reference, compared with `is`;
 2. one rollback per generation the module got since (the refresh, and
    every patch()/refresh() of `after`), newest first, each ok: every
    snapshot object is back, names added since are gone (but those Python
    adds by itself: LAZY_MODULE, LAZY_CLASS), the file is untouched; then
    the `before` block runs again in a copy of the namespace: it states the
    old behaviour;
 3. one more rollback is refused (its message says "nothing to roll back"
    or "not refreshed") and changes nothing;
 4. a refresh with the scenario's new source (the file still holds it,
    unless scenario code wrote another: then it is written again) is ok and
    makes a generation, `after` runs again in that copy, and one rollback
    per new generation brings the same objects back again.
`Options: norerun` keeps both blocks from running again, `norerun=before`
or `norerun=after` one of them (`# reason` may follow on the line); the
checks on objects still run. A refresh that changed nothing but line
numbers is no generation: there is nothing to roll back (step 3 only).
The engine keeps the last PYHOT_HISTORY_DEFAULT generations of a module,
rollbacks included (history.h): after more refreshes than that (S74, X05)
the rollbacks stop at the oldest one kept, refused, and only the names and
class members are compared (the result's "notes" say so; -v prints them).

While the harness itself writes a module file or waits for a refresh
(patch(), dry(), refresh()), the child lowers the GIL switch interval to
0.2 ms and restores it before scenario code runs again. Without that, busy
threads of a scenario (X05: eight of them) make every return of the main
thread to the GIL cost several 5 ms intervals, about 0.25 s per refresh.

Exit status: 0 when every selected scenario passed on every interpreter.
"""
import argparse
import concurrent.futures
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from pyhot_testlib import (BUILD, INTERPRETERS, PYHOT, REPO as ROOT,  # noqa: E402
                           start_target, stop_target, target_env)

SCENARIOS = os.path.join(ROOT, "tests", "scenarios", "scenarios.md")


def parse(path):
    """[{id, title, level, options, old, new, before, after, aux}] in file order."""
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
        # "Options: a b=1  # why": the words before a '#'
        sc["options"] = opt.group(1).split("#", 1)[0].split() if opt else []
        for kind, body in re.findall(r"^```python (\w+)\n(.*?)^```", sec,
                                     flags=re.M | re.S):
            sc[kind] = body
        out.append(sc)
    return out


# The child: the scenarios of one batch, one interpreter, one process. It
# reads them as JSON from the file named by argv[1] and prints, per
# scenario, a @@START@@ line and a @@RESULT@@ line.
CHILD = r'''
import ctypes, json, os, sys, time, importlib, types, gc, inspect, threading
import weakref, pickle, asyncio, subprocess, traceback, functools
spec = json.load(open(sys.argv[1]))
tmp = spec["tmp"]
sys.path.insert(0, tmp)

def emit(tag, obj):
    sys.stdout.write("\n" + tag + json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()

class harness:
    # The harness's own file writes and waits: a short GIL switch interval,
    # so that busy threads of the scenario do not make every return of the
    # main thread to the GIL cost several intervals (module docstring).
    def __enter__(self):
        self.saved = sys.getswitchinterval()
        sys.setswitchinterval(min(self.saved, 0.0002))
    def __exit__(self, *exc):
        sys.setswitchinterval(self.saved)

if spec["via"] == "ctypes":
    lib = ctypes.PyDLL(spec["so"])
    lib.pyhot_test_refresh.restype = ctypes.c_void_p
    lib.pyhot_test_refresh.argtypes = [ctypes.c_char_p, ctypes.c_int]
    lib.pyhot_test_free.argtypes = [ctypes.c_void_p]
    def prime():
        lib.pyhot_test_baseline()
    lib.pyhot_test_apply_fail_after.restype = ctypes.c_long
    lib.pyhot_test_apply_fail_after.argtypes = [ctypes.c_long]
    lib.pyhot_test_rollback.restype = ctypes.c_void_p
    lib.pyhot_test_rollback.argtypes = [ctypes.c_char_p, ctypes.c_long, ctypes.c_int]
    def answer(p):
        try:
            return json.loads(ctypes.string_at(p).decode())
        finally:
            lib.pyhot_test_free(p)
    def engine_refresh(name, dry):
        return answer(lib.pyhot_test_refresh(name.encode(), dry))
    def engine_rollback(name, to, dry):
        return answer(lib.pyhot_test_rollback(name.encode(), -1 if to is None else to, dry))
else:
    # The driver (outside) runs pyhot against this process; the main
    # thread keeps running Python while it waits, as a real service would.
    import select
    def ask(cmd):
        sys.stdout.write("@@CMD@@" + json.dumps(cmd) + "\n")
        sys.stdout.flush()
        while True:
            r, _, _ = select.select([sys.stdin], [], [], 0.001)
            if r:
                line = sys.stdin.readline()
                if not line:
                    os._exit(3)   # the driver is gone
                return json.loads(line)
    def prime():
        ask({"op": "prime"})
    def engine_refresh(name, dry):
        return ask({"op": "refresh", "name": name, "dry": dry})
    def engine_rollback(name, to, dry):
        return ask({"op": "rollback", "name": name, "to": to, "dry": dry})

# Rollback checks (module docstring). Names Python itself may add to a
# module or a class while scenario code runs, not a refresh: ignored when
# they appear, compared like any other name when they were there before.
LAZY_MODULE = {"__warningregistry__"}
LAZY_CLASS = {"__slotnames__",     # copyreg caches it when pickling
              "__annotations__"}   # 3.10+: made on first read

def short(v):
    try:
        r = repr(v)
    except BaseException:
        r = "?"
    if len(r) > 70:
        r = r[:67] + "..."
    return "%s %s at %#x" % (type(v).__name__, r, id(v))

def contents(v):
    # A shallow copy of a plain container (its items by reference), or None.
    t = type(v)
    if t is list:
        return list(v)
    if t is dict:
        return list(v.items())
    if t is set:
        return set(v)
    return None

# What a refresh swaps inside a function it patches in place (the code
# only weakly held: a leak check of the scenario must see it die).
FUNC_ATTRS = ("__code__", "__defaults__", "__kwdefaults__", "__closure__", "__doc__")

class Snapshot:
    """The module's top-level bindings, the members of each class it
    defines (nested classes too), the items of its plain containers, and
    what each of its functions holds (FUNC_ATTRS; functions reached from
    those, through properties, class and static methods, closure cells and
    __wrapped__): references, compared with `is`."""
    def __init__(self, m):
        self.name = m.__name__
        self.top = dict(vars(m))
        self.classes = []        # [(path, class, dict of its members)]
        seen = set()
        def walk(path, cls):
            if id(cls) in seen:
                return
            seen.add(id(cls))
            d = dict(vars(cls))
            self.classes.append((path, cls, d))
            for k, v in d.items():
                if isinstance(v, type) and getattr(v, "__module__", None) == self.name:
                    walk(path + "." + k, v)
        for k, v in self.top.items():
            if isinstance(v, type) and getattr(v, "__module__", None) == self.name:
                walk(k, v)
        self.items = []          # [(where, container, copy)]
        for k, v in self.top.items():
            if k != "__builtins__" and contents(v) is not None:
                self.items.append((k, v, contents(v)))
        for path, cls, d in self.classes:
            for k, v in d.items():
                if contents(v) is not None:
                    self.items.append((path + "." + k, v, contents(v)))
        self.funcs = []          # [(path, function, {attr: value})]
        seen = set()
        def visit(path, v, depth):
            if depth > 8 or id(v) in seen:
                return
            seen.add(id(v))
            if isinstance(v, (staticmethod, classmethod)):
                return visit(path, v.__func__, depth + 1)
            if isinstance(v, property):
                for n in ("fget", "fset", "fdel"):
                    if getattr(v, n) is not None:
                        visit(path + "." + n, getattr(v, n), depth + 1)
                return
            if isinstance(v, types.FunctionType):
                if v.__globals__ is vars(m):
                    self.funcs.append((path, v, {
                        k: weakref.ref(v.__code__) if k == "__code__" else getattr(v, k)
                        for k in FUNC_ATTRS}))
                for c in v.__closure__ or ():
                    try:
                        x = c.cell_contents
                    except ValueError:
                        continue
                    visit(path + ".<cell>", x, depth + 1)
            if isinstance(v, (types.FunctionType, functools._lru_cache_wrapper)):
                w = v.__dict__.get("__wrapped__")
                if w is not None:
                    visit(path + ".__wrapped__", w, depth + 1)
        for k, v in self.top.items():
            visit(k, v, 0)
        for path, cls, d in self.classes:
            for k, v in d.items():
                visit(path + "." + k, v, 0)

    @staticmethod
    def _members(where, was, now, lazy, out):
        for k, v in was.items():
            if k not in now:
                out.append("%s%s is gone (was %s)" % (where, k, short(v)))
            elif now[k] is not v:
                out.append("%s%s is %s, not the %s it was before the refresh" % (
                    where, k, short(now[k]), short(v)))
        for k in now:
            if k not in was and k not in lazy:
                out.append("%s%s is still there (%s), added after the snapshot" % (
                    where, k, short(now[k])))

    def differences(self, m, funcs=True):
        """What differs from the snapshot: a list of strings."""
        out = []
        for path, fn, state in self.funcs if funcs else ():
            for k, was in state.items():
                now = getattr(fn, k)
                if k == "__code__":
                    was = was()
                if now is not was:
                    out.append("%s.%s is %s, not the %s it was before the refresh" % (
                        path, k, short(now), short(was)))
        self._members("", self.top, vars(m), LAZY_MODULE, out)
        for path, cls, d in self.classes:
            self._members(path + ".", d, dict(vars(cls)), LAZY_CLASS, out)
        for where, v, was in self.items:
            now = contents(v)
            if type(v) is dict:
                same = (len(now) == len(was) and
                        all(k in v and v[k] is x for k, x in was))
            elif type(v) is list:
                same = len(now) == len(was) and all(a is b for a, b in zip(now, was))
            else:
                same = now == was
            if not same:
                out.append("the items of %s differ: %s, was %s" % (
                    where, short(now), short(was)))
        return out

def predate(path):
    """Date a module file from before this process started: the scenarios
    model modules that exist before the program runs. pyhot trusts a
    module imported before the attach only when its file is older than the
    process (a file written later may have changed after its import)."""
    os.utime(path, (0, 0))


def setup(sc):
    # Write and import the old module (and aux); (m, a).
    mod = sc["mod"]
    with open(os.path.join(tmp, mod + ".py"), "w") as f:
        f.write(sc["old"])
    predate(os.path.join(tmp, mod + ".py"))
    importlib.invalidate_caches()
    m = importlib.import_module(mod)
    a = None
    if sc.get("aux"):
        with open(os.path.join(tmp, mod + "_aux.py"), "w") as f:
            f.write(sc["aux"].replace("__MOD__", mod))
        predate(os.path.join(tmp, mod + "_aux.py"))
        importlib.invalidate_caches()
        a = importlib.import_module(mod + "_aux")
    return m, a

def plan_lines(resp):
    return [(r.get("module"), [(c["action"], c["kind"], c["name"]) for c in r["changes"]],
             r.get("summary")) for r in resp.get("modules") or []]

def same_plan(dry, real):
    # The dry run is the refresh's plan without the apply: the same lines
    # (details aside: some say what only the apply learns) and counts.
    # (only the apply can fail where the plan did not)
    if real.get("ok") and not dry.get("ok"):
        raise AssertionError("dry run failed, refresh ok: %s" % dry.get("error"))
    if dry.get("ok") and real.get("ok") and plan_lines(dry) != plan_lines(real):
        raise AssertionError("dry run %s != refresh %s" % (plan_lines(dry), plan_lines(real)))

def run(sc, pre):
    mod = sc["mod"]
    path = os.path.join(tmp, mod + ".py")
    result = {"id": sc["id"], "status": "FAIL", "where": "setup", "error": None,
              "responses": [], "rollbacks": []}
    t0 = time.monotonic()
    ERRORS = []
    gens = []      # generation of every refresh of mod that made one
    made = [0]     # generations of mod: refreshes and rollbacks

    def write(src):
        with harness():
            with open(path, "w") as f:
                f.write(src)

    def refresh(name=mod, dry=0):
        with harness():
            resp = engine_refresh(name, dry)
        for r in (resp.get("modules") or []) if resp.get("ok") and not dry else []:
            if r.get("module") == mod and isinstance(r.get("generation"), int):
                gens.append(r["generation"])
                made[0] += 1
        return resp

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

    def patch(src=sc["new"]):
        with harness():
            write(src)
            return do_refresh()

    def dry(src=sc["new"]):
        """Write src, plan a refresh (dry run); returns the response."""
        with harness():
            write(src)
            return refresh(mod, 1)

    def rollback():
        """`pyhot rollback <pid> mod`: the newest refresh only."""
        with harness():
            resp = engine_rollback(mod, None, 0)
        result["rollbacks"].append(resp)
        if resp.get("exception_left_set"):
            raise AssertionError("engine left a Python exception set (rollback)")
        if resp.get("ok"):
            made[0] += 1
        return resp

    def message(resp):
        return (resp.get("error") or {}).get("message", "?")

    def read():
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return None

    def roll_back(since, snap):
        """Undo the generations of mod made since snap was taken (gens from
        index since on), one rollback each, newest first (each goes further
        back), and check that the state of snap is back and the file
        untouched. None made (a refresh that moved only line numbers is no
        generation): nothing to undo, nothing to compare. Returns the
        refusal that ended it early, or None."""
        src, stop = read(), None
        todo = gens[since:]
        n = len(todo)
        for i in range(n):
            r = rollback()
            if r.get("ok"):
                mods = r.get("modules") or [{}]
                if r.get("undone") != [todo[-1]] or not isinstance(
                        mods[0].get("generation"), int):
                    raise AssertionError(
                        "rollback %d of %d: undid %s (generation %s), not just %d"
                        % (i + 1, n, r.get("undone"), mods[0].get("generation"),
                           todo[-1]))
                todo.pop()
                continue
            # The engine keeps spec["history"] generations per module,
            # refreshes and rollbacks (history.h): past the oldest, no way
            # back. The state reached is one inside the history, not the
            # one before the refresh: its names and class members only.
            if made[0] <= spec["history"] or not refused(r):
                raise AssertionError("rollback %d of %d failed: %s" % (i + 1, n,
                                                                        message(r)))
            result.setdefault("notes", []).append(
                "history limit: %d of %d rollbacks, then: %s" % (i, n, message(r)))
            stop = r
            break
        diff = snap.differences(m, funcs=stop is None) if n else []
        if diff:
            raise AssertionError("not as before the refresh: " + "; ".join(diff[:6]))
        if read() != src:
            raise AssertionError("the rollback changed the module file")
        return stop

    def refused(r):
        return not r.get("ok") and ("nothing to roll back" in message(r) or
                                    "not refreshed" in message(r))

    def apply_failing(call):
        # call() with the test hook set to fail its apply after the last op;
        # (response, whether the hook fired)
        lib.pyhot_test_apply_fail_after(1 << 30)
        try:
            resp = call()
        finally:
            fired = lib.pyhot_test_apply_fail_after(-1) == -1
        if resp.get("exception_left_set"):
            raise AssertionError("engine left a Python exception set (%s)" % result["where"])
        return resp, fired

    def failed_apply(ns):
        # --apply-fail: the refresh fails after its last op; every op undone
        result["where"] = "failed apply"
        before = Snapshot(m)
        write(sc["new"])
        resp, fired = apply_failing(refresh)
        if not fired:
            if resp.get("ok"):
                raise AssertionError("the refresh made no apply")
            return   # refused before the apply: nothing to undo
        if resp.get("ok") or "test hook" not in message(resp):
            raise AssertionError("the failed apply was not reported: %s" % resp)
        diff = before.differences(m)
        if diff:
            raise AssertionError("not undone after a failed apply: " + "; ".join(diff[:6]))
        if "before" in sc:
            rerun("before", dict(ns))

    def failed_rollback():
        # --apply-fail: the first rollback fails after its last op (the
        # inverse ops of the refresh, every kind): every one undone
        result["where"] = "failed rollback"
        now = Snapshot(m)
        resp, fired = apply_failing(rollback)
        if not fired or resp.get("ok") or "test hook" not in message(resp):
            raise AssertionError("the failed rollback was not reported: %s" % resp)
        diff = now.differences(m)
        if diff:
            raise AssertionError("not undone after a failed rollback: " + "; ".join(diff[:6]))
        result["where"] = "rollback"

    def rerun(block, space):
        # Options: norerun (neither block), norerun=before, norerun=after
        if not {"norerun", "norerun=" + block} & set(sc["options"]):
            result["where"] = block + " (again)"
            exec(compile(sc.get(block, ""), "<%s again>" % block, "exec"), space)

    try:
        if isinstance(pre, BaseException):
            raise pre
        # nobaseline: imported now, after the attach (the baseline)
        m, a = pre if pre is not None else setup(sc)
        ns = dict(m=m, a=a, dry=dry, refresh=refresh, RESPONSES=result["responses"],
                  MODPATH=path, tmp=tmp, OLD=sc["old"], NEW=sc["new"], ERRORS=ERRORS,
                  patch=patch, sys=sys, os=os, time=time, importlib=importlib,
                  types=types, gc=gc, inspect=inspect, threading=threading,
                  weakref=weakref, pickle=pickle, asyncio=asyncio)
        result["where"] = "before"
        exec(compile(sc.get("before", ""), "<before>", "exec"), ns)
        snap = Snapshot(m) if "before" in sc else None
        if spec.get("apply_fail"):
            failed_apply(ns)
        mark = len(gens)
        result["where"] = "refresh"
        write(sc["new"])
        planned = None if "nodrycheck" in sc["options"] else refresh(mod, 1)
        do_refresh()
        if planned is not None:
            result["where"] = "dry run equals refresh"
            same_plan(planned, result["responses"][-1])
        made_one = len(gens) > mark
        result["where"] = "after"
        exec(compile(sc.get("after", ""), "<after>", "exec"), ns)
        if snap is not None:
            # 2. roll back: the objects of the snapshot are back, and the
            # old behaviour (the before block, in a copy of the namespace)
            result["where"] = "rollback"
            if not made_one:
                result.setdefault("notes", []).append("the refresh made no generation")
            if spec.get("apply_fail") and made_one:
                failed_rollback()
            stop = roll_back(mark, snap)
            ns2 = dict(ns)
            rerun("before", ns2)
            # 3. nothing left to roll back: refused, nothing changed
            result["where"] = "second rollback"
            snap2 = Snapshot(m)
            if stop is None:
                r = rollback()
                if not refused(r):
                    raise AssertionError(
                        "a second rollback was not refused as nothing to roll back: %s"
                        % (message(r) if not r.get("ok") else "ok, undid %s" % r.get("undone")))
            diff = snap2.differences(m)
            if diff:
                raise AssertionError("the refused rollback changed: " + "; ".join(diff[:6]))
            # 4. refresh again (the scenario's new source, which the file
            # still holds unless scenario code wrote another), the after
            # block again, and roll back again: the same objects are back
            result["where"] = "refresh (again)"
            if read() != sc["new"]:
                write(sc["new"])
            mark2 = len(gens)
            e = do_refresh()
            if e is not None:
                raise AssertionError("refresh after the rollback failed: %s" % e)
            if stop is None and made_one and len(gens) == mark2:
                raise AssertionError("the refresh after the rollback changed nothing")
            rerun("after", ns2)
            result["where"] = "rollback (again)"
            roll_back(mark2, snap2)
        result["status"] = "PASS"
        result["where"] = None
    except BaseException as e:
        result["error"] = "".join(traceback.format_exception_only(type(e), e)).strip()
        result["tb"] = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    result["seconds"] = round(time.monotonic() - t0, 3)
    return result

# Every module is imported before the attach, so that the baseline has
# them all, except with Options: nobaseline.
pre = {}
for sc in spec["scenarios"]:
    if "nobaseline" not in sc["options"]:
        try:
            pre[sc["id"]] = setup(sc)
        except BaseException as e:
            pre[sc["id"]] = e
prime()
for sc in spec["scenarios"]:
    emit("@@START@@", sc["id"])
    r = run(sc, pre.pop(sc["id"], None))
    emit("@@RESULT@@", r)
    del r
os._exit(0)
'''


def drive_cli(pid, pyhot, line):
    """Serve one request of a child in --via cli mode."""
    cmd = json.loads(line)
    pid = str(pid)

    def run(*args):
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
    if cmd["op"] == "rollback":
        return run("rollback", pid, cmd["name"], "--json",
                   *(["--to", str(cmd["to"])] if cmd.get("to") is not None else []),
                   *(["--dry-run"] if cmd.get("dry") else []))
    return run("refresh", pid, *([cmd["name"]] if cmd["name"] else []), "--json",
               *(["--dry-run"] if cmd["dry"] else []))


def history_limit():
    """Generations the engine keeps per module by default
    (PYHOT_HISTORY_DEFAULT in payload/patch/pyhot_patch.h)."""
    try:
        with open(os.path.join(ROOT, "payload", "patch", "pyhot_patch.h")) as f:
            return int(re.search(r"#define PYHOT_HISTORY_DEFAULT (\d+)", f.read()).group(1))
    except (OSError, AttributeError, ValueError):
        return 20


def scenario_timeout(sc, timeout):
    """The time one scenario may take: timeout, or its Options: timeout=N."""
    for opt in sc.get("options", []):
        if opt.startswith("timeout="):
            timeout = max(timeout, int(opt.split("=", 1)[1]))
    return timeout


# --apply-fail (module docstring); the integration test sets it too.
APPLY_FAIL = False


def batches(scs, fresh=False):
    """Split scenarios into the lists that share a child: every scenario
    with Options: isolated (or every one, with fresh) alone, the others
    together."""
    alone = [[sc] for sc in scs if fresh or "isolated" in sc.get("options", [])]
    shared = [sc for sc in scs if not fresh and "isolated" not in sc.get("options", [])]
    return ([shared] if shared else []) + alone


def _missing(py, scs):
    """{id: module} for the scenarios whose Options: requires=MOD cannot be
    imported by py (one check per module)."""
    seen, out = {}, {}
    for sc in scs:
        for opt in sc.get("options", []):
            if opt.startswith("requires="):
                mod = opt.split("=", 1)[1]
                if mod not in seen:
                    seen[mod] = subprocess.run([py, "-c", "import " + mod],
                                               capture_output=True,
                                               env=target_env()).returncode == 0
                if not seen[mod]:
                    out[sc["id"]] = mod
    return out


def _run_child(py, scs, via, timeout):
    """Run scs in one child of py. Returns (results, failure): results maps
    the id of every scenario that ended (passed, failed, or timed out or
    killed the child while it ran) to its result; failure is a result for
    the others when the child died or timed out outside any scenario (None
    when every scenario ended)."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="pyhot-scn-") as tmp:
        spec = {"tmp": tmp, "via": via, "history": history_limit(),
                "apply_fail": APPLY_FAIL,
                "so": os.path.join(BUILD, "tests", "pyhot-engine-test.so"),
                "scenarios": [dict(sc, mod="scn_" + sc["id"].lower()) for sc in scs]}
        by_id = {sc["id"]: sc for sc in scs}
        pyhot = os.environ.get("PYHOT_BIN", PYHOT)
        spec_path = os.path.join(tmp, "spec.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        # stderr to a file: a pipe nobody reads could fill up and block the
        # child over a long batch
        with open(os.path.join(tmp, "stderr.txt"), "w+") as errf:
            p = start_target([py, "-c", CHILD, spec_path], write_bytecode=False,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errf,
                             text=True, cwd=tmp)
            lines = queue.Queue()

            def reader():
                for line in p.stdout:
                    lines.put(line)
                lines.put(None)
            threading.Thread(target=reader, daemon=True).start()
            deadline = time.monotonic() + timeout
            current, failure = None, None
            try:
                while True:
                    try:
                        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                    except queue.Empty:
                        line = ""
                    if line is None:
                        break
                    if line.startswith("@@CMD@@"):
                        resp = drive_cli(p.pid, pyhot, line[len("@@CMD@@"):])
                        try:
                            p.stdin.write(json.dumps(resp) + "\n")
                            p.stdin.flush()
                        except OSError:
                            pass   # the child died: its stdout ends next
                    elif line.startswith("@@START@@"):
                        current = json.loads(line[len("@@START@@"):])
                        deadline = time.monotonic() + scenario_timeout(by_id[current],
                                                                       timeout)
                    elif line.startswith("@@RESULT@@"):
                        r = json.loads(line[len("@@RESULT@@"):])
                        results[r.pop("id")] = r
                        current = None
                    if time.monotonic() > deadline:
                        t = scenario_timeout(by_id[current], timeout) if current else timeout
                        failure = {"status": "FAIL", "error": "timeout after %ds" % t}
                        break
            finally:
                stop_target(p)
                errf.seek(0)
                err = errf.read()
    if failure is None and len(results) < len(scs):
        failure = {"status": "FAIL",
                   "error": "child died (rc %s): %s" % (p.returncode, err[-800:])}
    if failure is not None and current is not None:
        results[current] = failure
        failure = None
    return results, failure


def run_group(py, scs, via, timeout):
    """Run scenarios scs on py, in as few children as they allow (one, unless
    one of them times out or kills its child); {id: result}. A scenario that
    fails among others runs again alone: when it passes there, it still
    fails, and its error says it fails only after other scenarios."""
    results = {k: {"status": "SKIP", "error": "no " + mod}
               for k, mod in _missing(py, scs).items()}
    todo = [sc for sc in scs if sc["id"] not in results]
    while todo:
        done, failure = _run_child(py, todo, via, timeout)
        if len(todo) > 1:
            for sc in todo:
                r = done.get(sc["id"])
                if r and r["status"] == "FAIL" and "where" in r:
                    alone = run_one(py, sc, via, timeout)
                    if alone["status"] == "PASS":
                        r["error"] = ("fails after other scenarios in one process, "
                                      "passes alone: %s" % r["error"])
        results.update(done)
        if failure is not None:
            if len(todo) == 1:
                results[todo[0]["id"]] = failure
            elif not done:
                # the child failed before any scenario: find the culprit
                for sc in todo:
                    results.update(run_group(py, [sc], via, timeout))
        todo = [sc for sc in todo if sc["id"] not in results]
    return results


def run_one(py, sc, via, timeout):
    """One scenario in a fresh process of py; its result."""
    return run_group(py, [sc], via, timeout)[sc["id"]]


def run_all(pythons, scs, via, timeout, jobs, fresh=False):
    """Every scenario on every interpreter, jobs children at a time;
    {(id, python): result}."""
    work = [(py, b) for b in batches(scs, fresh) for py in pythons]
    out = {}
    with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
        futs = [(py, ex.submit(run_group, py, b, via, timeout)) for py, b in work]
        for py, f in futs:
            for k, r in f.result().items():
                out[(k, py)] = r
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--via", choices=["ctypes", "cli"], default="ctypes")
    ap.add_argument("--python", action="append")
    ap.add_argument("-k", help="comma-separated scenario ids")
    ap.add_argument("--file", action="append",
                    help="more scenarios in the same format (tests/engine/extra.md)")
    ap.add_argument("-j", type=int, default=os.cpu_count() or 2,
                    help="children at a time")
    ap.add_argument("--fresh", action="store_true",
                    help="every scenario in a process of its own")
    ap.add_argument("-v", action="store_true", help="print tracebacks")
    ap.add_argument("--timeout", type=int, default=60)
    ap.add_argument("--json", help="write all results to this file")
    ap.add_argument("--apply-fail", action="store_true",
                    help="first make each refresh fail at the end of its apply "
                    "(ctypes only): everything must be undone")
    args = ap.parse_args()
    global APPLY_FAIL
    APPLY_FAIL = args.apply_fail
    if APPLY_FAIL and args.via != "ctypes":
        ap.error("--apply-fail needs --via ctypes")
    pythons = [p for p in args.python or [path for _, path in INTERPRETERS]
               if os.path.exists(p)]
    scs = parse(SCENARIOS)
    for extra in args.file or []:
        scs += parse(extra)
    if args.k:
        keep = set(args.k.split(","))
        scs = [s for s in scs if s["id"] in keep]
    results = run_all(pythons, scs, args.via, args.timeout, args.j, args.fresh)
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
    if args.v:
        for sc in scs:
            for py in pythons:
                for note in results[(sc["id"], py)].get("notes", []):
                    print("note %-4s %-8s %s" % (sc["id"], short[py], note))
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
