"""pyhot killed (or stopped) at each step of an attach in turn: every
ptrace request and every stop it waits for, through the test hook
PYHOT_TEST_HOOK=kill-self-at=N of the test build (build/pyhot-test-hooks;
build/pyhot has no hooks). The target must come out alive, untraced, with
its signal masks as they were, working, and open to a new attach. Both a
first attach (the payload loaded with dlopen) and a later one (the
payload mapped already) are covered.

PYHOT_FAULT_STEP_SIGNALS: "kill" (default) or "kill,stop" (make faults);
the later attach is covered with PYHOT_FAULT_LONG=1 (make faults) only."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import BUILD, DEFAULT_PY, finish, proc_state, pyhot, wait_until

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "targets", "faults"))
from fault_checks import FAULT_TARGET, check_intact, task_masks  # noqa: E402

HOOKS = os.path.join(BUILD, "pyhot-test-hooks")
SIGNALS = os.environ.get("PYHOT_FAULT_STEP_SIGNALS", "kill").split(",")


def hooked_attach(pid, hook, cont=None):
    """pyhot-test-hooks attach pid with PYHOT_TEST_HOOK=hook. A pyhot that
    stopped itself gets cont (SIGCONT or SIGKILL) 20 ms later."""
    env = dict(os.environ, PYHOT_TEST_HOOK=hook)
    p = subprocess.Popen([HOOKS, "attach", str(pid)], env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         universal_newlines=True)
    if cont:
        deadline = time.monotonic() + 10
        while p.poll() is None and time.monotonic() < deadline:
            if proc_state(p.pid) in ("T", ""):
                break
            time.sleep(0.002)
        time.sleep(0.02)
        if p.poll() is None:
            p.send_signal(cont)
    _, err = finish(p)
    return p.returncode, err


def count_steps(pid):
    rc, err = hooked_attach(pid, "count-steps")
    assert rc == 0, err
    m = re.search(r"test hook: (\d+) steps", err)
    assert m, err
    return int(m.group(1))


def fault_at_every_step(target, prepare, what):
    """For N = 1..steps: a target made ready by prepare(t), pyhot hit at
    step N, then the checks and a normal attach."""
    t = target("sleep", python=DEFAULT_PY, script=FAULT_TARGET)
    prepare(t)
    steps = count_steps(t.pid)
    t.kill()
    done = 0
    for sig in SIGNALS:
        for n in range(1, steps + 1):
            t = target("sleep", python=DEFAULT_PY, script=FAULT_TARGET)
            prepare(t)
            masks = task_masks(t.pid)
            if sig == "kill":
                rc, err = hooked_attach(t.pid, "kill-self-at=%d" % n)
            else:
                cont = signal.SIGKILL if n % 2 else signal.SIGCONT
                rc, err = hooked_attach(t.pid, "stop-self-at=%d" % n, cont)
            label = "%s: %s at step %d of %d: rc %s: %s" % (what, sig, n, steps, rc,
                                                           err.strip())
            assert "test hook: signal" in err, label
            check_intact(t, masks, label)
            r = pyhot("attach", t.pid)
            assert r.rc == 0, (label, r, t.output())
            t.kill()
            done += 1
    print("# %s: %d faults, one at each of %d steps; no target harmed" % (what, done, steps))


def fresh(t):
    pass


def payload_mapped(t):
    r = pyhot("attach", t.pid)
    assert r.rc == 0, r
    r = pyhot("detach", t.pid)
    assert r.rc == 0, r


@pytest.mark.parametrize("path", ["first", "again"])
def test_fault_at_every_step(target, path):
    if not os.path.exists(HOOKS):
        pytest.skip("no %s (make builds it with the tests)" % HOOKS)
    if path == "again" and not os.environ.get("PYHOT_FAULT_LONG"):
        pytest.skip("make faults runs it")
    if path == "first":
        fault_at_every_step(target, fresh, "first attach")
    else:
        fault_at_every_step(target, payload_mapped, "attach with the payload mapped")


HEARTBEAT = ("import sys, time\nprint('ready', flush=True)\n"
             "while True:\n    print(time.monotonic(), flush=True)\n    time.sleep(0.01)\n")


def test_stopped_pyhot_does_not_hold_the_thread(tmp_path):
    """pyhot stopped (SIGSTOP) in the middle of the attach, with the only
    thread of the target borrowed: its watchdog continues it until the
    thread is given back, then it stops itself again. The target's
    heartbeat (its main thread, the borrowed one) goes on while pyhot stays
    stopped; continued, pyhot finishes with exit 0. Without the watchdog the
    heartbeat stops for as long as pyhot does."""
    import threading
    script = tmp_path / "heartbeat.py"
    script.write_text(HEARTBEAT)
    counter = subprocess.Popen([DEFAULT_PY, str(script)], stdout=subprocess.PIPE,
                               universal_newlines=True)
    try:
        counter.stdout.readline()
        steps = count_steps(counter.pid)
    finally:
        counter.kill()
        counter.wait()
    t = subprocess.Popen([DEFAULT_PY, str(script)], stdout=subprocess.PIPE,
                         universal_newlines=True)
    beats = []
    try:
        assert t.stdout.readline().startswith("ready")
        reader = threading.Thread(target=lambda: [beats.append(time.monotonic())
                                                  for _ in t.stdout], daemon=True)
        reader.start()
        env = dict(os.environ, PYHOT_TEST_HOOK="stop-self-at=%d" % (steps // 2))
        p = subprocess.Popen([HOOKS, "attach", str(t.pid)], env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, universal_newlines=True)
        try:
            # Wait for the attach to end in its own stop: the watchdog's
            # "stopping again" (or, without one, the step's stop).
            wait_until(lambda: proc_state(p.pid) == "T", step=0.002,
                       what="pyhot stopped")
            stop_from = time.monotonic()
            time.sleep(1.0)
            still = proc_state(p.pid)
            window = [b for b in beats if b >= stop_from]
            p.send_signal(signal.SIGCONT)
            _, err = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert still == "T", "pyhot should stay stopped as it was told: %s" % still
        assert "test hook: signal 19" in err, err
        assert p.returncode == 0, err
        # About 100 beats in that second; a held thread gives none.
        assert len(window) > 20, (len(window), err)
        assert t.poll() is None
        r = pyhot("status", t.pid)
        assert r.rc == 0, r
    finally:
        t.kill()
        t.wait()
