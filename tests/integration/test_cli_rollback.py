"""pyhot rollback and the generations in pyhot status, through the real
command against a real Python process on every interpreter: the target's main
loop prints hotmod.value() whenever it changes, so each refresh and rollback
is seen from inside the program."""
import hashlib

import pytest

from conftest import DEFAULT_PY, pyhot
from test_cli_watch import MAIN   # prints hotmod.value() when it changes



def module_src(v):
    return ("import functools\n"
            "SEEN = []\n"
            "@functools.lru_cache(maxsize=None)\n"
            "def value():\n"
            "    SEEN.append(%r)\n"
            "    return %r\n" % (v, v))


@pytest.fixture
def app(target, tmp_path):
    def start(python=None):
        d = tmp_path / "app"
        d.mkdir()
        (d / "hotmod.py").write_text(module_src(1))
        (d / "main.py").write_text(MAIN % str(d))
        t = target(script=str(d / "main.py"), python=python, cwd=str(d))
        t.mod = d / "hotmod.py"
        t.seen = 0
        value_is(t, 1)
        return t
    return start


def value_is(t, v):
    """Wait for the target to print value v after what it printed so far."""
    t.wait_for("^value %d$" % v, start=t.seen)
    t.seen = len(t.lines)


def alive(t):
    assert t.proc.poll() is None, t.output()


def test_refresh_rollback_refresh(app, python):
    t = app(python)
    assert pyhot("attach", t.pid, "--history", "10").rc == 0
    # Edited right after attach returns: must count as a change.
    t.mod.write_text(module_src(2))
    r = pyhot("refresh", t.pid, "hotmod", json_out=True)
    assert r.rc == 0, r
    assert r.json["modules"][0]["generation"] == 1, r.json
    value_is(t, 2)

    r = pyhot("rollback", t.pid, "hotmod", "--dry-run", json_out=True)
    assert r.rc == 0 and r.json["dry_run"] is True and r.json["undone"] == [1], r
    r = pyhot("rollback", t.pid, "hotmod")
    assert r.rc == 0, r
    assert "rolled back hotmod in pid %d to generation 0, undoing 1" % t.pid in r.out, r
    assert "recorded as generation 2" in r.out
    value_is(t, 1)     # the old code, and the lru_cache was cleared

    r = pyhot("rollback", t.pid, "hotmod")
    assert r.rc == 1 and "nothing to roll back" in r.err, r

    # The file still holds version 2: refresh applies it again.
    r = pyhot("refresh", t.pid, "hotmod", json_out=True)
    assert r.rc == 0 and r.json["modules"][0]["generation"] == 3, r
    value_is(t, 2)
    t.mod.write_text(module_src(3))
    assert pyhot("refresh", t.pid, "hotmod").rc == 0        # 4
    value_is(t, 3)
    r = pyhot("rollback", t.pid, "hotmod", "--to", "0", json_out=True)
    assert r.rc == 0, r
    assert r.json["restored"] == 0 and r.json["undone"] == [3, 4], r.json
    assert r.json["modules"][0]["generation"] == 5
    value_is(t, 1)

    r = pyhot("status", t.pid, json_out=True)
    h = r.json["status"]["history"]
    assert h["limit"] == 10
    assert [g["number"] for g in h["generations"]] == [5, 4, 3, 2, 1]
    assert [g["kind"] for g in h["generations"]] == [
        "rollback", "refresh", "refresh", "rollback", "refresh"]
    assert h["generations"][1]["hash"] == hashlib.sha256(
        module_src(3).encode()).hexdigest()
    r = pyhot("status", t.pid)
    assert "generations: 5" in r.out and "back to 0" in r.out, r.out
    # State the refreshes kept stays: the module's list saw every version.
    r = pyhot("exec", t.pid, "-c", "import hotmod; hotmod.SEEN")
    assert r.rc == 0 and r.out.strip() == "[1, 2, 1, 2, 3, 1]", r
    alive(t)


def test_leaks_and_history_limit(app):
    t = app(DEFAULT_PY)
    assert pyhot("attach", t.pid, "--history", "1").rc == 0
    for v in (2, 3, 4):
        t.mod.write_text(module_src(v))
        assert pyhot("refresh", t.pid, "hotmod").rc == 0
    r = pyhot("status", t.pid, "--leaks", json_out=True)
    assert r.rc == 0, r
    st = r.json["status"]
    assert [g["number"] for g in st["history"]["generations"]] == [3]
    assert st["leaks"] == []
    assert "leaks: none" in pyhot("status", t.pid, "--leaks").out
    r = pyhot("rollback", t.pid, "hotmod", "--to", "1")
    assert r.rc == 1 and "fell out of the history" in r.err, r
    r = pyhot("rollback", t.pid, "hotmod", "--to", "2", json_out=True)
    assert r.rc == 0 and r.json["undone"] == [3], r
    value_is(t, 3)
    # A larger limit on the agent that is already there.
    assert pyhot("attach", t.pid, "--history", "50").rc == 0
    r = pyhot("status", t.pid, json_out=True)
    assert r.json["status"]["history"]["limit"] == 50


@pytest.mark.parametrize("argv,rc,needle", [
    (["rollback"], 2, "missing <pid>"),
    (["rollback", "1"], 2, "missing <module>"),
    (["rollback", "1", "a", "b"], 2, "one module at a time"),
    (["rollback", "1", "a", "--to", "x"], 2, "--to wants a generation number"),
    (["rollback", "1", "a", "--to", "-3"], 2, "--to wants a generation number"),
    (["attach", "1", "--history", "0"], 2, "--history wants"),
    (["status", "1", "--to", "3"], 2, "unknown option"),
])
def test_usage_errors(argv, rc, needle):
    r = pyhot(*argv, json_out=True)
    assert r.rc == rc and needle in r.json["error"]["message"], r


def test_bad_rollbacks_change_nothing(app):
    t = app(DEFAULT_PY)
    r = pyhot("rollback", t.pid, "hotmod", json_out=True)
    assert r.rc == 1, r                       # no agent: nothing to roll back
    assert pyhot("attach", t.pid).rc == 0
    for argv, needle in [
        (["hotmod"], "not refreshed since the attach"),
        (["nosuch"], "module 'nosuch' is not imported"),
        (["hotmod", "--to", "7"], "not refreshed since the attach"),
    ]:
        r = pyhot("rollback", t.pid, *argv, json_out=True)
        assert r.rc == 1 and needle in r.json["error"]["message"], r
        assert "unchanged" in r.json["error"]["hint"], r
    t.mod.write_text(module_src(2))
    assert pyhot("refresh", t.pid, "hotmod").rc == 0
    value_is(t, 2)
    r = pyhot("rollback", t.pid, "hotmod", "--to", "1", json_out=True)
    assert r.rc == 1 and "at generation 1 already" in r.json["error"]["message"], r
    r = pyhot("rollback", t.pid, "hotmod", "--to", "7", json_out=True)
    assert r.rc == 1 and "no generation 7" in r.json["error"]["message"], r
    r = pyhot("exec", t.pid, "-c", "import hotmod; hotmod.value()")
    assert r.out.strip() == "2", r
    alive(t)
