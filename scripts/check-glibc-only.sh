#!/bin/sh
# Fail unless the ELF files given need no shared library but glibc's: what
# the wheel promises (manylinux_2_34: glibc 2.34 or newer, nothing else).
#   scripts/check-glibc-only.sh FILE...
set -eu
glibc='^(linux-vdso\.so\.1|libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|/lib64/ld-linux-x86-64\.so\.2|ld-linux-x86-64\.so\.2)$'
status=0
for f in "$@"; do
	other=$(env -u LD_PRELOAD ldd "$f" | awk '{print $1}' | grep -Ev "$glibc" || true)
	if [ -n "$other" ]; then
		echo "check-glibc-only: $f needs more than glibc:" $other >&2
		status=1
	fi
done
exit $status
