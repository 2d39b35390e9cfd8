#!/bin/sh
# Build the pyhot Debian package from the checkout: debian/rules packages
# the files make built in build/pkg (the wheel's), then dh_clean removes
# what dh left in debian/. The .deb (and its -dbgsym) go to OUTDIR.
#   scripts/build-deb.sh VERSION OUTDIR
set -eu
version=$1 out=$2
root=$(cd "$(dirname "$0")/.." && pwd)
hint="install Debian's debhelper dpkg-dev fakeroot (scripts/setup.sh installs them)"
for tool in dh dpkg-deb dpkg-parsechangelog fakeroot; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "build-deb: $tool is missing" >&2
		echo "hint: $hint" >&2
		exit 1
	fi
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$root"
changelog=$(dpkg-parsechangelog -S Version)
if [ "$changelog" != "$version" ]; then
	echo "build-deb: debian/changelog is at $changelog, cli/cli.h at $version" >&2
	echo "hint: add a debian/changelog entry for $version (dch -v $version)" >&2
	exit 1
fi
rm -f "$out"/pyhot_"$version"_*.deb "$out"/pyhot-dbgsym_"$version"_*.deb
status=0
{ debian/rules build && fakeroot debian/rules binary PKG_OUT="$out"; } >"$out/deb.log" 2>&1 ||
	status=$?
dh_clean >/dev/null 2>&1 || true
if [ $status -ne 0 ]; then
	cat "$out/deb.log" >&2
	exit $status
fi
ls "$out"/pyhot_"$version"_*.deb
