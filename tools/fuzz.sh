#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers (fuzz/, cargo-fuzz + libFuzzer, nightly toolchain).
#
#   tools/fuzz.sh ci          every target for a short fixed budget (FUZZ_CI_SECS, default 20 s)
#   tools/fuzz.sh long        every target to FUZZ_LONG_RUNS executions (default 1,000,000)
#   tools/fuzz.sh run T [..]  one target, extra arguments passed to libFuzzer
#
# Fails on the first crash, leak or timeout; libFuzzer leaves the reproducer in
# fuzz/artifacts/<target>/ (`cargo +nightly fuzz run <target> <file>` replays it).
# The committed seeds (fuzz/seeds/<target>) are read-only input; what a run learns goes to
# target/fuzz-corpus/<target>, outside git. One job per run: the CI machines are small.
set -euo pipefail
cd "$(dirname "$0")/.."

NIGHTLY=${FUZZ_TOOLCHAIN:-nightly}
# Installs cargo-fuzz only when missing (a fresh CI machine): ~2 minutes once.
if ! cargo "+$NIGHTLY" fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets() { cargo "+$NIGHTLY" fuzz list; }

run_one() {
    local t=$1
    shift
    mkdir -p "target/fuzz-corpus/$t"
    cargo "+$NIGHTLY" fuzz run -O "$t" "target/fuzz-corpus/$t" "fuzz/seeds/$t" -- \
        -jobs=1 -workers=1 -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$@"
}

mode=${1:-ci}
case "$mode" in
    ci)
        cargo "+$NIGHTLY" fuzz build -O
        for t in $(targets); do
            echo "== fuzz $t (${FUZZ_CI_SECS:-20} s)"
            run_one "$t" -max_total_time="${FUZZ_CI_SECS:-20}"
        done
        ;;
    long)
        cargo "+$NIGHTLY" fuzz build -O
        for t in $(targets); do
            echo "== fuzz $t (${FUZZ_LONG_RUNS:-1000000} runs)"
            run_one "$t" -runs="${FUZZ_LONG_RUNS:-1000000}" 2>&1 | tee "target/fuzz-corpus/$t.log"
        done
        ;;
    run)
        shift
        run_one "$@"
        ;;
    *)
        echo "usage: $0 ci|long|run TARGET [libFuzzer args]" >&2
        exit 2
        ;;
esac
