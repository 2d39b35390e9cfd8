"""pyhot stack: the Python stack of every thread, with the thread names,
read at a safe point; a target stuck in C holding the GIL gets the native
stacks of its threads instead (exit 124)."""
import os

import pytest

from conftest import pyhot, sock_path

STACK_TARGET = '''
import sys, threading, time

def work_loop(stop):
    while not stop.wait(0.01):
        pass

def inner():
    print("ready", flush=True)
    while True:
        time.sleep(0.05)   # MARK-INNER

def outer():
    inner()   # MARK-OUTER

stop = threading.Event()
threading.Thread(target=work_loop, args=(stop,), name="worker-a", daemon=True).start()
outer()
'''


@pytest.fixture
def stack_target(target, tmp_path):
    script = tmp_path / "stacky.py"
    script.write_text(STACK_TARGET)

    def start(python=None):
        return target(script=str(script), python=python)
    return start


def test_stack_of_named_threads(stack_target, python):
    t = stack_target(python)
    r = pyhot("stack", t.pid)
    assert r.rc == 0, r
    out = r.out
    assert 'Thread "MainThread" (tid %d, main):' % t.pid in out, r
    assert 'Thread "worker-a" (tid ' in out, r
    main = out.split('Thread "worker-a"')[0] if out.index("MainThread") < out.index("worker-a") \
        else out.split('Thread "MainThread"')[1]
    # Most recent call last, with the source lines.
    i_outer, i_inner = main.index("in outer"), main.index("in inner")
    assert i_outer < i_inner, r
    assert "inner()   # MARK-OUTER" in main and "time.sleep(0.05)   # MARK-INNER" in main, r
    assert "in work_loop" in out, r

    j = pyhot("stack", t.pid, json_out=True)
    assert j.rc == 0, j
    names = {th["name"]: th for th in j.json["threads"]}
    assert names["MainThread"]["main"] is True and names["MainThread"]["tid"] == t.pid
    assert names["worker-a"]["daemon"] is True
    funcs = [f["function"] for f in names["MainThread"]["frames"]]
    assert funcs[-2:] == ["outer", "inner"], funcs
    assert j.json["python_frames_read"] is True
    t.assert_working(more=0)


def test_stack_of_a_target_stuck_in_c(target, tmp_path):
    go = tmp_path / "go"
    t = target("stuck", args=[str(go)])
    assert pyhot("attach", t.pid).rc == 0
    go.write_text("")
    t.wait_for("^stuck")
    r = pyhot("stack", t.pid, "--timeout=0.5")
    assert r.rc == 124, r
    assert "did not reach a safe point" in r.out and "Python frames were not read" in r.out, r
    assert "pyhot: stack: pid %d did not reach a safe point" % t.pid in r.err, r
    assert 'Thread "' in r.out and "(tid %d, main, state" % t.pid in r.out, r
    assert "sleep" in r.out, r     # libc sleep() called through ctypes

    j = pyhot("stack", t.pid, "--timeout=0.5", json_out=True)
    assert j.rc == 124 and j.json["error"]["kind"] == "timeout", j
    assert j.json["python_frames_read"] is False
    main = [n for n in j.json["native"] if n["main"]][0]
    assert any("sleep" in f for f in main["frames"]), main
    # pyenv's libpython has its local symbols: who holds the GIL shows.
    assert main["gil"] == "probably-held", main
    assert any(n["gil"] == "waiting" for n in j.json["native"]), j
    assert "probably holds the GIL" in r.out, r
    assert len(j.json["native"]) >= 2


def test_stack_errors():
    r = pyhot("stack", json_out=True)
    assert r.rc == 2, r
    r = pyhot("stack", "999999999", json_out=True)
    assert r.rc == 3 and r.json["error"]["kind"] == "attach", r


def test_attaches_quietly_first(stack_target):
    """No agent yet: stack attaches, prints only the stacks, and tells of
    the attach with -v only (cli_attach_quiet)."""
    t = stack_target()
    r = pyhot("stack", t.pid, "-v")
    assert r.rc == 0, r
    assert r.out.startswith("Thread "), r
    assert "attached to pid %d, agent at %s" % (t.pid, sock_path(t.pid)) in r.err, r
    r = pyhot("stack", t.pid, json_out=True)
    assert r.rc == 0 and r.json["attach"]["agent"]["reused"] is True, r
    r = pyhot("stack", t.pid, "-q")
    assert r.rc == 0 and r.out == "" and r.err == "", r
