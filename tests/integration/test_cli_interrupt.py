"""pyhot interrupt: an exception raised in a stuck thread at its next
bytecode; SIGINT for a main thread held in C; a thread blocked in C is left
as it was, with nothing pending (targets/interrupt_target.py)."""
import os

import pytest

from conftest import TARGETS, pyhot, sock_path

SCRIPT = os.path.join(TARGETS, "interrupt_target.py")


@pytest.fixture
def stuck(target, tmp_path):
    """stuck(mode, python): a target attached, then set going."""
    def start(mode, python=None, attach=True):
        go = tmp_path / "go"
        t = target(mode, python=python, script=SCRIPT, args=[str(go)])
        if attach:
            r = pyhot("attach", t.pid)
            assert r.rc == 0, r
        t.go = go
        go.write_text("")
        return t
    return start


def test_spinning_thread(stuck, python):
    t = stuck("spin", python)
    t.wait_for("^spinning")
    r = pyhot("interrupt", t.pid, "--thread", "spinner", json_out=True)
    assert r.rc == 0, r
    i = r.json["interrupt"]
    assert i["method"] == "async-exception" and i["delivered"] is True, r
    assert i["thread"]["name"] == "spinner" and i["thread"]["main"] is False, r
    assert i["before"]["function"] == "spin", r
    t.wait_for("^spinner caught KeyboardInterrupt")
    t.assert_working()


def test_main_thread_in_sleep(stuck, python):
    t = stuck("sleep", python)
    t.wait_for("^sleeping")
    r = pyhot("interrupt", t.pid)
    assert r.rc == 0, r
    assert "interrupted the main thread (tid %d) of pid %d with SIGINT: it was " \
        "blocked in C code" % (t.pid, t.pid) in r.out, r
    assert "it is now at %s:" % SCRIPT in r.out, r
    t.wait_for("^main caught KeyboardInterrupt")
    t.assert_working()


def test_main_thread_in_a_long_regex(stuck, python):
    t = stuck("regex", python)
    t.wait_for("^matching")
    r = pyhot("interrupt", t.pid, "--timeout", "4", json_out=True)
    assert r.rc == 0, r
    i = r.json["interrupt"]
    assert i["method"] == "sigint" and i["delivered"] is True, r
    assert i["after"]["main"] is True and i["after"]["frame"]["file"] == SCRIPT, r
    assert i["exited"] is False, r
    t.wait_for("^main caught KeyboardInterrupt")
    t.assert_working()


def test_thread_blocked_in_c_is_left_alone(stuck, python):
    t = stuck("blocked", python)
    t.wait_for("^reading")
    r = pyhot("interrupt", t.pid, "--thread", "reader", "--timeout", "1", json_out=True)
    assert r.rc == 1, r
    i = r.json["interrupt"]
    assert i["delivered"] is False and i["withdrawn"] is True, r
    assert "ran no Python code within 1.0 s: it is blocked in C code" in r.err, r
    assert "was withdrawn before that thread saw it: pid %d is unchanged" % t.pid in r.err, r
    # Unblocked later, it runs Python with no exception left pending.
    (t.go.parent / "go.unblock").write_text("")
    t.wait_for(r"^reader got b'x', then counted to 19999900000")
    t.assert_working()


def test_bad_input_changes_nothing(stuck, tmp_path):
    t = stuck("spin", attach=False)
    t.wait_for("^spinning")
    r = pyhot("interrupt", t.pid, "--exception", "NoSuchError", json_out=True)
    assert r.rc == 2 and "'NoSuchError' is not a builtin exception class" in r.err, r
    r = pyhot("interrupt", t.pid, "--thread", "999999", json_out=True)
    assert r.rc == 1 and "pid %d has no thread 999999" % t.pid in r.err, r
    assert not os.path.exists(sock_path(t.pid)), "bad input attached"
    r = pyhot("interrupt", t.pid, "--thread", "nobody", json_out=True)
    assert r.rc == 1, r
    assert "no thread is named 'nobody' (threads running Python: " in r.err, r
    assert "'spinner'" in r.err, r
    r = pyhot("interrupt", t.pid, "--thread", "spinner", "--exception",
              "UnicodeDecodeError")
    assert r.rc == 1 and "UnicodeDecodeError cannot be raised without arguments" in r.err, r
    t.assert_working(more=0)
    assert "caught" not in t.output()
    # The spinner never saw any of it: a real interrupt still finds it
    # spinning, named by its thread id this time.
    j = pyhot("stack", t.pid, json_out=True)
    [tid] = [th["tid"] for th in j.json["threads"] if th["name"] == "spinner"]
    r = pyhot("interrupt", t.pid, "--thread", tid, "--exception", "SystemExit")
    assert r.rc == 0, r
    assert 'interrupted thread "spinner" (tid %d) of pid %d: SystemExit raised at its ' \
        "next bytecode\n  it was at %s:" % (tid, t.pid, SCRIPT) in r.out, r


