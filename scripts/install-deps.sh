#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs every Debian 12 package needed to build cdi-import, run its tests and benchmark, and
# fuzz it. Idempotent: packages already installed are left alone. Needs root (or sudo).
# This is the one list of the project's system dependencies.
set -euo pipefail

PACKAGES=(
  # build
  cmake g++ ninja-build make pkg-config
  # libraries
  catch2 libcli11-dev nlohmann-json3-dev libcurl4-openssl-dev libssl-dev libarchive-dev
  liblzma-dev zlib1g-dev libzstd-dev libisal-dev libdeflate-dev libcpp-httplib-dev libsnappy-dev
  # fuzzing (libFuzzer; tests/fuzz/run.sh uses clang++-16)
  clang-16 libclang-rt-16-dev
  # runtime: qemu-img converts the formats we do not decode ourselves
  qemu-utils
  # tests and bench
  openssl curl ca-certificates jq python3 python3-snappy python3-crc32c xz-utils gzip pigz zstd tar util-linux time bc
  # tests/e2e/test_kill.sh: a small ext4 on a loop device, and fuse-overlayfs (a real filesystem
  # without O_TMPFILE, for the named-partial fallback)
  e2fsprogs fuse-overlayfs
  # servers for the http / registry tests
  nginx apache2-utils docker-registry skopeo tinyproxy
  # tests/e2e/test_s3.sh: s3rver (npm, installed by the test) behind a botocore-verifying front
  # (nodejs and npm: added below only when the machine has no node/npm of its own, e.g. nodesource's)
  python3-botocore
  # tests/e2e/test_gcs.sh: the stand-in verifies RS256 JWTs with python3-cryptography
  python3-cryptography
  # peers in bench/ (nbdkit-curl + qemu-img; qemu-img's own http driver)
  nbdkit qemu-block-extra
  # tests/image: build and run the images with podman (runc), on a debootstrap-made Debian 12 base
  # (catatonit: the pause process of `podman pod create`; only a Recommends of podman)
  podman runc catatonit debootstrap uidmap iproute2
)

export DEBIAN_FRONTEND=noninteractive
SUDO=()
if [[ $(id -u) != 0 ]]; then
  SUDO=(sudo env DEBIAN_FRONTEND=noninteractive)
fi

# Debian's npm conflicts with a nodejs from nodesource (which bundles npm): install Debian's pair
# only where no node and npm are on the PATH.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
APT=(apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
"${SUDO[@]}" "${APT[@]}" update
"${SUDO[@]}" "${APT[@]}" install -y --no-install-recommends "${missing[@]}"
