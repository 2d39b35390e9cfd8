"""The CLI's client side against a stand-in agent (targets/fake_agent.py).

These need no injection: the fake agent listens where the real one would,
so they pin down the wire format, the output (text and --json), the
mapping of agent errors to exit codes, and "reuse without ptrace".
"""
import json
import os
import shutil

import pytest

from conftest import TARGETS, pyhot, sock_path

FAKE = os.path.join(TARGETS, "fake_agent.py")
needs_unshare = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                   reason="needs root and unshare")

STATUS = {   # the shape payload/verbs.c answers with
    "ok": True,
    "interpreter": {"version": "3.11.7 (main, Jan  1 2024, 00:00:00) [GCC 12.2.0]",
                    "implementation": "cpython", "executable": "/usr/bin/python3.11",
                    "build": "shared", "libpython": "/lib/libpython3.11.so.1.0"},
    "main_thread": {"via": "pending-call",
                    "frame": {"file": "/srv/app.py", "line": 12, "function": "loop"}},
    "threads": 2,
    "agent": {"uptime_s": 1.25, "requests": 4, "os_threads": 3, "via_pending_call": 4,
              "via_gil_thread": 0, "timeouts": 0, "refused": 0, "engine": True,
              "socket": "/tmp/pyhot-0/agent-1.sock", "last_error": None},
    "safepoint": {"via": "pending-call", "wait_ms": 1.5, "run_ms": 0.2},
    "newer_field": "shown too",
}
REFRESH_OK = {
    "ok": True, "dry_run": False,
    "modules": [{
        "module": "app.views", "file": "/srv/app/views.py",
        "changes": [
            {"action": "changed", "kind": "function", "name": "app.views.index",
             "detail": "code, defaults"},
            {"action": "kept", "kind": "value", "name": "app.views.COUNT", "detail": ""},
        ],
        "summary": {"changed": 1, "added": 0, "removed": 0, "kept": 1, "failed": 0},
    }],
}
REFRESH_FAIL = {
    "ok": False,
    "error": {"kind": "failed", "step": "refresh",
              "message": "refresh: /srv/app/views.py:3: invalid syntax"},
    "traceback": "  File \"/srv/app/views.py\", line 3\n    def (:\n        ^\nSyntaxError: invalid syntax\n",
}
TIMEOUT = {
    "ok": False,
    "error": {"kind": "timeout", "step": "safe point",
              "message": "safe point: the main thread did not take the GIL within 1000 ms"},
}


@pytest.fixture
def fake(target, tmp_path):
    def start(**responses):
        base = {"ping": {"ok": True, "pid": 0, "agent_uptime_s": 0.1,
                         "python_version": "3.11.7"},
                "status": STATUS,
                "detach": {"ok": True}}
        base.update(responses)
        path = tmp_path / "responses.json"
        path.write_text(json.dumps(base))
        return target(script=FAKE, mode=str(path))
    return start


def test_attach_reuses_a_listening_agent_without_ptrace(fake):
    t = fake()
    r = pyhot("attach", t.pid)
    assert r.rc == 0, r
    assert r.out.startswith("attached to pid %d: CPython 3.11.7" % t.pid), r
    assert "agent at %s (already running," % sock_path(t.pid) in r.out, r
    assert r.out.count("\n") == 1, r
    t.wait_for(r"^request ping")
    # No ptrace at all: the fake agent was never traced or stopped.
    assert t.tracer() == 0

    r = pyhot("attach", t.pid, json_out=True)
    assert r.rc == 0, r
    assert r.json["agent"] == {"socket": sock_path(t.pid), "reused": True}
    assert r.json["python"]["version"] == "3.11.7"
    assert "inject" not in r.json


def test_status_text_and_json(fake):
    t = fake()
    r = pyhot("status", t.pid, "--timeout", "2")
    assert r.rc == 0, r
    assert r.out.startswith("pid %d: CPython 3.11.7 (shared libpython " % t.pid), r
    assert "main thread:  in loop at /srv/app.py:12" in r.out, r
    assert "reached through a pending call on the main thread in 1.5 ms" in r.out, r
    assert "requests:     4 (4 by pending call, 0 by GIL thread)" in r.out, r
    assert "newer_field: shown too" in r.out, r
    t.wait_for(r"^request status timeout_ms=2000$")
    r = pyhot("status", t.pid, json_out=True)
    assert r.rc == 0, r
    assert r.json["status"]["main_thread"]["frame"]["line"] == 12
    assert r.json["pid"] == t.pid and r.json["command"] == "status"


