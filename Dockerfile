# syntax=docker/dockerfile:1
# Build stage: Debian 12 toolchain and -dev packages.
FROM debian:12 AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends \
      cmake g++ ninja-build pkg-config ca-certificates \
      catch2 libcli11-dev nlohmann-json3-dev libcurl4-openssl-dev libssl-dev libarchive-dev \
      liblzma-dev zlib1g-dev libzstd-dev libisal-dev libdeflate-dev libcpp-httplib-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCDI_BUILD_TESTS=OFF \
 && cmake --build /build \
 && strip /build/cmd/cdi-import/cdi-import

# Runtime stage: the binary, its shared libraries, qemu-img for the formats we do not decode
# ourselves, CA certificates; runs as a non-root user (UID 1001, like CDI's importer image).
FROM debian:12-slim
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends \
      qemu-utils ca-certificates libcurl4 libssl3 libarchive13 liblzma5 zlib1g libzstd1 libisal2 \
      libdeflate0 libcpp-httplib0.11 nbdkit \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 1001 --no-create-home --shell /usr/sbin/nologin cdi
COPY --from=build /build/cmd/cdi-import/cdi-import /usr/bin/cdi-import
# CDI drop-in: the controller runs /usr/bin/cdi-importer and /usr/bin/cdi-uploadserver (pod mode,
# selected by the program name). The metrics endpoint listens on 8443.
RUN ln -s cdi-import /usr/bin/cdi-importer && ln -s cdi-import /usr/bin/cdi-uploadserver
EXPOSE 8443
USER 1001
ENTRYPOINT ["/usr/bin/cdi-import"]
