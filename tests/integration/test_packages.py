"""The packages, installed the way users install them: `make wheel` and
`make deb` built from the checkout; the wheel installed by pip into fresh
venvs of two interpreters, the .deb unpacked into a scratch root
(dpkg-deb -x). Each installed pyhot attaches to a real target, refreshes a
module and rolls it back, run by name from a directory outside the checkout.
Also: the wheel's command needs glibc only (up to GLIBC_2.34, its
manylinux_2_34 tag), --version is one build in both packages, and a payload
from another build is refused. A missing packaging tool fails the build
with its install hint: these tests never skip."""
import glob
import os
import re
import shutil
import subprocess

import pytest

from conftest import BUILD, DEFAULT_PY, INTERPRETERS, REPO
from test_cli_rollback import module_src, value_is
from test_cli_watch import MAIN   # prints hotmod.value() when it changes

DIST = os.path.join(BUILD, "pkg", "dist")
# The interpreters whose venvs get the wheel: the oldest and newest supported.
VENV_PYS = [p for n, p in INTERPRETERS if n in ("3.8", "3.12")] or \
    [INTERPRETERS[0][1], INTERPRETERS[-1][1]]
GLIBC_ONLY = {"linux-vdso.so.1", "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2",
              "librt.so.1", "/lib64/ld-linux-x86-64.so.2"}
REFUSED = "is not the payload built with this pyhot"


def version_h():
    with open(os.path.join(REPO, "cli", "cli.h")) as f:
        return re.search(r'#define PYHOT_VERSION "([^"]+)"', f.read()).group(1)


def run(argv, **kw):
    kw.setdefault("timeout", 300)
    return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, **kw)


class Install:
    """One installed pyhot: bin is the folder that holds the command."""

    def __init__(self, name, bin_dir, prefix):
        self.name, self.bin, self.prefix = name, bin_dir, prefix
        self.exe = os.path.join(bin_dir, "pyhot")
        self.payload = os.path.join(prefix, "lib", "pyhot", "pyhot-payload.so")

    def pyhot(self, *args, cwd, env=None):
        """Run `pyhot ARGS` found on PATH (this install's bin first)."""
        e = dict(os.environ)
        e.pop("PYHOT_PAYLOAD", None)
        e["PATH"] = self.bin + os.pathsep + e.get("PATH", "")
        e.update(env or {})
        return run(["pyhot"] + [str(a) for a in args], cwd=cwd, env=e, timeout=60)


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """{name: Install}: the wheel in a venv per VENV_PYS, the .deb unpacked."""
    top = tmp_path_factory.mktemp("packages")
    # The venvs are made while make builds the packages.
    venvs = {}
    for py in VENV_PYS:
        d = str(top / ("venv-" + os.path.basename(py)))
        venvs[d] = subprocess.Popen([py, "-m", "venv", d], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, universal_newlines=True)
    make = ["make", "-C", REPO, "-j2", "wheel", "deb"]
    if os.path.realpath(BUILD) != os.path.realpath(os.path.join(REPO, "build")):
        make.append("B=" + BUILD)
    r = run(make)
    for p in venvs.values():
        p.wait(timeout=300)
    assert r.returncode == 0, "make wheel deb failed:\n" + r.stdout[-4000:]
    version = version_h()
    wheels = glob.glob(os.path.join(DIST, "pyhot-%s-py3-none-*.whl" % version))
    debs = glob.glob(os.path.join(DIST, "pyhot_%s_amd64.deb" % version))
    assert len(wheels) == 1 and len(debs) == 1, os.listdir(DIST)
    found = {}
    for d, p in venvs.items():
        assert p.returncode == 0, p.stdout.read()
        pip = run([os.path.join(d, "bin", "pip"), "install", "-q", "--no-index", wheels[0]])
        assert pip.returncode == 0, pip.stdout
        found["wheel-" + os.path.basename(d)[len("venv-python"):]] = \
            Install("wheel", os.path.join(d, "bin"), d)
    root = str(top / "root")
    x = run(["dpkg-deb", "-x", debs[0], root])
    assert x.returncode == 0, x.stdout
    found["deb"] = Install("deb", os.path.join(root, "usr", "bin"), os.path.join(root, "usr"))
    found["files"] = (wheels[0], debs[0])
    return found


def installs(packages):
    return {k: v for k, v in packages.items() if k != "files"}


def test_deb_puts_the_python_package_where_debians_python_finds_it(packages):
    """Everything under /usr, the package in /usr/lib/python3/dist-packages
    (not the purelib of whatever python3 was on PATH at build time), and
    Debian's python3 imports it, the pytest plugin included."""
    deb = packages["files"][1]
    names = run(["dpkg-deb", "-c", deb]).stdout.split("\n")
    paths = [ln.split()[-1] for ln in names if ln.strip()]
    assert [p for p in paths if not p.startswith("./usr/") and p != "./"] == [], paths
    site = os.path.join(packages["deb"].prefix, "lib", "python3", "dist-packages")
    for f in ("__init__.py", "pytest.py", "_pyhot.abi3.so"):
        assert os.path.isfile(os.path.join(site, "pyhot", f)), f
    r = run(["/usr/bin/python3", "-c", "import pyhot, pyhot.pytest; print(pyhot.__file__, "
             "pyhot.refresh()['modules'])"], env={"PYTHONPATH": site}, cwd="/")
    assert r.returncode == 0 and r.stdout.split() == [
        os.path.join(site, "pyhot", "__init__.py"), "[]"], r.stdout


def test_wheel_name_and_deb_version(packages):
    whl, deb = packages["files"]
    v = version_h()
    assert os.path.basename(whl) == "pyhot-%s-py3-none-manylinux_2_34_x86_64.whl" % v
    r = run(["dpkg-deb", "-f", deb, "Version", "Depends"])
    assert r.returncode == 0 and ("Version: %s\n" % v) in r.stdout, r.stdout


