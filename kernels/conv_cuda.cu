// Convolution on the GPU, by default as implicit GEMMs over all P nets
// (kernels/gemm_tile.cuh, at the GEMM precision): operands are gathered from
// the image or the error as each tile is loaded, and outputs are written in
// their final layout, so no patch matrix, GEMM output or column gradient
// touches global memory (the memory plan's im2col scratch is an upper bound).
// By im2col ($EVOPLAST_CONV=im2col): a kernel builds the patch matrix of a
// chunk of nets (once when the input is shared: conv1 is then one wide GEMM
// over P·Cout rows), the GEMM multiplies (cuBLAS in fp32, strided-batched over
// the population), and small kernels scatter with the bias, gather the error,
// and fold columns back.
#include "kernels/conv_plan.hpp"
#include "kernels/plasticity.hpp"
#include "kernels/cuda_util.cuh"
#include "kernels/gemm_tile.cuh"
#include "kernels/unit_stats.cuh"
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>

namespace evoplast::kernels::cuda {
namespace {

ConvImpl initial_conv_impl() {
  const char* e = std::getenv("EVOPLAST_CONV");
  if (e && std::strcmp(e, "cudnn") == 0 && cudnn_built()) return ConvImpl::cudnn;
  if (e && std::strcmp(e, "im2col") == 0) return ConvImpl::im2col;
  return ConvImpl::implicit_gemm;
}
ConvImpl g_conv = initial_conv_impl();
PooledErrorRead initial_pooled_error_read() {
  const char* e = std::getenv("EVOPLAST_POOLED_ERROR");
  return e && std::strcmp(e, "gathered") == 0 ? PooledErrorRead::gathered : PooledErrorRead::staged;
}
PooledErrorRead g_pooled_read = initial_pooled_error_read();
StackedRowsSum g_stacked_sum = StackedRowsSum::pair;

// cols (B, Cin·K·K, N·Ho·Wo) from x (B, N, Cin, H, W); B = P, or 1 when shared.
__global__ void im2col_kernel(ConvShape s, int B, const float* __restrict__ x, float* __restrict__ cols) {
  const int Ho = s.Ho(), Wo = s.Wo(), HW = Ho * Wo, KK = s.Cin * s.K * s.K;
  const std::size_t ld = std::size_t(s.N) * HW, total = std::size_t(B) * KK * ld;
  EVOPLAST_GRID_STRIDE(i, total) {
    const std::size_t col = i % ld, row = (i / ld) % KK, b = i / (ld * KK);
    const int n = int(col / HW), pos = int(col % HW), oy = pos / Wo, ox = pos % Wo;
    const int ci = int(row) / (s.K * s.K), ky = int(row) / s.K % s.K, kx = int(row) % s.K;
    cols[i] = x[((b * s.N + n) * s.Cin + ci) * std::size_t(s.H) * s.W + (oy + ky) * s.W + ox + kx];
  }
}

// The loaders below keep each thread on one index of its tile for the whole
// slice (the same element order as a flat i = thread + 128·j walk, so the
// same loads coalesce and the same shared-memory banks are hit): one of a B
// tile's 64 columns, its rows kRowStepB apart, or one of an A tile's 16 k,
// its rows kRowStepA apart. What depends on that index alone (an output's
// (n, oy, ox), a patch row's (c, ky, kx)) is worked out once per slice, or
// once per block where the thread keeps its column for the whole sum, and
// the other index is stepped without dividing: the divisions by run-time
// sizes were most of a loader's instructions, per element.
constexpr int kRowStepB = kTileThreads / kTileN, kRowStepA = kTileThreads / kTileK;
static_assert(kTileThreads % kTileN == 0 && kTileThreads % kTileK == 0, "a thread keeps one column of its tile");
static_assert(kTileK / kRowStepB == kPerThread && kTileM / kRowStepA == kPerThread && kTileN / kDownStep == kPerThread,
              "a thread's rows are its share of the tile");

// Where element r of a thread's share goes (every loader's slot): a B tile's column
// threadIdx % kTileN, rows kRowStepB apart; an A tile's column threadIdx %
// kTileK, rows kRowStepA apart from a_tile_row0; a B tile's row
// down_b_k(threadIdx), columns kDownStep apart from down_b_n(threadIdx) (the
// weight gradient's B, whose long sum runs down the output's columns).
__device__ __forceinline__ float& b_column_slot(float (&tile)[kTileK][kTileN + 8], int r) {
  return tile[int(threadIdx.x) / kTileN + r * kRowStepB][int(threadIdx.x) % kTileN];
}
__device__ __forceinline__ float& a_column_slot(float (&tile)[kTileM][kTileK + 4], int r) {
  return tile[a_tile_row0(int(threadIdx.x) / kTileK) + r * kRowStepA][int(threadIdx.x) % kTileK];
}
__device__ __forceinline__ float& b_row_slot(float (&tile)[kTileK][kTileN + 8], int r) {
  return tile[down_b_k(int(threadIdx.x))][down_b_n(int(threadIdx.x)) + r * kDownStep];
}
// Row k = (c, ky, kx) of a window matrix (c an output channel), stepped
// along k without dividing: the rows of a made error's windows (a stored
// one's, and an image's patches, are found in a patch-row table).
struct PatchRow {
  int c, ky, kx;
  __device__ PatchRow(int k, int K) : c(k / (K * K)), ky(k / K % K), kx(k % K) {}
  __device__ void advance(int by, int K) {
    for (kx += by; kx >= K; kx -= K)
      if (++ky == K) ky = 0, ++c;
  }
};

// An output position (n, oy, ox) among a convolution's N·Ho·Wo columns,
// stepped along them without dividing.
struct OutputPosition {
  int n, oy, ox;
  __device__ OutputPosition(int col, int Ho, int Wo) : n(col / (Ho * Wo)), oy(col % (Ho * Wo) / Wo), ox(col % Wo) {}
  __device__ void advance(int by, int Ho, int Wo) {
    for (ox += by; ox >= Wo; ox -= Wo)
      if (++oy == Ho) oy = 0, ++n;
  }
  // By a stride's (n, oy, ox) digits (an OutputPosition made from the stride), with carries: O(1) for any stride.
  __device__ void advance(const OutputPosition& by, int Ho, int Wo) {
    ox += by.ox;
    const int c = ox >= Wo;
    ox -= c * Wo;
    oy += by.oy + c;
    const int d = oy >= Ho;
    oy -= d * Ho;
    n += by.n + d;
  }
};

// Patches of images (Cin, H, W) under a K×K kernel: what a loader keeps of
// the shape (the rest of ConvShape would only hold registers).
struct PatchGeometry {
  int Cin, K, H, W;
  __device__ explicit PatchGeometry(const ConvShape& s) : Cin(s.Cin), K(s.K), H(s.H), W(s.W) {}
  __device__ int rows() const { return Cin * K * K; }
  // The patch under output (n, oy, ox): its top-left pixel in channel 0, x[n][0][oy][ox].
  __device__ const float* corner(const float* x, int n, int oy, int ox) const {
    return x + (std::size_t(n) * Cin * H + oy) * W + ox;
  }
};

// ---- patch-row tables ----
//
// The loaders that gather patches of an image (or windows of an error) find
// where a patch row (c, ky, kx) lies from the patch's corner in a table in
// shared memory that the block fills before its sum: stepping (c, ky, kx)
// along the rows with carries (PatchRow) took ~30 instructions an element
// for one cp.async, most of the loop besides the FMAs (bench/ptx_mix.py).
// An entry packs the row's place with its ky·K + kx (6 bits: which of a
// window's K² elements, for the input gradient's bounds).
__device__ __forceinline__ int entry_place(int entry) { return entry >> 6; }  // arithmetic: a window's may be < 0
__device__ __forceinline__ int entry_element(int entry) { return entry & 63; }

// Row j = (c, ky, kx) of a patch of images (·, H, W): its place (c·H +
// ky)·W + kx from the patch's corner; or, window, the place (c·H − ky)·W −
// kx from pixel (y, x) of an error window's row, the error (·, H, W) at (c,
// y − ky, x − kx). Its entry in a sum's table.
__device__ __forceinline__ int patch_row_place(int j, int K, int H, int W, bool window) {
  const int KK = K * K, c = j / KK, ky = j % KK / K, kx = j % K;
  return window ? (c * H - ky) * W - kx : (c * H + ky) * W + kx;
}
__device__ __forceinline__ int patch_row_entry(int j, int K, int H, int W, bool window) {
  const int element = j % (K * K);
  return patch_row_place(j, K, H, W, window) * 64 + (element < 64 ? element : 63);  // past 63: a patch's, unread
}

// The B operand (Cin·K², N·Ho·Wo) of a convolution's forward GEMM, or
// (Cout·K², N·H·W) of its input gradient's, gathered as a tile is loaded,
// the sum from row 0: each thread keeps its column, threadIdx % kTileN of
// its tile, for the whole sum, and takes rows k0 + threadIdx / kTileN +
// i·kRowStepB of each slice: B(k, col) = origin[place + place of entry k],
// 0 past the rows and where entry k's window element is not `inside`.
// Every thread of the block makes it, before its sum: it fills the table
// with the sum's rows of images (·, H, W) (window: an error's windows, see
// patch_row_place), in periods of patch_table_period(K, H·W) rows: entries
// 0 … period + kTileK − 1, so that a slice's rows from any row of a period
// are in the table (row period + j lies L·H·W places after row j), and
// none past the rows.
struct TabledColumns {
  static constexpr bool kCopies = true;
  const int* table;
  const float* origin;   // this column's patch corner, or its error image; null past the matrix
  std::uint64_t inside;  // bit ky·K + kx: that element of the column's window lies in the image (0 past the matrix)
  int rows, period, period_places;  // the sum's rows; the table's period, and the places a period moves on
  int at;     // this thread's next row, as a row of the table's period
  int place;  // the place the period of `at` starts at
  __device__ TabledColumns(int (&table)[kPatchTableRows], int rows, int K, int H, int W, bool window,
                           const float* origin, std::uint64_t inside, int place)
      : table(table),
        origin(origin),
        inside(inside),
        rows(rows),
        period(patch_table_period(K, H * W)),
        period_places(period / (K * K) * H * W),
        at(int(threadIdx.x) / kTileN),
        place(place) {
    const int entries = period + kTileK < rows ? period + kTileK : rows;
    for (int j = int(threadIdx.x); j < entries; j += int(blockDim.x)) table[j] = patch_row_entry(j, K, H, W, window);
    __syncthreads();
  }
  template <class Sink>
  __device__ void sources(int k0, int /*n0: the constructor's*/, const Sink& sink) {
    const int left = rows - k0 - int(threadIdx.x) / kTileN;  // this thread's rows from here
    const int* entries = table + at;
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int entry = entries[i * kRowStepB];
      const bool read = i * kRowStepB < left && (inside >> entry_element(entry) & 1u);
      sink(i, read ? origin + (place + entry_place(entry)) : nullptr);
    }
    at += kTileK;
    if (at >= period) at -= period, place += period_places;  // a period is at least a slice
  }
  __device__ float& slot(float (&tile)[kTileK][kTileN + 8], int r) const { return b_column_slot(tile, r); }
};

// The patch under column col of the patch matrix (Cin·K², N·Ho·Wo), or null past its columns.
__device__ __forceinline__ const float* column_patch(const float* x, const ConvShape& s, int col) {
  const OutputPosition at(col, s.Ho(), s.Wo());
  return col < s.N * s.Ho() * s.Wo() ? PatchGeometry(s).corner(x, at.n, at.oy, at.ox) : nullptr;
}

// The forward GEMM's B: B(k, col) = element k of the patch under this
// thread's column col, from its corner (null past the matrix). Every thread
// of the block makes it.
__device__ TabledColumns image_columns(int (&table)[kPatchTableRows], const ConvShape& s, const float* corner) {
  return TabledColumns(table, s.Cin * s.K * s.K, s.K, s.H, s.W, false, corner, corner ? ~std::uint64_t{0} : 0, 0);
}

// A net's output y (N, Cout, Ho·Wo) = C(co, col) + b[co], through the ReLU
// after it when relu (as relu_forward would leave it in place).
struct ConvOutput {
  float* y;
  const float* b;
  int Cout, cols, HW;
  bool relu;
  __device__ float* at(int co, int col) const { return y + (std::size_t(col / HW) * Cout + co) * HW + col % HW; }
  __device__ float output(int co, float v) const {
    const float z = v + b[co];
    return relu ? (z > 0.0f ? z : 0.0f) : z;
  }
  __device__ void operator()(int co, int col, float v) const {
    if (co < Cout && col < cols) *at(co, col) = output(co, v);
  }
  // col and col + 1 are neighbours in y where they lie in one image.
  __device__ void operator()(int co, int col, float v0, float v1) const {
    if (co >= Cout || col >= cols) return;
    float* first = at(co, col);
    if (as_float2(first, col + 1 < cols && col % HW + 1 < HW)) {
      store_float2(first, output(co, v0), output(co, v1));
    } else {
      *first = output(co, v0);
      (*this)(co, col + 1, v1);
    }
  }
};

// The forward GEMM's A, net p's W (Cout, Cin·K²): copied in 16-byte runs
// (PaddedRowsA: a quarter of the copies) where kRuns, which the launch sets
// where its rows are whole slices long and it is 16-byte aligned
// (weights_in_runs: conv2's rows of 288), else element by element (conv1's
// rows of 9).
template <bool kRuns>
__device__ auto forward_weights(const float* w, const ConvShape& s, std::size_t p) {
  const int KK = s.Cin * s.K * s.K;
  if constexpr (kRuns) return PaddedRowsA{w + p * s.Cout * KK, KK, s.Cout};
  else return StridedA{w + p * s.Cout * KK, KK, s.Cout, KK, false};
}

// The forward convolution of every net at once as an implicit GEMM: block (x, y)
// is a 64×64 tile of (Cout, N·Ho·Wo), block z the net.
template <Precision kP, bool kRuns>
__global__ void __launch_bounds__(kTileThreads, kTileBlocksPerSM)
    conv_forward_tile(ConvShape s, const float* __restrict__ x, const float* __restrict__ w,
                      const float* __restrict__ b, bool relu, float* __restrict__ y) {
  __shared__ int table[kPatchTableRows];
  const std::size_t p = blockIdx.z;
  const int KK = s.Cin * s.K * s.K, HW = s.Ho() * s.Wo(), n0 = int(blockIdx.x) * kTileN;
  const float* image = x + (s.shared_input ? 0 : p * s.N * s.Cin * s.H * s.W);
  gemm_tile<kP>(int(blockIdx.y) * kTileM, n0, TileExtent{s.Cout, s.N * HW}, 0, KK, forward_weights<kRuns>(w, s, p),
                image_columns(table, s, column_patch(image, s, n0 + int(threadIdx.x) % kTileN)),
                ConvOutput{y + p * s.N * s.Cout * HW, b + p * s.Cout, s.Cout, s.N * HW, HW, relu});
}

// ---- the backward pass as implicit GEMMs ----

// A convolution's output error dy (P, N, Cout, Ho, Wo) as the backward
// kernels read it: at(p, n, co, oy, ox). Stored, or made as it is read from
// the error of a ReLU and 2×2 max-pool after the convolution (PooledError).
struct StoredError {
  const float* dy;  // (P, N, Cout, Ho, Wo)
  int N, Cout, Ho, Wo;
  __device__ float at(std::size_t p, int n, int co, int oy, int ox) const {
    return dy[(((p * N + n) * Cout + co) * Ho + oy) * std::size_t(Wo) + ox];
  }
};

// An error's values at one output position (n, oy, ox) of net p, by channel:
// at(co) = e.at(p, n, co, oy, ox). The weight gradient's A loader reads a
// column's rows this way; a stored error's column finds its place once and
// steps a channel's plane from it (64-bit index math per element was more
// of that loader's instructions than its loads).
template <class Error>
struct ErrorColumn {
  Error e;
  std::size_t p;
  int n, oy, ox;
  __device__ float at(int co) const { return e.at(p, n, co, oy, ox); }
};
template <class Error>
__device__ ErrorColumn<Error> column_of(const Error& e, std::size_t p, int n, int oy, int ox) {
  return {e, p, n, oy, ox};
}
struct StoredColumn {
  const float* pixel;  // dy[p][n][0][oy][ox]
  int plane;           // Ho·Wo: one image's channels lie this far apart (an int)
  __device__ float at(int co) const { return *place_of(co); }
  __device__ const float* place_of(int co) const { return pixel + co * plane; }
};
// Whether a column's (or an image's) values lie in memory as they are
// (place_of gives where): its loaders then copy them (gemm_tile's copying
// loaders), where a made value is fetched.
template <class View>
constexpr bool is_stored = false;
template <>
constexpr bool is_stored<StoredColumn> = true;

// One image (net p, image n) of an error, by output channel and pixel:
// at(c, oy, ox). A stored image is where its elements lie instead: the
// input gradient's loader copies them from there (error_windows), where a
// made one's are made from (c, oy, ox) (dy.at's 64-bit index, a handful of
// multiplies an element, was most of that loader's instructions).
template <class Error>
struct ErrorImage {
  Error e;
  std::size_t p;
  int n;
  __device__ float at(int c, int oy, int ox) const { return e.at(p, n, c, oy, ox); }
};
template <class Error>
__device__ ErrorImage<Error> image_of(const Error& e, std::size_t p, int n) {
  return {e, p, n};
}
struct StoredImage {
  const float* image;  // dy[p][n]: (Cout, Ho, Wo), so a place in it fits an int
};
template <>
constexpr bool is_stored<StoredImage> = true;
__device__ inline StoredImage image_of(const StoredError& e, std::size_t p, int n) {
  return {e.dy + (p * e.N + n) * std::size_t(e.Cout) * e.Ho * e.Wo};
}
__device__ inline StoredColumn column_of(const StoredError& e, std::size_t p, int n, int oy, int ox) {
  return {image_of(e, p, n).image + oy * e.Wo + ox, e.Ho * e.Wo};
}
// conv → ReLU → 2×2 max-pool, backward: an output gets the pooled error where
// it was its window's maximum and that maximum passed the ReLU (> 0), else 0;
// outputs outside every window get 0. What maxpool2d_backward then
// relu_backward would write, without writing it.
struct PooledError {
  const float* dy;             // (P, N, Cout, Hp, Wp): the error of the step's output y
  const float* y;              // (P, N, Cout, Hp, Wp): pooled (and dropped out); > 0: kept, the ReLU passed
  const std::int32_t* argmax;  // (P, N, Cout, Hp, Wp): the maximum's index in the Ho×Wo plane
  int N, Cout, Ho, Wo, Hp, Wp;
  float scale;  // dropout's on the kept elements (1: none)
  __device__ float at(std::size_t p, int n, int co, int oy, int ox) const {
    const int ph = oy / 2, pw = ox / 2;
    if (ph >= Hp || pw >= Wp) return 0.0f;
    const std::size_t j = (((p * N + n) * Cout + co) * Hp + ph) * std::size_t(Wp) + pw;
    return argmax[j] == oy * Wo + ox && y[j] > 0.0f ? dy[j] * scale : 0.0f;
  }
};

// A conv plastic layer's error under a ReLU and 2×2 max-pool, by each net's
// feedback mode (PooledConvError): keep reads the pool's error as
// PooledError does, dfa the projection where the ReLU passed, none 0; the
// values route_hidden_error leaves in a stored error.
struct RoutedPooledError {
  PooledError kept;         // the pool's error routed to its windows' maxima
  const HiddenError* mode;  // (P), device; null: every net keeps
  const float* dfa_e;       // (P, N, Cout, Ho, Wo), or null
  const float* act;         // (P, N, Cout, Ho, Wo): the ReLU's output
  HiddenError net_mode;     // the mode of the net read for (for_net), looked up once per block
  __device__ float at(std::size_t p, int n, int co, int oy, int ox) const {
    if (net_mode == HiddenError::keep) return kept.at(p, n, co, oy, ox);
    if (net_mode == HiddenError::none) return 0.0f;
    const std::size_t i = (((p * kept.N + n) * kept.Cout + co) * kept.Ho + oy) * std::size_t(kept.Wo) + ox;
    return act[i] > 0.0f ? dfa_e[i] : 0.0f;
  }
};

// An error as net p's loaders read it: a routed error with p's mode looked
// up (once per block, not per element); any other as it is.
template <class Error>
__device__ Error for_net(const Error& e, std::size_t) {
  return e;
}
__device__ inline RoutedPooledError for_net(RoutedPooledError e, std::size_t p) {
  e.net_mode = e.mode ? e.mode[p] : HiddenError::keep;
  return e;
}

// Whether net p's error goes on below the layer: a net that routes its hidden
// layers' errors (DFA, none) reads none of it.
template <class Error>
__device__ bool passes_down(const Error&, std::size_t) {
  return true;
}
__device__ inline bool passes_down(const RoutedPooledError& e, std::size_t p) {
  return !e.mode || e.mode[p] == HiddenError::keep;
}
// The error a net that passes it down reads (passes_down holds): a routed
// error's kept part, with no per-element look at the net's mode.
template <class Error>
__device__ const Error& passed_down(const Error& e) {
  return e;
}
__device__ inline const PooledError& passed_down(const RoutedPooledError& e) {
  return e.kept;
}

// The error of conv s's output made from dy, the error of the pool after it
// (or of a dropout after that, in place: rate 0, none), y and argmax (P, N,
// Cout, Ho/2, Wo/2) as the backward kernels read it.
PooledError pooled_error(const ConvShape& s, const float* dy, const float* y, const std::int32_t* argmax,
                         const DropoutParams& dropout) {
  return PooledError{dy,         y,          argmax, s.N, s.Cout, s.Ho(), s.Wo(), s.Ho() / 2, s.Wo() / 2,
                     dropout.rate > 0 ? dropout_scale(dropout) : 1.0f};
}

RoutedPooledError routed_pooled_error(const ConvShape& s, const PooledConvError& e) {
  return RoutedPooledError{pooled_error(s, e.dy, e.y, e.argmax, e.dropout), e.mode, e.dfa_e, e.act,
                           HiddenError::keep};
}

// A routed error staged (stored as RoutedPooledError reads it), each net's
// feedback mode kept beside it for what skips work by it (passes_down,
// error_vanishes below).
struct RoutedStoredError {
  StoredError stored;       // (P, N, Cout, Ho, Wo)
  const HiddenError* mode;  // (P), device; null: every net keeps
  __device__ float at(std::size_t p, int n, int co, int oy, int ox) const { return stored.at(p, n, co, oy, ox); }
};
__device__ inline StoredColumn column_of(const RoutedStoredError& e, std::size_t p, int n, int oy, int ox) {
  return column_of(e.stored, p, n, oy, ox);
}
__device__ inline bool passes_down(const RoutedStoredError& e, std::size_t p) {
  return !e.mode || e.mode[p] == HiddenError::keep;
}
// A net that passes it down kept the pool's error: what was staged is it.
__device__ inline const StoredError& passed_down(const RoutedStoredError& e) {
  return e.stored;
}

// An error routed by each net's feedback mode: it reaches dW and db only
// inside a plastic layer's stacked rows.
template <class Error>
constexpr bool is_routed = false;
template <>
constexpr bool is_routed<RoutedPooledError> = true;
template <>
constexpr bool is_routed<RoutedStoredError> = true;

// The Hebbian half of a conv plastic layer's stacked rows made as they are
// read: row o the post factor of y_o with θ as it is, over N·Ho·Wo
// (stack_error_and_hebb's values).
struct HebbianRows {
  const float* y;                  // (P, N, Out, Ho, Wo)
  const float* theta;              // (P, Out)
  const PlasticityCoeffs* coeffs;  // (P)
  int N, Out, Ho, Wo;
  float inv;  // 1 / (N·Ho·Wo)
};
// The Hebbian rows' column at one output position (column_of): from y's
// column, with the net's θ and BCM share.
struct HebbianColumn {
  const float* y;      // y[p][n][0][oy][ox]
  const float* theta;  // θ[p][0]
  int plane;           // Ho·Wo
  float bcm, inv;
  __device__ float at(int o) const { return hebb_post(y[o * plane], theta[o], bcm) * inv; }
};
__device__ inline HebbianColumn column_of(const HebbianRows& rows, std::size_t p, int n, int oy, int ox) {
  const int plane = rows.Ho * rows.Wo;
  return {rows.y + ((p * rows.N + n) * rows.Out * std::size_t(plane) + oy * rows.Wo + ox), rows.theta + p * rows.Out,
          plane, rows.coeffs[p].bcm, rows.inv};
}

// The stacked rows [e | ŷ/(N·S)] of a conv plastic layer made as they are
// read (no labels): row co < Out is the error (stored, or made from the pool
// above: Error), row Out + o the Hebbian row o (a half the net's rule does
// not read is 0: read_rows leaves it out, see conv_weight_grad_tile).
template <class Error>
struct StackedError {
  Error e;              // (P, N, Out, Ho, Wo) as the kernels read it
  HebbianRows hebbian;  // the rows after it
};
// The stacked rows' column at one output position (column_of): the error's
// rows, then the Hebbian rows'.
template <class Column>
struct StackedColumn {
  Column error;           // rows co < Out
  HebbianColumn hebbian;  // rows co ≥ Out
  int Out;
  __device__ float at(int co) const { return co < Out ? error.at(co) : hebbian.at(co - Out); }
};
template <class Error>
__device__ auto column_of(const StackedError<Error>& rows, std::size_t p, int n, int oy, int ox) {
  return StackedColumn<decltype(column_of(rows.e, p, n, oy, ox))>{
      column_of(rows.e, p, n, oy, ox), column_of(rows.hebbian, p, n, oy, ox), rows.hebbian.Out};
}
template <class Error>
__device__ StackedError<Error> for_net(StackedError<Error> rows, std::size_t p) {
  rows.e = for_net(rows.e, p);
  return rows;
}
// The rows [first, last) of net p's error (Cout rows) that are not 0 by
// construction: all of them, but in the stacked rows without a half the
// net's rule does not read, nor the error rows of a net on none. A tile of
// rows all outside is 0 exactly (for finite inputs), written without the
// GEMM (nothing loaded), and so is a bias sum of such a row.
struct RowRange {
  int first, last;
  __device__ bool has(int row) const { return row >= first && row < last; }
  __device__ bool misses_tile(int m0) const { return first >= last || m0 >= last || m0 + kTileM <= first; }
};
template <class Error>
__device__ RowRange read_rows(const Error&, std::size_t, int Cout) {
  return {0, Cout};
}
__device__ inline bool error_vanishes(const StoredError&, std::size_t) {
  return false;
}
__device__ inline bool error_vanishes(const RoutedPooledError& e, std::size_t p) {
  return e.mode && e.mode[p] == HiddenError::none;
}
__device__ inline bool error_vanishes(const RoutedStoredError& e, std::size_t p) {
  return e.mode && e.mode[p] == HiddenError::none;
}
// Whether net p's error rows (its rule reads them, and its error is not 0
// by its feedback mode) and its Hebbian rows are read, not 0 by construction.
template <class Error>
__device__ bool reads_errors(const StackedError<Error>& rows, std::size_t p) {
  return reads_error_rows(rows.hebbian.coeffs[p]) && !error_vanishes(rows.e, p);
}
template <class Error>
__device__ bool reads_hebbian(const StackedError<Error>& rows, std::size_t p) {
  return reads_hebbian_rows(rows.hebbian.coeffs[p]);
}
template <class Error>
__device__ RowRange read_rows(const StackedError<Error>& rows, std::size_t p, int /*Cout: 2·Out*/) {
  const int Out = rows.hebbian.Out;
  return {reads_errors(rows, p) ? 0 : Out, reads_hebbian(rows, p) ? 2 * Out : Out};
}

template <class Error>
constexpr bool is_stacked_rows = false;
template <class Error>
constexpr bool is_stacked_rows<StackedError<Error>> = true;

// A(co, col) = dy[n][co][pos] of net p, col = (n, pos): the weight
// gradient's left operand read in place (no gathered copy).
template <class Error>
struct OutputErrorRows {
  Error dy;
  std::size_t p;
  int Cout, Ho, Wo, cols;
  int col;            // this thread's column of the slice: k0 + threadIdx % kTileK
  OutputPosition at;  // its (n, oy, ox)
  // Made once per block (the sum from k_begin); each slice moves the thread's column kTileK on.
  __device__ OutputErrorRows(const Error& dy, std::size_t p, const ConvShape& s, int k_begin)
      : dy(for_net(dy, p)),
        p(p),
        Cout(s.Cout),
        Ho(s.Ho()),
        Wo(s.Wo()),
        cols(s.N * s.Ho() * s.Wo()),
        col(k_begin + int(threadIdx.x) % kTileK),
        at(col, Ho, Wo) {}
  using Column = decltype(column_of(std::declval<Error>(), std::size_t{}, 0, 0, 0));
  static constexpr bool kCopies = is_stored<Column>;  // else fetched
  template <class Sink>
  __device__ void sources(int m0, int /*k0: carried*/, const Sink& sink) {
    visit(m0, [&](int i, const Column& column, int co, bool inside) {
      sink(i, inside ? column.place_of(co) : nullptr);
    });
  }
  __device__ float& slot(float (&tile)[kTileM][kTileK + 4], int r) const { return a_column_slot(tile, r); }
  __device__ void fetch(TileShare& v, int m0, int /*k0: carried*/) {
    visit(m0, [&](int i, const Column& column, int co, bool inside) { v[i] = inside ? column.at(co) : 0.0f; });
  }

