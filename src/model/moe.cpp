#include "svmoe/model/moe.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>

#include "svmoe/model/compat.h"
#include "svmoe/util/error.h"

namespace svmoe {

ExpertImpl::ExpertImpl(std::int64_t hidden_size, std::int64_t intermediate_size, ExpertNames names) {
  const bool mixtral = names == ExpertNames::kMixtral;
  const auto linear = [](std::int64_t in, std::int64_t out) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
  };
  w1 = register_module(mixtral ? "w1" : "gate_proj", linear(hidden_size, intermediate_size));
  w2 = register_module(mixtral ? "w2" : "down_proj", linear(intermediate_size, hidden_size));
  w3 = register_module(mixtral ? "w3" : "up_proj", linear(hidden_size, intermediate_size));
}

torch::Tensor ExpertImpl::forward(const torch::Tensor& x) { return w2(torch::silu(w1(x)) * w3(x)); }

namespace {

torch::nn::Linear router_of(const ModelConfig& c) {
  return torch::nn::Linear(torch::nn::LinearOptions(c.hidden_size, c.num_local_experts).bias(false));
}

torch::nn::ModuleList experts_of(const ModelConfig& c) {
  const ExpertNames names =
      architecture_row(c.architecture).llama_expert_names ? ExpertNames::kLlama : ExpertNames::kMixtral;
  torch::nn::ModuleList experts;
  for (std::int64_t e = 0; e < c.num_local_experts; ++e) {
    experts->push_back(Expert(c.hidden_size, c.intermediate_size, names));
  }
  return experts;
}

// The router in float32, whatever the compute dtype: logits [tokens, experts]. `detach`: stage
// 3's cheap gradient (SparseMoeBlockImpl::detach_router_input).
torch::Tensor router_logits_of(const torch::Tensor& hidden, const torch::nn::Linear& gate, bool detach) {
  const auto router_input = detach ? hidden.detach() : hidden;
  return torch::linear(router_input.to(torch::kFloat32), gate->weight.to(torch::kFloat32));
}

}  // namespace

SparseMoeBlockImpl::SparseMoeBlockImpl(const ModelConfig& c)
    : top_k_(c.num_experts_per_tok), norm_topk_prob_(c.norm_topk_prob) {
  gate = register_module("gate", router_of(c));
  experts = register_module("experts", experts_of(c));
  if (c.has_shared_expert()) {
    shared_expert = register_module("shared_expert", Mlp(c.hidden_size, c.shared_expert_intermediate_size, false));
  }
  if (architecture_row(c.architecture).gated_shared_expert) {
    shared_expert_gate = register_module("shared_expert_gate",
                                         torch::nn::Linear(torch::nn::LinearOptions(c.hidden_size, 1).bias(false)));
  }
  selection_bias = register_buffer("selection_bias", torch::zeros({c.num_local_experts}));
}

Routing route_top_k(const torch::Tensor& router_logits, std::int64_t top_k, const torch::Tensor& selection_bias,
                    bool renormalise) {
  const auto probabilities = torch::softmax(router_logits.to(torch::kFloat32), -1);  // [tokens, experts]
  torch::Tensor weights, experts;
  if (selection_bias.defined()) {
    experts = std::get<1>((probabilities + selection_bias.to(torch::kFloat32)).topk(top_k, -1));  // [tokens, k]
    weights = probabilities.gather(-1, experts);
  } else {
    std::tie(weights, experts) = probabilities.topk(top_k, -1);
  }
  if (renormalise) weights = weights / weights.sum(-1, /*keepdim=*/true);
  return {experts, weights};
}

