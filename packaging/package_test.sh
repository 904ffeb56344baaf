#!/usr/bin/env bash
# Extract the archive into an empty folder and run its self-test with a clean environment:
# no project venv, no Python on PATH, an empty HOME (so no cached models or settings).
# Then run the bundled QA example suite (`conversimple-studio test`), and open the window offscreen once (`--quit-after-shown` builds every panel, so a Qt module
# missing from the bundle fails here, not on a QA machine); skipped without libGL/libEGL.
#   packaging/package_test.sh dist/conversimple-studio-VERSION-linux-x86_64.tar.gz [OUTPUT_DIR]
set -euo pipefail
archive=$(realpath "$1")
out=$(realpath -m "${2:-artifacts/package-self-test}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/home" "$out"
SECONDS=0
tar -C "$tmp" -xzf "$archive"
echo "extracted in ${SECONDS} s into $tmp"
SECONDS=0
status=0
env -i HOME="$tmp/home" PATH=/usr/bin:/bin LANG=C.UTF-8 \
    "$tmp/conversimple-studio/conversimple-studio" --self-test --output-dir "$out" || status=$?
echo "self-test exited $status after ${SECONDS} s (files in $out)"
if [ "$status" -eq 0 ]; then
    # The QA runner without Python: the bundled example suite for the seed agent (docs/qa.md).
    suite=$(find "$tmp/conversimple-studio" -type d -path '*/resources/scenarios/seed' | head -n 1)
    SECONDS=0
    env -i HOME="$tmp/home" PATH=/usr/bin:/bin LANG=C.UTF-8 \
        "$tmp/conversimple-studio/conversimple-studio" test "$suite" --report-dir "$out/qa" || status=$?
    echo "QA example suite exited $status after ${SECONDS} s (reports in $out/qa)"
fi
if [ "$status" -eq 0 ]; then
    if ls /usr/lib/x86_64-linux-gnu/libGL.so.1 /usr/lib/x86_64-linux-gnu/libEGL.so.1 >/dev/null 2>&1; then
        env -i HOME="$tmp/home" PATH=/usr/bin:/bin LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen \
            "$tmp/conversimple-studio/conversimple-studio" --quit-after-shown || status=$?
        echo "window check (offscreen) exited $status"
    else
        echo "window check skipped: this host has no libGL/libEGL (apt-get install libgl1 libegl1)"
    fi
fi
cp -f "$tmp/home/.local/share/conversimple-studio/logs/conversimple-studio.log" "$out/" 2>/dev/null || true
exit "$status"
