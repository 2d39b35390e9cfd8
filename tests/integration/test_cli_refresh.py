"""pyhot refresh end to end: a real Flask service (tests/apps/flask_app.py)
on pyenv 3.11.7 is edited in a temporary copy and refreshed in place."""
import json
import os
import shutil
import subprocess
import urllib.request

import pytest

from conftest import INTERPRETERS, REPO, free_port, pyhot

APPS = os.path.join(REPO, "tests", "apps")
PY311 = dict(INTERPRETERS).get("3.11")


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


@pytest.fixture
def flask_service(target, tmp_path):
    if not PY311:
        pytest.skip("no pyenv 3.11")
    probe = subprocess.run([PY311, "-c", "import flask"])
    if probe.returncode:
        pytest.skip("pyenv 3.11 has no Flask")
    app = tmp_path / "apps"
    shutil.copytree(APPS, str(app))
    port = free_port()
    t = target(script=str(app / "flask_app.py"), mode=str(port), python=PY311)
    t.url = "http://127.0.0.1:%d" % port
    t.views = app / "flask_demo" / "views.py"
    return t


def edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_refresh_a_flask_view(flask_service):
    t = flask_service
    assert get(t.url + "/hello/bob") == "Hello, bob!\n"
    assert pyhot("attach", t.pid).rc == 0
    assert pyhot("status", t.pid).rc == 0      # a safe point: the baseline is taken
    get(t.url + "/")
    edit(t.views, 'return "Hello"', 'return "Hot hello"')

    r = pyhot("refresh", t.pid, "flask_demo.views", "--dry-run", json_out=True)
    assert r.rc == 0, r
    assert r.json["dry_run"] is True
    assert get(t.url + "/hello/bob") == "Hello, bob!\n"

    r = pyhot("refresh", t.pid, "flask_demo.views")
    assert r.rc == 0, r
    assert "changed  function  flask_demo.views.greeting" in r.out, r
    assert "refreshed 1 module in pid %d" % t.pid in r.out, r
    assert get(t.url + "/hello/bob") == "Hot hello, bob!\n"
    # Module state survives: the hit counter was not reset.
    stats = json.loads(get(t.url + "/stats"))
    assert stats["hits"] >= 4 and stats["pid"] == t.pid


def test_failed_refresh_leaves_the_service_unchanged(flask_service):
    t = flask_service
    assert pyhot("attach", t.pid).rc == 0
    assert pyhot("status", t.pid).rc == 0
    edit(t.views, 'return "Hello"', 'return "Broken" +')
    r = pyhot("refresh", t.pid, "flask_demo.views")
    assert r.rc == 1, r
    assert "views.py" in r.err and "unchanged" in r.err, r
    j = pyhot("refresh", t.pid, "flask_demo.views", json_out=True)
    assert j.rc == 1 and j.json["error"]["kind"] == "failed", j
    assert get(t.url + "/hello/bob") == "Hello, bob!\n"
