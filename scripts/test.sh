#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Command 2 of the README quick start (and what CI runs): installs the dependencies, builds
# cdi-import (Release, as the images ship it) and runs every test (Catch2 unit tests and end-to-end
# tests), then builds the container images with podman and runs them as kubelet runs CDI's pods
# (tests/image/test_images.sh), then builds an ASan+UBSan tree and runs the whole suite again
# there, then a short fuzzing run.
# Every phase runs even when an earlier test phase failed (so one run shows every failure); the
# script exits non-zero if any phase failed. Idempotent. Build trees: build/ (Release),
# build-asan/ (RelWithDebInfo + sanitizers); the image test caches its Debian base in build/image-test.
#   Environment: JOBS (parallel jobs, default: number of CPUs), FUZZ_SECONDS (default 60),
#                SKIP_IMAGES=1 / SKIP_ASAN=1 / SKIP_FUZZ=1 to leave those phases out when iterating
#                locally (CI runs them all).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${JOBS:-$(nproc)}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}

PHASES=()
FAILED_PHASES=()
total_start=$SECONDS

# phase NAME COMMAND...: runs one phase, records its duration and whether it failed.
phase() {
  local name=$1
  shift
  echo
  echo "=== $name"
  local start=$SECONDS rc=0
  "$@" || rc=$?
  local secs=$((SECONDS - start))
  if ((rc == 0)); then
    PHASES+=("$(printf '%-30s %5d s  ok' "$name" "$secs")")
    echo "=== $name: ok in ${secs} s"
  else
    PHASES+=("$(printf '%-30s %5d s  FAILED (exit %d)' "$name" "$secs" "$rc")")
    FAILED_PHASES+=("$name")
    echo "=== $name: FAILED (exit $rc) after ${secs} s"
  fi
  return "$rc"
}

# configure_and_build DIR BUILD_TYPE CMAKE_ARGS...
configure_and_build() {
  local dir=$1 type=$2
  shift 2
  cmake -S "$ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" "$@" &&
    cmake --build "$dir" -j "$JOBS"
}

run_ctest() {
  # --no-tests=error: a suite that finds no tests is a failure, not a pass
  ctest --test-dir "$1" --output-on-failure --no-tests=error -j "$JOBS" --timeout 900
}

run_ctest_sanitized() {
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    run_ctest "$1"
}

finish() {
  echo
  echo "=== phase durations"
  printf '  %s\n' "${PHASES[@]}"
  printf '  %-30s %5d s\n' total $((SECONDS - total_start))
  if ((${#FAILED_PHASES[@]} > 0)); then
    echo "=== FAILED: ${FAILED_PHASES[*]}"
    exit 1
  fi
  echo "=== all phases passed"
  exit 0
}

phase "install dependencies" scripts/install-deps.sh || finish

if phase "build (Release)" configure_and_build build Release -DCDI_SANITIZE=OFF; then
  phase "tests" run_ctest build
fi

if [[ ${SKIP_IMAGES:-0} != 1 ]]; then
  # builds the images itself (Dockerfile, in-container Release compile with 2 jobs)
  phase "container images (podman)" env IMAGE_JOBS="$(( JOBS < 2 ? JOBS : 2 ))" bash tests/image/test_images.sh build/image-test
fi

if [[ ${SKIP_ASAN:-0} != 1 ]]; then
  if phase "build ASan+UBSan" configure_and_build build-asan RelWithDebInfo -DCDI_SANITIZE=ON; then
    phase "tests ASan+UBSan" run_ctest_sanitized build-asan
  fi
fi

if [[ ${SKIP_FUZZ:-0} != 1 && -f tests/fuzz/run.sh ]]; then
  phase "fuzz (${FUZZ_SECONDS} s)" sh tests/fuzz/run.sh "$FUZZ_SECONDS"
fi

finish
