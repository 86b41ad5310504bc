# SPDX-License-Identifier: Apache-2.0
# Sourced by the bench scripts: the shared benchmark image.

# make_bench_raw FILE MIBS: a MIBS MiB raw disk, a third of it data (per 64 MiB: 6 MiB of
# incompressible bytes, 14 MiB of text), the rest zeros (holes). Deterministic.
make_bench_raw() {
  local file=$1 mibs=$2 off
  rm -f "$file"
  truncate -s "${mibs}M" "$file"
  for ((off = 0; off < mibs; off += 64)); do
    head -c $((6 << 20)) /dev/zero | openssl enc -aes-128-ctr -nosalt -pass "pass:$off" -pbkdf2 2>/dev/null \
      | dd of="$file" bs=1M seek=$off conv=notrunc status=none
    (set +o pipefail; seq -f "line %08.0f of text: the quick brown fox jumps over the lazy dog $off" 1 200000 | head -c $((14 << 20))) \
      | dd of="$file" bs=1M seek=$((off + 8)) conv=notrunc status=none
  done
}