 private:
  // f(i, column, co, inside) for element i of the share, channel co of this thread's column.
  template <class F>
  __device__ void visit(int m0, const F& f) {
    const int mm0 = a_tile_row0(int(threadIdx.x) / kTileK);
    const Column column = column_of(dy, p, at.n, at.oy, at.ox);
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int co = m0 + mm0 + i * kRowStepA;
      f(i, column, co, co < Cout && col < cols);
    }
    col += kTileK;
    at.advance(kTileK, Ho, Wo);
  }
};

// B(col, k) = element k of the patch under output column col: the
// forward's patch rows as columns, the weight gradient's right operand (its
// rows are the output's columns, the long sum). Made once per block by every
// thread (its tile's patch rows n0 … n0 + kTileN − 1, the sum from
// k_begin), which puts those rows' places in `table`: each thread keeps its
// patch rows, and each slice moves its column kTileK on.
struct ImagePatches {
  static constexpr bool kCopies = true;
  const float* x;     // (N, Cin, H, W)
  const int* places;  // of this thread's first patch row (n0 + down_b_n(threadIdx)) in the table, the next kDownStep on
  PatchGeometry g;
  int Ho, Wo, cols;
  int rows_left;      // the patch rows from this thread's first
  int col;            // this thread's column of the slice: k0 + down_b_k(threadIdx)
  OutputPosition at;  // its (n, oy, ox)
  __device__ ImagePatches(int (&table)[kTileN], const float* x, const ConvShape& s, int k_begin, int n0)
      : x(x),
        places(table + down_b_n(int(threadIdx.x))),
        g(s),
        Ho(s.Ho()),
        Wo(s.Wo()),
        cols(s.N * s.Ho() * s.Wo()),
        rows_left(g.rows() - n0 - down_b_n(int(threadIdx.x))),
        col(k_begin + down_b_k(int(threadIdx.x))),
        at(col, Ho, Wo) {
    for (int j = int(threadIdx.x); j < kTileN; j += int(blockDim.x))
      table[j] = n0 + j < g.rows() ? patch_row_place(n0 + j, s.K, s.H, s.W, false) : 0;
    __syncthreads();
  }
  template <class Sink>
  __device__ void sources(int /*k0: carried*/, int /*n0: the constructor's*/, const Sink& sink) {
    const float* corner = col < cols ? g.corner(x, at.n, at.oy, at.ox) : nullptr;
#pragma unroll
    for (int i = 0; i < kPerThread; ++i)
      sink(i, corner && i * kDownStep < rows_left ? corner + places[i * kDownStep] : nullptr);
    col += kTileK;
    at.advance(kTileK, Ho, Wo);
  }
  __device__ float& slot(float (&tile)[kTileK][kTileN + 8], int r) const { return b_row_slot(tile, r); }
};

