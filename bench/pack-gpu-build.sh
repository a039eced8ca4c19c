#!/usr/bin/env bash
# Prepares what the device machine needs (README, "Checking on a GPU"): a build for sm_90
# (machine code only, `90-real`: the lent cards, H100 and H200, are sm_90; with the PTX a later card would
# compile as well, the archive came to 57 MiB on 2026-12-06, 64 with the tracked files, over what travels)
# in build-gpu/ with the shared libraries that machine may lack in
# build-gpu/lib (OpenBLAS's OpenMP build, fmt, …; CUDA's own libraries are
# there already), object files dropped, and MNIST gzipped in data-gpu/; both
# packed into one archive, gpu-pack/build.tar.xz, since the two folders
# together (about 100 MiB, a third of it OpenBLAS) are over the 64 MiB that
# travels and the archive is not. xz, not gzip: gzip's archive came to 58 MiB, 65 with the tracked files, on
# 2026-12-07 (OpenBLAS alone 10.7 MiB by gzip, 4.3 by xz). Then, on the device (gpu-check.sh
# unpacks the archive first, by xz or, where the machine has none, by python3's lzma):
#   run(command="bash bench/gpu-check.sh", carry=["gpu-pack"], timeout_s=600)
# PACK_TILE_COPIES=OFF builds it all without cp.async (EVOPLAST_TILE_COPIES): the pack to fall back on should
# the tile kernels fail on a card with it.
set -euo pipefail
cd "$(dirname "$0")/.."
copies=${PACK_TILE_COPIES:-ON}
if [[ $copies != ON && $copies != OFF ]]; then
  echo "pack-gpu-build: PACK_TILE_COPIES is '$copies': give ON (cp.async, the default) or OFF" >&2
  exit 2
fi
# Given every time, so that an OFF kept in the cache never outlives the call that asked for it.
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90-real \
  -DEVOPLAST_NATIVE_CPU=OFF -DEVOPLAST_SIMT=OFF -DEVOPLAST_TILE_COPIES="$copies" >/dev/null
cmake --build build-gpu
# bench_kernels again with 2 shared tile sets (the default is 3), by cp.async (bench_kernels_2buf) and through
# registers (bench_kernels_2regs, EVOPLAST_TILE_COPIES=OFF: the loop of 2026-12-05 to 12-07): gpu-check.sh
# times them beside the default in one call (what the third set buys, what cp.async buys). With gzip there was no
# room for more (a one-set variant, bench_population's); xz left about 13 MiB (2026-12-07), each variant about
# 3. A variant an earlier pack built and this one does not would travel too.
rm -f build-gpu/bench_kernels_*
for variant in "2buf -DEVOPLAST_TILE_BUFFERS=2 -DEVOPLAST_TILE_COPIES=ON" \
  "2regs -DEVOPLAST_TILE_BUFFERS=2 -DEVOPLAST_TILE_COPIES=OFF"; do
  read -r name flags <<<"$variant"
  # shellcheck disable=SC2086 # flags: several arguments
  cmake -S . -B "build-gpu-$name" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90-real \
    -DEVOPLAST_NATIVE_CPU=OFF -DEVOPLAST_SIMT=OFF $flags >/dev/null
  cmake --build "build-gpu-$name" --target bench_kernels
  cp "build-gpu-$name/bench_kernels" "build-gpu/bench_kernels_$name"
done
# Only what runs travels: binaries, ctest files, libraries (64 MiB in all).
rm -rf build-gpu/CMakeFiles build-gpu/*.a build-gpu/tests/CMakeFiles
mkdir -p build-gpu/lib
blas=/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0
cp -L "$blas" build-gpu/lib/libopenblas.so.0
for bin in build-gpu/evolve build-gpu/tests/test_cpu build-gpu/tests/test_cuda build-gpu/bench_population build-gpu/bench_kernels "$blas"; do
  ldd "$bin" | awk '/=> \// {print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
      # (libcuda* covers libcudart too)
      libc.so*|libm.so*|ld-linux*|libpthread*|libdl.so*|librt.so*|libcuda*|libcublas*|libcudnn*) ;;
      libstdc++*|libgcc_s*|libz.so*) ;;  # present wherever PyTorch runs
      *) cp -Lu "$lib" build-gpu/lib/ ;;
    esac
  done
done
mkdir -p data-gpu/mnist
for f in data/mnist/*-ubyte; do gzip -9 -c "$f" >"data-gpu/mnist/$(basename "$f").gz"; done
mkdir -p gpu-pack
rm -f gpu-pack/build.tar.gz  # an earlier pack's gzip archive would travel too
tar -cf - build-gpu data-gpu | xz -6 -T2 >gpu-pack/build.tar.xz
# What travels: the tracked files and the archive, 64 MiB at most.
tracked=$(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1)
packed=$(stat -c %s gpu-pack/build.tar.xz)
total_mib=$(((tracked + packed) / 1048576))
echo "gpu-pack/build.tar.xz: $((packed / 1048576)) MiB; with the tracked files $total_mib MiB of the 64 that travel"
if ((tracked + packed > 64 * 1048576)); then
  echo "pack-gpu-build: $total_mib MiB would travel, over the device tool's 64 MiB: leave a library or binary out" >&2
  exit 1
fi
