#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Command 2 of the README quick start (and what CI runs): installs the dependencies, builds
# cdi-import and runs every test (Catch2 unit tests and end-to-end tests), then builds an
# ASan+UBSan tree and runs the whole suite again there, then a short fuzzing run.
# Idempotent; exits non-zero on any failure. Build trees: build/ and build-asan/.
#   Environment: JOBS (parallel jobs, default: number of CPUs), FUZZ_SECONDS (default 60),
#                SKIP_ASAN=1 / SKIP_FUZZ=1 to leave those phases out when iterating locally.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${JOBS:-$(nproc)}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}

declare -a PHASES=()
phase_start=0
begin() {
  phase_name=$1
  phase_start=$(date +%s)
  echo
  echo "=== $phase_name"
}
end() {
  local secs=$(($(date +%s) - phase_start))
  PHASES+=("$(printf '%-34s %5d s' "$phase_name" "$secs")")
  echo "=== $phase_name: done in ${secs} s"
}
summary() {
  local rc=$?
  echo
  echo "=== phase durations"
  printf '  %s\n' "${PHASES[@]}"
  if ((rc != 0)); then echo "=== FAILED in phase: ${phase_name:-?} (exit $rc)"; fi
}
trap summary EXIT
total_start=$(date +%s)

begin "install dependencies"
scripts/install-deps.sh
end

configure_and_build() {
  local dir=$1
  shift
  cmake -S "$ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
  cmake --build "$dir" -j "$JOBS"
}

run_ctest() {
  # --no-tests=error: a suite that finds no tests is a failure, not a pass
  ctest --test-dir "$1" --output-on-failure --no-tests=error -j "$JOBS" --timeout 900
}

begin "build (RelWithDebInfo)"
configure_and_build build -DCDI_SANITIZE=OFF
end

begin "tests (unit + e2e)"
run_ctest build
end

if [[ ${SKIP_ASAN:-0} != 1 ]]; then
  begin "build (ASan+UBSan)"
  configure_and_build build-asan -DCDI_SANITIZE=ON
  end

  begin "tests under ASan+UBSan"
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    run_ctest build-asan
  end
fi

if [[ ${SKIP_FUZZ:-0} != 1 && -x tests/fuzz/run.sh ]]; then
  begin "fuzz (${FUZZ_SECONDS} s per target)"
  tests/fuzz/run.sh "$FUZZ_SECONDS"
  end
elif [[ ${SKIP_FUZZ:-0} != 1 && -f tests/fuzz/run.sh ]]; then
  begin "fuzz (${FUZZ_SECONDS} s per target)"
  bash tests/fuzz/run.sh "$FUZZ_SECONDS"
  end
fi

phase_name="total"
PHASES+=("$(printf '%-34s %5d s' total $(($(date +%s) - total_start)))")
echo
echo "=== all tests passed"
