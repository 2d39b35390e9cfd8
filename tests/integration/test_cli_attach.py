"""pyhot attach / status / detach against real Python processes, on every
interpreter on the machine, with the main thread in each kind of state."""
import os
import signal
import socket
import re
import shutil

import pytest

from conftest import BUILD, pyhot, sock_path, wait_until
from test_cli_rollback import app, module_src, value_is  # noqa: F401 (a fixture)

MODES = ["busy", "sleep", "join", "select", "threads8"]

ATTACH_LINE = re.compile(
    r"^attached to pid (\d+): CPython (3\.\d+(?:\.\d+)?\S*) \((shared|static) libpython\), "
    r"agent at (\S+) \((?:[\d.]+ ms, thread \d+ stopped [\d.]+ ms|already running, [\d.]+ ms)\)$")


def check_attach_line(r, pid, fresh):
    assert r.rc == 0, r
    lines = r.out.splitlines()
    assert len(lines) == 1, r
    m = ATTACH_LINE.match(lines[0])
    assert m, r
    assert int(m.group(1)) == pid
    assert m.group(4) == sock_path(pid)
    assert ("already running" not in lines[0]) == fresh, r
    return m


@pytest.mark.parametrize("mode", MODES)
def test_attach_while_main_thread_is(python, target, mode):
    t = target(mode, python=python)
    r = pyhot("attach", t.pid)
    m = check_attach_line(r, t.pid, fresh=True)
    version = t.wait_for(r"^ready").split()[2]
    # The whole version, from the agent's ping ("3.11.7", not "3.11").
    assert m.group(2) == version, (version, r)
    assert (m.group(3) == "static") == (python == "/usr/bin/python3.11"), r
    assert os.path.exists(sock_path(t.pid))
    assert t.tracer() == 0, "pid %d is left traced" % t.pid
    t.assert_working()


def test_status_round_trip(python, target):
    t = target("sleep", python=python)
    assert pyhot("attach", t.pid).rc == 0
    r = pyhot("status", t.pid, json_out=True)
    assert r.rc == 0, r
    st = r.json["status"]
    version = t.wait_for(r"^ready").split()[2]
    assert st["interpreter"]["version"].startswith(version + " "), r
    # The main thread sleeps in main() of target.py: the agent's own thread
    # took the GIL.
    assert st["main_thread"]["frame"]["function"] == "main", r
    assert st["main_thread"]["frame"]["file"].endswith("target.py"), r
    agent = st["agent"]
    # The attach's pings and this status, which counts itself as its safe
    # point does; the baseline job at boot is a safe point but no request.
    assert agent["requests"] >= 2, r
    safe_points = agent["via_pending_call"] + agent["via_gil_thread"] + agent["timeouts"]
    assert 1 <= safe_points <= agent["requests"] + 1, r
    r = pyhot("status", t.pid)
    assert r.rc == 0, r
    assert r.out.startswith("pid %d: CPython %s (" % (t.pid, version)), r
    assert "  main thread:  in main at " in r.out, r
    t.assert_working()


def test_second_attach_reuses_the_agent(python, target):
    t = target("busy", python=python)
    check_attach_line(pyhot("attach", t.pid), t.pid, fresh=True)
    r = pyhot("attach", t.pid, json_out=True)
    assert r.rc == 0, r
    assert r.json["agent"]["reused"] is True
    assert "inject" not in r.json
    version = t.wait_for(r"^ready").split()[2]
    assert r.json["python"]["version"] == version, r
    m = check_attach_line(pyhot("attach", t.pid), t.pid, fresh=False)
    assert m.group(2) == version, r
    t.assert_working()


