#!/bin/sh
# run.sh - build the libFuzzer targets and run one.
#
#   tests/fuzz/run.sh TARGET [SECONDS] [BUILD_DIR]
#
# TARGET is fuzz_safetensors, fuzz_config, fuzz_tokenizer, fuzz_bundle or fuzz_gguf.  The targets are
# built with clang (configure --enable-fuzzing CC=clang) in BUILD_DIR
# (default /tmp/ptqc-fuzz-build), out of tree, and run for SECONDS (default
# 60) over a scratch copy of tests/fuzz/corpus/<name>/ (<name> = TARGET
# without "fuzz_").  New findings (crash-*, leak-*, timeout-*) are written to
# BUILD_DIR/findings/TARGET/.  Extra libFuzzer flags: $FUZZ_FLAGS.
set -eu

usage() {
    echo "usage: $0 TARGET [SECONDS] [BUILD_DIR]" >&2
    echo "targets: fuzz_safetensors fuzz_config fuzz_tokenizer fuzz_bundle fuzz_gguf" >&2
    exit 2
}

[ $# -ge 1 ] || usage
target=$1
seconds=${2:-60}
build=${3:-/tmp/ptqc-fuzz-build}
case $target in
fuzz_safetensors | fuzz_config | fuzz_tokenizer | fuzz_bundle | fuzz_gguf) ;;
*) usage ;;
esac
case $seconds in
'' | *[!0-9]*) usage ;;
esac

srcdir=$(cd "$(dirname "$0")/../.." && pwd)
name=${target#fuzz_}
mkdir -p "$build"
build=$(cd "$build" && pwd)

if [ ! -f "$build/Makefile" ]; then
    # the library itself carries the coverage and sanitizer instrumentation;
    # static, so a target links only the objects it uses
    (cd "$build" && CC=clang \
        CFLAGS="-g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer" \
        "$srcdir/configure" -q --enable-fuzzing --without-cuda --disable-shared --enable-static)
fi
(cd "$build" && make -s "tests/fuzz/$target")

work="$build/corpus/$target"
findings="$build/findings/$target"
mkdir -p "$work" "$findings"
if [ -d "$srcdir/tests/fuzz/corpus/$name" ]; then
    cp "$srcdir/tests/fuzz/corpus/$name"/* "$work"/ 2>/dev/null || true
fi
cd "$findings"
# shellcheck disable=SC2086
exec "$build/tests/fuzz/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 ${FUZZ_FLAGS:-} "$work"
