"""pyhot talks only to the target's own agent (docs/trust.md).

Each test runs the target in a mount namespace of its own with a fresh
tmpfs on /tmp (the machine's /tmp is untouched) and plants an impostor
there before the first attach: another user's socket directory, a
symlinked one, one that others may write to, or a listener of the right
user in another process. The impostor records every connection and every
byte it receives: no request may reach it, the command refuses with exit 1
and a message that names the owner, and the target keeps running.
"""
import os
import shutil
import subprocess

import pytest

from conftest import (DEFAULT_PY, NOBODY, TARGET_PY, TARGETS, Target, pyhot,
                      sock_path, wait_until)

IMPOSTOR = os.path.join(TARGETS, "trust", "impostor.py")
SYSPY = "/usr/bin/python3"   # readable by nobody, unlike a pyenv under /root

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("unshare", "setpriv"))
    or not os.path.exists(SYSPY), reason="needs root, unshare, setpriv, /usr/bin/python3")

NOBODY_DESC = "uid 65534 (nobody)"


@pytest.fixture
def trapped():
    """trapped(setup, prep="", user=NOBODY): a sleeping target whose /tmp
    holds an impostor at its agent's socket (impostor.py SETUP), after the
    shell commands prep ran as root."""
    started = []

    def start(setup, prep="", user=NOBODY):
        # The scripts are opened before the mount: the checkout itself may
        # live under /tmp, which the tmpfs hides.
        shell = ("exec 3<\"$1\" 4<\"$2\"\n"
                 "mount -t tmpfs tmpfs /tmp || exit 1\n" + prep +
                 "%s %s - /tmp/pyhot-0/agent-$$.sock /tmp/impostor.log %s <&4 3<&- &\n"
                 "exec \"$3\" /dev/fd/3 sleep\n") % (" ".join(user), SYSPY, setup)
        t = Target(["unshare", "-m", "--propagation", "private", "sh", "-c", shell, "sh",
                    TARGET_PY, IMPOSTOR, DEFAULT_PY])
        started.append(t)
        t.ready()
        wait_until(lambda: os.path.exists(in_target(t, "/tmp/impostor.log.ready")),
                   what="the impostor")
        return t

    yield start
    for t in started:
        t.kill()


def in_target(t, path):
    return "/proc/%d/root%s" % (t.pid, path)


def impostor_log(t):
    with open(in_target(t, "/tmp/impostor.log")) as f:
        return f.read().split("\n")


def payload_mapped(t):
    with open("/proc/%d/maps" % t.pid) as f:
        return "pyhot-payload" in f.read()


def refused_everywhere(t, needle):
    """Every command that talks to the agent refuses, exit 1, saying needle."""
    for argv in (("status", t.pid), ("exec", t.pid, "-c", "print('secret')"),
                 ("refresh", t.pid), ("attach", t.pid), ("detach", t.pid),
                 ("stack", t.pid)):
        r = pyhot(*argv, json_out=True)
        assert r.rc == 1, r
        e = r.json["error"]
        assert e["kind"] == "failed" and e["step"] == "trust", r
        assert needle in e["message"] and "refusing to talk to it" in e["message"], r
        assert "nothing was sent to it and pid %d is unchanged" % t.pid in e["hint"], r
        assert "forged" not in r.out, r
    r = pyhot("exec", t.pid, "-c", "print('secret')")
    assert r.rc == 1 and r.out == "", r
    assert "pyhot: trust: socket" in r.err or "pyhot: trust: agent socket" in r.err, r
    assert not payload_mapped(t), "attach injected the payload"


