"""The generation tracker: memory stays flat over many refreshes, rollback
under load, bad input.

The targets load the payload themselves (inproc_helpers.Target, with the
history limit given at boot, as `pyhot attach --history N` does) and get
raw requests with grace_ms=0: the agent takes the GIL at once instead of
waiting 100 ms for the main thread, which sits in a read. The rollback
behaviour per scenario is in tests/engine/run_scenarios.py; the command
line in test_cli_rollback.py.
"""
import json
import os
import threading
import time

import pytest

from inproc_helpers import Target
from pyhot_testlib import DEFAULT_PY, INTERPRETERS

PYTHONS = [path for _, path in INTERPRETERS]
IDS = [name for name, _ in INTERPRETERS]
FAST = [("grace_ms", "0")]
# The long runs use one interpreter; the others run a shorter loop.
LONG_PY = DEFAULT_PY


def module_source(v):
    """A module with 50 functions (decorated ones, lru_cache ones, a closure
    factory) and 10 classes (a dataclass, an Enum, a class with a metaclass),
    in version v (0 or 1): every fifth function, the closure, the metaclass
    method, the dataclass, the Enum and two classes differ between them."""
    out = ["import dataclasses, enum, functools", "",
           "def deco(f):", "    @functools.wraps(f)", "    def wrapper(*a, **k):",
           "        return f(*a, **k)", "    return wrapper", "",
           "def make_adder(n):", "    def add(x):", "        return x + n + %d" % v,
           "    return add", "", "ADD = make_adder(1)", "STATE = {'calls': 0}", ""]
    for i in range(50):
        if i % 5 == 0:
            out += ["@deco"]
        if i % 7 == 0:
            out += ["@functools.lru_cache(maxsize=None)"]
        out += ["def f%d(x=%d):" % (i, i), "    STATE['calls'] += 1",
                "    return x * %d + %d" % (i, v if i % 5 == 0 else 0), ""]
    out += ["class Meta(type):", "    def hello(cls):", "        return 'meta%d'" % v, ""]
    out += ["@dataclasses.dataclass", "class D0:", "    a: int = 0", "    b: str = 'x'",
            "    def m(self):", "        return self.a + %d" % v, ""]
    out += ["class E1(enum.Enum):", "    RED = 1", "    GREEN = 2",
            "    def m(self):", "        return self.value * %d" % (v + 1), ""]
    out += ["class K2(metaclass=Meta):", "    def m(self):", "        return %d" % v, ""]
    for c in range(3, 10):
        w = v if c in (3, 4) else 0
        out += ["class K%d:" % c, "    X = %d" % w, "    def __init__(self):",
                "        self.v = %d" % c, "    def m(self):",
                "        return self.v + %d" % w, "    @property", "    def p(self):",
                "        return %d" % w, "    @classmethod", "    def c(cls):",
                "        return cls.X", ""]
    return "\n".join(out) + "\n"


# What the module answers in each version, read through objects made
# before any refresh (kept in the module itself).
PROBE = ("import usermod as u\n"
         "if not hasattr(u, '_keep'):\n"
         "    u._keep = (u.f5, u.K3(), u.E1.RED, u.D0(), u.K2(), u.ADD)\n"
         "f5, k3, red, d0, k2, add = u._keep\n"
         "(f5(1), k3.m(), k3.p, red.m(), d0.m(), k2.m(), u.K2.hello(), add(1),"
         " f5 is u.f5, red is u.E1.RED)")
ANSWER = {0: "(5, 3, 0, 1, 0, 0, 'meta0', 2, True, True)",
          1: "(6, 4, 1, 2, 1, 1, 'meta1', 3, True, True)"}

COUNT = ("import gc, tracemalloc\n"
         "gc.collect()\n"
         "(len(gc.get_objects()), tracemalloc.get_traced_memory()[0])")


class Session:
    def __init__(self, python, tmp_path, history):
        self.t = Target(python, tmp_path, usermod=module_source(0), history=history)
        self.path = os.path.join(self.t.dir, "usermod.py")
        # The baseline is taken at the agent's first safe point; this
        # request comes after it (as `pyhot attach` waits for it).
        assert self.request("status")["ok"] is True

    def request(self, verb, *args):
        r = self.t.request(verb, list(args) + FAST)
        return r

    def exec(self, code):
        r = self.request("exec", ("code", code))
        assert r["ok"] is True, r
        return r["value"]

    def write(self, v):
        with open(self.path, "w") as f:
            f.write(module_source(v))

    def refresh(self, v):
        self.write(v)
        r = self.request("refresh", ("module", "usermod"))
        assert r["ok"] is True, r
        return r

    def close(self):
        self.t.close()


@pytest.fixture
def session(request, tmp_path):
    made = []

    def make(python, history):
        s = Session(python, tmp_path, history)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