def test_refresh_output_and_request(fake):
    t = fake(refresh=REFRESH_OK)
    r = pyhot("refresh", t.pid, "app.views", "app.models", "--dry-run")
    assert r.rc == 0, r
    t.wait_for(r"^request refresh module=app.views module=app.models dry_run=1 timeout_ms=5000$")
    assert "  changed  function  app.views.index (code, defaults)" in r.out, r
    assert "app.views.COUNT" not in r.out, r
    assert "refreshed 1 module in pid %d: 1 changed, 0 added, 0 removed, 1 kept, 0 failed" % (
        t.pid) in r.out, r
    r = pyhot("refresh", t.pid, "-v")
    assert "  kept     value     app.views.COUNT" in r.out, r
    r = pyhot("refresh", t.pid, json_out=True)
    assert r.rc == 0, r
    assert r.json["modules"][0]["summary"]["changed"] == 1
    assert r.json["dry_run"] is False


def test_refresh_failure_is_exit_1_with_traceback(fake):
    t = fake(refresh=REFRESH_FAIL)
    r = pyhot("refresh", t.pid, "app.views")
    assert r.rc == 1, r
    assert "pyhot: refresh: /srv/app/views.py:3: invalid syntax" in r.err, r
    assert "SyntaxError: invalid syntax" in r.err, r
    assert "unchanged" in r.err, r
    r = pyhot("refresh", t.pid, json_out=True)
    assert r.json["error"]["kind"] == "failed"
    assert "SyntaxError" in r.json["error"]["traceback"]


def test_refresh_without_engine_says_so(fake):
    t = fake()   # no "refresh" answer: the agent says unknown verb
    r = pyhot("refresh", t.pid)
    assert r.rc == 1, r
    assert "unknown verb" in r.err and "no patch engine" in r.err, r


def test_agent_timeout_is_124_with_native_stack(fake):
    t = fake(status=TIMEOUT)
    r = pyhot("status", t.pid, "--timeout=1")
    assert r.rc == 124, r
    assert "did not take the GIL" in r.err, r
    assert "the main thread (tid %d) is stuck in C, holding the GIL:" % t.pid in r.err, r
    assert "#0 " in r.err, r
    r = pyhot("status", t.pid, "--timeout=1", json_out=True)
    assert r.rc == 124
    assert r.json["error"]["main_tid"] == t.pid
    assert r.json["error"]["native_stack"][0].startswith("#0"), r


def test_agent_that_does_not_answer_in_time(fake):
    t = fake(status=dict(STATUS, delay_s=5))
    r = pyhot("status", t.pid, "--timeout=0.2")
    assert r.rc == 124, r
    assert "no answer from the agent in pid %d" % t.pid in r.err, r
    assert r.elapsed < 4.5, r


def test_detach_then_not_attached(fake):
    t = fake()
    r = pyhot("detach", t.pid)
    assert r.rc == 0, r
    assert r.out == "detached from pid %d: agent stopped, %s removed\n" % (t.pid, sock_path(t.pid))
    assert not os.path.exists(sock_path(t.pid))
    r = pyhot("status", t.pid)
    assert r.rc == 1, r
    assert "pid %d is not attached" % t.pid in r.err, r
    assert "hint: run: pyhot attach %d" % t.pid in r.err, r
    r = pyhot("detach", t.pid, json_out=True)
    assert r.rc == 1 and r.json["error"]["hint"] == "run: pyhot attach %d" % t.pid


def test_trace_log(fake):
    t = fake()
    r = pyhot("status", t.pid, env={"PYHOT_TRACE": "1"})
    assert r.rc == 0, r
    assert "[socket] -> pid %d status" % t.pid in r.err, r
    assert "[socket] <- pid %d" % t.pid in r.err, r
    r = pyhot("status", t.pid)
    assert "[socket]" not in r.err, r


@needs_unshare
def test_agent_in_another_mount_namespace(target):
    """The agent's /tmp is not ours: pyhot goes through /proc/PID/root."""
    # No file for the answers: the target's /tmp is another one.
    t = target(script=FAKE, mode=json.dumps({"status": STATUS}), private_tmp="rw")
    assert not os.path.exists(sock_path(t.pid))
    r = pyhot("status", t.pid, json_out=True)
    assert r.rc == 0, r
    assert r.json["status"]["agent"]["requests"] == 4



def test_attach_to_an_agent_that_does_not_answer_is_124(fake):
    """An agent listens but its ping gets no answer in time: the attach
    reuses nothing, injects nothing, and times out: exit 124 exactly (not
    3), error kind "timeout", and the hint says the agent did not answer."""
    t = fake(ping={"ok": True, "pid": 0, "agent_uptime_s": 0.1,
                   "python_version": "3.11.7", "delay_s": 5})
    r = pyhot("attach", t.pid, "--timeout=0.5", json_out=True)
    assert r.rc == 124, r
    assert r.json["error"]["kind"] == "timeout", r
    assert "the agent in pid %d read the request but did not answer" % t.pid in \
        r.json["error"]["hint"], r
    assert r.elapsed < 4.5, r
