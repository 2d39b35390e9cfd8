"""pyhot killed (SIGKILL, SIGQUIT) or stopped (SIGSTOP, SIGTSTP) at a
random instant of an attach, into busy and sleeping targets on several
interpreters: no target dies, stays traced or stopped, keeps a changed
signal mask or sees an exception, and each can be attached again.

PYHOT_FAULT_KILLS sets how many faults (default 60, for make check;
make faults runs hundreds). The figures go to stdout (-s shows them)."""
import os
import random
import signal
import subprocess
import sys
import time

from conftest import DEFAULT_PY, INTERPRETERS, PYHOT, finish, pyhot

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "targets", "faults"))
from fault_checks import FAULT_TARGET, check_intact, task_masks  # noqa: E402

KILLS = int(os.environ.get("PYHOT_FAULT_KILLS", "60"))
# A fresh attach takes 15-30 ms from exec to the agent's answer; the
# borrowed thread is ours for a few of them.
WINDOW_S = 0.03
SIGNALS = [signal.SIGKILL] * 3 + [signal.SIGQUIT, signal.SIGSTOP, signal.SIGTSTP]


def pick_interpreters():
    """Three, spread over the versions the machine has."""
    paths = [p for _, p in INTERPRETERS]
    if len(paths) <= 3:
        return paths
    return [paths[0], paths[len(paths) // 2], paths[-1]]


def fault_attach(t, sig, rng):
    """Start pyhot attach, hit it with sig after a random delay; stop
    signals are followed by SIGCONT or, one time in two, SIGKILL."""
    p = subprocess.Popen([PYHOT, "attach", str(t.pid)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         universal_newlines=True)
    time.sleep(rng.uniform(0, WINDOW_S))
    p.send_signal(sig)
    if sig in (signal.SIGSTOP, signal.SIGTSTP):
        time.sleep(0.02)
        p.send_signal(signal.SIGKILL if rng.random() < 0.5 else signal.SIGCONT)
    _, err = finish(p)
    return p.returncode, err


def test_target_handling_both_completion_signals(target):
    """A target with handlers for SIGURG and SIGWINCH: the calls end at the
    stub's rt_sigreturn instead; neither handler ever runs, kills too."""
    rng = random.Random(1)
    t = target("caught", python=DEFAULT_PY, script=FAULT_TARGET)
    masks = task_masks(t.pid)
    for i in range(10):
        rc, err = fault_attach(t, signal.SIGKILL, rng)
        check_intact(t, masks, "caught, kill %d: rc %s %s" % (i, rc, err))
        r = pyhot("attach", t.pid)
        assert r.rc == 0, (r, t.output())
        r = pyhot("detach", t.pid)
        assert r.rc == 0, (r, t.output())
    check_intact(t, masks, "caught")


def test_kill_and_stop_pyhot_mid_attach(target):
    rng = random.Random(int(os.environ.get("PYHOT_FAULT_SEED", str(os.getpid()))))
    combos = [(py, mode) for py in pick_interpreters() for mode in ("busy", "sleep")]
    per = max(1, KILLS // len(combos))
    figures = {"faults": 0, "pyhot_died": 0, "pyhot_done": 0}
    t0 = time.monotonic()
    for py, mode in combos:
        t = target(mode, python=py, script=FAULT_TARGET)
        masks = task_masks(t.pid)
        for i in range(per):
            sig = rng.choice(SIGNALS)
            rc, err = fault_attach(t, sig, rng)
            figures["faults"] += 1
            figures["pyhot_died" if rc < 0 else "pyhot_done"] += 1
            what = "%s %s, fault %d (%s), pyhot rc %s: %s" % (
                os.path.basename(py), mode, i, signal.Signals(sig).name, rc, err.strip())
            check_intact(t, masks, what)
            r = pyhot("attach", t.pid)
            assert r.rc == 0, (what, r, t.output())
            r = pyhot("detach", t.pid)
            assert r.rc == 0, (what, r, t.output())
        t.kill()
    print("# %d faults into %d targets in %.1f s: pyhot died %d times, finished %d "
          "times; no target died, stalled or changed" % (
              figures["faults"], len(combos), time.monotonic() - t0,
              figures["pyhot_died"], figures["pyhot_done"]))