namespace {

// Pairs routed to each expert [experts] (int64). A scatter-add, not bincount: bincount on CUDA
// reads the largest index on the host to size its output.
torch::Tensor pairs_per_expert(const torch::Tensor& flat_experts, std::int64_t experts) {
  return torch::zeros({experts}, flat_experts.options().dtype(torch::kInt64))
      .scatter_add_(0, flat_experts, torch::ones_like(flat_experts, torch::kInt64));
}

// The (token, slot) pairs sorted by expert, as both expert paths use them.
struct PairsByExpert {
  torch::Tensor order;          // [pairs]: pair indices (token * k + slot), sorted by expert
  torch::Tensor token_of_pair;  // [pairs]: the token of each sorted pair
  torch::Tensor counts;         // [experts] int64: pairs per expert, on the routing's device
};

PairsByExpert sort_pairs_by_expert(const torch::Tensor& chosen, std::int64_t n_experts, std::int64_t top_k) {
  const auto flat_experts = chosen.reshape({-1});
  const auto order = flat_experts.argsort();
  return {order, order.div(top_k, "floor"), pairs_per_expert(flat_experts, n_experts)};
}

// Whether kAuto takes the grouped path: where compat::grouped_mm has a kernel for both products
// (gate/up: [., H] x [N, H, 2F]; down: [., F] x [N, F, H]), probed with tiny tensors laid out as
// the real ones.
bool grouped_mm_applies(const torch::Tensor& hidden, std::int64_t ffn) {
  const auto probe = [&](std::int64_t k, std::int64_t n) {
    return compat::has_grouped_mm_kernel(torch::empty({1, k}, hidden.options()),
                                         torch::empty({1, n, k}, hidden.options()).transpose(1, 2));
  };
  return probe(hidden.size(1), 2 * ffn) && probe(ffn, hidden.size(1));
}

}  // namespace

torch::Tensor expert_load(const Routing& routing, std::int64_t experts) {
  return pairs_per_expert(routing.experts.reshape({-1}), experts);
}

void update_selection_bias(torch::Tensor& bias, const torch::Tensor& load, double rate) {
  torch::NoGradGuard no_grad;
  const auto load32 = load.to(torch::kFloat32).to(bias.device());
  bias.add_(torch::sign(load32.mean() - load32) * rate);
}

MoeOutput SparseMoeBlockImpl::forward(const torch::Tensor& x) {
  const auto shape = x.sizes().vec();
  const auto hidden = x.reshape({-1, shape.back()});  // [tokens, hidden]
  const auto router_logits = router_logits_of(hidden, gate, detach_router_input);
  const auto routing_logits = detach_router_input ? router_logits.detach() : router_logits;
  // The bias always takes part: a zero bias adds exactly 0 to every probability, so it chooses
  // as plain top-k (transformers' routing) does, and checking for zero would cost a host sync.
  const Routing routing = route_top_k(routing_logits, top_k_, selection_bias, norm_topk_prob_);
  const auto weights = routing.weights.to(hidden.scalar_type());

  const bool grouped =
      expert_path == ExpertPath::kGrouped ||
      (expert_path == ExpertPath::kAuto && grouped_mm_applies(hidden, experts[0]->as<Expert>()->w1->weight.size(0)));
  auto output = grouped ? run_experts_grouped(hidden, routing.experts, weights)
                        : run_experts_loop(hidden, routing.experts, weights);
  if (shared_expert) {
    auto shared = shared_expert(hidden);
    if (shared_expert_gate) shared = torch::sigmoid(shared_expert_gate(hidden)) * shared;
    output = output + shared;
  }
  return {output.reshape(shape), router_logits};
}

torch::Tensor SparseMoeBlockImpl::run_experts_loop(const torch::Tensor& hidden, const torch::Tensor& chosen,
                                                   const torch::Tensor& weights) {
  // Group the (token, slot) pairs by expert; run each expert once on its tokens.
  const auto n_experts = static_cast<std::int64_t>(experts->size());
  auto output = torch::zeros_like(hidden);
  const PairsByExpert pairs = sort_pairs_by_expert(chosen, n_experts, top_k_);
  const auto counts = pairs.counts.to(torch::kCPU);
  const auto& token_of_pair = pairs.token_of_pair;
  const auto pair_weights = weights.reshape({-1}).index_select(0, pairs.order);  // [tokens * k]
  const auto* count = counts.data_ptr<std::int64_t>();
  std::int64_t begin = 0;
  for (std::int64_t e = 0; e < n_experts; ++e) {
    const std::int64_t n = count[e];
    if (n == 0) continue;
    const auto tokens = token_of_pair.narrow(0, begin, n);
    const auto expert_output = experts[e]->as<Expert>()->forward(hidden.index_select(0, tokens));  // [n, hidden]
    output.index_add_(0, tokens, expert_output * pair_weights.narrow(0, begin, n).unsqueeze(1));
    begin += n;
  }
  return output;
}