// wt (P, Cin, ld = transposed_weights_ld(s)): each net's W (Cout, Cin,
// K·K), or its feedback matrix (w.of), as Wᵀ's rows, A(ci, k) =
// W[co][ci][ky][kx] at k = (co, ky, kx) < Cout·K·K, 0 after: the input
// gradient's A operand, read as a PaddedRowsA. Each of its blocks reads all
// of A, where W's own layout holds a row's k in runs of K·K floats Cin·K·K
// apart (6.88 device sectors a load request of conv2's input gradient
// against 5.30 so, in the simulator's count); here W is read once in those
// runs and Wᵀ written coalesced.
__global__ void transpose_weights_kernel(ConvShape s, PickedWeights w, float* __restrict__ wt) {
  const int KK = s.K * s.K, row = s.Cout * KK, ld = transposed_weights_ld(s), per_net = s.Cin * ld;
  EVOPLAST_GRID_STRIDE(i, std::size_t(s.P) * per_net) {
    const int at = int(i % per_net), ci = at / ld, k = at % ld;
    wt[i] = k < row ? w.of(i / per_net)[(k / KK * s.Cin + ci) * KK + k % KK] : 0.0f;
  }
}
static_assert(kTileK == 16, "transposed_weights_ld pads Wᵀ's rows to the slice depth, 16");

