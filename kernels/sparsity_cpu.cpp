#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

#include "kernels/sparsity.hpp"

namespace evoplast::kernels::cpu {
namespace {

// A unit's place in the selection as one unsigned word: its value's ordered
// key in the high half, its index's complement in the low half, so a larger
// word is a larger value or, at equal values, a lower index (ties to the
// lower index). Every word of a row is distinct.
std::uint64_t selection_word(float v, int i) {
  return (std::uint64_t(kwta_key(v)) << 32) | std::uint32_t(~std::uint32_t(i));
}
unsigned __int128 selection_word(double v, int i) {  // the same construction on 64-bit keys
  std::uint64_t u;
  std::memcpy(&u, &v, sizeof u);
  const std::uint64_t key = (u >> 63) ? ~u : (u | (std::uint64_t(1) << 63));
  return ((unsigned __int128)key << 64) | std::uint32_t(~std::uint32_t(i));
}
template <typename T>
using SelectionWord = decltype(selection_word(T{}, 0));

// One row's losers set to 0: the winners are the `keep` largest words, the
// keep-th largest found by nth_element over the row's words (integers
// compared, no index array), `words` the thread's scratch.
template <typename T>
void zero_losers(int units, int keep, T* row, std::vector<SelectionWord<T>>& words) {
  words.resize(std::size_t(units));
  for (int i = 0; i < units; ++i) words[std::size_t(i)] = selection_word(row[i], i);
  std::nth_element(words.begin(), words.begin() + (keep - 1), words.end(), std::greater<>());
  const SelectionWord<T> last_winner = words[std::size_t(keep - 1)];
  for (int i = 0; i < units; ++i)
    if (selection_word(row[i], i) < last_winner) row[i] = T(0);
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
        thread_local std::vector<SelectionWord<T>> words;
        zero_losers(units, keep, row, words);
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
