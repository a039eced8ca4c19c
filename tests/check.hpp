// Comparison helpers shared by the tests: |got − ref| ≤ atol + rtol·|ref|,
// element by element; NaN or Inf never passes.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace check {

struct Mismatch {
  std::size_t count = 0, first = 0;
  double got_value = 0, ref_value = 0;
};

template <typename A, typename B>
Mismatch compare(const std::vector<A>& got, const std::vector<B>& ref, double atol, double rtol) {
  Mismatch m;
  REQUIRE(got.size() == ref.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = double(got[i]), r = double(ref[i]);
    const bool ok = std::isfinite(g) && std::isfinite(r) && std::abs(g - r) <= atol + rtol * std::abs(r);
    if (!ok && m.count++ == 0) {
      m.first = i;
      m.got_value = g;
      m.ref_value = r;
    }
  }
  return m;
}

// CHECKs that got matches ref and names the first bad element otherwise.
#define CHECK_CLOSE_VEC(got, ref, atol, rtol)                                                \
  do {                                                                                       \
    const auto m_ = check::compare((got), (ref), (atol), (rtol));                            \
    INFO("mismatches: " << m_.count << ", first at " << m_.first << ": got " << m_.got_value \
                        << " want " << m_.ref_value);                                        \
    CHECK(m_.count == 0);                                                                    \
  } while (0)

template <typename T>
std::vector<T> random_vector(std::size_t n, std::mt19937& rng, double lo = -1, double hi = 1) {
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = T(u(rng));
  return v;
}

}  // namespace check