// B(k, col) = dy[n][co][iy − ky][ix − kx] (0 outside the output), k = (co, ky, kx),
// col = (n, iy, ix) over the input's pixels: the input gradient gathers its
// error in place of col2im's scattered sum. A stored error's elements are
// copied from where they lie (error_windows, by the patch-row table); a made
// one's (a pool's error gathered as it is read) are made from (co, oy, ox)
// here, each thread stepping its rows' (co, ky, kx).
template <class Error>
struct ErrorWindows {
  using Image = decltype(image_of(std::declval<Error>(), std::size_t{}, 0));
  static_assert(!is_stored<Image>, "a stored error's windows are copied: error_windows");
  static constexpr bool kCopies = false;
  Image image;     // the error image of this thread's column's n
  int K, Ho, Wo, rows;
  int iy, ix;      // this thread's column: input pixel (n, iy, ix)
  bool in_matrix;  // the column lies inside the matrix (N·H·W)
  PatchRow row;    // the (co, ky, kx) of its next row
  // Made once per block (its tile's first column n0, the sum from k_begin): each thread's column is its own.
  __device__ ErrorWindows(const Error& dy, std::size_t p, const ConvShape& s, int k_begin, int n0)
      : image(image_of(for_net(dy, p), p, (n0 + int(threadIdx.x) % kTileN) / (s.H * s.W))),
        K(s.K),
        Ho(s.Ho()),
        Wo(s.Wo()),
        rows(s.Cout * s.K * s.K),
        row(k_begin + int(threadIdx.x) / kTileN, s.K) {
    const int HWin = s.H * s.W, col = n0 + int(threadIdx.x) % kTileN;
    iy = col % HWin / s.W, ix = col % s.W;
    in_matrix = col < s.N * HWin;
  }
  __device__ float& slot(float (&tile)[kTileK][kTileN + 8], int r) const { return b_column_slot(tile, r); }
  __device__ void fetch(TileShare& v, int k0, int /*n0: the constructor's*/) {
    const int kk0 = threadIdx.x / kTileN;
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int oy = iy - row.ky, ox = ix - row.kx;
      const bool inside = unsigned(oy) < unsigned(Ho) && unsigned(ox) < unsigned(Wo);
      v[i] = in_matrix && k0 + kk0 + i * kRowStepB < rows && inside ? image.at(row.c, oy, ox) : 0.0f;
      row.advance(kRowStepB, K);
    }
  }
};

// The input gradient's B from a stored error dy of net p, (N, Cout, Ho,
// Wo), for the block's tile at column n0 of (Cout·K², N·H·W): each thread's
// column (n, iy, ix) finds its error image and which of its window's K²
// elements lie in it (K ≤ kMaxWindowK) once. Every thread of the block
// makes it.
__device__ TabledColumns error_windows(int (&table)[kPatchTableRows], const StoredError& dy, std::size_t p,
                                       const ConvShape& s, int n0) {
  const int Ho = s.Ho(), Wo = s.Wo(), HWin = s.H * s.W, col = n0 + int(threadIdx.x) % kTileN;
  const int iy = col % HWin / s.W, ix = col % s.W;
  const bool in_matrix = col < s.N * HWin;
  std::uint64_t inside = 0;
  for (int ky = 0; in_matrix && ky < s.K; ++ky)
    for (int kx = 0; kx < s.K; ++kx)
      if (unsigned(iy - ky) < unsigned(Ho) && unsigned(ix - kx) < unsigned(Wo))
        inside |= std::uint64_t{1} << (ky * s.K + kx);
  return TabledColumns(table, s.Cout * s.K * s.K, s.K, Ho, Wo, true,
                       in_matrix ? image_of(dy, p, col / HWin).image : nullptr, inside, iy * Wo + ix);
}

// dx[n][ci][pixel] of one net from C(ci, col), col = (n, pixel); where relu_x is
// given (ConvShape::input_relu: x is a ReLU's output), through that ReLU's backward.
struct InputGradStore {
  float* dx;            // (N, Cin, H·W)
  const float* relu_x;  // (N, Cin, H·W): this net's input, or null
  int Cin, HWin, cols;
  __device__ std::size_t place(int ci, int col) const {
    return (std::size_t(col / HWin) * Cin + ci) * HWin + col % HWin;
  }
  __device__ void operator()(int ci, int col, float v) const {
    if (ci >= Cin || col >= cols) return;
    const std::size_t i = place(ci, col);
    dx[i] = relu_x && !(relu_x[i] > 0.0f) ? 0.0f : v;
  }
  // col and col + 1 are neighbours in dx (and x) where they lie in one image.
  __device__ void operator()(int ci, int col, float v0, float v1) const {
    if (ci >= Cin || col >= cols) return;
    const std::size_t i = place(ci, col);
    const bool adjacent = col + 1 < cols && col % HWin + 1 < HWin;
    if (as_float2(dx + i, adjacent) && (!relu_x || as_float2(relu_x + i, adjacent))) {
      if (relu_x) {
        const float2 x = load_float2(relu_x + i);
        if (!(x.x > 0.0f)) v0 = 0.0f;
        if (!(x.y > 0.0f)) v1 = 0.0f;
      }
      store_float2(dx + i, v0, v1);
    } else {
      (*this)(ci, col, v0);
      (*this)(ci, col + 1, v1);
    }
  }
};

// dx (N, Cin, H, W) of net z = Wᵀ·(error windows), wt (P, Cin, ld) the
// nets' Wᵀ (transpose_weights_kernel): block (x, y) a tile of (Cin,
// N·H·W). kHalves where Cin ≤ 32 (conv2's input gradient): the tile's four
// warps share its 32 rows, each pair half of every slice (gemm_tile), where
// two warps would sit idle.
template <Precision kP, class Error, bool kHalves>
__global__ void __launch_bounds__(kTileThreads, kTileBlocksPerSM)
    conv_input_grad_tile(ConvShape s, const float* __restrict__ x, const float* __restrict__ wt, Error dy,
                         float* __restrict__ dx) {
  const std::size_t p = blockIdx.z, x_net = std::size_t(s.N) * s.Cin * s.H * s.W;
  if (!passes_down(dy, p)) return;  // the whole block: its net's dx is never read
  const int HWin = s.H * s.W, n0 = int(blockIdx.x) * kTileN, ld = transposed_weights_ld(s);
  const PaddedRowsA weights{wt + p * s.Cin * ld, ld, s.Cin};
  const InputGradStore store{dx + p * x_net, s.input_relu ? x + p * x_net : nullptr, s.Cin, HWin, s.N * HWin};
  const int m0 = int(blockIdx.y) * kTileM, rows = s.Cout * s.K * s.K;
  using Down = std::decay_t<decltype(passed_down(dy))>;
  if constexpr (std::is_same_v<Down, StoredError>) {
    __shared__ int table[kPatchTableRows];
    gemm_tile<kP, kHalves>(m0, n0, TileExtent{s.Cin, s.N * HWin}, 0, rows, weights,
                           error_windows(table, passed_down(dy), p, s, n0), store);
  } else {
    gemm_tile<kP, kHalves>(m0, n0, TileExtent{s.Cin, s.N * HWin}, 0, rows, weights,
                           ErrorWindows<Down>(passed_down(dy), p, s, 0, n0), store);
  }
}

// One split of the weight gradient's N·Ho·Wo-long sum: block z = g · P + p
// takes split first_split + g and writes its partial (Cout, KK) tile into
// partial[g][p].
template <Precision kP, class Error>
__global__ void __launch_bounds__(kTileThreads, kTileBlocksPerSM)
    conv_weight_grad_tile(ConvShape s, int split_len, int first_split, const float* __restrict__ x, Error dy,
                          float* __restrict__ partial) {
  const std::size_t p = blockIdx.z % unsigned(s.P), g = blockIdx.z / unsigned(s.P);
  const int KK = s.Cin * s.K * s.K, HW = s.Ho() * s.Wo(), cols = s.N * HW;
  const int k_begin = (first_split + int(g)) * split_len;
  const int k_end = k_begin + split_len < cols ? k_begin + split_len : cols;
  const int m0 = int(blockIdx.y) * kTileM, n0 = int(blockIdx.x) * kTileN;
  const RowMajorStore store{partial + (g * s.P + p) * s.Cout * KK, s.Cout, KK, KK};
  if (read_rows(dy, p, s.Cout).misses_tile(m0)) {  // the whole block is 0
    for (int i = threadIdx.x; i < kTileM * kTileN; i += kTileThreads) store(m0 + i / kTileN, n0 + i % kTileN, 0.0f);
    return;
  }
  __shared__ int table[kTileN];  // ImagePatches': its patch rows' places
  gemm_tile<kP>(m0, n0, TileExtent{s.Cout, KK}, k_begin, k_end, OutputErrorRows<Error>(dy, p, s, k_begin),
                ImagePatches(table, x + (s.shared_input ? 0 : p * s.N * s.Cin * s.H * s.W), s, k_begin, n0), store);
}