@pytest.mark.parametrize("mode, why", [
    ("sigint-ignored", "SIGINT handler is SIG_IGN"),
    ("sigint-own", "SIGINT handler is __main__.on_sigint"),
])
def test_no_sigint_where_it_would_not_raise(stuck, mode, why):
    t = stuck(mode)
    t.wait_for("^sleeping")
    r = pyhot("interrupt", t.pid)
    assert r.rc == 1, r
    assert why in r.err and "nothing sent" in r.err, r
    assert "own handler ran" not in t.output()
    assert t.proc.poll() is None


def test_main_thread_of_a_program_without_threading(procs, python):
    """No threading module to name the main thread, which sleeps (no pending
    call runs on it): the agent reads it from the oldest thread state. The
    KeyboardInterrupt is not caught: the program ends as on Ctrl-C."""
    import signal
    import subprocess
    # (Debian's python3.11 imports threading at start-up: forget it.)
    p = procs([python, "-c", "import sys, time; sys.modules.pop('threading', None); "
               "print('ready', flush=True); time.sleep(3600)"],
              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert p.stdout.readline() == "ready\n"
    r = pyhot("interrupt", p.pid, json_out=True)
    assert r.rc == 0, r
    i = r.json["interrupt"]
    assert i["delivered"] is True and i["thread"]["main"] is True, r
    assert i["before"]["function"] == "<module>", r
    assert p.wait(timeout=30) != 0
    assert p.stderr.read().rstrip().endswith("KeyboardInterrupt")


def test_main_thread_in_c_takes_only_keyboardinterrupt(stuck):
    """A main thread blocked in C is reached by SIGINT only, which raises
    KeyboardInterrupt: another class is withdrawn unseen."""
    t = stuck("sleep")
    t.wait_for("^sleeping")
    r = pyhot("interrupt", t.pid, "--exception", "RuntimeError", "--timeout", "1",
              json_out=True)
    assert r.rc == 1, r
    assert r.json["interrupt"]["withdrawn"] is True, r
    assert "retry without --exception" in r.err, r
    r = pyhot("interrupt", t.pid)
    assert r.rc == 0, r
    t.wait_for("^main caught KeyboardInterrupt")
    assert "RuntimeError" not in t.output()


def test_gil_held_by_another_thread_sends_nothing(stuck):
    """A worker holds the GIL in C: no thread can be reached. Neither the
    worker nor the main thread (which waits for the GIL) is sent anything,
    and once the worker returns both run on without an exception."""
    t = stuck("gil-worker")
    t.wait_for("^holding")
    r = pyhot("interrupt", t.pid, "--thread", "holder", "--timeout", "1", json_out=True)
    assert r.rc == 124, r
    assert "nothing was sent" in r.err, r
    r = pyhot("interrupt", t.pid, "--timeout", "1", json_out=True)
    assert r.rc == 124, r
    assert "its main thread waits in futex(): another thread holds the GIL" in r.err, r
    t.wait_for("^released", timeout=20)
    t.assert_working()
    assert "caught" not in t.output()


def test_process_that_exits_on_the_exception(target, tmp_path):
    """A main thread that does not catch KeyboardInterrupt: the process
    ends of it."""
    script = tmp_path / "plain.py"
    script.write_text("import time\nprint('ready', flush=True)\ntime.sleep(600)\n")
    t = target(script=str(script))
    assert pyhot("attach", t.pid).rc == 0
    r = pyhot("interrupt", t.pid, json_out=True)
    assert r.rc == 0, r
    i = r.json["interrupt"]
    assert i["delivered"] is True, r
    # Gone when the command looked (exited), or still on its way out: then
    # "after" is where its shutdown ran (printing the traceback), and the
    # process ends all the same.
    if i["exited"] is not True:
        assert i["after"]["main"] is True, r
    assert t.proc.wait(timeout=10) != 0, r
