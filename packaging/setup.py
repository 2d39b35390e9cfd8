"""setup.py: the pyhot wheel, built by scripts/build-wheel.sh (make wheel)
from a staging folder that holds this file and data/ (the command, the
payload, the man page, the bash completion).

The wheel installs the layout `make install` gives, under the environment's
prefix (a venv, ~/.local, /usr/local): bin/pyhot, lib/pyhot/pyhot-payload.so,
share/man/man1/pyhot.1, share/bash-completion/completions/pyhot. The command
finds its payload at ../lib/pyhot/ from its own real path, as after make
install. A Python package named pyhot placed next to this file (copied from
build/python/pyhot by build-wheel.sh) goes into the wheel as is.
"""
import os
import re

from setuptools import setup
from wheel.bdist_wheel import bdist_wheel
# setuptools has no build_scripts of its own: distutils' (setuptools' copy).
from distutils.command.build_scripts import build_scripts  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# The command is linked with glibc only, and needs symbols up to GLIBC_2.34
# (scripts/check-glibc-only.sh checks the first, test_packages.py the second).
PLATFORM = "manylinux_2_34_x86_64"


def data(*names):
    return [os.path.join("data", n) for n in names]


def version():
    with open(os.path.join(HERE, "data", "VERSION")) as f:
        v = f.read().strip()
    assert re.match(r"^\d+\.\d+\.\d+$", v), v
    return v


class build_scripts_verbatim(build_scripts):
    """The pyhot command is an ELF executable: copy it as it is (setuptools
    would read it as text, looking for a #! line to rewrite)."""

    def run(self):
        self.mkpath(self.build_dir)
        for script in self.scripts:
            self.copy_file(script, os.path.join(self.build_dir, os.path.basename(script)))


class bdist_wheel_native(bdist_wheel):
    """Any Python 3 (the command runs no Python), x86_64 glibc Linux only."""

    def get_tag(self):
        return "py3", "none", PLATFORM


def python_packages():
    """The pyhot Python package, when the staging folder has one."""
    if os.path.isfile(os.path.join(HERE, "pyhot", "__init__.py")):
        return ["pyhot"] + ["pyhot." + d for d in sorted(os.listdir(os.path.join(HERE, "pyhot")))
                            if os.path.isfile(os.path.join(HERE, "pyhot", d, "__init__.py"))]
    return []


with open(os.path.join(HERE, "data", "README.md")) as f:
    long_description = f.read()

setup(
    name="pyhot",
    version=version(),
    description="Patch a running CPython process in place, from outside, without restarting it",
    long_description=long_description,
    long_description_content_type="text/markdown",
    python_requires=">=3.8",
    platforms=["Linux x86_64"],
    classifiers=[
        "Operating System :: POSIX :: Linux",
        "Programming Language :: C",
        "Programming Language :: Python :: Implementation :: CPython",
        "Topic :: Software Development :: Debuggers",
    ],
    packages=python_packages(),
    # The package's extension is the payload itself (one engine, one build id).
    package_data={"pyhot": ["_pyhot.abi3.so"]} if python_packages() else {},
    py_modules=[],
    scripts=data("pyhot"),
    data_files=[
        ("lib/pyhot", data("pyhot-payload.so")),
        ("share/man/man1", data("pyhot.1")),
        ("share/bash-completion/completions", data("bash-completion/pyhot")),
    ],
    cmdclass={"build_scripts": build_scripts_verbatim, "bdist_wheel": bdist_wheel_native},
    zip_safe=False,
)
