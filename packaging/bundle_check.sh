#!/bin/sh
# Check the PyInstaller bundle the way a workshop machine runs it: no Python on the PATH,
# a bare environment (env -i), offscreen, no network where the kernel lets us cut it
# (unshare -n), started from another folder, and nothing written beside the program.
#   packaging/bundle_check.sh [BUNDLE_DIR]      (`make bundle-check` calls it)
set -eu
BUNDLE=$(cd "${1:-dist/tvlab}" && pwd)
EXE="$BUNDLE/tvlab"
[ -x "$EXE" ] || { echo "bundle-check: no bundle at $BUNDLE: run make bundle first" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/empty-bin" "$WORK/home" "$WORK/cwd"
OUT="$WORK/shots"

if env -i PATH="$WORK/empty-bin" sh -c 'command -v python3 || command -v python' >/dev/null 2>&1; then
  echo "bundle-check: a Python is still on the PATH" >&2; exit 1
fi
# Where the kernel lets us (root, or user namespaces): no network interface at all, and
# the bundle's folder mounted read-only, as on a workshop machine's shared disk.
NET=""
RO=""
NONET=""
if unshare -n true 2>/dev/null; then NET="unshare -n"; NONET=1; fi
if unshare -m sh -c "mount --bind '$BUNDLE' '$BUNDLE' && mount -o remount,bind,ro '$BUNDLE'" 2>/dev/null; then
  RO="mount --bind '$BUNDLE' '$BUNDLE' && mount -o remount,bind,ro '$BUNDLE' &&"
  NET="unshare -m${NET:+ -n}"
fi
run_bundle() {   # run_bundle ARGS...: the bundle in a bare environment
  # shellcheck disable=SC2086
  $NET sh -c "$RO exec env -i PATH='$WORK/empty-bin' HOME='$WORK/home' LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen \"$EXE\" \"\$@\"" tvlab "$@"
}

touch "$WORK/stamp"
sleep 1
cd "$WORK/cwd"
start=$(date +%s)
run_bundle selftest --out "$OUT" --json > "$WORK/selftest.json" || {
    cat "$WORK/selftest.json" >&2; echo "bundle-check: selftest FAILED" >&2; exit 1; }
end=$(date +%s)
cat "$WORK/selftest.json"
run_bundle startup --json || { echo "bundle-check: startup FAILED" >&2; exit 1; }
# The Precision converter: an ONNX export and an int8 file (the exporter compiles onnxscript
# functions from their source, which a bundle must carry), and the hidden command the GUI
# starts its conversion process with answers in its JSON protocol.
run_bundle convert --model zoo:bard-gpt --out "$WORK/onnx" --precisions fp32,int8 > "$WORK/convert.txt" 2>&1 || {
    cat "$WORK/convert.txt" >&2; echo "bundle-check: convert FAILED" >&2; exit 1; }
[ -s "$WORK/onnx/model-fp32.onnx" ] && [ -s "$WORK/onnx/model-int8.onnx" ] || {
    echo "bundle-check: convert wrote no ONNX files" >&2; exit 1; }
echo "not a request" | run_bundle _convert-child 2>/dev/null | grep -q '"bad request' || {
    echo "bundle-check: the conversion process command did not answer" >&2; exit 1; }

written=$(find "$BUNDLE" -newer "$WORK/stamp" | head -5)
if [ -n "$written" ]; then
  echo "bundle-check: the program wrote beside itself:" >&2; echo "$written" >&2; exit 1
fi
if [ -n "$(ls -A "$WORK/cwd")" ]; then
  echo "bundle-check: the program wrote into the folder it was started from:" >&2; ls -A "$WORK/cwd" >&2; exit 1
fi
echo "bundle-check: OK — selftest passed in $((end - start)) s and an fp32 + int8 conversion worked, with no Python on the PATH${NONET:+, no network}${RO:+, the program on a read-only mount}; nothing written beside the program ($(du -sh "$BUNDLE" | cut -f1) unpacked)"
