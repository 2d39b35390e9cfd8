"""The pyhot package in the target itself: refresh, rollback, refusal,
watch(), the refresh hooks, and one engine per process whichever way the
payload came in (import or `pyhot attach`)."""
import os
import time

import pytest

from conftest import pyhot
from inproc_driver import PYPKG, Repl

pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(PYPKG, "pyhot", "_pyhot.abi3.so")),
                                reason="package not built: make all")

MOD = '''\
import pyhot
calls = []
STATE = {"n": 0}
def f():
    return "old"
class C:
    def g(self):
        return 1
def __pyhot_before_refresh__():
    calls.append(("before", pyhot.refreshing(), f()))
def __pyhot_after_refresh__(changes):
    calls.append(("after", pyhot.refreshing(), f(), list(changes)))
'''


def write(path, text):
    path.write_text(text)
    st = os.stat(str(path))
    os.utime(str(path), ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def repl(python, tmp_path):
    (tmp_path / "m.py").write_text(MOD)
    r = Repl(python, tmp_path)
    r.run("import pyhot, m")
    yield r
    r.close()


def test_refresh_and_rollback(repl, tmp_path):
    write(tmp_path / "m.py", MOD.replace('"old"', '"new"').replace("return 1", "return 2"))
    rep = repl.run("_ = pyhot.refresh()")
    (mod,) = rep["modules"]
    assert mod["module"] == "m" and mod["generation"] >= 1
    names = {c["name"] for c in mod["changes"] if c["action"] == "changed"}
    assert {"m.f", "m.C", "m.C.g"} <= names
    assert repl.run("c = m.C; _ = (m.f(), m.C().g())") == ["new", 2]
    assert repl.run("_ = pyhot.history()['generations'][0]['module']") == "m"
    repl.run("_ = pyhot.rollback('m')")
    assert repl.run("_ = (m.f(), m.C().g(), m.C is c)") == ["old", 1, True]
    # the file did not change since: an explicit refresh applies it again
    repl.run("_ = pyhot.refresh('m')")
    assert repl.run("_ = m.f()") == "new"


def test_refused_refresh_raises_and_changes_nothing(repl, tmp_path):
    write(tmp_path / "m.py", MOD.replace('"old"', '"new"') + "\ndef broken(:\n")
    err = repl.run("pyhot.refresh()", ok=False)
    assert err["error"].startswith("RefreshError: refresh: ")
    assert "SyntaxError" in err["error"] and "traceback" in err["report"]
    assert repl.run("_ = (m.f(), len(pyhot.history()['generations']))") == ["old", 0]
    dry = repl.run("_ = pyhot.refresh('m', dry_run=True)", ok=False)
    assert "SyntaxError" in dry["error"]


def test_watch_picks_up_a_save_and_stops(repl, tmp_path):
    repl.run("w = pyhot.watch(interval=0.05)")
    write(tmp_path / "m.py", MOD.replace('"old"', '"watched"'))
    deadline = time.monotonic() + 10
    while repl.run("_ = m.f()") != "watched":
        assert time.monotonic() < deadline, "watch did not refresh"
        time.sleep(0.05)
    repl.run("w.stop()")
    assert repl.run("_ = (w._thread.is_alive(), len(w.reports), w.errors)") == [False, 1, []]
    write(tmp_path / "m.py", MOD.replace('"old"', '"after stop"'))
    time.sleep(0.3)
    assert repl.run("_ = m.f()") == "watched"


def test_hooks_order_arguments_and_refreshing(repl, tmp_path):
    repl.run("seen = []; pyhot.on_class_update(lambda c: seen.append(('class', c.__name__, m.f())))")
    repl.run("pyhot.on_refresh(lambda d: seen.append(('refresh', {k: list(v) for k, v in d.items()})))")
    new = MOD.replace('"old"', '"new"').replace("return 1", "return 2")
    new += "\nRAN_IN_REFRESH = pyhot.refreshing()\n"
    write(tmp_path / "m.py", new)
    rep = repl.run("_ = pyhot.refresh()")
    hooks = [h["name"].split(":")[0] for h in rep["modules"][0]["hooks"]]
    assert hooks == ["__pyhot_before_refresh__", "on_class_update",
                     "__pyhot_after_refresh__", "on_refresh"]
    calls = repl.run("_ = m.calls")
    assert calls[0] == ["before", False, "old"]
    assert calls[1][:3] == ["after", False, "new"]
    assert {"m.f", "m.C", "m.C.g", "m.RAN_IN_REFRESH"} <= set(calls[1][3])
    seen = repl.run("_ = seen")
    assert seen[0] == ["class", "C", "new"]
    assert seen[1][0] == "refresh" and "m.f" in seen[1][1]["m"]
    assert repl.run("_ = (m.RAN_IN_REFRESH, pyhot.refreshing())") == [True, False]


def test_before_hook_exception_refuses(repl, tmp_path):
    new = MOD.replace('"old"', '"new"').replace(
        "def __pyhot_before_refresh__():\n",
        "def __pyhot_before_refresh__():\n    raise ValueError('not now')\n")
    # the live module's hook is the one that runs: make it raise first
    repl.run("m.__pyhot_before_refresh__ = lambda: (_ for _ in ()).throw(ValueError('not now'))")
    write(tmp_path / "m.py", new)
    err = repl.run("pyhot.refresh()", ok=False)
    assert "__pyhot_before_refresh__" in err["error"] and "ValueError: not now" in err["error"]
    assert repl.run("_ = (m.f(), len(pyhot.history()['generations']))") == ["old", 0]


def test_after_hook_exception_is_reported_and_applied(repl, tmp_path):
    repl.run("pyhot.on_refresh(lambda d: 1 / 0)")
    new = MOD.replace('"old"', '"new"').replace(
        "    calls.append((\"after\"", "    raise KeyError('late')\n    calls.append((\"after\"")
    write(tmp_path / "m.py", new)
    rep = repl.run("_ = pyhot.refresh()")
    hooks = {h["name"].split(":")[0]: h for h in rep["modules"][0]["hooks"]}
    assert "KeyError" in hooks["__pyhot_after_refresh__"]["error"]
    assert "ZeroDivisionError" in hooks["on_refresh"]["error"]
    assert repl.run("_ = m.f()") == "new"
    repl.run("pyhot.rollback('m')")
    assert repl.run("_ = m.f()") == "old"


def test_cli_report_lists_hooks(repl, tmp_path):
    repl.run("pyhot.start_agent()")
    write(tmp_path / "m.py", MOD.replace('"old"', '"new"'))
    r = pyhot("refresh", repl.pid, json_out=True)
    assert r.rc == 0, r
    (mod,) = r.json["modules"]
    assert [h["name"] for h in mod["hooks"]] == ["__pyhot_before_refresh__",
                                                 "__pyhot_after_refresh__"]


def test_cli_text_report_lists_hooks_and_their_outcome(repl, tmp_path):
    """The text report has a line per hook that ran: ok, or what it raised
    and that the refresh stays applied; a refusing before hook is named in
    the error, and nothing changed."""
    repl.run("pyhot.start_agent()")
    repl.run("pyhot.on_refresh(lambda d: 1 / 0)")
    repl.run("pyhot.on_class_update(lambda c: None)")
    new = MOD.replace('"old"', '"new"').replace("return 1", "return 2").replace(
        "    calls.append((\"after\"", "    raise KeyError('late')\n    calls.append((\"after\"")
    write(tmp_path / "m.py", new)
    r = pyhot("refresh", repl.pid)
    assert r.rc == 0, r
    lines = [ln.strip() for ln in r.out.splitlines() if ln.strip().startswith("hook ")]
    assert lines[0] == "hook     __pyhot_before_refresh__: ok", r.out
    assert lines[1].startswith("hook     on_class_update:") and lines[1].endswith(": ok"), r.out
    assert lines[2].startswith("hook     __pyhot_after_refresh__: raised ") and \
        "KeyError" in lines[2] and "the refresh stays applied" in lines[2], r.out
    assert lines[3].startswith("hook     on_refresh:") and "ZeroDivisionError" in lines[3], r.out
    assert len(lines) == 4, r.out
    assert repl.run("_ = m.f()") == "new"
    # a before hook that raises: refused, named, nothing changed
    repl.run("m.__pyhot_before_refresh__ = lambda: (_ for _ in ()).throw(ValueError('not now'))")
    write(tmp_path / "m.py", new.replace('"new"', '"newer"'))
    r = pyhot("refresh", repl.pid)
    assert r.rc != 0, r
    assert "refused it (__pyhot_before_refresh__)" in r.err and "ValueError: not now" in r.err, r
    assert repl.run("_ = m.f()") == "new"


def test_one_engine_import_first_then_attach(repl, tmp_path):
    """The payload came in as the package's extension; `pyhot attach`
    injects its copy, which defers to the first: one history."""
    r = pyhot("attach", repl.pid)
    assert r.rc == 0, r
    write(tmp_path / "m.py", MOD.replace('"old"', '"cli"'))
    assert pyhot("refresh", repl.pid).rc == 0
    assert repl.run("_ = (m.f(), [g['module'] for g in pyhot.history()['generations']])") == \
        ["cli", ["m"]]
    repl.run("pyhot.rollback('m')")
    r = pyhot("status", repl.pid, json_out=True)
    gens = r.json["status"]["history"]["generations"]
    assert [g["kind"] for g in gens] == ["rollback", "refresh"], r


def test_one_engine_attach_first_then_import(python, tmp_path):
    plain = 'def f():\n    return "old"\n'
    (tmp_path / "m.py").write_text(plain)
    r = Repl(python, tmp_path)
    try:
        r.run("import m")
        assert pyhot("attach", r.pid).rc == 0
        write(tmp_path / "m.py", plain.replace('"old"', '"cli"'))
        assert pyhot("refresh", r.pid).rc == 0
        # imported after the injection: the module is the injected copy's
        assert r.run("import pyhot; _ = [g['module'] for g in pyhot.history()['generations']]") == ["m"]
        assert r.run("_ = pyhot.start_agent()").endswith("agent-%d.sock" % r.pid)
        assert pyhot("status", r.pid).rc == 0
    finally:
        r.close()
