#!/bin/sh
# Build the pyhot wheel from what make built in PKG_B (the statically linked
# command and its payload): stage them with packaging/, then run Debian's
# python3-build offline (no index is ever asked).
#   scripts/build-wheel.sh PKG_B VERSION OUTDIR
set -eu
pkg_b=$1 version=$2 out=$3
root=$(cd "$(dirname "$0")/.." && pwd)
# Debian's python3, the one apt installs python3-build for (not a pyenv shim).
py=${PKG_PYTHON:-/usr/bin/python3}
hint="install Debian's python3-build python3-setuptools python3-wheel (scripts/setup.sh installs them)"
if ! "$py" -c 'import build, setuptools, wheel' 2>/dev/null; then
	echo "build-wheel: $py cannot import build, setuptools and wheel" >&2
	echo "hint: $hint" >&2
	exit 1
fi
stage=$pkg_b/wheel-src
rm -rf "$stage"
mkdir -p "$stage/data/bash-completion" "$out"
cp "$root/packaging/setup.py" "$root/packaging/pyproject.toml" "$stage/"
cp "$root/README.md" "$root/man/pyhot.1" "$stage/data/"
cp "$root/cli/pyhot.bash-completion" "$stage/data/bash-completion/pyhot"
echo "$version" >"$stage/data/VERSION"
# Debug info stays in $pkg_b; stripping keeps the build id notes.
strip --strip-unneeded -o "$stage/data/pyhot" "$pkg_b/pyhot"
strip --strip-unneeded -o "$stage/data/pyhot-payload.so" "$pkg_b/pyhot-payload.so"
chmod 0755 "$stage/data/pyhot"
chmod 0644 "$stage/data/pyhot-payload.so"
# The pyhot Python package, once make builds one ($(B)/python/pyhot).
if [ -f "$pkg_b/../python/pyhot/__init__.py" ]; then
	cp -R "$pkg_b/../python/pyhot" "$stage/pyhot"
	# Its extension is the payload the wheel's command loads: the same file.
	cp "$stage/data/pyhot-payload.so" "$stage/pyhot/_pyhot.abi3.so"
fi
rm -f "$out"/pyhot-"$version"-*.whl
"$py" -m build --no-isolation --wheel --outdir "$out" "$stage" >"$pkg_b/wheel.log" 2>&1 || {
	cat "$pkg_b/wheel.log" >&2
	exit 1
}
ls "$out"/pyhot-"$version"-py3-none-*.whl
