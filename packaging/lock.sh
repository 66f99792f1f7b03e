#!/bin/sh
# Write packaging/constraints.txt: the exact versions `make` installs (the suite, the bundle
# and CI run on these). Made from a venv that was installed from pyproject.toml's ranges
# alone, so it records what a fresh install picks today:
#   packaging/lock.sh .venv-fresh      (run from the repository root; `make lock` does it all)
# torch is left out (the Makefile picks its build per machine, TORCH_VERSION), and so are
# the lab itself and pip's own tools. Each line applies on Python >= 3.11, where they were
# tested; on 3.10 pyproject.toml's ranges apply.
set -eu
VENV="$1"
OUT=packaging/constraints.txt
{
  echo "# Made by packaging/lock.sh on $(date -u +%Y-%m-%d) with Python $("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])'): the versions make installs."
  echo "# Refresh with \`make lock\`; install without it with \`make run CONSTRAINTS=\`."
  "$VENV/bin/python" -m pip --disable-pip-version-check list --format=freeze 2>/dev/null \
    | grep -v -i -E '^(torch|nvidia-[a-z0-9-]+|triton|transformer-visual-lab|pip|setuptools|wheel)==' \
    | sed 's/$/ ; python_version >= "3.11"/'
} > "$OUT.part"
mv "$OUT.part" "$OUT"
echo "lock: wrote $OUT ($(grep -c '==' "$OUT") packages)"
