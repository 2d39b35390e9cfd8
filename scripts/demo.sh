#!/bin/bash
# pyhot demo: start a real Flask service, attach to it, look at it, change a
# view in its source and put the change into the running process.
#
#   PYHOT_BUILD=build scripts/demo.sh      (make demo does this)
#
# Everything runs in a temporary copy of tests/apps; the service and the
# copy are removed on exit, whatever happens.
set -u

here=$(cd "$(dirname "$0")/.." && pwd)
build=${PYHOT_BUILD:-$here/build}
pyhot=$build/pyhot
py=${DEMO_PYTHON:-$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.11.*/bin/python3.11 2>/dev/null | head -1)}
port=${DEMO_PORT:-$((20000 + RANDOM % 20000))}
url=http://127.0.0.1:$port

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
	b=$'\033[1m' d=$'\033[2m' g=$'\033[32m' r=$'\033[0m'
else
	b= d= g= r=
fi
step() { printf '\n%s== %s%s\n' "$b" "$*" "$r"; }
run() { printf '%s$ %s%s\n' "$d" "$*" "$r"; "$@"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

[ -x "$pyhot" ] || die "no $pyhot: run make first"
[ -n "$py" ] && [ -x "$py" ] || die "no pyenv Python 3.11 with Flask (set DEMO_PYTHON)"
"$py" -c 'import flask' 2>/dev/null || die "$py has no Flask (set DEMO_PYTHON)"
command -v curl >/dev/null || die "curl is missing"

tmp=$(mktemp -d /tmp/pyhot-demo.XXXXXX)
pid=
sock=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	# A killed agent cannot remove its socket: do it for it.
	[ -n "$sock" ] && rm -f "$sock"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "1. start a Flask service (Python $("$py" -c 'import sys; print(sys.version.split()[0])'), port $port) from a copy of tests/apps"
cp -r "$here/tests/apps/." "$tmp/"
"$py" "$tmp/flask_app.py" "$port" >"$tmp/service.log" 2>&1 &
pid=$!
# The agent's socket path, derived where the tests derive it.
sock=$("$py" -c 'import sys; sys.path.insert(0, sys.argv[1])
from pyhot_testlib import sock_path; print(sock_path(int(sys.argv[2])))' "$here/tests" "$pid")
for _ in $(seq 1 200); do
	grep -q '^ready' "$tmp/service.log" 2>/dev/null && break
	kill -0 "$pid" 2>/dev/null || { cat "$tmp/service.log"; die "the service did not start"; }
	sleep 0.05
done
grep -q '^ready' "$tmp/service.log" || die "the service did not say ready"
echo "service pid $pid, source in $tmp/flask_demo"

step "2. the service answers"
run curl -s "$url/"
run curl -s "$url/hello/world"

step "3. pyhot attach: load the agent into the running process (one thread borrowed for a few milliseconds)"
run "$pyhot" attach "$pid" || die "attach failed"

step "4. pyhot status: a round trip through a safe point in the interpreter"
run "$pyhot" status "$pid" || die "status failed"

step "5. edit the view in the service's source: greeting() now says 'Hot-patched hello'"
before=$(curl -s "$url/hello/world")
sed -i 's/return "Hello"/return "Hot-patched hello"/' "$tmp/flask_demo/views.py"
diff -u "$here/tests/apps/flask_demo/views.py" "$tmp/flask_demo/views.py" | sed -n '3,$p'

step "6. pyhot refresh --dry-run: what would change (nothing is changed yet)"
printf '%s$ %s%s\n' "$d" "$pyhot refresh $pid flask_demo.views --dry-run" "$r"
"$pyhot" refresh "$pid" flask_demo.views --dry-run 2>"$tmp/refresh.err"
rc=$?
cat "$tmp/refresh.err" >&2
if [ $rc -ne 0 ] && grep -q "unknown verb\|no patch engine" "$tmp/refresh.err"; then
	echo
	echo "pyhot refresh is not there yet in this build (the agent has no patch engine):"
	echo "the demo stops here. The service kept running untouched; it answers as before:"
	run curl -s "$url/hello/world"
	exit 0
fi
[ $rc -eq 0 ] || die "refresh --dry-run failed (exit $rc)"

step "7. pyhot refresh: put the change into the running process"
run "$pyhot" refresh "$pid" flask_demo.views || die "refresh failed"

step "8. the same service, same pid, new code"
after=$(curl -s "$url/hello/world")
printf 'before: %s\nafter:  %s\n' "$before" "$after"
kill -0 "$pid" || die "the service died"
run curl -s "$url/stats"
echo
[ "$before" != "$after" ] || die "the answer did not change"

step "9. pyhot rollback: take the refresh back (same objects, nothing re-run)"
run "$pyhot" rollback "$pid" flask_demo.views || die "rollback failed"
back=$(curl -s "$url/hello/world")
printf 'after rollback: %s\n' "$back"
[ "$back" = "$before" ] || die "the rollback did not bring the old answer back"
run "$pyhot" status "$pid"
printf '%sdone: pid %s ran the new view, then the old one again, without a restart%s\n' \
	"$g" "$pid" "$r"