namespace {

// The experts' weights stacked for grouped products: [N, 2F, H] (each expert's w1 rows, then its
// w3 rows) and [N, H, F].
torch::Tensor stack_gate_up(at::TensorList w1, at::TensorList w3) {
  std::vector<torch::Tensor> interleaved;
  for (std::size_t e = 0; e < w1.size(); ++e) {
    interleaved.push_back(w1[e]);
    interleaved.push_back(w3[e]);
  }
  const auto ffn = w1[0].size(0), hidden = w1[0].size(1);
  return torch::stack(interleaved).view({static_cast<std::int64_t>(w1.size()), 2 * ffn, hidden});
}

// Every expert's SwiGLU on the (token, expert) pairs sorted by expert (groups ending at
// `offsets`): y = w2 (silu(w1 x) * w3 x), each projection one grouped product. Its own backward
// pass, so that the stacked copy of the weights lives only while a product runs (autograd
// would keep it, about 0.7 GB a layer at llm-jp-3-1.8b's size, until the backward pass), and
// only x and the gate/up projections are kept for it.
struct GroupedSwiGlu : public torch::autograd::Function<GroupedSwiGlu> {
  static torch::Tensor forward(torch::autograd::AutogradContext* context, const torch::Tensor& x,
                               const torch::Tensor& offsets, at::TensorList w1, at::TensorList w3, at::TensorList w2) {
    const auto ffn = w1[0].size(0);
    const auto gate_up = compat::grouped_mm(x, stack_gate_up(w1, w3).transpose(1, 2), offsets);  // [P, 2F]
    const auto activated = torch::silu(gate_up.narrow(1, 0, ffn)) * gate_up.narrow(1, ffn, ffn);
    const auto y = compat::grouped_mm(activated, torch::stack(w2).transpose(1, 2), offsets);  // [P, H]
    std::vector<torch::Tensor> saved = {x, offsets, gate_up};
    for (const auto list : {w1, w3, w2}) saved.insert(saved.end(), list.begin(), list.end());
    context->save_for_backward(saved);
    context->saved_data["experts"] = static_cast<std::int64_t>(w1.size());
    context->saved_data["weight_grads"] = w1[0].requires_grad();
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* context,
                                                 torch::autograd::variable_list output_grads) {
    const auto saved = context->get_saved_variables();
    const auto n = context->saved_data["experts"].toInt();
    const auto& x = saved[0];
    const auto& offsets = saved[1];
    const auto& gate_up = saved[2];
    const at::TensorList w1(saved.data() + 3, n), w3(saved.data() + 3 + n, n), w2(saved.data() + 3 + 2 * n, n);
    const auto ffn = w1[0].size(0);
    const auto dy = output_grads[0].contiguous();  // [P, H]
    const auto gate = gate_up.narrow(1, 0, ffn), up = gate_up.narrow(1, ffn, ffn);
    const auto gate_activation = torch::silu(gate);
    const auto d_activated = compat::grouped_mm(dy, torch::stack(w2), offsets);  // [P, F]
    const auto d_gate_up =
        torch::cat({at::silu_backward(d_activated * up, gate), d_activated * gate_activation}, 1);  // [P, 2F]
    const auto dx = compat::grouped_mm(d_gate_up, stack_gate_up(w1, w3), offsets);                  // [P, H]

    torch::autograd::variable_list grads = {dx, torch::Tensor()};
    if (!context->saved_data["weight_grads"].toBool()) {
      grads.resize(2 + 3 * n);
      return grads;
    }
    const auto d_gate_up_weights = compat::grouped_mm_weight_grad(d_gate_up, x, offsets);   // [N, 2F, H]
    const auto d_down = compat::grouped_mm_weight_grad(dy, gate_activation * up, offsets);  // [N, H, F]
    for (std::int64_t e = 0; e < n; ++e) grads.push_back(d_gate_up_weights[e].narrow(0, 0, ffn));
    for (std::int64_t e = 0; e < n; ++e) grads.push_back(d_gate_up_weights[e].narrow(0, ffn, ffn));
    for (std::int64_t e = 0; e < n; ++e) grads.push_back(d_down[e]);
    return grads;
  }
};

}  // namespace

