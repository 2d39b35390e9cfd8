"""The payload's binary interface: two exports, libc only, never unloaded,
and every Python symbol it needs is exported by every interpreter here."""

import os
import subprocess

import pytest

from conftest import INTERPRETERS
from pyhot_testlib import PAYLOAD, libpython

pytestmark = pytest.mark.skipif(not os.path.exists(PAYLOAD),
                                reason="payload not built: make all")


def run(*argv):
    return subprocess.run(argv, capture_output=True, text=True, check=True,
                          timeout=60).stdout


def dynsyms(path, *flags):
    out = run("nm", "-D", *flags, path)
    return {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}


def test_exports_only_the_boot_and_module_init_functions():
    # pyhot_boot for the injector; PyInit__pyhot because the same file is
    # the pyhot package's extension module (pyhot/_pyhot.abi3.so)
    assert dynsyms(PAYLOAD, "--defined-only") == {"pyhot_boot", "PyInit__pyhot"}


def test_needs_libc_only():
    needed = [line.split("[")[1].rstrip("]") for line in
              run("readelf", "-d", PAYLOAD).splitlines() if "(NEEDED)" in line]
    # make SANITIZE=undefined adds the UBSan runtime, and nothing else may.
    assert [n for n in needed if not n.startswith("libubsan.")] == ["libc.so.6"]


def test_is_never_unloaded():
    flags = [line for line in run("readelf", "-d", PAYLOAD).splitlines()
             if "(FLAGS_1)" in line]
    assert flags and "NODELETE" in flags[0]


def interpreter_images():
    """The file each interpreter exports its C API from."""
    images = [libpython(path) for _, path in INTERPRETERS]
    return [i for i in images if i]


@pytest.mark.parametrize("image", interpreter_images(), ids=os.path.basename)
def test_every_python_symbol_resolves(image):
    wanted = {s for s in dynsyms(PAYLOAD, "--undefined-only")
              if s.startswith(("Py", "_Py"))}
    assert wanted, "the payload uses no Python symbol?"
    missing = wanted - dynsyms(image, "--defined-only")
    assert not missing, "%s lacks %s" % (image, sorted(missing))
