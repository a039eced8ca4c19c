// The population network: P networks of one architecture, trained side by
// side on one shared minibatch. Parameters and activations are
// population-major buffers in the backend's memory.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/backend.hpp"

namespace evoplast::engine {

enum class LayerKind { conv, dense, relu, maxpool, dropout, flatten };

struct LayerSpec {
  LayerKind kind;
  int units = 0;     // conv: output channels; dense: output features
  int k = 0;         // conv: kernel size; maxpool: window (= stride)
  float rate = 0;    // dropout probability
};

struct NetSpec {
  std::string name;
  int in_c = 1, in_h = 28, in_w = 28;
  int classes = 10;
  std::vector<LayerSpec> layers;  // the last layer's output are the logits

  // The PyTorch MNIST example: conv 1→32 3×3, ReLU, conv 32→64 3×3, ReLU,
  // max-pool 2, dropout 0.25, dense 9216→128, ReLU, dropout 0.5, dense 128→10.
  static NetSpec seed_cnn();
  // An MLP with the given hidden widths, ReLU between layers (e.g. {400, 400}).
  static NetSpec mlp(const std::vector<int>& hidden);
  // "cnn", or "mlp" followed by widths: "mlp400x2", "mlp1000x2", "mlp256-128".
  static NetSpec parse(std::string_view text);
  // Plastic layers before the readout (conv and dense): how many hidden-layer
  // rules a rule evolved for this net holds.
  int hidden_plastic_layers() const;
  std::string describe() const;
  // The same architecture for other inputs and outputs (the readout resized).
  NetSpec adapted(int in_h, int in_w, int classes) const;
};

// One parameter tensor of every net: value and gradient, (P, per_net).
struct Param {
  std::string name;       // "conv1.w", "fc2.b", …
  std::size_t per_net;    // elements of one net
  std::size_t fan_in;     // for initialisation
  Buffer<float> value, grad;
};

// How each conv → ReLU → 2×2 max-pool (and a dropout right after) runs
// (PopulationNet::set_conv_relu_pool_fusion).
enum class ConvReluPool {
  layered,  // layer by layer
  // One backend step (conv2d_relu_pool_forward/backward): where the backend
  // fuses the steps (the CUDA backend's default) the convolution's full-size
  // output never reaches memory, and where the backend does without it, that
  // output's activation and gradient are not allocated. Backprop's choice.
  fused,
  // One step that writes the conv's activation in training forwards, which
  // the plasticity rules read; evaluation forwards do without it, as fused.
  // The gradient is not allocated either where the backend does without it:
  // the rules read the conv's error from the pool's (PooledConvError).
  fused_keeping_activation,
};

class PopulationNet {
 public:
  // max_batch bounds the N of every forward call. conv_relu_pool: see
  // set_conv_relu_pool_fusion (given here, the working space a fused step does
  // without is never allocated).
  PopulationNet(Backend& backend, NetSpec spec, int population, int max_batch,
                ConvReluPool conv_relu_pool = ConvReluPool::layered);

  int population() const { return P_; }
  // These P nets are nets first_net … first_net + P − 1 of a larger population
  // (one MPI rank's share): initial weights, dropout masks and feedback
  // weights are keyed by the global index, so a net trains the same however
  // the population is sliced. Set before init_params; 0 by default.
  void set_first_net(int first_net) { first_net_ = first_net; }
  int first_net() const { return first_net_; }
  int max_batch() const { return max_batch_; }
  const NetSpec& spec() const { return spec_; }
  std::vector<Param>& params() { return params_; }
  std::size_t params_per_net() const;

  // PyTorch's default initialisation (U(±1/√fan_in) for weights and biases).
  // same_for_all: every net starts from the weights of net 0 (common random
  // numbers); otherwise net p draws its own.
  void init_params(std::uint64_t seed, bool same_for_all = true);

  // x: (N, C, H, W) in backend memory, shared by all nets. train enables
  // dropout with masks drawn from (dropout_seed, layer, net, step).
  // Returns the logits, (P, N, classes), valid until the next forward.
  const float* forward(const float* x, int N, bool train, std::uint64_t dropout_seed = 0,
                       std::uint64_t step = 0);

  // After a forward with the same N: log-softmax + NLL against labels (N)
  // (backend memory), then the backward pass; fills every Param's grad.
  // Returns the mean loss of each net (host, P).
  std::vector<float> backward(const std::int32_t* labels, int N);
  // Adadelta for the dense layers' weights, taken along by backward_async
  // (Backend::dense_backward_adadelta): a dense layer's weights move as their
  // gradient is made, after the error below was computed from them.
  struct DenseAdadelta {
    const float* lr = nullptr;              // (P) host: each net's rate
    float rho = 0.9f, eps = 1e-6f;
    std::vector<float*> sq_avg, acc_delta;  // per Param (as params()): its state (P, per_net)
    std::vector<bool> stepped;              // per Param: set where backward_async stepped it
  };
  // The same without reading the loss back: it stays in loss_buffer() (P).
  // With adadelta, the dense layers' weights are stepped on the way.
  void backward_async(const std::int32_t* labels, int N, DenseAdadelta* adadelta = nullptr);

  // After a forward: per-net summed NLL and correct counts over the N rows.
  void score(const std::int32_t* labels, int N, std::vector<double>& loss_sum,
             std::vector<std::int64_t>& correct);