torch::Tensor SparseMoeBlockImpl::run_experts_grouped(const torch::Tensor& hidden, const torch::Tensor& chosen,
                                                      const torch::Tensor& weights) {
  const auto n_experts = static_cast<std::int64_t>(experts->size());
  const PairsByExpert pairs = sort_pairs_by_expert(chosen, n_experts, top_k_);
  // Each expert's group ends where the running count of its pairs does; no host sync.
  const auto offsets = pairs.counts.cumsum(0).to(torch::kInt32);
  std::vector<torch::Tensor> w1, w3, w2;
  for (const auto& module : *experts) {
    const auto* expert = module->as<Expert>();
    w1.push_back(expert->w1->weight);
    w3.push_back(expert->w3->weight);
    w2.push_back(expert->w2->weight);
  }
  const auto x = hidden.index_select(0, pairs.token_of_pair);  // [pairs, H]
  const auto y =
      GroupedSwiGlu::apply(x, offsets, at::TensorList(w1), at::TensorList(w3), at::TensorList(w2));  // [pairs, H]
  // Back to (token, slot) order, then each token's weighted sum over its k experts.
  const auto& order = pairs.order;
  const auto unsort = torch::empty_like(order).scatter_(0, order, torch::arange(order.size(0), order.options()));
  return (y.index_select(0, unsort).view({-1, top_k_, hidden.size(1)}) * weights.unsqueeze(-1)).sum(1);
}

torch::Tensor causal_soft_dispatch(const torch::Tensor& router_logits) {
  const auto t = router_logits.size(1);
  const auto future =
      torch::ones({t, t}, torch::TensorOptions().dtype(torch::kBool).device(router_logits.device())).triu(1);  // u > t
  const auto scores = router_logits.to(torch::kFloat32)
                          .transpose(1, 2)
                          .unsqueeze(2)
                          .expand({router_logits.size(0), router_logits.size(2), t, t});  // [B, S, t, u] = L_{u,s}
  return torch::softmax(scores.masked_fill(future, -std::numeric_limits<float>::infinity()), -1);
}

torch::Tensor soft_moe_mixture(const torch::Tensor& x, const torch::Tensor& dispatch, const torch::Tensor& combine,
                               torch::nn::ModuleList experts) {
  const auto slots = torch::matmul(dispatch.to(x.scalar_type()), x.unsqueeze(1));  // [B, S, T, H]
  auto output = torch::zeros_like(x);
  for (std::size_t s = 0; s < experts->size(); ++s) {
    const auto e = static_cast<std::int64_t>(s);
    output = output + combine.select(2, e).unsqueeze(-1) * experts[s]->as<Expert>()->forward(slots.select(1, e));
  }
  return output;
}

SoftMoeBlockImpl::SoftMoeBlockImpl(const ModelConfig& c) : reported_experts(c.num_experts_per_tok) {
  gate = register_module("gate", router_of(c));
  experts = register_module("experts", experts_of(c));
}

MoeOutput SoftMoeBlockImpl::forward(const torch::Tensor& x) {
  if (x.dim() != 3) throw UnsupportedError("a soft MoE block mixes positions: its input must be [batch, time, hidden]");
  const auto router_logits = router_logits_of(x.reshape({-1, x.size(2)}), gate, detach_router_input);  // [B*T, S]
  const auto logits = (detach_router_input ? router_logits.detach() : router_logits).view({x.size(0), x.size(1), -1});
  const auto combine = torch::softmax(logits, -1).to(x.scalar_type());  // [B, T, S]
  return {soft_moe_mixture(x, causal_soft_dispatch(logits), combine, experts), router_logits};
}

