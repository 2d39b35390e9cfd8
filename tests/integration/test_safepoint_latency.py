"""Safe points at once, whatever the main thread does: status, exec and a
one-function refresh answer, and their work runs exactly once, on every
interpreter, with the main thread (a) running Python alone, (b) running
Python among other threads, (c) asleep, (d) blocked in select(), (e)
blocked in Lock.acquire() (docs/safepoints.md).

No assertion on milliseconds (the machine is shared): on how the safe point
was reached where that is certain, and on what ran.
"""
import os
import shutil

import pytest

from conftest import TARGETS, interp_params, pyhot

SCRIPT = os.path.join(TARGETS, "safepoint_target.py")
CASES = ["alone", "threads", "sleep", "select", "lock"]
# Where the main thread runs no Python, only the agent's GIL thread can get
# there; where it runs Python alone it comes by first (3.13: at once; 3.9 to
# 3.12: when our thread's wait for the GIL makes CPython ask it to drop the
# GIL, after one switch interval). Among other threads either may win.
# A main thread running Python alone is usually reached by its pending call,
# but the GIL thread may win the GIL at a forced switch (docs/safepoints.md).
VIA = {"alone": {"pending-call", "gil-thread"}, "threads": {"pending-call", "gil-thread"},
       "sleep": {"gil-thread"}, "select": {"gil-thread"}, "lock": {"gil-thread"}}
ROUNDS = 3

MODULE = "def f():\n    return %d\n"


def start(target, tmp_path, python, mode, extra=()):
    """The target in a directory of its own, with spmod.py beside it."""
    script = str(tmp_path / "safepoint_target.py")
    shutil.copy(SCRIPT, script)
    (tmp_path / "spmod.py").write_text(MODULE % 0)
    t = target(mode, python=python, script=script, args=extra)
    assert pyhot("attach", t.pid).rc == 0
    return t


def exec_value(pid, code):
    r = pyhot("exec", pid, "-c", code, json_out=True)
    assert r.rc == 0, r
    return r.json["value"]


@pytest.mark.parametrize("mode", CASES)
@pytest.mark.parametrize("python", interp_params())
def test_commands_reach_python_once(target, tmp_path, python, mode):
    t = start(target, tmp_path, python, mode)
    os_threads = []
    for n in range(1, ROUNDS + 1):
        r = pyhot("status", t.pid, json_out=True)
        assert r.rc == 0, r
        assert r.json["status"]["safepoint"]["via"] in VIA[mode], r.json["status"]
        os_threads.append(r.json["status"]["agent"]["os_threads"])

        # exec: the code ran exactly once per command.
        value = exec_value(t.pid, "import __main__\n"
                           "__main__.RECORD.append(1)\nlen(__main__.RECORD)")
        assert value == str(n)

        # A one-function refresh: f() answers the new body.
        (tmp_path / "spmod.py").write_text(MODULE % n)
        r = pyhot("refresh", t.pid, "spmod", json_out=True)
        assert r.rc == 0, r
        assert exec_value(t.pid, "import spmod; spmod.f()") == str(n)
    assert exec_value(t.pid, "import __main__; len(__main__.RECORD)") == str(ROUNDS)
    # One GIL thread for every request, not one per request.
    assert os_threads[-1] <= os_threads[0], os_threads
    assert t.proc.poll() is None, t.output()
    assert "ERROR" not in t.output() and "Traceback" not in t.output(), t.output()


@pytest.mark.parametrize("mode", ["alone", "sleep"])
@pytest.mark.parametrize("python", interp_params())
def test_the_programs_switch_interval_is_kept(target, tmp_path, python, mode):
    """The agent shortens the GIL switch interval only while a job waits and
    puts the program's own value back."""
    t = start(target, tmp_path, python, mode)
    assert exec_value(t.pid, "import sys; sys.setswitchinterval(0.0031)") is None
    for _ in range(5):
        assert pyhot("status", t.pid).rc == 0
    assert exec_value(t.pid, "import sys; sys.getswitchinterval()") == "0.0031"
