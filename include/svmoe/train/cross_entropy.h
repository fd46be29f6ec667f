// The language-model loss of SPEC.md's stages (mean next-token cross-entropy) computed from the
// final hidden states and the LM head's weight together, a chunk of tokens at a time, so that
// the [tokens, vocab] logits never exist whole ("fused linear cross-entropy", as in
// Liger-Kernel). At llm-jp-3's 99,584-token vocabulary a 4 x 2048 batch has 0.8 G logits: the
// unfused loss holds them in the compute dtype, again in float32, as log-probabilities and as
// their gradient (about 11 GB); here one chunk's float32 logits (about 1 GB) at a time.
#pragma once

#include <torch/types.h>

namespace svmoe {

// mean_t [logsumexp_v(h_t . W_v) - h_t . W_{y_t}] over the rows t of `hidden` [N, H] with
// targets `targets` [N] (int64) and the head `weight` [V, H]. Logits are formed in the compute
// dtype (as the unfused head does) and reduced in float32. When gradients are wanted, they are
// computed in the same pass, chunk by chunk ((softmax - onehot) / N, then through the head's
// matmul; the weight's gradient summed over chunks in float32), and scaled by the upstream
// gradient in the backward pass: no recomputation. chunk_rows = 0 picks about 2^28 logits a chunk.
// Rows of `rows` tokens per chunk at vocabulary `vocab`: `asked` if positive, else about 2^28
// logits' worth; never more than `rows`.
std::int64_t lm_loss_chunk_rows(std::int64_t rows, std::int64_t vocab, std::int64_t asked = 0);

torch::Tensor fused_lm_head_cross_entropy(const torch::Tensor& hidden, const torch::Tensor& weight,
                                          const torch::Tensor& targets, std::int64_t chunk_rows = 0);

}  // namespace svmoe
