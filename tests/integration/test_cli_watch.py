"""pyhot watch: a module of the target is refreshed when its file is saved
(through a rename, as editors do, and by writing in place), a syntax error is
reported and watching goes on, new and deleted files are handled, and Ctrl-C
on a terminal stops it cleanly with exit 0."""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import PYHOT, pyhot
from pty_term import Term

MAIN = '''
import sys, time
sys.path.insert(0, %r)
import hotmod
print("ready", flush=True)
last = None
while True:
    v = hotmod.value()
    if v != last:
        print("value", v, flush=True)
        last = v
    time.sleep(0.01)
'''


def module_src(v):
    return "def value():\n    return %r\n" % v


@pytest.fixture
def app(target, tmp_path):
    """A target whose main loop prints hotmod.value() when it changes."""
    d = tmp_path / "app"
    d.mkdir()
    (d / "hotmod.py").write_text(module_src(1))
    (d / "main.py").write_text(MAIN % str(d))

    def start(python=None):
        t = target(script=str(d / "main.py"), python=python, cwd=str(d))
        t.wait_for("^value 1$")
        t.dir = d
        return t
    return start


@pytest.fixture
def term():
    started = []

    def start(*args):
        t = Term([PYHOT] + [str(a) for a in args])
        started.append(t)
        return t
    yield start
    for t in started:
        t.close()


def save_by_rename(path, text):
    tmp = str(path) + ".tmp~"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, str(path))


def save_in_place(path, text):
    # Several writes in a row, as some editors do: one refresh.
    with open(str(path), "w") as f:
        f.write(text[:5])
        f.flush()
        time.sleep(0.02)
        f.write(text[5:])


def test_watch_refreshes_on_save_and_stops_on_ctrl_c(app, term, python):
    t = app(python)
    w = term("watch", t.pid)
    pos = w.wait_for(r"watching \d+ modules? of pid %d" % t.pid)
    mod = t.dir / "hotmod.py"

    save_by_rename(mod, module_src(2))
    t.wait_for("^value 2$")
    pos = w.wait_for(r"hotmod\.py saved: refreshed hotmod", start=pos)

    save_in_place(mod, module_src(3))
    t.wait_for("^value 3$")
    pos = w.wait_for(r"hotmod\.py saved: refreshed hotmod", start=pos)

    mod.write_text("def value(:\n")
    pos = w.wait_for(r"refresh of hotmod failed: .*SyntaxError", start=pos)
    pos = w.wait_for(r"still watching", start=pos)

    save_by_rename(mod, module_src(4))
    t.wait_for("^value 4$")
    pos = w.wait_for(r"hotmod\.py saved: refreshed hotmod", start=pos)
    # One save, one refresh: the in-place writes were debounced.
    assert len(re.findall(r"saved: refreshed", w.buf)) == 3, w.buf

    os.write(w.fd, b"\x03")            # Ctrl-C on the terminal
    status = w.wait_exit()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (status, w.buf)
    assert "stopped watching pid %d (3 refreshed, 1 failed)" % t.pid in w.buf, w.buf
    t.assert_working(more=0)
    assert t.proc.poll() is None


def test_watch_json_new_and_deleted_files(app, procs):
    t = app()
    p = procs([PYHOT, "watch", str(t.pid), str(t.dir), "--json"],
              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    # The progress lines go to stderr with --json.
    line = p.stderr.readline()
    assert "watching" in line, line
    (t.dir / "newmod.py").write_text("x = 1\n")
    save_by_rename(t.dir / "hotmod.py", module_src(5))
    t.wait_for("^value 5$")
    time.sleep(0.3)
    os.unlink(str(t.dir / "hotmod.py"))
    time.sleep(0.4)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=10)
    assert p.returncode == 0, (out, err)
    doc = json.loads(out)
    assert doc["format"] == 1 and doc["ok"] is True and doc["exit"] == 0, doc
    assert doc["modules"]["hotmod"] == str(t.dir / "hotmod.py"), doc
    events = {(os.path.basename(e["file"]), e["event"]) for e in doc["events"]}
    assert ("newmod.py", "not-loaded") in events, doc
    assert ("hotmod.py", "refreshed") in events, doc
    assert ("hotmod.py", "deleted") in events, doc
    assert doc["refreshed"] == 1 and doc["failed"] == 0, doc
    t.assert_working(more=0)


def test_watch_errors(target, tmp_path):
    r = pyhot("watch", json_out=True)
    assert r.rc == 2, r
    t = target("sleep")
    r = pyhot("watch", t.pid, str(tmp_path / "missing"), json_out=True)
    assert r.rc == 1 and "missing" in r.json["error"]["message"], r
    assert "attach" not in r.json, r        # told before attaching
    r = pyhot("watch", "999999999", json_out=True)
    assert r.rc == 3 and r.json["error"]["kind"] == "attach", r
