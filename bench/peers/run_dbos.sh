#!/usr/bin/env bash
# Run the DBOS peer workloads W1-W4, one process each, printing one JSON line per workload.
#
#   bench/peers/run_dbos.sh [extra args for dbos_workloads.py, e.g. --scale 0.1]
#
# DBOS lives in its own virtual environment (bench/.venv-dbos), created here on first use;
# it is never installed into the project's environment. Progress logs go to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench="$(dirname "$here")"
venv="$bench/.venv-dbos"
req="$here/requirements-dbos.txt"
py="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
    echo "creating $venv" >&2
    "$py" -m venv "$venv"
fi
# Reinstall only when the pinned requirements changed since the last install.
stamp="$venv/.requirements-dbos.txt"
if ! cmp -s "$req" "$stamp"; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
    cp "$req" "$stamp"
fi

workloads="${WORKLOADS:-W1 W2 W3 W4}"
status=0
for w in $workloads; do
    dir="$(mktemp -d "${TMPDIR:-/tmp}/dbos-bench-$w.XXXXXX")"
    echo "running $w in $dir" >&2
    # timeout is a backstop only: the script caps itself at ~5 minutes.
    if ! timeout 330 "$venv/bin/python" "$here/dbos_workloads.py" --workload "$w" --dir "$dir" "$@"; then
        echo "$w exited with an error" >&2
        status=1
    fi
    rm -rf "$dir"
done
exit "$status"
