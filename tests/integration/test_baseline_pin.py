"""The attach baseline in steps (payload/patch/baseline_scan.c): the modules
are listed at the safe point and their files pinned (stat); the texts are
read without the GIL (`pyhot attach` waits for the user's own files only;
the standard library's and site-packages' are read after it returned). A
file edited between the pin and the read must not become a trusted
baseline, even when the edit kept the old mtime (cp -p, rsync -t, tar): its
ctime moved. The steps run one at a time through the engine's test entry
point, with the edit in between, on every interpreter."""
import json
import os
import subprocess
import textwrap

import pytest

from pyhot_testlib import BUILD

ENGINE_SO = os.path.join(BUILD, "tests", "pyhot-engine-test.so")

CHILD = textwrap.dedent('''
    import ctypes, json, os, sys
    tmp, edit_at = sys.argv[1], sys.argv[2]
    sys.path.insert(0, tmp)
    path = os.path.join(tmp, "pinmod.py")
    old = os.stat(path)
    import pinmod
    lib = ctypes.PyDLL(sys.argv[3])
    lib.pyhot_test_baseline_list.restype = ctypes.c_void_p
    for f in ("pin", "keep"):
        getattr(lib, "pyhot_test_baseline_" + f).argtypes = [ctypes.c_void_p]
    lib.pyhot_test_baseline_read.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.pyhot_test_refresh.restype = ctypes.c_void_p
    lib.pyhot_test_refresh.argtypes = [ctypes.c_char_p, ctypes.c_int]
    lib.pyhot_test_free.argtypes = [ctypes.c_void_p]

    NEW = open(path).read().replace("return 1", "return 2")

    def edit():
        # Same size, same mtime as before: only ctime tells.
        with open(path, "w") as fh:
            fh.write(NEW)
        os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))

    p = lib.pyhot_test_baseline_list()
    assert p, "list failed"
    if edit_at == "before-pin":
        edit()
    lib.pyhot_test_baseline_pin(p)
    if edit_at == "after-pin":
        edit()
    lib.pyhot_test_baseline_read(p, 1)   # the user's files (pinmod)
    lib.pyhot_test_baseline_read(p, 0)   # the rest
    assert lib.pyhot_test_baseline_keep(p) == 0
    r = lib.pyhot_test_refresh(b"pinmod", 0)
    out = json.loads(ctypes.string_at(r).decode())
    lib.pyhot_test_free(r)
    print(json.dumps({"refresh": out, "f": pinmod.f()}))
''')

SOURCE = "def f():\n    return 1\n"


def run(python, tmp_path, edit_at):
    mod = tmp_path / "pinmod.py"
    mod.write_text(SOURCE)
    # Older than the process: a baseline read from it unchanged is trusted.
    hour_ago = os.stat(str(mod)).st_mtime_ns - 3600 * 10**9
    os.utime(str(mod), ns=(hour_ago, hour_ago))
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    p = subprocess.run([python, "-B", str(script), str(tmp_path), edit_at, ENGINE_SO],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def changed_f(res):
    out = res["refresh"]
    assert out["ok"], out
    assert not out["exception_left_set"]
    return [c for m in out.get("modules", []) if m["module"] == "pinmod"
            for c in m["changes"] if c["name"] == "pinmod.f" and c["action"] == "changed"]


pytestmark = pytest.mark.skipif(not os.path.exists(ENGINE_SO),
                                reason="engine test object not built: make check-integration")


def test_unchanged_file_is_a_trusted_baseline(python, tmp_path):
    res = run(python, tmp_path, "none")
    assert changed_f(res) == []
    assert res["f"] == 1


def test_edit_after_the_pin_is_seen_though_mtime_was_kept(python, tmp_path):
    """A trusted baseline of the edited text would make the refresh say
    "no change" while f still returns 1."""
    res = run(python, tmp_path, "after-pin")
    assert len(changed_f(res)) == 1, res
    assert res["f"] == 2
