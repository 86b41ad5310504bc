# SPDX-License-Identifier: Apache-2.0
# Sourced by the bench scripts: the shared benchmark image.

# bench_init NAME DEFAULT_MIBS (needs ROOT): the common settings of a bench script: MIBS
# (BENCH_SIZE_MIB, else DEFAULT_MIBS), DIR (BENCH_DIR, else bench/.work-NAME), CDI (CDI_IMPORT,
# else the Release build; it must exist), IMG (the inputs of that size, kept between runs), OUT
# (outputs) and RUNS (BENCH_RUNS, else 3); creates IMG and OUT.
bench_init() {
  MIBS=${BENCH_SIZE_MIB:-$2}
  DIR=${BENCH_DIR:-$ROOT/bench/.work-$1}
  CDI=${CDI_IMPORT:-$ROOT/build/cmd/cdi-import/cdi-import}
  RUNS=${BENCH_RUNS:-3}
  [[ -x $CDI ]] || { echo "bench: $CDI not found" >&2; exit 1; }
  IMG=$DIR/img-${MIBS}m
  OUT=$DIR/out
  mkdir -p "$IMG" "$OUT"
}
log() { echo "bench: $*" >&2; }

# _make_shaped_raw FILE MIBS RANDOM_MIB TEXT_AT TEXT_MIB FORMAT LINES: a MIBS MiB raw disk; per 64
# MiB, RANDOM_MIB of incompressible bytes at its start and TEXT_MIB of seq FORMAT lines (LINES of
# them, cut) at TEXT_AT MiB; the rest holes. Deterministic.
_make_shaped_raw() {
  local file=$1 mibs=$2 rnd=$3 text_at=$4 text=$5 format=$6 lines=$7 off
  rm -f "$file"
  truncate -s "${mibs}M" "$file"
  for ((off = 0; off < mibs; off += 64)); do
    head -c $((rnd << 20)) /dev/zero | openssl enc -aes-128-ctr -nosalt -pass "pass:$off" -pbkdf2 2>/dev/null \
      | dd of="$file" bs=1M seek=$off conv=notrunc status=none
    (set +o pipefail; seq -f "${format//@OFF@/$off}" 1 "$lines" | head -c $((text << 20))) \
      | dd of="$file" bs=1M seek=$((off + text_at)) conv=notrunc status=none
  done
}

# make_bench_raw FILE MIBS: a MIBS MiB raw disk, a third of it data (per 64 MiB: 6 MiB of
# incompressible bytes, 14 MiB of text), the rest zeros (holes). Deterministic.
make_bench_raw() {
  _make_shaped_raw "$1" "$2" 6 8 14 "line %08.0f of text: the quick brown fox jumps over the lazy dog @OFF@" 200000
}

# make_guest_raw FILE MIBS: a MIBS MiB guest disk shaped as issue 14 describes it (per 64 MiB:
# 29 MiB incompressible, 13 MiB text, the rest holes: 45 % / 20 % / 35 %). Deterministic; the
# disk of bench/qcow2_http.sh and bench/cgroup.sh.
make_guest_raw() {
  _make_shaped_raw "$1" "$2" 29 29 13 "Dec  2 05:40:%02.0f node kernel: EXT4-fs (vda1): mounted filesystem @OFF@" 400000
}

# make_cloud_raw FILE MIBS: a MIBS MiB raw disk shaped like a cloud image (bench/clone.sh): the
# first quarter densely used (per 16 MiB: 5 MiB incompressible bytes, 4 MiB text), then per
# 128 MiB 1 MiB of each; the rest holes. ~15 % data (~310 MiB at 2 GiB). Deterministic.
make_cloud_raw() {
  local file=$1 mibs=$2 off
  rm -f "$file"
  truncate -s "${mibs}M" "$file"
  _cloud_chunk() {   # _cloud_chunk OFF_MIB RANDOM_MIB TEXT_MIB
    head -c $(($2 << 20)) /dev/zero | openssl enc -aes-128-ctr -nosalt -pass "pass:c$1" -pbkdf2 2> /dev/null \
      | dd of="$file" bs=1M seek="$1" conv=notrunc status=none
    (set +o pipefail; seq -f "Dec  1 23:59:%02.0f cloud-init[$1]: ci-info: +++ Net device info +++ eth0 True 10.0.2.15" 1 400000 \
      | head -c $(($3 << 20))) | dd of="$file" bs=1M seek=$(($1 + $2 + 1)) conv=notrunc status=none
  }
  for ((off = 0; off < mibs / 4; off += 16)); do _cloud_chunk "$off" 5 4; done
  for ((off = mibs / 4; off + 3 <= mibs; off += 128)); do _cloud_chunk "$off" 1 1; done
}

# timed CMD... (needs OUT, SRV, RUNS): runs CMD $RUNS times, median wall seconds into $LAST_S, the largest peak RSS KiB
# into $LAST_RSS. The served files stay in the page cache (a fast server: the server's own disk is
# not what is compared); every run writes fresh output files and starts after a `sync`, so no
# run inherits another's dirty pages. One untimed warm-up read of the served file comes first.
timed() {
  local times=() i t0 rss=0
  for ((i = 0; i < RUNS; i++)); do
    rm -rf "${OUT:?}"/*
    sync
    t0=$EPOCHREALTIME
    /usr/bin/time -f %M -o "$SRV/rss" "$@" > /dev/null 2>"$SRV/err" || { cat "$SRV/err" >&2; return 1; }
    times+=("$(echo "${EPOCHREALTIME} - $t0" | bc)")
    (( $(tail -n 1 "$SRV/rss") > rss )) && rss=$(tail -n 1 "$SRV/rss")
  done
  LAST_S=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
  LAST_RSS=$rss
}