def test_detach_and_attach_again(python, target):
    t = target("select", python=python)
    check_attach_line(pyhot("attach", t.pid), t.pid, fresh=True)
    r = pyhot("detach", t.pid)
    assert r.rc == 0, r
    assert "detached from pid %d" % t.pid in r.out
    assert not os.path.exists(sock_path(t.pid))
    r = pyhot("status", t.pid)
    assert r.rc == 1 and "run: pyhot attach %d" % t.pid in r.err, r
    r = pyhot("attach", t.pid, json_out=True)
    assert r.rc == 0, r
    assert r.json["agent"]["reused"] is False
    # The payload stays mapped (-z nodelete): only the boot function runs.
    assert r.json["inject"]["payload_was_mapped"] is True
    assert pyhot("status", t.pid).rc == 0
    t.assert_working()


def test_main_thread_stuck_in_c_holding_the_gil(target, tmp_path):
    go = tmp_path / "go"
    t = target("stuck", args=[go])
    assert pyhot("attach", t.pid).rc == 0
    go.write_text("")
    t.wait_for(r"^stuck")
    r = pyhot("status", t.pid, "--timeout=0.5", json_out=True)
    assert r.rc == 124, r
    assert r.json["error"]["kind"] == "timeout"
    assert r.json["error"]["main_tid"] == t.pid
    frames = r.json["error"]["native_stack"]
    assert frames and any("sleep" in f for f in frames), r
    r = pyhot("status", t.pid, "--timeout=0.5")
    assert r.rc == 124, r
    assert "the main thread (tid %d) is stuck in C, holding the GIL:" % t.pid in r.err, r
    assert "--timeout" in r.err.split("hint:")[1], r
    assert "pyhot interrupt %d" % t.pid in r.err.split("hint:")[1], r
    assert t.proc.poll() is None


def test_attach_json_fields(target):
    t = target("sleep")
    r = pyhot("attach", t.pid, json_out=True)
    assert r.rc == 0, r
    j = r.json
    assert j["command"] == "attach" and j["pid"] == t.pid
    assert j["agent"] == {"socket": sock_path(t.pid), "reused": False}
    assert j["python"]["version"] == t.wait_for(r"^ready").split()[2], j
    assert j["python"]["static"] is False
    assert j["inject"]["tid"] > 0 and j["inject"]["stopped_ms"] >= 0
    assert j["elapsed_ms"] > 0


def test_verbose_and_quiet(target):
    t = target("busy")
    r = pyhot("attach", t.pid, "-v")
    assert r.rc == 0, r
    assert "borrowed thread" in r.err, r
    r = pyhot("attach", t.pid, "-q")
    assert r.rc == 0 and r.out == "" and r.err == "", r


def test_trace_log_shows_the_steps(target):
    t = target("busy")
    r = pyhot("attach", t.pid, env={"PYHOT_TRACE": "1"})
    assert r.rc == 0, r
    assert "pyhot trace" in r.err and "[socket]" in r.err, r
    # The injector's own trace lines go through the same hook.
    assert len([l for l in r.err.splitlines() if l.startswith("pyhot trace")]) > 3, r