// The two halves of a stacked (2·M, N) row-major matrix stored by a pair of
// products (gemm_tile_pair): first's rows, then second's.
struct StackedHalvesStore {
  RowMajorStore first, second;
  __device__ void operator()(int m, int n, float2 a, float2 b) const {
    first(m, n, a.x, a.y);
    second(m, n, b.x, b.y);
  }
};

// One split of a conv plastic layer's [g; h] (s.Cout = Out) where its 2·Out
// stacked rows take more than one tile: block (x, y) a tile of rows of both
// halves, g's from the error and h's from the Hebbian rows, as a pair of
// products over one pass of the image patches (gemm_tile_pair), which
// conv_weight_grad_tile would load once per half. Each output is the same
// sum, in the same order, as there. Split as there: block z = g · P + p
// writes partial[g][p], (2·Out, KK); a half net p does not read is 0.
template <Precision kP, class Error>
__global__ void __launch_bounds__(kTileThreads, kPairTileBlocksPerSM)
    conv_plastic_weight_grad_pair(ConvShape s, int split_len, int first_split, const float* __restrict__ x,
                                  StackedError<Error> rows, float* __restrict__ partial) {
  const std::size_t p = blockIdx.z % unsigned(s.P), g = blockIdx.z / unsigned(s.P);
  const int KK = s.Cin * s.K * s.K, cols = s.N * s.Ho() * s.Wo();
  const int k_begin = (first_split + int(g)) * split_len;
  const int k_end = k_begin + split_len < cols ? k_begin + split_len : cols;
  float* const out = partial + (g * s.P + p) * 2 * s.Cout * KK;
  __shared__ int table[kTileN];  // ImagePatches': its patch rows' places
  gemm_tile_pair<kP>(int(blockIdx.y) * kTileM, int(blockIdx.x) * kTileN, TileExtent{s.Cout, KK}, k_begin, k_end,
                     reads_errors(rows, p), reads_hebbian(rows, p), OutputErrorRows<Error>(rows.e, p, s, k_begin),
                     OutputErrorRows<HebbianRows>(rows.hebbian, p, s, k_begin),
                     ImagePatches(table, x + (s.shared_input ? 0 : p * s.N * s.Cin * s.H * s.W), s, k_begin,
                                  int(blockIdx.x) * kTileN),
                     StackedHalvesStore{{out, s.Cout, KK, KK}, {out + std::size_t(s.Cout) * KK, s.Cout, KK, KK}});
}

// dw (P, Cout, KK): the rows outside each net's read_rows set to the 0 their
// zero rows sum to, after a tile that held rows on both sides of the range
// (conv1's 2·32 stacked rows) summed them all. (A range test on every load,
// or in the tile's store, kept more registers live through the GEMM's main
// loop: 8–40 more.)
template <class Error>
__global__ void zero_unread_rows_kernel(ConvShape s, Error dy, float* __restrict__ dw) {
  const int KK = s.Cin * s.K * s.K;
  EVOPLAST_GRID_STRIDE(i, std::size_t(s.P) * s.Cout * KK) {
    const std::size_t row = i / KK;
    if (!read_rows(dy, row / s.Cout, s.Cout).has(int(row % s.Cout))) dw[i] = 0.0f;
  }
}

// dw = Σ over the splits of partial, in split order (the same bits every run);
// go_on: dw already holds the sum of the splits before these, continued.
__global__ void sum_splits_kernel(int splits, bool go_on, std::size_t n, const float* __restrict__ partial,
                                  float* __restrict__ dw) {
  EVOPLAST_GRID_STRIDE(i, n) {
    float acc = go_on ? dw[i] : 0.0f;
    for (int k = 0; k < splits; ++k) acc += partial[std::size_t(k) * n + i];
    dw[i] = acc;
  }
}

// Σ over (n, pos) of row co of net p's error dy (net_dy: for_net's), read
// in place by one block; every thread calls it (block_sum's barriers). Each
// thread takes positions threadIdx, threadIdx + blockDim, … in order,
// stepped without dividing (64-bit divisions per element were most of its work).
template <class Error>
__device__ float error_row_sum(const ConvShape& s, const Error& net_dy, std::size_t p, int co, float* part) {
  const int Ho = s.Ho(), Wo = s.Wo();
  const OutputPosition stride(int(blockDim.x), Ho, Wo);
  float acc = 0;
  for (OutputPosition at(int(threadIdx.x), Ho, Wo); at.n < s.N; at.advance(stride, Ho, Wo))
    acc += net_dy.at(p, at.n, co, at.oy, at.ox);
  return block_sum(acc, part);
}

// db[p, co] = Σ over (n, pos) of dy[p][n][co][pos]: one block per (p, co).
template <class Error>
__global__ void bias_grad_kernel(ConvShape s, Error dy, float* __restrict__ db) {
  __shared__ float part[kThreads];
  const std::size_t rows = std::size_t(s.P) * s.Cout, stride = gridDim.x;
  for (std::size_t r = blockIdx.x; r < rows; r += stride) {
    const std::size_t p = r / s.Cout;
    const float acc = error_row_sum(s, for_net(dy, p), p, int(r % s.Cout), part);
    if (threadIdx.x == 0) db[r] = acc;
  }
}

// A conv plastic layer's row sums after its weight gradient read θ (s.Cout =
// Out): block r takes net p = r / (2·Out) and stacked row co = r % (2·Out).
// An error row gives its bias sum db[p][co] (0 where read_rows leaves it
// out); a Hebbian row, unit o = co − Out, gives ⟨y⟩, ⟨y²⟩ and θ's move
// (unit_stats) in place of its own sum, which nothing reads (db there is
// not written). So y is read once, where the stored rows' pass reads it for
// the Hebbian rows' sums and again for the statistics; the values are those
// of that pass, bit for bit (the same sums in the same order).
template <class Error>
__global__ void stacked_sums_kernel(ConvShape s, StackedError<Error> rows, float* __restrict__ db,
                                    float* __restrict__ theta, float* __restrict__ mean_y,
                                    float* __restrict__ mean_y2) {
  __shared__ float part[kThreads];
  const int Out = s.Cout;
  const std::size_t blocks = std::size_t(s.P) * 2 * Out, stride = gridDim.x;
  for (std::size_t r = blockIdx.x; r < blocks; r += stride) {
    const std::size_t p = r / (2 * Out);
    const int co = int(r % (2 * Out));
    if (co >= Out) {  // the same for the whole block, as is the test below (block_sum's barriers)
      unit_stats(p, co - Out, s.N, Out, s.Ho() * s.Wo(), rows.hebbian.y, part, theta, mean_y, mean_y2);
      continue;
    }
    float acc = 0;
    if (read_rows(rows, p, 2 * Out).has(co)) acc = error_row_sum(s, for_net(rows.e, p), p, co, part);
    if (threadIdx.x == 0) db[r] = acc;
  }
}

// y (P, N, Cout, HW) = out (P, Cout, N·HW) + b.
__global__ void scatter_bias_kernel(ConvShape s, const float* __restrict__ out, const float* __restrict__ b,
                                    bool relu, float* __restrict__ y) {
  const int HW = s.Ho() * s.Wo();
  const std::size_t total = std::size_t(s.P) * s.N * s.Cout * HW;
  EVOPLAST_GRID_STRIDE(i, total) {
    const int pos = int(i % HW), c = int(i / HW % s.Cout), n = int(i / (std::size_t(HW) * s.Cout) % s.N);
    const std::size_t p = i / (std::size_t(HW) * s.Cout * s.N);
    const float z = out[(p * s.Cout + c) * std::size_t(s.N) * HW + std::size_t(n) * HW + pos] + b[p * s.Cout + c];
    y[i] = relu ? (z > 0.0f ? z : 0.0f) : z;
  }
}

// dyc (P, Cout, N·HW) from dy (P, N, Cout, HW).
__global__ void gather_dy_kernel(ConvShape s, const float* __restrict__ dy, float* __restrict__ dyc) {
  const int HW = s.Ho() * s.Wo();
  const std::size_t ld = std::size_t(s.N) * HW, total = std::size_t(s.P) * s.Cout * ld;
  EVOPLAST_GRID_STRIDE(i, total) {
    const std::size_t col = i % ld, c = i / ld % s.Cout, p = i / (ld * s.Cout);
    const int n = int(col / HW), pos = int(col % HW);
    dyc[i] = dy[((p * s.N + n) * s.Cout + c) * HW + pos];
  }
}

// db[p, c] = Σ over the row of dyc: one block per (p, c).
__global__ void row_sum_kernel(int rows, std::size_t len, const float* __restrict__ m, float* __restrict__ out) {
  __shared__ float part[kThreads];
  const int r = blockIdx.x;
  float acc = 0;
  for (std::size_t j = threadIdx.x; j < len; j += blockDim.x) acc += m[std::size_t(r) * len + j];
  const float total = block_sum(acc, part);
  if (threadIdx.x == 0 && r < rows) out[r] = total;
}

// dx (P, N, Cin, H, W) = col2im(dcols (P, KK, N·HW)): each input pixel gathers
// from the patches that cover it (no atomics); through the ReLU whose output x
// (P, N, Cin, H, W) is where s.input_relu.
__global__ void col2im_kernel(ConvShape s, const float* __restrict__ dcols, const float* __restrict__ x,
                              float* __restrict__ dx) {
  const int Ho = s.Ho(), Wo = s.Wo(), HW = Ho * Wo, KK = s.Cin * s.K * s.K;
  const std::size_t ld = std::size_t(s.N) * HW, total = std::size_t(s.P) * s.N * s.Cin * s.H * s.W;
  EVOPLAST_GRID_STRIDE(i, total) {
    const int xx = int(i % s.W), yy = int(i / s.W % s.H), ci = int(i / (std::size_t(s.W) * s.H) % s.Cin);
    const int n = int(i / (std::size_t(s.W) * s.H * s.Cin) % s.N);
    const std::size_t p = i / (std::size_t(s.W) * s.H * s.Cin * s.N);
    float acc = 0;
    for (int ky = 0; ky < s.K; ++ky)
      for (int kx = 0; kx < s.K; ++kx) {
        const int oy = yy - ky, ox = xx - kx;
        if (oy < 0 || ox < 0 || oy >= Ho || ox >= Wo) continue;
        const int row = (ci * s.K + ky) * s.K + kx;
        acc += dcols[(p * KK + row) * ld + std::size_t(n) * HW + oy * Wo + ox];
      }
    dx[i] = s.input_relu && !(x[i] > 0.0f) ? 0.0f : acc;
  }
}

