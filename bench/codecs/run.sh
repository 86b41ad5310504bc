#!/bin/sh
# Codec benchmark: builds the mixed input, compresses it with the stock CLIs and times our
# stages against zlib and the CLIs. Usage: bench/codecs/run.sh <cdi_bench_codecs> [dir] [MiB]
# Numbers go to bench/codecs/RESULTS.md (by hand).
set -eu
BENCH=$1
DIR=${2:-/tmp/cdi-bench-codecs}
MIB=${3:-512}
mkdir -p "$DIR"
cd "$DIR"
T="/usr/bin/time -f %e_s_wall_%U_s_user_%S_s_sys"

[ -f in.raw ] || "$BENCH" gen in.raw "$MIB"
[ -f in.gz ] || gzip -6 -c in.raw > in.gz
[ -f in.xz ] || xz -T2 -1 --block-size=1MiB -c in.raw > in.xz
[ -f in.1block.xz ] || xz -T1 -1 -c in.raw > in.1block.xz
[ -f in.zst ] || zstd -q -3 -T2 -c in.raw > in.zst
ls -l in.*
cat in.raw > /dev/null   # warm the page cache
for f in in.gz in.xz in.1block.xz in.zst; do cat $f > /dev/null; done

echo "== gzip"
for i in 1 2 3; do "$BENCH" gzip in.gz; done
for i in 1 2 3; do "$BENCH" gzip-zlib in.gz; done
for i in 1 2; do $T gzip -dc in.gz > /dev/null; done
for i in 1 2; do $T pigz -dc in.gz > /dev/null; done
echo "== xz (1 MiB blocks)"
for th in 1 2; do for i in 1 2; do "$BENCH" xz in.xz $th; done; done
for i in 1 2; do $T xz -T2 -dc in.xz > /dev/null; done
echo "== xz (single block)"
"$BENCH" xz in.1block.xz 2
echo "== zstd"
for i in 1 2; do "$BENCH" zstd in.zst; done
for i in 1 2; do $T zstd -q -dc in.zst > /dev/null; done