def test_refresh_attaches_first(app):
    """A refresh of a process with no agent attaches first, then refreshes:
    exit 0, the module changed in the program (which prints its value),
    and every field the man page gives refresh --json (modules, their
    changes, generation, safepoint, dry_run, attach) present and right."""
    t = app()
    # Edited before any attach: the file is newer than the process, so the
    # agent compares it with what runs, and the change shows.
    t.mod.write_text(module_src(2))
    r = pyhot("refresh", t.pid, "hotmod", json_out=True)
    assert r.rc == 0 and r.json["ok"] is True, r
    value_is(t, 2)
    j = r.json
    att = j["attach"]
    assert att["agent"] == {"socket": sock_path(t.pid), "reused": False}, j
    assert set(att["python"]) == {"version", "static", "exe", "libpython"}, j
    assert isinstance(att["elapsed_ms"], (int, float)) and att["elapsed_ms"] > 0, j
    inj = att["inject"]
    assert set(inj) == {"tid", "stopped_ms", "attempts", "payload_was_mapped",
                        "boot_ret"}, j
    assert inj["attempts"] >= 1 and inj["payload_was_mapped"] is False, j
    assert os.path.exists(sock_path(t.pid))
    assert j["dry_run"] is False, j
    sp = j["safepoint"]
    assert sp["via"] in ("pending-call", "gil-thread"), j
    assert sp["wait_ms"] >= 0 and sp["run_ms"] >= 0, j
    # The whole trip is there and holds the wait and the handler (the
    # bench's sp_added is total minus run).
    assert sp["total_ms"] >= sp["wait_ms"] + sp["run_ms"] - 1e-6, j
    (m,) = j["modules"]
    assert m["module"] == "hotmod" and m["file"] == str(t.mod), j
    assert m["generation"] == 1 and m["summary"], j
    ch = {c["name"]: c for c in m["changes"]}
    assert ch["hotmod.value"]["action"] == "changed", j
    assert ch["hotmod.value"]["kind"] == "function", j
    assert "detail" in ch["hotmod.value"], j
    # Attached now: the next refresh reuses the agent, injects nothing.
    t.mod.write_text(module_src(3))
    r = pyhot("refresh", t.pid, "hotmod", json_out=True)
    assert r.rc == 0 and r.json["attach"]["agent"]["reused"] is True, r
    assert "inject" not in r.json["attach"], r
    assert r.json["modules"][0]["generation"] == 2, r.json
    value_is(t, 3)
    t.assert_working(more=0)


needs_unshare = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                   reason="needs root and unshare")


@needs_unshare
def test_attach_in_another_mount_namespace(target):
    """The target's /tmp is its own: the agent's socket is reached through
    /proc/PID/root, and the payload is loaded from a memfd."""
    t = target("sleep", private_tmp="rw")
    r = pyhot("attach", t.pid)
    check_attach_line(r, t.pid, fresh=True)
    # Nothing listens at that path in our namespace (a socket left there by
    # an earlier, killed process with the same pid would refuse).
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        with pytest.raises((FileNotFoundError, ConnectionRefusedError)):
            s.connect(sock_path(t.pid))
    assert os.path.exists("/proc/%d/root%s" % (t.pid, sock_path(t.pid)))
    assert pyhot("status", t.pid).rc == 0
    assert pyhot("detach", t.pid).rc == 0
    t.assert_working()


@needs_unshare
def test_read_only_tmp_is_explained(target):
    t = target("busy", private_tmp="ro")
    r = pyhot("attach", t.pid, json_out=True)
    assert r.rc == 3, r
    assert r.json["error"]["message"] == (
        "attach: agent in pid %d could not bind %s: Read-only file system" % (
            t.pid, sock_path(t.pid))), r
    assert "writable /tmp" in r.json["error"]["hint"], r
    t.assert_working()


def test_agent_that_never_answers_after_the_attach_is_124(target):
    """The injection works, but the new agent never answers: the target is
    stopped the moment the command connects to it (an LD_PRELOAD in the
    command, tests/victims/libstopagent.c). The attach times out: exit 124
    exactly (not 3: nothing failed to attach), error kind "timeout", and
    the message says the agent did not read the request."""
    stopper = os.path.join(BUILD, "tests", "victims", "libstopagent.so")
    for json_out in (True, False):
        t = target("sleep")
        try:
            r = pyhot("attach", t.pid, "--timeout=1", json_out=json_out,
                      env={"LD_PRELOAD": stopper, "PYHOT_TEST_STOP_PID": str(t.pid)})
        finally:
            os.kill(t.pid, signal.SIGCONT)
        assert r.rc == 124, r
        if json_out:
            assert r.json["error"]["kind"] == "timeout", r
        else:
            assert "the agent in pid %d did not read the request" % t.pid in r.err, r
        # Continued, the agent answers.
        assert pyhot("status", t.pid).rc == 0
        t.assert_working()