def test_wheel_command_needs_glibc_only(packages):
    """ldd lists glibc's libraries only, and no symbol is newer than
    GLIBC_2.34 (the manylinux_2_34 tag); the payload needs no more either."""
    inst = packages["wheel-" + os.path.basename(VENV_PYS[0])[len("python"):]]
    for f in (inst.exe, inst.payload):
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)
        r = run(["ldd", f], env=env)
        assert r.returncode == 0, r.stdout
        libs = {line.split()[0] for line in r.stdout.splitlines() if line.strip()}
        assert libs <= GLIBC_ONLY, r.stdout
        r = run(["objdump", "-T", f])
        vers = {tuple(int(x) for x in v.split("."))
                for v in re.findall(r"GLIBC_(\d+\.\d+(?:\.\d+)?)", r.stdout)}
        assert vers and max(vers) <= (2, 34), sorted(vers)


def test_version_is_one_build(packages):
    outs = set()
    for name, inst in installs(packages).items():
        r = inst.pyhot("--version", cwd="/")
        assert r.returncode == 0, (name, r.stdout)
        outs.add(r.stdout)
        # The id the command names is the one of the payload installed with it.
        notes = run(["readelf", "-n", inst.payload]).stdout
        assert "Build ID: " + r.stdout.split("payload build id: ")[1].strip() in notes, name
    assert len(outs) == 1, outs
    out = outs.pop()
    assert out.startswith("pyhot %s\nrevision: " % version_h()), out


def test_files_in_place(packages):
    for name, inst in installs(packages).items():
        man = os.path.join(inst.prefix, "share", "man", "man1", "pyhot.1")
        assert os.path.isfile(man) or os.path.isfile(man + ".gz"), name
        assert os.path.isfile(os.path.join(inst.prefix, "share", "bash-completion",
                                           "completions", "pyhot")), name
        if name != "deb" and shutil.which("man"):
            # man finds the page from PATH: <venv>/bin -> <venv>/share/man.
            r = run(["man", "-w", "pyhot"], env={"PATH": inst.bin + ":/usr/bin:/bin"})
            assert r.stdout.strip() == man, r.stdout
        if name != "deb":
            # What a Python package in the wheel would use to find the command.
            py = os.path.join(inst.bin, "python")
            r = run([py, "-c", "import importlib.metadata as m; print([str(f.locate()) for f in "
                     "m.files('pyhot') if f.name == 'pyhot' and f.parent.name == 'bin'][0])"])
            assert os.path.realpath(r.stdout.strip()) == os.path.realpath(inst.exe), r.stdout
            # The in-process door from the wheel: import pyhot, refresh; the
            # pytest plugin is there too (the venv has no pytest to load it).
            r = run([py, "-c", "import pyhot, importlib.util as u; r = pyhot.refresh(); "
                     "print(r['modules'] == [], pyhot._pyhot.__file__.endswith('_pyhot.abi3.so'), "
                     "u.find_spec('pyhot.pytest') is not None)"], cwd="/")
            assert r.returncode == 0 and r.stdout.split() == ["True"] * 3, r.stdout


@pytest.mark.parametrize("which", ["wheel-0", "wheel-1", "deb"])
def test_attach_refresh_rollback(packages, which, target, tmp_path):
    """From a folder outside the checkout, the installed pyhot (by name, on
    PATH) patches a target and rolls the patch back; a wheel's runs in its
    venv's interpreter."""
    if which == "deb":
        inst, python = packages["deb"], DEFAULT_PY
    else:
        py = VENV_PYS[int(which[-1])]
        inst = packages["wheel-" + os.path.basename(py)[len("python"):]]
        python = os.path.join(inst.bin, "python")
    d = tmp_path / "app"
    d.mkdir()
    (d / "hotmod.py").write_text(module_src(1))
    (d / "main.py").write_text(MAIN % str(d))
    t = target(script=str(d / "main.py"), python=python, cwd=str(d))
    t.seen = 0
    value_is(t, 1)
    r = inst.pyhot("attach", t.pid, cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout
    (d / "hotmod.py").write_text(module_src(2))
    r = inst.pyhot("refresh", t.pid, "hotmod", cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout
    value_is(t, 2)
    r = inst.pyhot("rollback", t.pid, "hotmod", cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout
    value_is(t, 1)
    assert t.proc.poll() is None, t.output()


def test_payload_from_another_build_is_refused(packages, target, tmp_path):
    """A copy of the payload with one byte of its build id changed, and the
    checkout's own build (other flags, other id): attach refuses both with
    exit 3, names both ids, and the target gets no agent."""
    inst = packages["deb"]
    with open(inst.payload, "rb") as f:
        data = bytearray(f.read())
    want = inst.pyhot("--version", cwd="/").stdout.split("payload build id: ")[1].strip()
    at = data.find(bytes.fromhex(want))
    assert at > 0 and data.count(bytes.fromhex(want)) == 1
    data[at] ^= 0xff
    other = tmp_path / "pyhot-payload.so"
    other.write_bytes(bytes(data))
    t = target()
    for payload in (str(other), os.path.join(BUILD, "pyhot-payload.so")):
        r = inst.pyhot("attach", t.pid, cwd=str(tmp_path), env={"PYHOT_PAYLOAD": payload})
        assert r.returncode == 3, r.stdout
        assert REFUSED in r.stdout and want in r.stdout and payload in r.stdout, r.stdout
        assert "same build" in r.stdout, r.stdout
    r = inst.pyhot("status", t.pid, cwd=str(tmp_path))
    assert r.returncode != 0, r.stdout
    assert t.proc.poll() is None, t.output()