def flat_run(s, refreshes, full_at, checkpoints):
    """Refresh `refreshes` times alternating the two versions; from refresh
    full_at on, the gc object count after gc.collect() must not move and
    tracemalloc must not grow beyond a few kilobytes."""
    assert s.exec(PROBE) == ANSWER[0]
    s.exec("import tracemalloc; tracemalloc.start()")
    seen = {}
    for i in range(1, refreshes + 1):
        r = s.refresh(i % 2)
        assert r["modules"][0]["generation"] is not None, r
        if i == full_at or i in checkpoints:
            seen[i] = eval(s.exec(COUNT))
    assert s.exec(PROBE) == ANSWER[refreshes % 2]
    objects = {i: c[0] for i, c in seen.items()}
    traced = {i: c[1] for i, c in seen.items()}
    assert len(set(objects.values())) == 1, "gc objects after each refresh: %s" % objects
    growth = traced[max(traced)] - traced[full_at]
    assert growth < 8 * 1024, "tracemalloc grew by %d bytes: %s" % (growth, traced)
    return objects, traced


@pytest.mark.skipif(LONG_PY is None, reason="no interpreter")
@pytest.mark.parametrize("limit,full_at", [(1, 2), (50, 100)])
def test_memory_flat_over_1000_refreshes(session, limit, full_at):
    s = session(LONG_PY, limit)
    flat_run(s, 1000, full_at, range(200, 1001, 200))
    st = s.request("status", ("leaks", "1"))
    assert st["history"]["limit"] == limit
    assert len([g for g in st["history"]["generations"]
                if g["module"] == "usermod"]) == limit
    assert st["leaks"] == [], st["leaks"]


@pytest.mark.parametrize("python", PYTHONS, ids=IDS)
def test_memory_flat_on_every_interpreter(session, python):
    s = session(python, 1)
    flat_run(s, 120, 20, (60, 120))


@pytest.mark.parametrize("python", PYTHONS, ids=IDS)
def test_rollback_while_eight_threads_call(session, python):
    s = session(python, 20)
    s.exec("import threading, usermod as u, sys\n"
           "u._stop = threading.Event(); u._errors = []; u._calls = [0]\n"
           "def _hammer():\n"
           "    while not u._stop.is_set():\n"
           "        try:\n"
           "            u.f5(1); u.K3().m(); u.K4().p; u.E1.RED.m(); u.D0().m()\n"
           "            u.K2().m(); u.ADD(1); u._calls[0] += 1\n"
           "        except BaseException as e:\n"
           "            u._errors.append(repr(e))\n"
           "u._threads = [threading.Thread(target=_hammer, daemon=True) for _ in range(8)]\n"
           "for t in u._threads: t.start()")
    for v in (1, 0, 1, 0, 1):
        s.refresh(v)
    for _ in range(5):
        r = s.request("rollback", ("module", "usermod"))
        assert r["ok"] is True, r
    time.sleep(0.2)
    out = s.exec("import usermod as u\n"
                 "u._stop.set()\n"
                 "for t in u._threads: t.join(5)\n"
                 "(u._errors[:3], u._calls[0] > 0, any(t.is_alive() for t in u._threads))")
    assert out == "([], True, False)", out
    assert s.exec(PROBE) == ANSWER[0]


@pytest.mark.parametrize("python", PYTHONS[:1] + PYTHONS[-1:], ids=IDS[:1] + IDS[-1:])
def test_rollback_bad_input_changes_nothing(session, python):
    s = session(python, 2)
    bad = [
        ([("module", "usermod")], "not refreshed since the attach"),
        ([("module", "nosuch")], "module 'nosuch' is not imported"),
        ([], "exactly one module"),
        ([("module", "usermod"), ("module", "usermod")], "exactly one module"),
    ]
    for args, message in bad:
        r = s.request("rollback", *args)
        assert r["ok"] is False and message in r["error"]["message"], r
    s.refresh(1)                      # generation 1
    s.refresh(0)                      # 2
    s.refresh(1)                      # 3: 1 falls out (limit 2)
    before = s.exec(PROBE)
    status = s.request("status")["history"]
    bad = [
        ([("module", "usermod"), ("to", "0")], "fell out of the history"),
        ([("module", "usermod"), ("to", "99")], "no generation 99"),
        ([("module", "usermod"), ("to", "x")], "must be a generation number"),
        ([("module", "usermod"), ("to", "-1")], "must be a generation number"),
        ([("module", "usermod"), ("to", "3")], "at generation 3 already"),
        ([("module", "os")], "not refreshed since the attach"),
    ]
    for args, message in bad:
        r = s.request("rollback", *args)
        assert r["ok"] is False and message in r["error"]["message"], r
    assert s.exec(PROBE) == before
    assert s.request("status")["history"] == status
    # A module that is gone.
    s.exec("import sys; sys.modules['_kept_usermod'] = sys.modules.pop('usermod')")
    r = s.request("rollback", ("module", "usermod"))
    assert r["ok"] is False and "is not imported" in r["error"]["message"], r
    s.exec("import sys; sys.modules['usermod'] = sys.modules.pop('_kept_usermod')")
    # A failed refresh leaves no generation.
    with open(s.path, "w") as f:
        f.write("def broken(:\n")
    r = s.request("refresh", ("module", "usermod"))
    assert r["ok"] is False
    assert s.request("status")["history"] == status
    # Going back to 2 works, then --to a rolled-back generation is refused.
    r = s.request("rollback", ("module", "usermod"), ("to", "2"))
    assert r["ok"] is True and r["restored"] == 2 and r["undone"] == [3], r
    assert s.exec(PROBE) == ANSWER[0]
    # 3, rolled back, was the record to go when 4 came (limit 2).
    r = s.request("rollback", ("module", "usermod"), ("to", "3"))
    assert r["ok"] is False and "no generation 3 of usermod" in r["error"]["message"], r


