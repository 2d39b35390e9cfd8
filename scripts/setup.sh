#!/bin/sh
# Install the Debian packages pyhot needs to build and test, if any is
# missing. As root it runs apt-get; otherwise it prints the exact line to run.
# The packaging tools are part of it: make check builds and tests the wheel
# and the Debian package. --lint adds lintian (for checking the .deb by hand).
set -u
pkgs="gcc make pkg-config libelf-dev libjson-c-dev libunwind-dev libcmocka-dev
python3-dev python3-pytest gdb procps
binutils zlib1g-dev liblzma-dev python3-build python3-wheel python3-setuptools
debhelper dpkg-dev fakeroot"
[ "${1:-}" = "--lint" ] && pkgs="$pkgs lintian"
missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "pyhot: missing Debian packages:$missing" >&2
	echo "run: sudo apt-get update && sudo apt-get install -y$missing" >&2
	exit 1
fi
echo "pyhot: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null && apt-get install -y -q $missing >/dev/null || {
	echo "pyhot: apt-get install$missing failed" >&2
	exit 1
}