  // k-winners-take-all on the activity of hidden plastic layer `hidden`
  // (0-based, the readout excluded), applied after that layer's ReLU in every
  // forward (training and evaluation) and differentiated in backward: one
  // KwtaParams per net (keep clamped to [1, units]). All keep ≥ units and no
  // normalise: off, and no kernel runs. Throws EngineError for a layer
  // without a ReLU after it.
  void set_kwta(int hidden, std::vector<kernels::KwtaParams> per_net);
  // Units of hidden plastic layer `hidden` per sample (k-WTA's `units`).
  int hidden_units(int hidden) const;

  // How each conv → ReLU → 2×2 max-pool runs (ConvReluPool; layered by
  // default). Layers with k-WTA after their ReLU are never fused.
  void set_conv_relu_pool_fusion(ConvReluPool mode) {
    conv_relu_pool_ = mode;
    fit_slots();
  }
  ConvReluPool conv_relu_pool_fusion() const { return conv_relu_pool_; }

  // Task-incremental heads: allowed (N, classes) in backend memory, applied to
  // the logits at the end of every forward until cleared with nullptr.
  void set_head_mask(const std::uint8_t* allowed) { head_mask_ = allowed; }

  // What the plasticity engine needs to walk the layers itself.
  struct Layer {
    LayerSpec spec;
    int in_c, in_h, in_w, out_c, out_h, out_w;
    bool shared_input = false;  // reads the minibatch itself (first parametric layer)
    int w = -1, b = -1;         // indices into params_
    int act_in = 0, act_out = 0;  // indices into acts_/grads_ (in-place layers share them)
    std::size_t in_per_image() const { return std::size_t(in_c) * in_h * in_w; }
    std::size_t out_per_image() const { return std::size_t(out_c) * out_h * out_w; }
  };
  const std::vector<Layer>& layers() const { return layers_; }
  const float* activation(int slot) const { return act(slot); }  // slot 0: the input
  float* gradient(int slot) { return grads_[slot].data(); }
  float* logp() { return logp_.data(); }
  // The backward pass of non-parametric layer i (ReLU, max-pool, dropout,
  // flatten) for the last forward's batch: dx from dy (slots of that layer).
  // Returns the lowest layer it covered: i, or i − 1 where a max-pool took
  // the ReLU below it along (maxpool2d_relu_backward: one pass, not two).
  int backward_nonparametric(int i, const float* dy, float* dx);
  // Whether conv layer i's input is a ReLU's output (no k-WTA after it) that its input
  // gradient can be written through (ConvShape::input_relu): that ReLU's backward is then done.
  bool input_relu_at(std::size_t i) const;
  // Whether layer i is a conv that runs fused with the ReLU and 2×2 pool after it.
  bool fused_conv_at(std::size_t i) const;
  // Whether layer i is a dropout run in that step too (right after the pool).
  bool fused_dropout_at(std::size_t i) const;
  // Dropout layer i's masks in the last forward (rate 0 outside training).
  DropoutParams dropout_params(std::size_t i) const;
  // Max-pool layer i's argmax in the last forward (P, N, C, Ho, Wo): each
  // window's maximum's index in its input plane.
  const std::int32_t* pool_argmax(std::size_t i) const { return argmax_[i].data(); }
  float* loss_buffer() { return loss_.data(); }
  int last_batch() const { return last_N_; }
  bool last_train() const { return last_train_; }
  std::uint64_t last_dropout_seed() const { return last_seed_; }
  std::uint64_t last_step() const { return last_step_; }

 private:

  void allocate();
  // Allocates each activation and gradient slot some layer uses and releases
  // the ones none does: the output of a conv whose fused step does without it
  // (Backend::fuses_conv_steps). Allocates nothing once they fit.
  void fit_slots();
  bool slots_fit_fused_ = false;  // the backend's fuses_conv_steps() when the slots were last fit

  Backend& backend_;
  NetSpec spec_;
  int P_, max_batch_;
  int first_net_ = 0;
  std::vector<Param> params_;
  std::vector<Layer> layers_;
  std::vector<Buffer<float>> acts_, grads_;  // (P, N, per-image) each; acts_[0] unused (input)
  std::vector<std::size_t> slot_floats_;     // per slot: P · max_batch · per-image (0: the input)
  std::vector<Buffer<std::int32_t>> argmax_;  // per layer (maxpool only)
  struct Kwta {
    std::vector<kernels::KwtaParams> per_net;  // (P); empty: off
    Buffer<float> scale;                       // (P, max_batch) normalisation factors
  };
  std::vector<Kwta> kwta_;                    // per layer (the ReLU after a hidden plastic layer)
  int relu_after_hidden(int hidden) const;    // layer index of that ReLU, or −1
  ConvReluPool conv_relu_pool_ = ConvReluPool::layered;
  // k-WTA after ReLU layer `relu` (if set) on its output, N samples.
  void kwta_forward(std::size_t relu, int N);
  Buffer<float> logp_, loss_;                 // (P, N, classes), (P)
  Buffer<std::int64_t> correct_;              // (P)
  const float* input_ = nullptr;
  const std::uint8_t* head_mask_ = nullptr;
  int last_N_ = 0;
  bool last_train_ = false;
  std::uint64_t last_seed_ = 0, last_step_ = 0;

  const float* act(int i) const { return i == 0 ? input_ : acts_[i].data(); }
};

}  // namespace evoplast::engine
