// The MPI ranks' parts that need no MPI job: which GPU a rank takes.
#include <doctest/doctest.h>

#include "apps/ranks.hpp"

using evoplast::apps::device_for_local_rank;

TEST_CASE("each rank on a machine takes its own GPU: device local_rank, or that entry of the user's list") {
  CHECK(device_for_local_rank(nullptr, 0) == "0");
  CHECK(device_for_local_rank(nullptr, 3) == "3");
  // The user's list is the override: indices or UUIDs, in the order given.
  CHECK(device_for_local_rank("2,3", 0) == "2");
  CHECK(device_for_local_rank("2,3", 1) == "3");
  CHECK(device_for_local_rank("GPU-8a1f,GPU-77c0", 1) == "GPU-77c0");
  // Spaces and empty entries are not devices.
  CHECK(device_for_local_rank(" 4, ,5,", 1) == "5");
  // More ranks on the machine than listed GPUs share them in turn.
  CHECK(device_for_local_rank("2,3", 2) == "2");
  CHECK(device_for_local_rank("2,3", 5) == "3");
  // Set but naming no device: the user hid the GPUs, and they stay hidden.
  CHECK(device_for_local_rank("", 1) == "");
}
