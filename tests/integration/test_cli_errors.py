"""Every refusal of pyhot attach: exit code, message, hint, --json, and the
target left as it was (running, untraced)."""
import os
import shutil
import signal
import subprocess

import pytest

from conftest import (BUILD, DEFAULT_PY, OLD_INTERPRETERS, PYHOT, TARGET_PY, pyhot,
                      NOBODY, proc_state, pyhot_for_nobody, sock_path, wait_until)


def refused(r, code, *needles):
    """r failed with code; stderr is "pyhot: <msg>" + "hint: ..."; every
    needle (lowercase) is in the message or hint."""
    assert r.rc == code, r
    assert r.out == "", r
    lines = r.err.splitlines()
    assert lines and lines[0].startswith("pyhot: "), r
    assert any(l.startswith("hint: ") for l in lines), r
    low = r.err.lower()
    for n in needles:
        assert n.lower() in low, (n, r)


def both(*args, env=None, prefix=(), exe=None):
    """Run once for text and once with --json; the two agree."""
    r = pyhot(*args, env=env, prefix=prefix, exe=exe)
    j = pyhot(*args, env=env, prefix=prefix, json_out=True, exe=exe)
    assert j.rc == r.rc, (r, j)
    assert j.json["error"]["message"] in r.err, (r, j)
    return r, j


def unused_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    pid = p.pid
    assert not os.path.exists("/proc/%d" % pid)
    return pid


def test_no_such_pid():
    pid = unused_pid()
    r, j = both("attach", pid)
    refused(r, 3, str(pid), "does not exist")
    assert j.json["error"]["kind"] == "attach"
    r = pyhot("status", pid)
    refused(r, 3, str(pid))


def test_not_a_python_process(procs):
    p = procs(["sleep", "60"])
    wait_until(lambda: os.readlink("/proc/%d/exe" % p.pid).endswith("sleep"), what="exec")
    r, j = both("attach", p.pid)
    refused(r, 3, str(p.pid), "python")
    assert p.poll() is None


def test_other_user_without_ptrace_rights(target):
    t = target("busy")
    r, j = both("attach", t.pid, prefix=NOBODY, exe=pyhot_for_nobody())
    refused(r, 3, str(t.pid))
    assert any(w in r.err.lower() for w in ("permission", "not permitted", "uid", "user")), r
    assert t.tracer() == 0
    t.assert_working()


def test_already_traced_names_the_tracer(target, procs):
    if not shutil.which("strace"):
        pytest.skip("strace missing")
    t = target("sleep")
    s = procs(["strace", "-p", str(t.pid), "-o", "/dev/null"])
    wait_until(lambda: t.tracer() == s.pid, what="strace to attach")
    r, j = both("attach", t.pid)
    refused(r, 3, str(t.pid), str(s.pid))
    assert t.tracer() == s.pid
    s.terminate()
    s.wait(timeout=10)
    t.assert_working()


def test_zombie(procs):
    z = procs([DEFAULT_PY, "-c", "pass"])
    # Not reaped yet: a zombie (our child) until the fixture waits for it.
    wait_until(lambda: open("/proc/%d/stat" % z.pid).read().rsplit(")", 1)[1].split()[0] == "Z",
               what="zombie")
    r, j = both("attach", z.pid)
    refused(r, 3, str(z.pid), "zombie")


def test_stopped_process(target):
    t = target("busy")
    os.kill(t.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: t.state() == "T", what="stop")
        r, j = both("attach", t.pid)
        refused(r, 3, str(t.pid), "stopped")
        assert t.state() == "T"
        r = pyhot("status", t.pid)
        assert r.rc == 3 and "stopped" in r.err, r
    finally:
        os.kill(t.pid, signal.SIGCONT)
    t.assert_working()


def test_process_exits_during_attach(target):
    t = target("busy")
    # The hook exists only in the test build of pyhot.
    r = pyhot("attach", t.pid, env={"PYHOT_TEST_HOOK": "kill-after-seize"},
              exe=os.path.join(BUILD, "pyhot-test-hooks"))
    assert r.rc in (3, 4), r
    assert str(t.pid) in r.err, r
    assert "hint: pid %d exited during the attach" % t.pid in r.err, r
    t.proc.wait(timeout=10)