// The implicit GEMM's forward and input gradient find their patch rows in
// a table of patch_table_period rows (the input gradient's windows also
// keep K² bits): a shape past it is refused, in one line, before a launch.
void check_patch_table(const char* what, const ConvShape& s, bool input_gradient) {
  const int plane = input_gradient ? s.Ho() * s.Wo() : s.H * s.W;
  if (patch_table_period(s.K, plane) > 0 && (!input_gradient || s.K <= kMaxWindowK)) return;
  throw std::invalid_argument(std::string(what) + ": a " + std::to_string(s.K) + "×" + std::to_string(s.K) +
                              " kernel over " + std::to_string(s.H) + "×" + std::to_string(s.W) +
                              " images is past the implicit GEMM's patch-row table (K ≤ " +
                              std::to_string(kMaxWindowK) + " for an input gradient, 31 otherwise; planes under a "
                              "million pixels): set EVOPLAST_CONV=im2col");
}

// Whether the forward copies each net's W (P, Cout, Cin·K²) in 16-byte runs (forward_weights).
bool weights_in_runs(const ConvShape& s, const float* w) {
  return s.Cin * s.K * s.K % kTileK == 0 && reinterpret_cast<std::uintptr_t>(w) % 16 == 0;
}

}  // namespace

void set_conv_impl(ConvImpl impl) {
  if (impl == ConvImpl::cudnn && !cudnn_built())
    throw CudaError("EVOPLAST_CONV=cudnn: this build has no cuDNN; unset it to use our convolution");
  g_conv = impl;
}
ConvImpl conv_impl() { return g_conv; }

// By im2col, the population is split into chunks of nets
// (kernels/conv_plan.hpp) so the scratch stays within its budget for any P; a
// shared input's columns are built once for every chunk. (cuDNN's passes are
// the backend's choice: they do not come here.)
void conv2d_forward(Stream st, Blas h, Scratch& ws, const ConvShape& s, const float* x, const float* w,
                    const float* b, bool relu, float* y) {
  const int KK = s.Cin * s.K * s.K, HW = s.Ho() * s.Wo();
  if (g_conv != ConvImpl::im2col) {
    check_patch_table("conv2d_forward", s, false);
    const dim3 grid(unsigned((std::size_t(s.N) * HW + kTileN - 1) / kTileN), unsigned((s.Cout + kTileM - 1) / kTileM),
                    unsigned(s.P));
    const bool runs = weights_in_runs(s, w);
    with_precision(gemm_precision(), [&](auto p) {
      constexpr Precision kP = decltype(p)::value;
      if (runs) EVOPLAST_LAUNCH(conv_forward_tile<kP, true>, grid, kTileThreads, 0, st, s, x, w, b, relu, y);
      else EVOPLAST_LAUNCH(conv_forward_tile<kP, false>, grid, kTileThreads, 0, st, s, x, w, b, relu, y);
    });
    return;
  }
  const std::size_t ld = std::size_t(s.N) * HW;
  const std::size_t x_net = std::size_t(s.N) * s.Cin * s.H * s.W, w_net = std::size_t(s.Cout) * KK;
  const std::size_t y_net = std::size_t(s.N) * s.Cout * HW;
  const ConvScratch plan = conv_scratch(s, true, false, false);
  float* shared_cols = nullptr;
  if (s.shared_input) {
    shared_cols = ws.floats(0, plan.cols);
    EVOPLAST_LAUNCH(im2col_kernel, blocks_for(plan.cols), kThreads, 0, st, s, 1, x, shared_cols);
  }
  for (int p0 = 0; p0 < s.P; p0 += plan.nets_per_chunk) {
    ConvShape c = s;
    c.P = std::min(plan.nets_per_chunk, s.P - p0);
    float* cols = shared_cols;
    if (!s.shared_input) {
      cols = ws.floats(0, std::size_t(c.P) * KK * ld);
      EVOPLAST_LAUNCH(im2col_kernel, blocks_for(std::size_t(c.P) * KK * ld), kThreads, 0, st, c, c.P, x + p0 * x_net,
                      cols);
    }
    float* out = ws.floats(1, std::size_t(c.P) * s.Cout * ld);
    const float* wc = w + p0 * w_net;
    if (s.shared_input)  // one wide GEMM: (chunk·Cout, KK) × (KK, N·HW)
      gemm(h, false, false, c.P * s.Cout, int(ld), KK, 1.0f, wc, KK, 0, cols, int(ld), 0, 0.0f, out, int(ld), 0, 1);
    else
      gemm(h, false, false, s.Cout, int(ld), KK, 1.0f, wc, KK, (long long)w_net, cols, int(ld), (long long)KK * ld,
           0.0f, out, int(ld), (long long)s.Cout * ld, c.P);
    EVOPLAST_LAUNCH(scatter_bias_kernel, blocks_for(c.y_size()), kThreads, 0, st, c, out, b + std::size_t(p0) * s.Cout,
                    relu, y + p0 * y_net);
  }
}

