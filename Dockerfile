# syntax=docker/dockerfile:1
# SPDX-License-Identifier: Apache-2.0
# One final stage per CDI image, each started the way CDI ships its own (cmd/*/BUILD.bazel in CDI):
#   importer      ENTRYPOINT ["/usr/bin/cdi-importer", "-alsologtostderr"], USER 1001   (default: last stage)
#   uploadserver  ENTRYPOINT ["/usr/bin/cdi-uploadserver", "-alsologtostderr"], USER 1001
#   cloner        ENTRYPOINT ["/usr/bin/cloner_startup.sh"] (runs /usr/bin/cdi-cloner), USER 1001, WORKDIR /home/cdi-cloner
# kubelet appends the controller's args (-v=N) to the entrypoint and passes its env unchanged.
#   podman build --target uploadserver -t cdi-uploadserver .      (docker build works the same)
# BASE_IMAGE: any Debian 12 (bookworm) image; tests/image/test_images.sh uses a local minbase one.
ARG BASE_IMAGE=debian:12

# ---- build: Release, no tests, the project's -Wall -Wextra -Werror flags (cmake/settings.cmake)
FROM ${BASE_IMAGE} AS build
ARG JOBS=2
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends \
      cmake g++ ninja-build pkg-config ca-certificates ccache binutils \
      libcli11-dev nlohmann-json3-dev libcurl4-openssl-dev libssl-dev libarchive-dev \
      liblzma-dev zlib1g-dev libzstd-dev libisal-dev libdeflate-dev libcpp-httplib-dev libsnappy-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# only what the build reads, so edits to tests or docs do not invalidate this layer
COPY CMakeLists.txt ./
COPY cmake cmake
COPY lib lib
COPY formats formats
COPY cmd cmd
# The ccache directory is a build cache mount (BuildKit / buildah): reruns after a source change
# recompile only what changed; it never ends up in an image.
RUN --mount=type=cache,target=/root/.ccache \
    cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCDI_BUILD_TESTS=OFF -DCDI_BUILD_BENCH=OFF \
          -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache \
 && cmake --build /build -j"${JOBS}" \
 && mkdir -p /out \
 && install -m 0755 -s /build/cmd/cdi-import/cdi-import /out/cdi-import \
 && srv=$(find /build -type f -name cdi-containerimage-server -perm -u+x | head -n1) \
 && if [ -z "$srv" ]; then echo "build: no cdi-containerimage-server target was built" >&2; exit 1; fi \
 && install -m 0755 -s "$srv" /out/cdi-containerimage-server \
 && if readelf -d /out/cdi-containerimage-server | grep -q NEEDED; then \
      echo "build: cdi-containerimage-server is not static (it runs inside FROM-scratch containerDisk images)" >&2; \
      readelf -d /out/cdi-containerimage-server >&2; exit 1; fi

# ---- cloner (host-assisted clone source): CDI's cloner_startup.sh, which runs cdi-cloner (a name
# of cdi-import); bash, blockdev (util-linux), du (coreutils) and GNU tar (/usr/bin/tar, the wire
# format of filesystem-clone) are in every Debian base.
FROM ${BASE_IMAGE} AS cloner
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends \
      bash coreutils tar util-linux \
      libcurl4 libssl3 libarchive13 liblzma5 zlib1g libzstd1 libisal2 libdeflate0 libcpp-httplib0.11 libsnappy1v5 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && for t in bash blockdev du tar; do command -v $t >/dev/null || { echo "cloner: $t missing" >&2; exit 1; }; done
COPY --from=build /out/cdi-import /usr/bin/cdi-import
RUN ln -s cdi-import /usr/bin/cdi-cloner
COPY --chmod=0755 scripts/cloner_startup.sh /usr/bin/cloner_startup.sh
RUN mkdir -p /home/cdi-cloner && chown 1001:0 /home/cdi-cloner && chmod 0775 /home/cdi-cloner
# progress metric (HTTPS)
EXPOSE 8443
USER 1001
WORKDIR /home/cdi-cloner
ENTRYPOINT ["/usr/bin/cloner_startup.sh"]

# ---- uploadserver: cdi-import in upload-server mode; qemu-img for the formats it converts
FROM ${BASE_IMAGE} AS uploadserver
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends \
      qemu-utils libcurl4 libssl3 libarchive13 liblzma5 zlib1g libzstd1 libisal2 libdeflate0 \
      libcpp-httplib0.11 libsnappy1v5 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
COPY --from=build /out/cdi-import /usr/bin/cdi-import
RUN ln -s cdi-import /usr/bin/cdi-uploadserver
EXPOSE 8443
USER 1001
ENTRYPOINT ["/usr/bin/cdi-uploadserver", "-alsologtostderr"]

# ---- importer (default): cdi-importer plus the tool entry points CDI's importer image carries.
# cdi-image-size-detection and cdi-source-update-poller are program names of cdi-import (symlinks);
# cdi-containerimage-server is a static executable of its own, because the node-pull init
# container copies it into the user's containerDisk image (often FROM scratch) and runs it there.
FROM ${BASE_IMAGE} AS importer
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends \
      qemu-utils nbdkit ca-certificates libcurl4 libssl3 libarchive13 liblzma5 zlib1g libzstd1 \
      libisal2 libdeflate0 libcpp-httplib0.11 libsnappy1v5 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
COPY --from=build /out/cdi-import /usr/bin/cdi-import
COPY --from=build /out/cdi-containerimage-server /usr/bin/cdi-containerimage-server
RUN for n in cdi-importer cdi-image-size-detection cdi-source-update-poller; do ln -s cdi-import /usr/bin/$n; done
# progress metric (HTTPS)
EXPOSE 8443
USER 1001
ENTRYPOINT ["/usr/bin/cdi-importer", "-alsologtostderr"]
