#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/sparsity.hpp"

namespace evoplast::kernels::cpu {
namespace {

std::uint32_t ordered_key(float v) { return kwta_key(v); }
std::uint64_t ordered_key(double v) {  // the same construction on 64 bits
  std::uint64_t u;
  std::memcpy(&u, &v, sizeof u);
  return (u >> 63) ? ~u : (u | (std::uint64_t(1) << 63));
}

// Winners of one row: the `keep` largest keys, ties to the lower index.
template <typename T>
void select_winners(int units, int keep, const T* row, std::vector<int>& order, std::vector<char>& won) {
  order.resize(std::size_t(units));
  std::iota(order.begin(), order.end(), 0);
  const auto before = [&](int a, int b) {
    const auto ka = ordered_key(row[a]), kb = ordered_key(row[b]);
    return ka > kb || (ka == kb && a < b);
  };
  std::nth_element(order.begin(), order.begin() + (keep - 1), order.end(), before);
  won.assign(std::size_t(units), 0);
  for (int i = 0; i < keep; ++i) won[std::size_t(order[std::size_t(i)])] = 1;
}

}  // namespace

template <typename T>
void kwta_forward(int P, int N, int units, const KwtaParams* params, T* y, T* scale) {
  for (int p = 0; p < P; ++p) {
    const int keep = std::clamp(params[p].keep, 1, units);
    const bool select = keep < units, normalise = params[p].normalise != 0;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; ++n) {
      T* row = y + (std::size_t(p) * N + n) * units;
      T& s = scale[std::size_t(p) * N + n];
      s = T(1);
      if (select) {
        std::vector<int> order;
        std::vector<char> won;
        select_winners(units, keep, row, order, won);
        for (int i = 0; i < units; ++i)
          if (!won[std::size_t(i)]) row[i] = T(0);
      }
      if (normalise) {
        T sq = 0;
        for (int i = 0; i < units; ++i) sq += row[i] * row[i];  // losers are 0
        s = std::sqrt(T(keep)) / (std::sqrt(sq) + T(kKwtaEps));
        for (int i = 0; i < units; ++i) row[i] *= s;
      }
    }
  }
}

template <typename T>
void kwta_backward(int P, int N, int units, const KwtaParams* params, const T* y, const T* scale,
                   const T* dy, T* dx) {
  for (int p = 0; p < P; ++p) {
    const int keep = std::clamp(params[p].keep, 1, units);
    const bool normalise = params[p].normalise != 0;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; ++n) {
      const std::size_t off = (std::size_t(p) * N + n) * units;
      const T* yr = y + off;
      const T* dyr = dy + off;
      T* dxr = dx + off;
      if (!normalise) {
        for (int i = 0; i < units; ++i) dxr[i] = yr[i] != T(0) ? dyr[i] : T(0);
        continue;
      }
      T dot = 0;
      for (int i = 0; i < units; ++i) dot += yr[i] * dyr[i];
      const T s = scale[std::size_t(p) * N + n], proj = dot / T(keep);
      for (int i = 0; i < units; ++i) dxr[i] = yr[i] != T(0) ? s * (dyr[i] - yr[i] * proj) : T(0);
    }
  }
}

#define EVOPLAST_INSTANTIATE(T)                                                              \
  template void kwta_forward<T>(int, int, int, const KwtaParams*, T*, T*);                  \
  template void kwta_backward<T>(int, int, int, const KwtaParams*, const T*, const T*, const T*, T*);
EVOPLAST_INSTANTIATE(float)
EVOPLAST_INSTANTIATE(double)

}  // namespace evoplast::kernels::cpu