def test_another_users_directory_is_refused(trapped):
    t = trapped("mkdir")
    refused_everywhere(t, "socket directory /tmp/pyhot-0 is owned by %s, not by the "
                          "target's user, uid 0 (root)" % NOBODY_DESC)
    assert impostor_log(t) == ["listening", ""], "something reached the impostor"
    r = pyhot("ps", json_out=True)
    mine = [p for p in r.json["processes"] if p["pid"] == t.pid]
    assert mine and mine[0]["agent_state"] == "untrusted", r
    t.assert_working()
    # What the hint says to do works: remove it, and attach makes its own.
    shutil.rmtree(in_target(t, "/tmp/pyhot-0"))
    r = pyhot("exec", t.pid, "-c", "print('mine')")
    assert r.rc == 0 and r.out == "mine\n", r
    st = os.lstat(in_target(t, "/tmp/pyhot-0"))
    assert st.st_uid == 0 and st.st_mode & 0o777 == 0o700
    assert impostor_log(t) == ["listening", ""]
    t.assert_working()


def test_symlinked_directory_is_refused(trapped):
    t = trapped("symlink")
    refused_everywhere(t, "socket directory /tmp/pyhot-0 is a symlink to '/tmp/evil' "
                          "made by %s, not a directory" % NOBODY_DESC)
    assert impostor_log(t) == ["listening", ""]
    t.assert_working()


def test_directory_open_to_others_is_refused(trapped):
    t = trapped("none", prep="mkdir -m 0777 /tmp/pyhot-0\n")
    refused_everywhere(t, "socket directory /tmp/pyhot-0 has mode 0777, not 0700")
    assert impostor_log(t) == ["listening", ""]
    t.assert_working()


def test_listener_of_the_same_user_in_another_process_is_refused(trapped):
    """The directory is right (root's, 0700) but another process listens:
    SO_PEERCRED tells, after connect() and before a byte is sent."""
    t = trapped("none", prep="mkdir -m 0700 /tmp/pyhot-0\n", user=())
    r = pyhot("exec", t.pid, "-c", "print('secret')", json_out=True)
    assert r.rc == 1 and r.json["error"]["step"] == "trust", r
    msg = r.json["error"]["message"]
    assert msg.startswith("trust: agent socket %s is served by pid " % sock_path(t.pid)), r
    assert msg.endswith(", not by pid %d: refusing to talk to it" % t.pid), r
    log = impostor_log(t)
    assert "connection" in log and not [l for l in log if l.startswith("data")], log
    t.assert_working()


def test_agent_refuses_an_unsafe_directory_itself(tmp_path):
    """The payload side, should the CLI's check be raced or skipped: boot
    does not bind in a directory that is not safely its own, and says which
    case it is by its errno (docs/trust.md): -EPERM another owner, -ENOTDIR
    a symlink or a file, -EACCES open to others. Nothing is bound there."""
    import errno
    from conftest import BUILD
    os.chmod(str(tmp_path), 0o755)
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(str(foreign), 65534, 65534)
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    (tmp_path / "file").write_text("")
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(str(open_dir), 0o777)
    code = ("import ctypes, sys\n"
            "p = ctypes.CDLL(sys.argv[1])\n"
            "p.pyhot_boot.restype = ctypes.c_int\n"
            "for d in sys.argv[2:]:\n"
            "    print(p.pyhot_boot(('sock=%s/agent-1.sock\\n' % d).encode()))\n")
    dirs = [str(tmp_path / n) for n in ("foreign", "link", "file", "open", "fresh")]
    out = subprocess.run([DEFAULT_PY, "-c", code, os.path.join(BUILD, "pyhot-payload.so")]
                         + dirs, stdout=subprocess.PIPE, universal_newlines=True,
                         timeout=30, check=True).stdout.split()
    assert out == [str(-errno.EPERM), str(-errno.ENOTDIR), str(-errno.ENOTDIR),
                   str(-errno.EACCES), "0"], out
    assert os.listdir(str(foreign)) == [] and os.listdir(str(real)) == []
    assert os.listdir(str(open_dir)) == []
    st = os.lstat(str(tmp_path / "fresh"))
    assert st.st_uid == 0 and st.st_mode & 0o777 == 0o700
