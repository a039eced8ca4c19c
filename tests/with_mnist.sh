# Sourced by the shell tests that run evolve on real MNIST:
#   source with_mnist.sh EVOLVE DATA_DIR
# sets $evolve and $data_dir (absolute), exits 77 (skipped) where MNIST is not
# installed, and makes $tmp, a scratch folder.
evolve=$(realpath "$1")
data_dir=$(realpath "${EVOPLAST_DATA_DIR:-$2}")
if ! compgen -G "$data_dir/mnist/train-images-idx3-ubyte*" >/dev/null; then
  echo "skipped: no MNIST under $data_dir (run scripts/setup.sh)"; exit 77
fi
tmp=$(mktemp -d)