@pytest.mark.parametrize("python", PYTHONS, ids=IDS)
def test_generations_in_status(session, python):
    s = session(python, 20)
    s.refresh(1)
    s.refresh(0)
    r = s.request("rollback", ("module", "usermod"))
    assert r["ok"] is True and r["restored"] == 1 and r["undone"] == [2], r
    assert r["modules"][0]["generation"] == 3
    assert s.exec(PROBE) == ANSWER[1]
    r = s.request("rollback", ("module", "usermod"))
    assert r["ok"] is True and r["restored"] == 0, r
    assert s.exec(PROBE) == ANSWER[0]
    h = s.request("status", ("leaks", "1"))
    gens = h["history"]["generations"]
    assert [g["number"] for g in gens] == [4, 3, 2, 1]
    assert [g["kind"] for g in gens] == ["rollback", "rollback", "refresh", "refresh"]
    assert [g.get("restores") for g in gens] == [0, 1, None, None]
    assert [g["applied"] for g in gens] == [False] * 4
    assert gens[3]["rolled_back_by"] == 4 and gens[2]["rolled_back_by"] == 3
    import hashlib
    assert gens[3]["hash"] == hashlib.sha256(module_source(1).encode()).hexdigest()
    assert gens[0]["hash"] == hashlib.sha256(module_source(0).encode()).hexdigest()
    assert gens[3]["summary"]["changed"] > 0 and gens[3]["changes"]
    assert h["history"]["limit"] == 20 and h["history"]["bytes"] > 0
    assert h["leaks"] == [], h["leaks"]
    r = s.request("rollback", ("module", "usermod"), ("to", "2"))
    assert r["ok"] is False, r
    assert "was rolled back by generation 3" in r["error"]["message"], r
    # A refresh after the rollbacks applies the file again.
    r = s.refresh(1)
    assert r["modules"][0]["generation"] == 5
    assert s.exec(PROBE) == ANSWER[1]


def test_leaks_lists_what_a_user_holds(session):
    s = session(PYTHONS[0], 1)
    s.exec("import usermod as u, sys; sys._old_code = u.f5.__wrapped__.__code__")
    s.refresh(1)      # generation 1 holds the old code
    s.refresh(0)      # 1 falls out: its old code should die, but is held
    r = s.request("status", ("leaks", "1"))
    leaks = r["leaks"]
    assert len(leaks) == 1, leaks
    assert leaks[0]["type"] == "code" and leaks[0]["name"].startswith("f5 ")
    assert leaks[0]["generation"] == 1
    # Who holds it: sys's dict, reached through the sys module.
    held = leaks[0]["held_by"]
    assert held and all(isinstance(h, str) for h in held), leaks
    s.exec("import sys; del sys._old_code")
    assert s.request("status", ("leaks", "1"))["leaks"] == []


def test_every_applied_refresh_can_be_stepped_back(session):
    """With a full history, rollbacks push out records that hold nothing
    (rollbacks, refreshes rolled back), never a refresh still applied."""
    s = session(PYTHONS[0], 3)
    for v in (1, 0, 1):
        s.refresh(v)                            # 1, 2, 3: the history is full
    for restored in (2, 1, 0):
        r = s.request("rollback", ("module", "usermod"))
        assert r["ok"] is True and r["restored"] == restored, r
    assert s.exec(PROBE) == ANSWER[0]
    gens = s.request("status")["history"]["generations"]
    assert len(gens) == 3 and all(g["kind"] == "rollback" for g in gens), gens
    r = s.request("rollback", ("module", "usermod"))
    assert r["ok"] is False and "nothing to roll back" in r["error"]["message"], r