namespace {

// The terms per split of the weight gradient's sum (conv_plan.hpp's
// weight_grad_splits: by the net's shape alone), a multiple of the tile's depth.
int weight_grad_split_len(const ConvShape& s) {
  const int cols = s.N * s.Ho() * s.Wo(), splits = weight_grad_splits(s);
  const int len = (cols + splits - 1) / splits;
  return (len + kTileK - 1) / kTileK * kTileK;
}

// Each net's weights w (P, Cout, Cin, K, K), or its feedback matrix fb (the
// same shape) where use_fb (P) picks it; use_fb null: every net's own w.
PickedWeights picked_weights(const ConvShape& s, const float* w, const float* fb = nullptr,
                             const std::uint8_t* use_fb = nullptr) {
  return PickedWeights{w, fb, use_fb, std::size_t(s.Cout) * s.Cin * s.K * s.K};
}

// dw (P, Cout, KK) as the sum of its weight_grad_split_len-long splits:
// launch(first, count, len, partial) writes splits [first, first + count)
// into partial (count, P, Cout, KK) (dw itself where there is one split),
// per_launch of them at a time, each launch's partial sums added to dw
// after it: the same additions, in the same order, as one launch.
template <class Launch>
void sum_weight_grad_splits(Stream st, Scratch& ws, const ConvShape& s, float* dw, const Launch& launch) {
  const int cols = s.N * s.Ho() * s.Wo(), len = weight_grad_split_len(s), splits = (cols + len - 1) / len;
  const int per_launch = weight_grad_splits_per_launch(s, splits);
  const std::size_t n = std::size_t(s.P) * s.Cout * s.Cin * s.K * s.K;
  float* partial = splits == 1 ? dw : ws.floats(0, std::size_t(per_launch) * n);
  for (int first = 0; first < splits; first += per_launch) {
    const int count = std::min(per_launch, splits - first);
    launch(first, count, len, partial);
    if (splits > 1) EVOPLAST_LAUNCH(sum_splits_kernel, blocks_for(n), kThreads, 0, st, count, first > 0, n, partial, dw);
  }
}

template <Precision kP, class Error>
void conv_backward_tile_at(Stream st, Scratch& ws, const ConvShape& s, const float* x, PickedWeights w, Error dy,
                           float* dx, float* dw, float* db) {
  if (dx) check_patch_table("conv2d input gradient", s, true);  // before any launch
  // A plastic layer's routed error reaches dW and db only inside its stacked
  // rows: its own weight-gradient kernels are not instantiated.
  if constexpr (!is_routed<Error>) {
    const int KK = s.Cin * s.K * s.K;
    // Stacked rows' sums come with the units' statistics (stacked_sums_kernel): no bias kernel for them.
    if constexpr (!is_stacked_rows<Error>)
      if (db) {
        const std::size_t rows = std::size_t(s.P) * s.Cout;
        EVOPLAST_LAUNCH(bias_grad_kernel<Error>, unsigned(rows < max_blocks() ? rows : max_blocks()), kThreads, 0,
                        st, s, dy, db);
      }
    if (dw) {
      sum_weight_grad_splits(st, ws, s, dw, [&](int first, int count, int len, float* partial) {
        const dim3 grid(unsigned((KK + kTileN - 1) / kTileN), unsigned((s.Cout + kTileM - 1) / kTileM),
                        unsigned(count * s.P));
        EVOPLAST_LAUNCH(conv_weight_grad_tile<kP, Error>, grid, kTileThreads, 0, st, s, len, first, x, dy, partial);
      });
      if constexpr (is_stacked_rows<Error>)
        if (s.Cout % (2 * kTileM) != 0)  // a tile may hold rows on both sides of a half
          EVOPLAST_LAUNCH(zero_unread_rows_kernel<Error>, blocks_for(std::size_t(s.P) * s.Cout * KK), kThreads, 0,
                          st, s, dy, dw);
    }
  }
  // A plastic layer's stacked rows have no input gradient: its kernel is not instantiated for them.
  if constexpr (!is_stacked_rows<Error>) {
    if (dx) {
      float* wt = ws.floats(kTransposedWeightsSlot, transposed_weights_floats(s));
      EVOPLAST_LAUNCH(transpose_weights_kernel, blocks_for(transposed_weights_floats(s)), kThreads, 0, st, s, w, wt);
      const dim3 grid(unsigned((std::size_t(s.N) * s.H * s.W + kTileN - 1) / kTileN),
                      unsigned((s.Cin + kTileM - 1) / kTileM), unsigned(s.P));
      if (s.Cin <= kTileM / 2)
        EVOPLAST_LAUNCH(conv_input_grad_tile<kP, Error, true>, grid, kTileThreads, 0, st, s, x, wt, dy, dx);
      else
        EVOPLAST_LAUNCH(conv_input_grad_tile<kP, Error, false>, grid, kTileThreads, 0, st, s, x, wt, dy, dx);
    }
  }
}

// The backward pass by implicit GEMMs: db read from dy in place, dw as a split
// implicit GEMM (dy rows × image patches), dx as an implicit GEMM (Wᵀ × error
// windows) written in place of col2im. Scratch: the split partial sums only.
void conv_backward_tile(Stream st, Scratch& ws, const ConvShape& s, const float* x, const float* w,
                        const float* dy, float* dx, float* dw, float* db) {
  const StoredError error{dy, s.N, s.Cout, s.Ho(), s.Wo()};
  with_precision(gemm_precision(), [&](auto p) {
    conv_backward_tile_at<decltype(p)::value>(st, ws, s, x, picked_weights(s, w), error, dx, dw, db);
  });
}

// The fused forward GEMM's columns, ordered by pool window: col = 4·win +
// slot, win = (n, ph, pw), slot = the (dy, dx) of the 2×2 window in row
// order, so a tile's 64 columns hold 16 whole windows. Outputs outside every
// window (an odd last row or column) are not computed. The patch under
// column col, or null past the columns.
__device__ __forceinline__ const float* window_patch(const float* x, const ConvShape& s, int Hp, int Wp, int col) {
  const int win = col / 4, slot = col % 4, n = win / (Hp * Wp), ph = win % (Hp * Wp) / Wp, pw = win % Wp;
  return col < s.N * Hp * Wp * 4 ? PatchGeometry(s).corner(x, n, 2 * ph + slot / 2, 2 * pw + slot % 2) : nullptr;
}

// conv → ReLU → 2×2 max-pool of every net at once: block (x, y) a tile of
// (Cout, 4·windows), block z the net. The tile's convolution outputs go to
// shared memory, and each window is reduced there with the bias, the ReLU
// and the max as relu_forward and maxpool2d_forward would (the first maximum
// wins), then dropout's mask where dropout.rate > 0; the pooled value and its
// argmax reach global memory, and the ReLU's output only where act is not
// null (then Ho and Wo are even: every output lies in a window).
template <Precision kP, bool kRuns>
__global__ void __launch_bounds__(kTileThreads, kTileBlocksPerSM)
    conv_relu_pool_forward_tile(ConvShape s, DropoutParams dropout, const float* __restrict__ x,
                                const float* __restrict__ w, const float* __restrict__ b, float* __restrict__ act,
                                float* __restrict__ y, std::int32_t* __restrict__ argmax) {
  // The tile's convolution outputs, 4 per window. Rows 72 floats long: the
  // warps' pairs of outputs (takes_pairs; rows g, columns 2t of a fragment)
  // and a window's 4 (one float4, 16 windows a row) each fall in 32 banks.
  // Stored one at a time in rows 65 floats long, (g, 2t) and (g + 2, 2t - 2)
  // took the same bank (simt_memory_profile: 1.30 passes a store overall).
  // The patch-row table is read only while the sum runs, the outputs stored only after it (gemm_tile's last
  // barrier between them): one place for both keeps the kernel within 48 KiB of static shared memory.
  __shared__ union {
    alignas(16) float out[kTileM][kTileN + 8];
    int table[kPatchTableRows];
  } staging;
  auto& out = staging.out;
  const std::size_t p = blockIdx.z;
  const int KK = s.Cin * s.K * s.K, Wo = s.Wo(), Hp = s.Ho() / 2, Wp = Wo / 2, windows = s.N * Hp * Wp;
  const int m0 = int(blockIdx.y) * kTileM, n0 = int(blockIdx.x) * kTileN;
  const float* image = x + (s.shared_input ? 0 : p * s.N * s.Cin * s.H * s.W);
  gemm_tile<kP>(m0, n0, TileExtent{s.Cout, windows * 4}, 0, KK, forward_weights<kRuns>(w, s, p),
                image_columns(staging.table, s, window_patch(image, s, Hp, Wp, n0 + int(threadIdx.x) % kTileN)),
                [&](int m, int n, float v0, float v1) { store_float2(&out[m - m0][n - n0], v0, v1); });
  __syncthreads();  // every warp's outputs are in `out`
  for (int i = threadIdx.x; i < kTileM * (kTileN / 4); i += kTileThreads) {
    const int r = i / (kTileN / 4), c = i % (kTileN / 4), co = m0 + r, win = n0 / 4 + c;
    if (co >= s.Cout || win >= windows) continue;
    const float bias = b[p * s.Cout + co];
    const int n = win / (Hp * Wp), ph = win % (Hp * Wp) / Wp, pw = win % Wp;
    // The window's top-left output in act, where asked for.
    float* act_window =
        act ? act + ((p * s.N + n) * s.Cout + co) * std::size_t(s.Ho()) * Wo + std::size_t(2 * ph) * Wo + 2 * pw
            : nullptr;
    const float4 window = *reinterpret_cast<const float4*>(&out[r][4 * c]);
    const float conv[4] = {window.x, window.y, window.z, window.w};
    float best = 0.0f, relu[4];
    int best_slot = 0;
    for (int slot = 0; slot < 4; ++slot) {
      const float z = conv[slot] + bias;
      relu[slot] = z > 0.0f ? z : 0.0f;
      if (slot == 0 || relu[slot] > best) best = relu[slot], best_slot = slot;
    }
    // The window's two rows of act, each a pair (Wo is even: aligned where act is).
    for (int row = 0; act_window && row < 2; ++row)
      store_pair(act_window + row * Wo, true, relu[2 * row], relu[2 * row + 1]);
    const std::size_t in_net = (std::size_t(n) * s.Cout + co) * std::size_t(Hp) * Wp + std::size_t(ph) * Wp + pw;
    const std::size_t j = p * std::size_t(s.N) * s.Cout * Hp * Wp + in_net;
    if (dropout.rate > 0) best = dropout_keeps(dropout, int(p), in_net) ? best * dropout_scale(dropout) : 0.0f;
    y[j] = best;
    argmax[j] = (2 * ph + best_slot / 2) * Wo + 2 * pw + best_slot % 2;
  }
}

// e (P, N, Cout, Ho, Wo) of nets [first, first + count), as the gathering
// loaders read it, stored in out (count, N, Cout, Ho, Wo): one elementwise
// pass. Block row y takes the planes (image, channel) y, y + gridDim.y, …,
// its threads the plane's pixels: a plane's net, image and channel worked
// out once, a pixel's (oy, ox) by one 32-bit division. (From the flat 64-bit
// index, four divisions an element, ~100 of the pass's instructions for 3
// loads and a store, and RoutedPooledError's net mode looked up per element.)
template <class Error>
__global__ void stage_error_kernel(ConvShape s, int first, int count, Error e, float* __restrict__ out) {
  const int Wo = s.Wo(), plane = s.Ho() * Wo;
  const std::size_t planes = std::size_t(count) * s.N * s.Cout;
  for (std::size_t q = blockIdx.y; q < planes; q += gridDim.y) {
    const std::size_t image = q / s.Cout, p = first + image / s.N;
    const int n = int(image % s.N), co = int(q % s.Cout);
    const Error net = for_net(e, p);
    float* out_plane = out + q * plane;
    for (int j = int(blockIdx.x * blockDim.x + threadIdx.x); j < plane; j += int(gridDim.x * blockDim.x)) {
      const int oy = int(unsigned(j) / unsigned(Wo));  // unsigned: the shorter division
      out_plane[j] = net.at(p, n, co, oy, j - oy * Wo);
    }
  }
}

// Where net p0 of s's population starts in its per-net arrays (floats):
// the sizes of the p0 nets before it.
struct NetStart {
  std::size_t x, w, y, b;  // input (0 when shared), weights, conv output, biases
  NetStart(ConvShape before, int p0) {
    before.P = p0;
    x = before.shared_input ? 0 : before.x_size();
    w = before.w_size(), y = before.y_size(), b = before.b_size();
  }
};
template <class T>
T* offset(T* ptr, std::size_t n) {  // null stays null
  return ptr ? ptr + n : nullptr;
}

// run(c, p0, staged) for each chunk of staged_error_nets(s) nets from p0: c
// is s with the chunk's P, staged the chunk's e (nets p0…) stored in scratch
// slot 1 and read as a StoredError (its nets from 0).
template <class Error, class Run>
void for_each_staged_chunk(Stream st, Scratch& ws, const ConvShape& s, const Error& e, const Run& run) {
  const int chunk = staged_error_nets(s);
  for (int p0 = 0; p0 < s.P; p0 += chunk) {
    ConvShape c = s;
    c.P = std::min(chunk, s.P - p0);
    float* staged = ws.floats(1, c.y_size());
    // A plane's pixels across x (3 blocks for conv2's 24·24), its planes down y (a grid's y is at most 65535).
    const unsigned x = std::min(blocks_for(std::size_t(s.Ho()) * s.Wo()), 65535u);
    const std::size_t planes = std::size_t(c.P) * s.N * s.Cout;
    const unsigned y = unsigned(std::min<std::size_t>({planes, 65535, std::max<std::size_t>(max_blocks() / x, 1)}));
    EVOPLAST_LAUNCH(stage_error_kernel<Error>, dim3(x, y), kThreads, 0, st, s, p0, c.P, e, staged);
    run(c, p0, StoredError{staged, s.N, s.Cout, s.Ho(), s.Wo()});
  }
}

}  // namespace

void set_pooled_error_read(PooledErrorRead read) { g_pooled_read = read; }
PooledErrorRead pooled_error_read() { return g_pooled_read; }
void set_stacked_rows_sum(StackedRowsSum sum) { g_stacked_sum = sum; }
StackedRowsSum stacked_rows_sum() { return g_stacked_sum; }

void conv2d_relu_pool_forward(Stream st, const ConvShape& s, const DropoutParams& dropout, const float* x,
                              const float* w, const float* b, float* act, float* y, std::int32_t* argmax) {
  if (act && (s.Ho() % 2 || s.Wo() % 2))
    throw std::invalid_argument("conv2d_relu_pool_forward: the ReLU's output is written for even output sizes only "
                                "(an odd last row or column lies outside every window)");
  check_patch_table("conv2d_relu_pool_forward", s, false);
  const std::size_t cols = std::size_t(s.N) * (s.Ho() / 2) * (s.Wo() / 2) * 4;
  const dim3 grid(unsigned((cols + kTileN - 1) / kTileN), unsigned((s.Cout + kTileM - 1) / kTileM), unsigned(s.P));
  const bool runs = weights_in_runs(s, w);
  with_precision(gemm_precision(), [&](auto p) {
    constexpr Precision kP = decltype(p)::value;
    if (runs)
      EVOPLAST_LAUNCH(conv_relu_pool_forward_tile<kP, true>, grid, kTileThreads, 0, st, s, dropout, x, w, b, act, y,
                      argmax);
    else
      EVOPLAST_LAUNCH(conv_relu_pool_forward_tile<kP, false>, grid, kTileThreads, 0, st, s, dropout, x, w, b, act, y,
                      argmax);
  });
}