def test_payload_missing(target):
    t = target("busy")
    r, j = both("attach", t.pid, env={"PYHOT_PAYLOAD": "/nonexistent"})
    refused(r, 3, "PYHOT_PAYLOAD=/nonexistent", "no such file",
            "attaching to pid %d" % t.pid)
    assert j.json["error"]["step"] == "payload"
    assert not os.path.exists(sock_path(t.pid))
    assert t.tracer() == 0
    t.assert_working()


@pytest.mark.parametrize("how", ["env", "-X"])
def test_opted_out_of_remote_debugging(target, how):
    if how == "env":
        t = target("busy", env={"PYTHON_DISABLE_REMOTE_DEBUG": "1"})
    else:
        t = target("busy", pyargs=["-X", "disable_remote_debug"])
    r, j = both("attach", t.pid)
    refused(r, 3, str(t.pid), "remote debug")
    assert t.tracer() == 0
    t.assert_working()


@pytest.mark.parametrize("name,path", OLD_INTERPRETERS or [("none", None)],
                         ids=[n for n, _ in OLD_INTERPRETERS] or ["none"])
def test_too_old_python_is_refused(target, name, path):
    if not path:
        pytest.skip("no Python older than 3.8 on this machine")
    t = target("busy", python=path)
    r, j = both("attach", t.pid)
    refused(r, 3, str(t.pid), name, "3.8")
    t.assert_working()


def test_unattached_target_commands(target):
    t = target("busy")
    for cmd in ("status", "detach"):
        r, j = both(cmd, t.pid)
        refused(r, 1, "not attached", "run: pyhot attach %d" % t.pid)
        assert j.json["error"]["kind"] == "failed"


def test_pyhot_binary_is_where_tests_expect():
    assert os.access(PYHOT, os.X_OK), PYHOT
    assert os.path.exists(TARGET_PY)


def payload_with_other_build_id(dst):
    """A copy of the payload that differs only in its GNU build id: code that
    would load and run, from another build as far as pyhot can tell."""
    notes = subprocess.run(["readelf", "-n", os.path.join(BUILD, "pyhot-payload.so")],
                           stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    hexid = [l.split(":")[1].strip() for l in notes.splitlines() if "Build ID" in l][0]
    data = bytearray(open(os.path.join(BUILD, "pyhot-payload.so"), "rb").read())
    at = data.find(bytes.fromhex(hexid))
    assert at > 0 and data.find(bytes.fromhex(hexid), at + 1) < 0
    data[at] ^= 0xff
    with open(dst, "wb") as fh:
        fh.write(data)
    os.chmod(dst, 0o755)


def test_payload_swapped_during_the_attach_is_refused(target, tmp_path):
    """The command checks the payload's build id by path; the injector opens
    the file again. A file swapped in between (same owner, same mode, a
    loadable payload of another build) must be refused on the injector's
    own descriptor, and nothing loaded into the target."""
    t = target("busy")
    payload = str(tmp_path / "pyhot-payload.so")
    shutil.copy(os.path.join(BUILD, "pyhot-payload.so"), payload)
    other = str(tmp_path / "other.so")
    payload_with_other_build_id(other)
    # The test build stops itself just before the injector opens the file.
    env = dict(os.environ, PYHOT_PAYLOAD=payload, PYHOT_TEST_HOOK="stop-before-payload-open")
    p = subprocess.Popen([os.path.join(BUILD, "pyhot-test-hooks"), "attach", str(t.pid)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True)
    try:
        wait_until(lambda: proc_state(p.pid) == "T",
                   what="pyhot stopped before it opens the payload")
        os.rename(other, payload)
        p.send_signal(signal.SIGCONT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 3, (out, err)
    assert "it changed after pyhot checked it" in err, err
    assert "nothing was loaded into pid %d" % t.pid in err, err
    with open("/proc/%d/maps" % t.pid) as fh:
        assert "pyhot" not in fh.read()
    assert not os.path.exists(sock_path(t.pid))
    assert t.tracer() == 0
    t.assert_working()
