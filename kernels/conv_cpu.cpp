// Convolution as im2col + GEMM. Images are processed in chunks so that the
// column matrix stays a few MiB while each GEMM is still wide enough for
// OpenBLAS to run near its peak; the shared input's columns are built once per
// chunk and reused by every net (the "wide convolution" of the first layer).
#include "kernels/conv.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "kernels/gemm_cpu.hpp"

namespace evoplast::kernels::cpu {
namespace {

// Images per chunk: keep the column matrix near 4 Mi elements.
int chunk_images(const ConvShape& s) {
  const std::size_t per_image = std::size_t(s.Cin) * s.K * s.K * s.Ho() * s.Wo();
  const std::size_t target = std::size_t(1) << 22;
  return int(std::clamp<std::size_t>(target / std::max<std::size_t>(per_image, 1), 1, s.N));
}

// cols (Cin·K·K, nc·Ho·Wo) from nc images x (nc, Cin, H, W).
template <typename T>
void im2col(const ConvShape& s, const T* x, int nc, T* cols) {
  const int Ho = s.Ho(), Wo = s.Wo(), K = s.K, HW = Ho * Wo;
  const std::size_t ld = std::size_t(nc) * HW;
#pragma omp parallel for collapse(2) schedule(static)
  for (int ci = 0; ci < s.Cin; ++ci)
    for (int n = 0; n < nc; ++n) {
      const T* plane = x + (std::size_t(n) * s.Cin + ci) * s.H * s.W;
      for (int ky = 0; ky < K; ++ky)
        for (int kx = 0; kx < K; ++kx) {
          T* row = cols + (std::size_t(ci) * K * K + ky * K + kx) * ld + std::size_t(n) * HW;
          for (int oy = 0; oy < Ho; ++oy) {
            const T* src = plane + (oy + ky) * s.W + kx;
            T* dst = row + oy * Wo;
            for (int ox = 0; ox < Wo; ++ox) dst[ox] = src[ox];
          }
        }
    }
}

// dx (nc, Cin, H, W) = col2im(dcols); overwrites dx.
template <typename T>
void col2im(const ConvShape& s, const T* dcols, int nc, T* dx) {
  const int Ho = s.Ho(), Wo = s.Wo(), K = s.K, HW = Ho * Wo;
  const std::size_t ld = std::size_t(nc) * HW;
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < nc; ++n)
    for (int ci = 0; ci < s.Cin; ++ci) {
      T* plane = dx + (std::size_t(n) * s.Cin + ci) * s.H * s.W;
      std::fill(plane, plane + std::size_t(s.H) * s.W, T(0));
      for (int ky = 0; ky < K; ++ky)
        for (int kx = 0; kx < K; ++kx) {
          const T* row =
              dcols + (std::size_t(ci) * K * K + ky * K + kx) * ld + std::size_t(n) * HW;
          for (int oy = 0; oy < Ho; ++oy) {
            T* dst = plane + (oy + ky) * s.W + kx;
            const T* src = row + oy * Wo;
            for (int ox = 0; ox < Wo; ++ox) dst[ox] += src[ox];
          }
        }
    }
}

// Scratch that outlives a call: a fresh multi-MiB vector per call would cost
// an mmap and page faults every time. Grows, never shrinks; one per thread.
template <typename T, int Slot>
T* scratch(std::size_t n) {
  static thread_local std::vector<T> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

}  // namespace

template <typename T>
void conv2d_forward(const ConvShape& s, const T* x, const T* w, const T* b, T* y) {
  const int KK = s.Cin * s.K * s.K, HW = s.Ho() * s.Wo();
  const int chunk = chunk_images(s);
  T* cols = scratch<T, 0>(std::size_t(KK) * chunk * HW);
  T* out = scratch<T, 1>(std::size_t(s.Cout) * chunk * HW);
  const std::size_t x_net = std::size_t(s.N) * s.Cin * s.H * s.W;  // one net's input
  const std::size_t x_img = std::size_t(s.Cin) * s.H * s.W;
  for (int n0 = 0; n0 < s.N; n0 += chunk) {
    const int nc = std::min(chunk, s.N - n0);
    const int ld = nc * HW;
    if (s.shared_input) im2col(s, x + n0 * x_img, nc, cols);
    for (int p = 0; p < s.P; ++p) {
      if (!s.shared_input) im2col(s, x + p * x_net + n0 * x_img, nc, cols);
      gemm<T>(false, false, s.Cout, ld, KK, T(1), w + std::size_t(p) * s.Cout * KK, KK,
              cols, ld, T(0), out, ld);
      // out (Cout, nc·HW) → y[p, n0 + n, c, :] with the bias added.
      T* yp = y + (std::size_t(p) * s.N + n0) * s.Cout * HW;
      const T* bp = b + std::size_t(p) * s.Cout;
#pragma omp parallel for collapse(2) schedule(static)
      for (int n = 0; n < nc; ++n)
        for (int c = 0; c < s.Cout; ++c) {
          const T* src = out + std::size_t(c) * ld + std::size_t(n) * HW;
          T* dst = yp + (std::size_t(n) * s.Cout + c) * HW;
          const T bias = bp[c];
          for (int i = 0; i < HW; ++i) dst[i] = src[i] + bias;
        }
    }
  }
}

namespace {

// conv2d_backward, its dw and db for net p's channels rows[p] only where
// rows is not null (the others written as 0; dx must then be null).
template <typename T>
void backward(const ConvShape& s, const ChannelRange* rows, const T* x, const T* w, const T* dy, T* dx, T* dw,
              T* db) {
  if (s.shared_input && dx)
    throw std::invalid_argument("conv2d_backward: no input gradient for a shared input");
  const int KK = s.Cin * s.K * s.K, HW = s.Ho() * s.Wo();
  const int chunk = chunk_images(s);
  T* cols = scratch<T, 0>(std::size_t(KK) * chunk * HW);
  T* dyc = scratch<T, 1>(std::size_t(s.Cout) * chunk * HW);
  T* dcols = dx ? scratch<T, 2>(std::size_t(KK) * chunk * HW) : nullptr;
  const std::size_t x_net = std::size_t(s.N) * s.Cin * s.H * s.W;
  const std::size_t x_img = std::size_t(s.Cin) * s.H * s.W;
  if (db) std::fill(db, db + s.b_size(), T(0));
  if (dw && rows)  // the rows no net reads stay 0; the read ones the first chunk overwrites
    for (int p = 0; p < s.P; ++p) {
      T* dwp = dw + std::size_t(p) * s.Cout * KK;
      std::fill(dwp, dwp + std::size_t(rows[p].first) * KK, T(0));
      std::fill(dwp + std::size_t(std::max(rows[p].first, rows[p].last)) * KK, dwp + std::size_t(s.Cout) * KK, T(0));
    }
  for (int n0 = 0; n0 < s.N; n0 += chunk) {
    const int nc = std::min(chunk, s.N - n0);
    const int ld = nc * HW;
    // The columns serve the weight gradient only; a dx-only call skips them.
    if (dw && s.shared_input) im2col(s, x + n0 * x_img, nc, cols);
    for (int p = 0; p < s.P; ++p) {
      const int first = rows ? rows[p].first : 0, last = rows ? rows[p].last : s.Cout;
      if (first >= last && !dx) continue;  // nothing of this net is read
      if (dw && !s.shared_input) im2col(s, x + p * x_net + n0 * x_img, nc, cols);
      // dy[p, n0 + n, c, :] → dyc (Cout, nc·HW), and the bias gradient on the way.
      const T* dyp = dy + (std::size_t(p) * s.N + n0) * s.Cout * HW;
      T* dbp = db ? db + std::size_t(p) * s.Cout : nullptr;
#pragma omp parallel for schedule(static)
      for (int c = first; c < last; ++c) {
        T sum = 0;
        for (int n = 0; n < nc; ++n) {
          const T* src = dyp + (std::size_t(n) * s.Cout + c) * HW;
          T* dst = dyc + std::size_t(c) * ld + std::size_t(n) * HW;
          for (int i = 0; i < HW; ++i) {
            dst[i] = src[i];
            sum += src[i];
          }
        }
        if (dbp) dbp[c] += sum;
      }
      // dw (Cout, KK) (+)= dyc · colsᵀ, its rows [first, last); the first chunk overwrites.
      if (dw && first < last)
        gemm<T>(false, true, last - first, KK, ld, T(1), dyc + std::size_t(first) * ld, ld, cols, ld,
                n0 == 0 ? T(0) : T(1), dw + (std::size_t(p) * s.Cout + first) * KK, KK);
      if (dx) {
        const T* wp = w + std::size_t(p) * s.Cout * KK;
        // dcols (KK, nc·HW) = wᵀ · dyc, then scattered back onto the images.
        gemm<T>(true, false, KK, ld, s.Cout, T(1), wp, KK, dyc, ld, T(0), dcols,
                ld);
        col2im(s, dcols, nc, dx + p * x_net + n0 * x_img);
      }
    }
  }
  if (dx && s.input_relu)  // through the ReLU whose output x is, as relu_backward would
    for (std::size_t i = 0; i < s.x_size(); ++i)
      if (!(x[i] > T(0))) dx[i] = T(0);
}

}  // namespace

template <typename T>
void conv2d_backward(const ConvShape& s, const T* x, const T* w, const T* dy, T* dx, T* dw,
                     T* db) {
  backward<T>(s, nullptr, x, w, dy, dx, dw, db);
}

template <typename T>
void conv2d_weight_grad_rows(const ConvShape& s, const ChannelRange* rows, const T* x, const T* dy, T* dw, T* db) {
  backward<T>(s, rows, x, nullptr, dy, nullptr, dw, db);
}

template void conv2d_forward<float>(const ConvShape&, const float*, const float*, const float*,
                                    float*);
template void conv2d_forward<double>(const ConvShape&, const double*, const double*,
                                     const double*, double*);
template void conv2d_backward<float>(const ConvShape&, const float*, const float*, const float*,
                                     float*, float*, float*);
template void conv2d_backward<double>(const ConvShape&, const double*, const double*,
                                      const double*, double*, double*, double*);
template void conv2d_weight_grad_rows<float>(const ConvShape&, const ChannelRange*, const float*, const float*,
                                             float*, float*);
template void conv2d_weight_grad_rows<double>(const ConvShape&, const ChannelRange*, const double*, const double*,
                                              double*, double*);

}  // namespace evoplast::kernels::cpu