void conv2d_relu_pool_backward(Stream st, Scratch& ws, const ConvShape& s, const DropoutParams& dropout,
                               const float* x, const float* w, const float* y, const std::int32_t* argmax,
                               const float* dy, float* dx, float* dw, float* db) {
  if (s.shared_input && dx) throw std::invalid_argument("conv2d_relu_pool_backward: no input gradient for a shared input");
  const PooledError e = pooled_error(s, dy, y, argmax, dropout);
  with_precision(gemm_precision(), [&](auto p) {
    constexpr Precision kP = decltype(p)::value;
    if (g_pooled_read == PooledErrorRead::gathered)
      return conv_backward_tile_at<kP>(st, ws, s, x, picked_weights(s, w), e, dx, dw, db);
    for_each_staged_chunk(st, ws, s, e, [&](const ConvShape& c, int p0, const StoredError& staged) {
      const NetStart at(s, p0);
      conv_backward_tile_at<kP>(st, ws, c, x + at.x, picked_weights(c, w + at.w), staged, offset(dx, at.x),
                                offset(dw, at.w), offset(db, at.b));
    });
  });
}

void conv2d_input_grad_picked(Stream st, Scratch& ws, const ConvShape& s, const std::uint8_t* use_fb,
                              const float* x, const float* w, const float* fb, const float* dy, float* dx) {
  if (s.shared_input) throw std::invalid_argument("conv2d_input_grad_picked: no input gradient for a shared input");
  const StoredError error{dy, s.N, s.Cout, s.Ho(), s.Wo()};
  with_precision(gemm_precision(), [&](auto p) {
    conv_backward_tile_at<decltype(p)::value>(st, ws, s, x, picked_weights(s, w, fb, use_fb), error, dx, nullptr,
                                                nullptr);
  });
}

namespace {

template <class Error>
void conv2d_plasticity_grads_at(Stream st, Scratch& ws, const ConvShape& s, const PlasticityCoeffs* coeffs,
                                const float* x, Error e, const float* y, float* theta, float* grad_hebb,
                                float* grad_hebb_bias, float* mean_y, float* mean_y2) {
  const StackedError<Error> rows{
      e, HebbianRows{y, theta, coeffs, s.N, s.Cout, s.Ho(), s.Wo(), 1.0f / (float(s.N) * float(s.Ho() * s.Wo()))}};
  ConvShape stacked = s;
  stacked.Cout = 2 * s.Cout;
  with_precision(gemm_precision(), [&](auto p) {  // [g; h], reading θ as it is
    constexpr Precision kP = decltype(p)::value;
    if (stacked.Cout <= kTileM || g_stacked_sum == StackedRowsSum::tiles)  // (one tile holds both halves)
      return conv_backward_tile_at<kP>(st, ws, stacked, x, PickedWeights{}, rows, nullptr, grad_hebb, nullptr);
    // Split as the stacked rows would be (the same sums in the same order).
    sum_weight_grad_splits(st, ws, stacked, grad_hebb, [&](int first, int count, int len, float* partial) {
      const dim3 grid(unsigned((s.Cin * s.K * s.K + kTileN - 1) / kTileN), unsigned((s.Cout + kTileM - 1) / kTileM),
                      unsigned(count * s.P));
      EVOPLAST_LAUNCH(conv_plastic_weight_grad_pair<kP, Error>, grid, kTileThreads, 0, st, s, len, first, x, rows,
                      partial);
    });
  });
  const std::size_t blocks = std::size_t(s.P) * 2 * s.Cout;  // then the sums, moving θ
  EVOPLAST_LAUNCH(stacked_sums_kernel<Error>, unsigned(blocks < max_blocks() ? blocks : max_blocks()), kThreads, 0,
                  st, s, rows, grad_hebb_bias, theta, mean_y, mean_y2);
}

}  // namespace

void conv2d_plasticity_grads(Stream st, Scratch& ws, const ConvShape& s, const PlasticityCoeffs* coeffs,
                             const float* x, const float* e, const float* y, float* theta, float* grad_hebb,
                             float* grad_hebb_bias, float* mean_y, float* mean_y2) {
  conv2d_plasticity_grads_at(st, ws, s, coeffs, x, StoredError{e, s.N, s.Cout, s.Ho(), s.Wo()}, y, theta, grad_hebb,
                             grad_hebb_bias, mean_y, mean_y2);
}

namespace {

// dx (where not null: conv2d_input_grad_pooled's) and a plastic layer's [g;
// h] with its sums (where grads is not null: the pooled
// conv2d_plasticity_grads'), from the error made from the pool above: staged
// once per chunk of nets for both, or gathered by each as it loads. Net by
// net, θ is read by the stacked rows and then moved: chunks of nets keep
// that order.
void pooled_backward(Stream st, Scratch& ws, const ConvShape& s, const PooledConvError& e, const std::uint8_t* use_fb,
                     const float* x, const float* w, const float* fb, float* dx, const ConvPlasticGrads* grads) {
  if (dx && s.shared_input) throw std::invalid_argument("conv2d_input_grad_pooled: no input gradient for a shared input");
  const RoutedPooledError routed = routed_pooled_error(s, e);
  // Nets [p0, p0 + c.P) from their error as `error` reads it (its nets from 0).
  const auto chunk = [&](const ConvShape& c, int p0, const auto& error) {
    const NetStart at(s, p0);
    if (dx)
      with_precision(gemm_precision(), [&](auto p) {
        conv_backward_tile_at<decltype(p)::value>(
            st, ws, c, x + at.x, picked_weights(c, w + at.w, offset(fb, at.w), offset(use_fb, p0)), error, dx + at.x,
            nullptr, nullptr);
      });
    if (grads)
      conv2d_plasticity_grads_at(st, ws, c, grads->coeffs + p0, x + at.x, error, grads->y + at.y,
                                 grads->theta + at.b, grads->grad_hebb + 2 * at.w, grads->grad_hebb_bias + 2 * at.b,
                                 grads->mean_y + at.b, grads->mean_y2 + at.b);
  };
  if (g_pooled_read == PooledErrorRead::gathered) return chunk(s, 0, routed);
  for_each_staged_chunk(st, ws, s, routed, [&](const ConvShape& c, int p0, const StoredError& staged) {
    chunk(c, p0, RoutedStoredError{staged, offset(e.mode, p0)});
  });
}

}  // namespace

void conv2d_plasticity_grads(Stream st, Scratch& ws, const ConvShape& s, const PlasticityCoeffs* coeffs,
                             const float* x, const PooledConvError& e, const float* y, float* theta,
                             float* grad_hebb, float* grad_hebb_bias, float* mean_y, float* mean_y2) {
  const ConvPlasticGrads grads{coeffs, y, theta, grad_hebb, grad_hebb_bias, mean_y, mean_y2};
  pooled_backward(st, ws, s, e, nullptr, x, nullptr, nullptr, nullptr, &grads);
}

void conv2d_input_grad_pooled(Stream st, Scratch& ws, const ConvShape& s, const PooledConvError& e,
                              const std::uint8_t* use_fb, const float* x, const float* w, const float* fb, float* dx) {
  pooled_backward(st, ws, s, e, use_fb, x, w, fb, dx, nullptr);
}

void conv2d_plastic_backward_pooled(Stream st, Scratch& ws, const ConvShape& s, const PooledConvError& e,
                                    const std::uint8_t* use_fb, const float* x, const float* w, const float* fb,
                                    float* dx, const ConvPlasticGrads& grads) {
  pooled_backward(st, ws, s, e, use_fb, x, w, fb, dx, &grads);
}

void conv2d_backward(Stream st, Blas h, Scratch& ws, const ConvShape& s, const float* x, const float* w,
                     const float* dy, float* dx, float* dw, float* db) {
  if (s.shared_input && dx) throw std::invalid_argument("conv2d_backward: no input gradient for a shared input");
  const int KK = s.Cin * s.K * s.K, HW = s.Ho() * s.Wo();
  const std::size_t ld = std::size_t(s.N) * HW;
  const std::size_t x_net = std::size_t(s.N) * s.Cin * s.H * s.W, w_net = std::size_t(s.Cout) * KK;
  const std::size_t y_net = std::size_t(s.N) * s.Cout * HW;
  if (g_conv != ConvImpl::im2col) {
    conv_backward_tile(st, ws, s, x, w, dy, dx, dw, db);
    return;
  }
  const ConvScratch plan = conv_scratch(s, false, dw != nullptr, dx != nullptr);
  float* shared_cols = nullptr;
  if (dw && s.shared_input) {
    shared_cols = ws.floats(0, plan.cols);
    EVOPLAST_LAUNCH(im2col_kernel, blocks_for(plan.cols), kThreads, 0, st, s, 1, x, shared_cols);
  }
  for (int p0 = 0; p0 < s.P; p0 += plan.nets_per_chunk) {
    ConvShape c = s;
    c.P = std::min(plan.nets_per_chunk, s.P - p0);
    float* dyc = ws.floats(1, std::size_t(c.P) * s.Cout * ld);
    EVOPLAST_LAUNCH(gather_dy_kernel, blocks_for(std::size_t(c.P) * s.Cout * ld), kThreads, 0, st, c, dy + p0 * y_net,
                    dyc);
    if (db)
      EVOPLAST_LAUNCH(row_sum_kernel, unsigned(c.P * s.Cout), kThreads, 0, st, c.P * s.Cout, ld, dyc,
                      db + std::size_t(p0) * s.Cout);
    if (dw) {
      float* cols = shared_cols;
      if (!s.shared_input) {
        cols = ws.floats(0, std::size_t(c.P) * KK * ld);
        EVOPLAST_LAUNCH(im2col_kernel, blocks_for(std::size_t(c.P) * KK * ld), kThreads, 0, st, c, c.P,
                        x + p0 * x_net, cols);
      }
      // dw_p (Cout, KK) = dyc_p (Cout, N·HW) · cols_pᵀ; a shared input has stride 0.
      gemm(h, false, true, s.Cout, KK, int(ld), 1.0f, dyc, int(ld), (long long)s.Cout * ld, cols, int(ld),
           s.shared_input ? 0 : (long long)KK * ld, 0.0f, dw + p0 * w_net, KK, (long long)w_net, c.P);
    }
    if (dx) {
      float* dcols = ws.floats(2, std::size_t(c.P) * KK * ld);
      gemm(h, true, false, KK, int(ld), s.Cout, 1.0f, w + p0 * w_net, KK, (long long)w_net, dyc, int(ld),
           (long long)s.Cout * ld, 0.0f, dcols, int(ld), (long long)KK * ld, c.P);
      EVOPLAST_LAUNCH(col2im_kernel, blocks_for(c.x_size()), kThreads, 0, st, c, dcols, x + p0 * x_net,
                      dx + p0 * x_net);
    }
  }
}

}  // namespace evoplast::kernels::cuda
