#include "svmoe/model/moe.h"

#include <torch/torch.h>

namespace svmoe {

ExpertImpl::ExpertImpl(std::int64_t hidden_size, std::int64_t intermediate_size) {
  w1 = register_module("w1", torch::nn::Linear(torch::nn::LinearOptions(hidden_size, intermediate_size).bias(false)));
  w2 = register_module("w2", torch::nn::Linear(torch::nn::LinearOptions(intermediate_size, hidden_size).bias(false)));
  w3 = register_module("w3", torch::nn::Linear(torch::nn::LinearOptions(hidden_size, intermediate_size).bias(false)));
}

torch::Tensor ExpertImpl::forward(const torch::Tensor& x) { return w2(torch::silu(w1(x)) * w3(x)); }

SparseMoeBlockImpl::SparseMoeBlockImpl(const ModelConfig& c) : top_k_(c.num_experts_per_tok) {
  gate = register_module("gate",
                         torch::nn::Linear(torch::nn::LinearOptions(c.hidden_size, c.num_local_experts).bias(false)));
  experts = register_module("experts", torch::nn::ModuleList());
  for (std::int64_t e = 0; e < c.num_local_experts; ++e) experts->push_back(Expert(c.hidden_size, c.intermediate_size));
  selection_bias = register_buffer("selection_bias", torch::zeros({c.num_local_experts}));
}

Routing route_top_k(const torch::Tensor& router_logits, std::int64_t top_k, const torch::Tensor& selection_bias) {
  const auto probabilities = torch::softmax(router_logits.to(torch::kFloat32), -1);  // [tokens, experts]
  torch::Tensor weights, experts;
  if (selection_bias.defined()) {
    experts = std::get<1>((probabilities + selection_bias.to(torch::kFloat32)).topk(top_k, -1));  // [tokens, k]
    weights = probabilities.gather(-1, experts);
  } else {
    std::tie(weights, experts) = probabilities.topk(top_k, -1);
  }
  weights = weights / weights.sum(-1, /*keepdim=*/true);
  return {experts, weights};
}

torch::Tensor expert_load(const Routing& routing, std::int64_t experts) {
  return torch::bincount(routing.experts.reshape({-1}), {}, experts);
}

void update_selection_bias(torch::Tensor& bias, const torch::Tensor& load, double rate) {
  torch::NoGradGuard no_grad;
  const auto load32 = load.to(torch::kFloat32).to(bias.device());
  bias.add_(torch::sign(load32.mean() - load32) * rate);
}

MoeOutput SparseMoeBlockImpl::forward(const torch::Tensor& x) {
  const auto shape = x.sizes().vec();
  const auto hidden = x.reshape({-1, shape.back()});  // [tokens, hidden]
  // The router in float32, whatever the compute dtype.
  const auto router_logits = torch::linear(hidden.to(torch::kFloat32), gate->weight.to(torch::kFloat32));
  // The bias always takes part: a zero bias adds exactly 0 to every probability, so it chooses
  // as plain top-k (transformers' routing) does, and checking for zero would cost a host sync.
  const Routing routing = route_top_k(router_logits, top_k_, selection_bias);
  const auto weights = routing.weights.to(hidden.scalar_type());

  // Group the (token, slot) pairs by expert; run each expert once on its tokens.
  auto output = torch::zeros_like(hidden);
  const auto flat_experts = routing.experts.reshape({-1});  // [tokens * k]
  const auto order = flat_experts.argsort();                // pairs sorted by expert
  const auto counts = expert_load(routing, static_cast<std::int64_t>(experts->size())).to(torch::kCPU);
  const auto token_of_pair = order.div(top_k_, "floor");                   // [tokens * k]
  const auto pair_weights = weights.reshape({-1}).index_select(0, order);  // [tokens * k]
  const auto* count = counts.data_ptr<std::int64_t>();
  std::int64_t begin = 0;
  for (std::int64_t e = 0; e < static_cast<std::int64_t>(experts->size()); ++e) {
    const std::int64_t n = count[e];
    if (n == 0) continue;
    const auto tokens = token_of_pair.narrow(0, begin, n);
    const auto expert_output = experts[e]->as<Expert>()->forward(hidden.index_select(0, tokens));  // [n, hidden]
    output.index_add_(0, tokens, expert_output * pair_weights.narrow(0, begin, n).unsqueeze(1));
    begin += n;
  }
  return {output.reshape(shape), router_logits};
}

}  // namespace svmoe
