"""pyhot ps: the Python processes pyhot can attach to, with their agents,
and those it cannot attach to with the reason; bash completion of commands,
options and pids."""
import os
import shutil
import signal
import subprocess

import pytest

from conftest import (DEFAULT_PY, OLD_INTERPRETERS, PYHOT, REPO, pyhot,
                      NOBODY, pyhot_for_nobody, wait_until)

COMPLETION = os.path.join(REPO, "cli", "pyhot.bash-completion")


def entry(r, pid):
    found = [p for p in r.json["processes"] if p["pid"] == pid]
    assert len(found) == 1, r
    return found[0]


def test_ps_finds_a_target_and_its_agent(target, python):
    t = target("sleep", python=python)
    r = pyhot("ps", json_out=True)
    assert r.rc == 0, r
    e = entry(r, t.pid)
    assert e["attachable"] is True and e["agent"] is False, e
    assert e["payload_loaded"] is False, e
    # exec attaches: now an agent answers.
    version = pyhot("exec", t.pid, "-c", "import sys; print('%d.%d' % sys.version_info[:2])")
    assert version.rc == 0, version
    e = entry(pyhot("ps", json_out=True), t.pid)
    assert e["python"] == version.out.strip(), (e, version)
    assert e["attachable"] is True and e["agent"] is True, e
    assert e["user"] == "root" and e["reason"] is None, e
    assert t.argv[1] in e["cmdline"], e
    assert pyhot("detach", t.pid).rc == 0
    e = entry(pyhot("ps", json_out=True), t.pid)
    assert e["agent"] is False and e["payload_loaded"] is True, e


def test_ps_text_and_the_ones_it_cannot_attach_to(target, procs):
    opted = target("sleep", env={"PYTHON_DISABLE_REMOTE_DEBUG": "1"})
    traced = target("sleep")
    strace = None
    if shutil.which("strace"):
        strace = procs(["strace", "-p", str(traced.pid), "-o", "/dev/null"])
        wait_until(lambda: traced.tracer() == strace.pid, what="strace to attach")
    # Not reaped until the fixture waits for it: a zombie.
    zombie = procs([DEFAULT_PY, "-c", "pass"])
    wait_until(lambda: open("/proc/%d/stat" % zombie.pid).read().rsplit(")", 1)[1].split()[0]
               == "Z", what="zombie")
    stopped = target("sleep")
    fresh = target("sleep")
    os.kill(stopped.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: stopped.state() == "T", what="the target to stop")
        old = target("sleep", python=OLD_INTERPRETERS[0][1]) if OLD_INTERPRETERS else None
        r = pyhot("ps", json_out=True)
        assert r.rc == 0, r
        assert entry(r, fresh.pid)["attachable"] is True
        assert entry(r, fresh.pid)["agent"] is False
        assert entry(r, opted.pid)["reason_kind"] == "opted-out", r
        assert entry(r, stopped.pid)["reason_kind"] == "stopped", r
        if old:
            assert entry(r, old.pid)["reason_kind"] == "too-old", r
        if strace:
            e = entry(r, traced.pid)
            assert e["reason_kind"] == "traced", e
            assert e["reason"] == "traced by pid %d (strace)" % strace.pid, e
        assert entry(r, zombie.pid)["reason_kind"] == "zombie", r

        r = pyhot("ps")
        assert r.rc == 0 and r.err == "", r
        head, _, rest = r.out.partition("\ncannot attach to:\n")
        assert head.startswith("PID "), r
        assert "\n%d " % fresh.pid in head, r
        assert "%d " % opted.pid in rest and "reason: opted out of remote debugging" in rest, r
        assert "%d " % stopped.pid in rest and "reason: stopped" in rest, r
        if old:
            assert "reason: CPython 3.%d is too old" % int(OLD_INTERPRETERS[0][0][2:]) in rest
        assert str(os.getpid()) in r.out        # pytest itself is a Python process
        assert pyhot("ps", "-q").out == ""
    finally:
        os.kill(stopped.pid, signal.SIGCONT)


def test_ps_usage():
    r = pyhot("ps", "1", json_out=True)
    assert r.rc == 2 and "unexpected argument '1'" in r.json["error"]["message"], r


def complete(*words):
    script = ('source "%s"\n'
              'COMP_WORDS=(%s); COMP_CWORD=%d; COMPREPLY=()\n'
              '_pyhot; printf "%%s\\n" "${COMPREPLY[@]}"\n') % (
                  COMPLETION, " ".join("'%s'" % w for w in (PYHOT,) + words), len(words))
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], timeout=30,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    assert p.returncode == 0, p.stderr
    return set(p.stdout.split())


def test_bash_completion(target):
    t = target("sleep")
    assert complete("") >= {"attach", "status", "detach", "refresh", "ps", "stack",
                            "watch", "exec", "help"}
    assert complete("st") == {"status", "stack"}
    assert complete("exec", "--") >= {"--code", "--json", "--timeout", "--help"}
    assert "--dry-run" in complete("refresh", "1", "--")
    assert "--dry-run" not in complete("stack", "--")
    assert str(t.pid) in complete("stack", "")
    assert str(t.pid) in complete("exec", str(t.pid)[0])
    assert {"--thread", "--exception"} <= complete("interrupt", str(t.pid), "--")
    assert str(t.pid) in complete("interrupt", str(t.pid), "--thread", "")
    assert "KeyboardInterrupt" in complete("interrupt", "--exception", "K")


def test_ps_as_another_user(target):
    """Run as nobody, pyhot lists root's Python processes as not its own."""
    exe = pyhot_for_nobody()
    t = target("sleep")
    r = pyhot("ps", json_out=True, prefix=NOBODY, exe=exe)
    assert r.rc == 0, r
    e = entry(r, t.pid)
    assert e["attachable"] is False and e["reason_kind"] == "other-user", e
    assert e["user"] == "root", e
