"""The undo of a failed apply, through the engine's test hook (ops.h:
build/tests/pyhot-engine-test.so can make the next apply fail once it has
done N ops, as a __setattr__ that raises would). The engine runs in the
test's Python process by ctypes, the GIL held, as at a safe point.

- every scenario (tests/scenarios/scenarios.md, tests/engine/extra.md) is
  first refreshed with an apply that fails after its last op: every op
  kind the scenarios make is done, then undone (run_scenarios.py
  --apply-fail: the module must be as its snapshot, the before block must
  hold again), then the scenario runs as usual;
- one refresh of two modules, each with a change of every kind (names
  added, removed and rebound, a function's code, defaults and keyword-only
  defaults, a closure, class members added, removed and replaced, a
  dataclass, an enum, dict and list items), made to fail after 0, 1, 2 ...
  ops up to all of them: each time both modules are exactly as before,
  the error says the apply failed and nothing changed; then the refresh
  goes through."""
import json
import os
import subprocess

import pytest

from conftest import BUILD, INTERPRETERS
from pyhot_testlib import target_env
from test_scenarios import SCENARIOS, runner   # the scenario runner, loaded once

ENGINE_SO = os.path.join(BUILD, "tests", "pyhot-engine-test.so")
pytestmark = pytest.mark.skipif(not os.path.exists(ENGINE_SO),
                                reason="build/tests/pyhot-engine-test.so not built")


@pytest.mark.parametrize("python", [pytest.param(p, id=n) for n, p in INTERPRETERS])
def test_failed_apply_undoes_every_scenario(python):
    runner.APPLY_FAIL = True
    try:
        res = runner.run_all([python], SCENARIOS, "ctypes", 90, 2)
    finally:
        runner.APPLY_FAIL = False
    bad = ["%s [%s]: %s" % (k, r.get("where"), r.get("error"))
           for (k, _), r in sorted(res.items()) if r["status"] not in ("PASS", "SKIP")]
    assert not bad, "\n".join(bad)
    assert sum(r["status"] == "PASS" for r in res.values()) >= len(SCENARIOS) - 2


OLD = '''\
import dataclasses, enum
X = 1
GONE = "gone"
TABLE = {"a": 1}
ITEMS = [1, 2]
def f(a, b=1, *, c=2):
    return ("old", a, b, c)
def make():
    k = "old"
    def inner():
        return k
    return inner
g = make()
class C:
    attr = 1
    def m(self):
        return "old"
    def gone(self):
        return 0
@dataclasses.dataclass
class D:
    x: int = 1
class E(enum.Enum):
    A = 1
'''

NEW = '''\
import dataclasses, enum
X = 2
ADDED = "added"
TABLE = {"a": 1, "b": 2}
ITEMS = [1, 2, 3]
def f(a, b=5, *, c=7):
    return ("new", a, b, c)
def make():
    k = "new"   # g = make() is kept: its cell keeps "old", inner gets the new code
    def inner():
        return k + "!"
    return inner
g = make()
class C:
    attr = 2
    added = 3
    def m(self):
        return "new"
    def extra(self):
        return 1
@dataclasses.dataclass
class D:
    x: int = 1
    y: int = 2
class E(enum.Enum):
    A = 1
    B = 2
'''

