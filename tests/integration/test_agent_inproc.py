"""The agent inside every interpreter on the machine, booted in-process.

The target loads the payload with ctypes and calls pyhot_boot() itself (a
stand-in for the injector); the test talks to the agent's socket. Run:

    PYHOT_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/integration/test_agent_inproc.py

Safe-point latencies seen here are written to $PYHOT_BUILD/agent-latency.json.
"""

import json
import os
import re
import socket
import stat
import struct
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from inproc_helpers import Target, connect_as_other_uid, median  # noqa: E402
from pyhot_testlib import (INTERPRETERS, PAYLOAD, exchange, frame, remove_socket,  # noqa: E402
                           request, sock_path)

PYTHONS = [path for _, path in INTERPRETERS]
NAMES = dict((path, name) for name, path in INTERPRETERS)
LATENCY = {}   # {interpreter name: {"pending-call": [ms], "gil-thread": [ms]}}

pytestmark = pytest.mark.skipif(not os.path.exists(PAYLOAD),
                                reason="payload not built: make all")


@pytest.fixture(scope="module", autouse=True)
def latency_report():
    yield
    if not LATENCY:
        return
    report = {py: {via: {"n": len(ms), "median_ms": round(median(ms), 3),
                         "max_ms": round(max(ms), 3)}
                   for via, ms in vias.items()}
              for py, vias in LATENCY.items()}
    out = os.path.join(os.path.dirname(PAYLOAD), "agent-latency.json")
    with open(out, "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)


@pytest.fixture(params=PYTHONS, ids=[NAMES[p] for p in PYTHONS])
def target(request, tmp_path):
    t = Target(request.param, tmp_path)
    try:
        assert t.boot_rc == 0, "pyhot_boot returned %d" % t.boot_rc
        yield t
    finally:
        t.close()


def note_latency(t, resp):
    sp = resp["safepoint"]
    LATENCY.setdefault(NAMES[t.python], {}).setdefault(
        sp["via"], []).append(sp["wait_ms"])


def exits_cleanly(t):
    """The target ends normally and printed nothing on stderr."""
    assert t.exit() == 0
    assert t.stderr_text() == ""


def test_ping_status_and_socket(target):
    t = target
    r = t.request("ping")
    assert r["ok"] is True and r["proto"] == 1
    assert r["pid"] == t.pid and r["agent_uptime_s"] >= 0
    # The whole version, from the agent thread without the GIL: "3.11.7".
    ping_version = r["python_version"]
    assert re.match(r"^3\.\d+\.\d+\S*$", ping_version), r

    st = os.lstat(t.sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(os.lstat(os.path.dirname(t.sock)).st_mode) == 0o700

    r = t.request("status")
    assert r["ok"] is True, r
    interp = r["interpreter"]
    want = re.search(r"(\d+\.\d+)", os.path.basename(t.python)).group(1)
    assert interp["version"].startswith(want)
    assert interp["version"].split()[0] == ping_version, (interp, ping_version)
    assert interp["hexversion"] >> 16 == int(want.split(".")[0]) << 8 | int(want.split(".")[1])
    assert interp["implementation"] == "cpython"
    assert os.path.realpath(interp["executable"]) == os.path.realpath(t.python)
    if t.python == "/usr/bin/python3.11":
        assert interp["build"] == "static" and interp["libpython"] is None
    else:
        assert interp["build"] == "shared"
        assert os.path.basename(interp["libpython"]).startswith("libpython" + want)
    main = r["main_thread"]
    assert main["via"] == r["safepoint"]["via"] and main["ident"]
    assert main["frame"]["file"].endswith("target.py")
    assert r["threads"] >= 1
    agent = r["agent"]
    assert agent["pid"] == t.pid and agent["socket"] == t.sock
    assert agent["requests"] == 2   # the ping, and this one
    # This request, and the engine's baseline job at boot if it is linked in.
    assert 1 <= agent["via_gil_thread"] + agent["via_pending_call"] <= 2
    assert agent["timeouts"] == 0
    exits_cleanly(t)


def test_status_while_busy_reaches_a_safe_point(target):
    t = target
    release = t.spin()
    for _ in range(5):
        r = t.request("status")
        assert r["ok"] is True, r
        # Usually the main thread's pending call; the agent's GIL thread may
        # get the GIL first when the main thread drops it at a forced switch
        # (docs/safepoints.md). Either is a safe point and the job runs once.
        assert r["safepoint"]["via"] in ("pending-call", "gil-thread"), r
        assert r["main_thread"]["via"] == r["safepoint"]["via"], r
        # spin(), or say() that has just printed "SPINNING"
        assert r["main_thread"]["frame"]["function"] in ("spin", "say")
        note_latency(t, r)
    assert int(release()) > 0
    exits_cleanly(t)


def test_status_while_sleeping_takes_the_gil(target):
    t = target
    t.start("sleep", 4)
    time.sleep(0.2)   # "START" is printed just before the call
    for _ in range(3):
        r = t.request("status")
        assert r["ok"] is True, r
        assert r["safepoint"]["via"] == "gil-thread"
        # The GIL is free: the agent's GIL thread takes it at once (no
        # grace period by default; no timed assertion on a shared machine).
        frame = r["main_thread"]["frame"]
        assert frame["function"] == "<module>" and frame["line"] > 0
        note_latency(t, r)
    assert t.finish() == "slept"
    exits_cleanly(t)


def test_grace_ms_sets_when_the_gil_thread_starts(target):
    """grace_ms (a request key of ours) overrides PYHOT_PENDING_GRACE_MS."""
    t = target
    t.start("sleep", 3)
    time.sleep(0.2)
    # No GIL thread within the timeout: the sleeping main thread never
    # comes by, so this times out (with the default it would not).
    r = t.request("status", [("grace_ms", 60000), ("timeout_ms", 300)])
    assert r["ok"] is False and r["error"]["kind"] == "timeout", r
    r = t.request("status", [("grace_ms", 5)])
    assert r["ok"] is True, r
    assert r["safepoint"]["via"] == "gil-thread"
    assert t.finish() == "slept"
    exits_cleanly(t)


def test_status_while_joining_a_thread(target):
    t = target
    t.start("join", 2)
    time.sleep(0.2)
    r = t.request("status")
    assert r["ok"] is True, r
    assert r["safepoint"]["via"] == "gil-thread"
    assert r["threads"] >= 2   # the main thread and the one it joins
    assert t.finish() == "joined"
    exits_cleanly(t)


def test_timeout_when_the_gil_is_held_in_c(target):
    t = target
    release = t.block_in_c()
    r = t.request("status", [("timeout_ms", 400)])
    assert r["ok"] is False
    err = r["error"]
    assert err["kind"] == "timeout" and err["step"] == "status"
    assert err["message"].startswith(
        "status: no safe point within 400 ms in pid %d: the main thread holds "
        "the GIL and runs no Python" % t.pid), err
    assert err["hint"]
    # The agent thread is not blocked by the stuck main thread.
    assert t.request("ping")["ok"] is True
    assert release() == "1"
    # The cancelled job's late pending call and GIL thread did nothing.
    r = t.request("status")
    assert r["ok"] is True, r
    assert r["agent"]["timeouts"] == 1
    assert r["agent"]["last_error"].startswith("status: no safe point")
    exits_cleanly(t)


def test_boot_twice_reports_running(target):
    t = target
    assert t.run("boot", t.sock) == "1"
    assert t.run("boot", os.path.join(t.dir, "sock", "other.sock")) == "1"
    assert not os.path.exists(os.path.join(t.dir, "sock", "other.sock"))
    assert t.request("ping")["ok"] is True
    exits_cleanly(t)


def test_detach_then_boot_again(target):
    t = target
    t.request("ping")
    r = t.request("detach")
    assert r["ok"] is True and r["detached"] is True
    # The socket is gone before the reply was sent.
    assert not os.path.exists(t.sock)
    with pytest.raises(OSError):
        t.request("ping", timeout=2)
    assert t.run("boot", t.sock) == "0"
    r = t.request("status")
    assert r["ok"] is True, r
    assert r["agent"]["requests"] == 1   # a new agent: this request only
    assert t.run("boot", t.sock) == "1"
    exits_cleanly(t)


def test_forked_child_has_an_agent_of_its_own(target):
    t = target
    child_sock = os.path.join(t.dir, "sock", "agent-child.sock")
    stop = os.path.join(t.dir, "child.stop")
    assert t.request("status")["ok"] is True   # the after-fork hook is registered
    t.send("fork", child_sock, stop)
    seen = {}
    while "CHILD" not in seen or "END" not in seen:
        line = t.readline()
        seen[line.split()[0]] = line
    _, child_pid, rc = seen["CHILD"].split()
    child_pid = int(child_pid)
    # 1 = RUNNING: the child's own agent, booted by the after-fork hook
    # (docs/trees.md), not its parent's (that one is not in the child).
    assert rc == "1"
    assert int(seen["END"].split()[2]) == child_pid
    own = sock_path(child_pid)
    try:
        assert not os.path.exists(child_sock)
        r = request(own, "status")
        assert r["ok"] is True, r
        assert r["agent"]["pid"] == child_pid
        assert r["main_thread"]["frame"]["line"] > 0
        # The parent's socket was not touched by the child.
        assert os.path.exists(t.sock)
        assert t.request("ping")["pid"] == t.pid
    finally:
        open(stop, "w").close()
    assert t.run("reap") == "[0]"
    assert t.request("status")["ok"] is True
    remove_socket(child_pid)
    exits_cleanly(t)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another uid")
def test_peer_of_another_uid_is_refused(target):
    t = target
    out = connect_as_other_uid(t.sock)
    assert out.strip() == "uid=65534 reply=b''"
    r = t.request("status")
    assert r["ok"] is True
    assert r["agent"]["refused"] == 1
    exits_cleanly(t)


def test_bad_requests_get_clear_errors(target):
    t = target
    cases = [
        (frame(b"ping"), "malformed request frame"),            # no final NUL
        (frame(b"ping\0key\0"), "malformed request frame"),     # key, no value
        (frame(b"\0"), "malformed request frame"),              # empty verb
        (frame(b"fly\0"), "unknown verb 'fly'"),
        (frame(b"status\0timeout_ms\0soon\0"), "timeout_ms must be"),
        (struct.pack("<I", (64 << 20) + 1), "length out of bounds"),
    ]
    for data, message in cases:
        r = exchange(t.sock, data, timeout=10)
        assert r["ok"] is False and r["error"]["kind"] == "failed"
        assert message in r["error"]["message"], r
    # A client that sends half a frame and goes away gets nothing and does
    # not stop the agent.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(t.sock)
        s.sendall(struct.pack("<I", 100) + b"ping")
    r = t.request("ping")
    assert r["ok"] is True
    exits_cleanly(t)


def test_counters_add_up(target):
    """"requests" counts every request read, failed ones and the status
    being answered included; each safe-point request adds one to
    via_pending_call, via_gil_thread or timeouts, and so does the engine's
    baseline job at boot (pyhot_proto.h)."""
    t = target
    assert t.request("status", [("timeout_ms", "soon")])["ok"] is False
    assert t.request("fly")["ok"] is False
    assert t.request("ping")["ok"] is True
    # A client that hangs up before a whole frame is no request.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(t.sock)
        s.sendall(struct.pack("<I", 100) + b"ping")
    assert t.request("stack")["ok"] is True
    release = t.block_in_c()
    r = t.request("status", [("timeout_ms", 300)])
    assert r["ok"] is False and r["error"]["kind"] == "timeout", r
    release()
    r = t.request("status")
    assert r["ok"] is True, r
    a = r["agent"]
    # fly, ping, stack, bad timeout_ms, timed-out status, this status.
    assert a["requests"] == 6, a
    assert a["timeouts"] >= 1, a
    safe_points = a["via_pending_call"] + a["via_gil_thread"] + a["timeouts"]
    # stack, the timed-out status and this one (the baseline job of the
    # boot is not a request and is not counted).
    assert safe_points == 3, a
    assert safe_points <= a["requests"], a
    assert a["refused"] == 0
    exits_cleanly(t)


def test_status_during_shutdown(target):
    """atexit functions run Python after 3.8 stopped taking pending calls
    (where adding one without the GIL aborts the process)."""
    t = target
    stop = os.path.join(t.dir, "atexit.stop")
    t.send("exit", stop)
    t.expect("BYE")
    t.expect("ATEXIT")
    try:
        r = t.request("status")
        assert r["ok"] is True, r
    finally:
        open(stop, "w").close()
    t.proc.stdin.close()
    assert t.proc.wait(timeout=15) == 0
    assert t.stderr_text() == ""


def test_handler_that_outlives_its_run_timeout(target):
    """A handler that started is not cancelled: past run_timeout_ms the
    answer is "uncertain", and the job finishes later on its own."""
    t = target
    assert t.run("frames", "sleep", 1.5) == "sleep"
    r = t.request("status", [("run_timeout_ms", 300)])
    assert r["ok"] is False
    assert r["error"]["kind"] == "uncertain", r
    assert "did not finish in time" in r["error"]["message"]
    time.sleep(1.5)   # the abandoned job ends and frees itself
    assert t.run("frames", "restore") == "restore"
    r = t.request("status")
    assert r["ok"] is True, r
    assert r["main_thread"]["frame"] is not None
    exits_cleanly(t)


def test_the_run_timeout_counts_from_the_handlers_start(target):
    """The agent thread is not woken when its job is claimed unless its
    run window ends before the claim deadline it sleeps to
    (payload/safepoint.c, job_run()): waking at that deadline (1 s here),
    it still counts run_timeout_ms (1.2 s) from the handler's start, not
    from its wake-up: a 1.5 s handler is "uncertain" at 1.2 s, not "ok" at
    1.5 s as a window from the deadline (2.2 s) would have it."""
    t = target
    assert t.run("frames", "sleep", 1.5) == "sleep"
    r = t.request("status", [("timeout_ms", 1000), ("run_timeout_ms", 1200)])
    assert r["ok"] is False, r
    assert r["error"]["kind"] == "uncertain", r
    time.sleep(1.5)   # the abandoned job ends and frees itself
    assert t.run("frames", "restore") == "restore"
    assert t.request("status")["ok"] is True
    exits_cleanly(t)


def test_python_errors_in_a_handler_stay_inside(target):
    """status reads sys._current_frames(); when that raises, the field is
    null and nothing is raised into the host."""
    t = target
    assert t.run("frames", "raise") == "raise"
    release = t.spin()
    for _ in range(3):
        r = t.request("status")
        assert r["ok"] is True, r
        print("VIA", r["safepoint"]["via"], r["safepoint"].get("wait_ms"))
        assert r["safepoint"]["via"] == "pending-call"
        assert r["main_thread"]["frame"] is None and r["threads"] is None
    assert int(release()) > 0   # the main thread saw no exception
    exits_cleanly(t)


def test_many_timeouts_fill_the_queue_and_recover(target):
    """With the GIL held in C, timed-out requests leave pending calls (the
    queue holds 32) and GIL threads (at most 4) behind; when the main thread
    comes back they all see their job cancelled and do nothing."""
    t = target
    release = t.block_in_c()
    kinds = set()
    messages = set()
    for _ in range(40):
        r = t.request("status", [("timeout_ms", 30), ("grace_ms", 10)])
        assert r["ok"] is False
        kinds.add(r["error"]["kind"])
        messages.add(r["error"]["message"].split(": ", 2)[-1])
    assert kinds == {"timeout"}
    assert any("no pending call could be queued" in m for m in messages), messages
    assert release() == "1"
    r = t.request("status")
    assert r["ok"] is True, r
    assert r["agent"]["timeouts"] == 40
    exits_cleanly(t)


def test_stack_answers_at_a_safe_point(target):
    """The "stack" verb (payload/verb_stack.c) through the same dispatch."""
    t = target
    release = t.spin()
    r = t.request("stack")
    assert r["ok"] is True, r
    assert r["via"] == "pending-call"
    main = r["threads"][0]
    assert main["main"] is True and main["ident"]
    assert main["frames"][-1]["function"] in ("spin", "say")
    assert main["frames"][0]["function"] == "<module>"
    assert int(release()) > 0
    exits_cleanly(t)


@pytest.mark.parametrize("python", PYTHONS, ids=[NAMES[p] for p in PYTHONS])
def test_baseline_is_taken_at_boot(python, tmp_path):
    """With the patch engine linked in, the agent records the baseline at
    the first safe point after boot: a file edited after the attach is then
    seen as changed by "refresh"."""
    t = Target(python, tmp_path, usermod="def f():\n    return 1\n")
    try:
        if not t.request("status")["agent"]["engine"]:
            pytest.skip("payload built without the patch engine")
        with open(os.path.join(t.dir, "usermod.py"), "w") as f:
            f.write("def f():\n    return 2\n")
        r = t.request("refresh", [("module", "usermod")])
        assert r["ok"] is True, r
        (mod,) = r["modules"]
        assert mod["summary"]["changed"] == 1, mod
        exits_cleanly(t)
    finally:
        t.close()