MoeOutput SoftMoeBlockImpl::forward_step(const torch::Tensor& x, const torch::Tensor& valid, SoftMoeState& state) {
  const auto batch = x.size(0), length = x.size(1), hidden = x.size(2);
  const auto router_logits = router_logits_of(x.reshape({-1, hidden}), gate, false);  // [B*n, S]
  const auto logits = router_logits.view({batch, length, -1});
  const auto slots_count = logits.size(2);
  if (!state.max.defined()) {
    state.max = torch::full({batch, slots_count}, std::numeric_limits<float>::lowest(), logits.options());
    state.denominator = torch::zeros({batch, slots_count}, logits.options());
    state.numerator = torch::zeros({batch, slots_count, hidden}, x.options());
  }
  // The running softmax, one position at a time: rescale what was summed to the new max.
  std::vector<torch::Tensor> slots;  // per position [B, S, H]
  for (std::int64_t t = 0; t < length; ++t) {
    const auto l = logits.select(1, t);                     // [B, S]
    const auto is_valid = valid.select(1, t).unsqueeze(1);  // [B, 1]
    const auto new_max = torch::where(is_valid, torch::maximum(state.max, l), state.max);
    const auto rescale = torch::exp(state.max - new_max);
    const auto weight = torch::where(is_valid, torch::exp(l - new_max), torch::zeros_like(l));
    state.denominator = state.denominator * rescale + weight;
    state.numerator = state.numerator * rescale.unsqueeze(-1).to(x.scalar_type()) +
                      weight.unsqueeze(-1).to(x.scalar_type()) * x.select(1, t).unsqueeze(1);
    state.max = new_max;
    // A padded row with nothing summed yet has N = 0 and Z = 0: its slots are 0, not NaN.
    slots.push_back(state.numerator / state.denominator.clamp_min(1e-30).unsqueeze(-1).to(x.scalar_type()));
  }
  const auto all_slots = torch::stack(slots, 1);                        // [B, n, S, H]
  const auto combine = torch::softmax(logits, -1).to(x.scalar_type());  // [B, n, S]
  auto output = torch::zeros_like(x);
  for (std::int64_t s = 0; s < slots_count; ++s) {
    output = output + combine.select(2, s).unsqueeze(-1) * experts[s]->as<Expert>()->forward(all_slots.select(2, s));
  }
  return {output, router_logits};
}

Routing routing_of_block(const torch::nn::Module& block, const torch::Tensor& router_logits) {
  if (const auto* sparse = block.as<SparseMoeBlock>()) {
    return route_top_k(router_logits, sparse->top_k(), sparse->selection_bias, sparse->renormalises());
  }
  const auto* soft = block.as<SoftMoeBlock>();
  if (soft == nullptr) throw Error("routing_of_block: not an MoE block");
  const auto combine = torch::softmax(router_logits.to(torch::kFloat32), -1);
  auto [weights, experts] = combine.topk(std::clamp<std::int64_t>(soft->reported_experts, 1, combine.size(-1)), -1);
  return {experts, weights};
}

CartesianMoeBlockImpl::CartesianMoeBlockImpl(const ModelConfig& c) {
  a = register_module("a", SparseMoeBlock(c));
  intermediate_layernorm = register_module("intermediate_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  b = register_module("b", SparseMoeBlock(c));
}

CartesianMoeOutput CartesianMoeBlockImpl::forward(const torch::Tensor& residual, const torch::Tensor& normed) {
  MoeOutput first = a(normed);
  const auto h1 = residual + first.hidden;
  MoeOutput second = b(intermediate_layernorm(h1));
  return {h1 + second.hidden, first.router_logits, second.router_logits};
}

void set_expert_path(torch::nn::Module& model, ExpertPath path) {
  for (const auto& module : model.modules(/*include_self=*/true)) {
    if (auto* moe = module->as<SparseMoeBlock>()) moe->expert_path = path;
  }
}

void set_detach_router_inputs(torch::nn::Module& model, bool detach) {
  for (const auto& module : model.modules(/*include_self=*/true)) {
    if (auto* moe = module->as<SparseMoeBlock>()) moe->detach_router_input = detach;
    if (auto* soft = module->as<SoftMoeBlock>()) soft->detach_router_input = detach;
  }
}

}  // namespace svmoe
