#!/usr/bin/env bash
# The Autobahn TestSuite (fuzzing client) against omnicast's own WebSocket code: the conformance
# echo `omnicast-echo` (bench/src/bin/omnicast-echo.rs) serves every connection with the
# handshake checks, connection driver and frame queue `/ws` uses. Sections 1-7 and 9 by default
# (12 and 13 are permessage-deflate, which omnicast does not offer).
#
#   bash bench/autobahn/run.sh                 # sections 1-7 and 9 (about 4 minutes)
#   bash bench/autobahn/run.sh --cases '1.*,2.*'
#   bash bench/autobahn/run.sh --debug --cases '1.*,2.*,3.*,4.*,5.*,6.*,7.*'   # what CI runs
#
# Needs Python 2.7 (the suite is Python 2 only): $PYTHON2, else pyenv's 2.7, else python2.7. The
# suite is installed from PyPI into target/autobahn/site on first use. Writes the HTML/JSON
# report to target/autobahn/report and prints the summary (bench/autobahn/summary.py), failing
# on any case that is not OK or one of the explained NON-STRICT/INFORMATIONAL ones.
set -euo pipefail
cd "$(dirname "$0")/../.."

cases='1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*'
profile=release
while (($#)); do
  case "$1" in
    --cases) cases="$2"; shift 2 ;;
    # A debug build (quicker to make), for the sections that do not measure speed.
    --debug) profile=debug; shift ;;
    *) echo "usage: $0 [--debug] [--cases '1.*,2.*']" >&2; exit 2 ;;
  esac
done

python2=${PYTHON2:-}
if [[ -z $python2 ]]; then
  for candidate in "$(pyenv root 2>/dev/null)/versions/2.7.18/bin/python" "$(command -v python2.7 || true)"; do
    if [[ -x $candidate ]]; then python2=$candidate; break; fi
  done
fi
if [[ -z $python2 ]]; then
  echo "error: the Autobahn TestSuite needs Python 2.7; set PYTHON2 to one" >&2
  exit 1
fi

work=target/autobahn
mkdir -p "$work"
site=$work/site
if [[ ! -d $site/autobahntestsuite ]]; then
  echo "installing autobahntestsuite into $site"
  "$python2" -m pip install --quiet --target "$site" autobahntestsuite
fi

if [[ $profile == release ]]; then
  cargo build --quiet --release -p omnicast-bench --features conformance --bin omnicast-echo
else
  cargo build --quiet -p omnicast-bench --features conformance --bin omnicast-echo
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"target/$profile/omnicast-echo" --listen "127.0.0.1:$port" > "$work/echo.log" 2>&1 &
echo_pid=$!
trap 'kill $echo_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  if grep -q listening "$work/echo.log"; then break; fi
  sleep 0.1
done

rm -rf "$work/report"
case_list=$(python3 -c 'import json, sys; print(json.dumps(sys.argv[1].split(",")))' "$cases")
cat > "$work/spec.json" <<SPEC
{"outdir": "./report", "servers": [{"agent": "omnicast", "url": "ws://127.0.0.1:$port"}],
 "cases": $case_list, "exclude-cases": [], "exclude-agent-cases": {}}
SPEC
(
  cd "$work"
  "$python2" -c "import site, sys; site.addsitedir('site'); from autobahntestsuite.wstest import run; sys.argv[0] = 'wstest'; run()" \
    -m fuzzingclient -s spec.json > wstest.log 2>&1
)
python3 bench/autobahn/summary.py "$work/report/index.json"
