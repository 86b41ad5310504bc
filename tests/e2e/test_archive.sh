#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# --content-type archive: a (compressed) tar is extracted into the --dest directory; hostile tars
# are refused and nothing is ever written outside --dest.
source "$(dirname "$0")/lib.sh"

# expected_tree: what GNU tar extracts from archive.tar (a trusted, well-formed archive).
expected_tree() {
  mkdir -p "$W/_meta/expected"
  tar -C "$W/_meta/expected" -xf "$IMG/archive.tar"
}

t_extract_tar() {
  expected_tree
  run_import --content-type archive --url "$IMG/archive.tar" --dest "$W/dest"
  diff -r --no-dereference "$W/_meta/expected" "$W/dest" >&2 || fail "extracted tree differs from tar -x"
  [[ -x $W/dest/run.sh ]] || fail "executable bit lost"
  [[ $(readlink "$W/dest/data/link-inside") == hello.txt ]] || fail "inner symlink not kept"
  assert_nothing_outside "$W/dest"
}

t_extract_tar_gz() {
  expected_tree
  run_import --content-type archive --url "$IMG/archive.tar.gz" --dest "$W/dest"
  diff -r --no-dereference "$W/_meta/expected" "$W/dest" >&2 || fail "extracted tree differs from tar -x"
  assert_nothing_outside "$W/dest"
}

t_extract_from_stdin() {
  expected_tree
  run_import_stdin "$IMG/archive.tar.gz" --content-type archive --url - --dest "$W/dest"
  diff -r --no-dereference "$W/_meta/expected" "$W/dest" >&2 || fail "extracted tree differs from tar -x"
  assert_nothing_outside "$W/dest"
}

# evil TAR [REGEX]: refused (unsupported), nothing outside --dest, nothing in $ESCAPE_DIR.
evil() {
  rm -rf "$ESCAPE_DIR"
  local links_before
  links_before=$(stat -c %h /etc/passwd)
  expect_exit 5 --content-type archive --url "$IMG/$1" --dest "$W/dest" --scratch-dir "$W/scratch"
  assert_error_matches "${2:-.}"
  assert_nothing_outside "$W/dest"
  assert_no_scratch_left "$W/scratch"
  [[ ! -e $W/escape-inner.txt ]] || fail "escape-inner.txt written next to dest"
  [[ $(stat -c %h /etc/passwd) == "$links_before" ]] || fail "a hard link to /etc/passwd was made"
  # the import failed: nothing of it stays (it was staged inside dest)
  [[ -z $(ls -A "$W/dest" 2>/dev/null) ]] || fail "a failed archive import left $(ls -A "$W/dest" | head -n 3) in dest"
  # nothing in dest may point outside it
  local bad
  bad=$(find "$W/dest" -type l -lname '/*' -o -type l -lname '*..*' | head -n 3)
  [[ -z $bad ]] || fail "links escaping dest were created: $bad"
}

t_evil_dotdot() { evil evil-dotdot.tar '\.\.'; }
t_evil_dotdot_inner() { evil evil-dotdot-inner.tar '\.\.'; }
t_evil_absolute_path() { evil evil-absolute.tar 'absolute|/tmp/cdi-e2e-escape'; }
t_evil_symlink_dir() { evil evil-symlink-dir.tar 'link'; }
t_evil_symlink_relative() { evil evil-symlink-rel.tar 'link'; }
t_evil_symlink_only() { evil evil-symlink-only.tar 'link'; }
t_evil_hardlink() { evil evil-hardlink.tar 'link'; }
t_evil_device_node() { evil evil-device.tar 'device|special|node'; }
# A setuid/setgid bit is never applied: the file is extracted with the bit stripped.
t_evil_setuid() {
  run_import --content-type archive --url "$IMG/evil-setuid.tar" --dest "$W/dest"
  [[ -f $W/dest/suid ]] || fail "suid was not extracted"
  local mode
  mode=$(stat -c %a "$W/dest/suid")
  [[ $mode == 755 ]] || fail "expected mode 755 (setuid stripped), got $mode"
  assert_nothing_outside "$W/dest"
}

t_archive_needs_a_tar() {
  expect_exit '4|5' --content-type archive --url "$IMG/qcow2-v3.qcow2" --dest "$W/dest"
  assert_nothing_outside "$W/dest"
}

t_truncated_archive_leaves_nothing() {
  head -c $(( $(stat -c %s "$IMG/archive.tar.gz") / 2 )) "$IMG/archive.tar.gz" > "$W/_meta/cut.tar.gz"
  mkdir -p "$W/dest/tree"
  echo keep > "$W/dest/tree/keep.txt"
  expect_exit 4 --content-type archive --url "$W/_meta/cut.tar.gz" --dest "$W/dest/tree"
  [[ $(ls -A "$W/dest/tree") == keep.txt ]] || fail "a failed import left: $(ls -A "$W/dest/tree")"
}
t_extract_over_existing_tree_merges() {
  expected_tree
  mkdir -p "$W/dest/data"
  echo mine > "$W/dest/keep.txt"
  echo mine > "$W/dest/data/mine.txt"
  echo stale > "$W/dest/run.sh"
  run_import --content-type archive --url "$IMG/archive.tar" --dest "$W/dest"
  [[ $(cat "$W/dest/keep.txt") == mine && $(cat "$W/dest/data/mine.txt") == mine ]] || fail "existing files were lost"
  rm "$W/dest/keep.txt" "$W/dest/data/mine.txt"
  diff -r --no-dereference "$W/_meta/expected" "$W/dest" >&2 || fail "extracted tree differs from tar -x"
  [[ -z $(find "$W/dest" -name '.cdi-import-extract*') ]] || fail "staging directory left behind"
}
run_test extract_tar t_extract_tar
run_test extract_tar_gz t_extract_tar_gz
run_test extract_from_stdin t_extract_from_stdin
run_test evil_dotdot t_evil_dotdot
run_test evil_dotdot_inner t_evil_dotdot_inner
run_test evil_absolute_path t_evil_absolute_path
run_test evil_symlink_dir t_evil_symlink_dir
run_test evil_symlink_relative t_evil_symlink_relative
run_test evil_symlink_only t_evil_symlink_only
run_test evil_hardlink t_evil_hardlink
run_test evil_device_node t_evil_device_node
run_test evil_setuid t_evil_setuid
run_test archive_needs_a_tar t_archive_needs_a_tar
run_test truncated_archive_leaves_nothing t_truncated_archive_leaves_nothing
run_test extract_over_existing_tree_merges t_extract_over_existing_tree_merges
rm -rf "$ESCAPE_DIR"
finish
