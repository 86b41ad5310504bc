# Every external dependency is found here (Debian 12 packages; see README "Dependencies").
find_package(PkgConfig REQUIRED)
find_package(ZLIB REQUIRED)                       # zlib1g-dev
find_package(LibLZMA REQUIRED)                    # liblzma-dev (threaded decoder since 5.4)
find_package(zstd CONFIG REQUIRED)                # libzstd-dev
find_package(Snappy CONFIG REQUIRED)              # libsnappy-dev (framing format of CDI clone uploads)
find_package(LibArchive REQUIRED)                 # libarchive-dev (tar only; we peel compression ourselves)
find_package(OpenSSL REQUIRED)                    # libssl-dev (hashes, TLS)
find_package(CURL REQUIRED)                       # libcurl4-openssl-dev
find_package(nlohmann_json 3 CONFIG REQUIRED)     # nlohmann-json3-dev
find_package(CLI11 2 CONFIG REQUIRED)             # libcli11-dev
pkg_check_modules(ISAL REQUIRED IMPORTED_TARGET libisal)   # libisal-dev: igzip inflate (faster than zlib)

if(TARGET zstd::libzstd_shared)
  add_library(cdi_dep_zstd ALIAS zstd::libzstd_shared)
else()
  add_library(cdi_dep_zstd ALIAS zstd::libzstd_static)
endif()

# libcpp-httplib-dev: the HTTP(S) server of `upload-server` and the metrics endpoint. Its .pc adds
# the OpenSSL/zlib/brotli defines the shared library was built with, so use the pkg-config target.
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