CHILD = r"""
import ctypes, json, os, sys, types, importlib
spec = json.load(open(sys.argv[1]))
tmp = spec["tmp"]
sys.path.insert(0, tmp)
lib = ctypes.PyDLL(spec["so"])
lib.pyhot_test_refresh.restype = ctypes.c_void_p
lib.pyhot_test_refresh.argtypes = [ctypes.c_char_p, ctypes.c_int]
lib.pyhot_test_free.argtypes = [ctypes.c_void_p]
lib.pyhot_test_apply_fail_after.restype = ctypes.c_long
lib.pyhot_test_apply_fail_after.argtypes = [ctypes.c_long]
NAMES = ("undo_one", "undo_two")
for n in NAMES:
    with open(os.path.join(tmp, n + ".py"), "w") as f:
        f.write(spec["old"])
    os.utime(os.path.join(tmp, n + ".py"), (0, 0))   # older than the process
mods = [importlib.import_module(n) for n in NAMES]
assert lib.pyhot_test_baseline() == 0

def refresh():
    p = lib.pyhot_test_refresh(",".join(NAMES).encode(), 0)
    try:
        return json.loads(ctypes.string_at(p).decode())
    finally:
        lib.pyhot_test_free(p)

def state(m):
    # what a refresh may touch, by identity
    out = {}
    for k, v in vars(m).items():
        out[k] = id(v)
        if isinstance(v, type):
            for ck, cv in vars(v).items():
                out[k + "." + ck] = id(cv)
                if isinstance(cv, types.FunctionType):
                    out[k + "." + ck + ".__code__"] = id(cv.__code__)
        if isinstance(v, types.FunctionType):
            for a in ("__code__", "__defaults__", "__kwdefaults__", "__closure__"):
                out[k + "." + a] = id(getattr(v, a))
            for i, c in enumerate(v.__closure__ or ()):
                out[k + ".cell%d" % i] = id(c.cell_contents)
        if type(v) is dict:
            out[k + "[]"] = sorted((kk, id(vv)) for kk, vv in v.items())
        if type(v) is list:
            out[k + "[]"] = [id(x) for x in v]
    return out

def differences(was, now):
    return sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))

before = [state(m) for m in mods]
for n in NAMES:
    with open(os.path.join(tmp, n + ".py"), "w") as f:
        f.write(spec["new"])
report = {"failed": [], "total": None}
n = 0
while True:
    lib.pyhot_test_apply_fail_after(n)
    r = refresh()
    fired = lib.pyhot_test_apply_fail_after(-1) == -1
    msg = (r.get("error") or {}).get("message", "")
    diff = [differences(b, state(m)) for b, m in zip(before, mods)]
    report["failed"].append({"n": n, "fired": fired, "ok": r.get("ok"), "message": msg,
                             "left_set": r.get("exception_left_set"), "diff": diff,
                             "old_behaviour": [m.f(0) == ("old", 0, 1, 2) and
                                               m.g() == "old" and m.C().m() == "old"
                                               for m in mods]})
    if not fired or r.get("ok") or " of %d ops" % n in msg or n > 500:
        break
    n += 1
r = refresh()
report["final"] = {"ok": r.get("ok"), "error": r.get("error"),
                   "new": [m.f(0) == ("new", 0, 5, 7) and m.f.__kwdefaults__ == {"c": 7}
                           and m.g() == "old!" and m.C().m() == "new" and
                           m.ADDED == "added" and not hasattr(m, "GONE") and
                           len(m.E) == 2 and m.D().y == 2 and m.TABLE == {"a": 1, "b": 2}
                           for m in mods]}
print("@@REPORT@@" + json.dumps(report))
"""


@pytest.mark.parametrize("python", [pytest.param(p, id=n) for n, p in INTERPRETERS])
def test_failed_apply_across_modules(python, tmp_path):
    spec = {"tmp": str(tmp_path), "so": ENGINE_SO, "old": OLD, "new": NEW}
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    p = subprocess.run([python, "-c", CHILD, str(spec_path)], cwd=str(tmp_path),
                       env=target_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=120)
    lines = [l for l in p.stdout.splitlines() if l.startswith("@@REPORT@@")]
    assert p.returncode == 0 and lines, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    report = json.loads(lines[0][len("@@REPORT@@"):])
    steps = report["failed"]
    last = steps[-1]
    # Every number of ops done, 0 to all of them, was tried: the last says
    # "after N of N ops".
    assert last["fired"] and "after %d of %d ops" % (last["n"], last["n"]) in last["message"], last
    # Both modules change: dozens of ops, of every kind.
    assert last["n"] >= 20, last
    for s in steps:
        assert s["fired"] and s["ok"] is False, s
        assert "apply failed, nothing changed" in s["message"], s
        assert "test hook" in s["message"] and not s["left_set"], s
        assert s["diff"] == [[], []], s
        assert s["old_behaviour"] == [True, True], s
    assert report["final"]["ok"] is True, report["final"]
    assert report["final"]["new"] == [True, True], report["final"]
