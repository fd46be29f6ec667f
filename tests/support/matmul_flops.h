// FLOPs counted from the matrix products a piece of code runs, as the operators' input shapes
// say: an independent count for the architecture arithmetic's laws (model/architecture_arithmetic.h).
// It listens to ATen's RecordFunction (the hook the PyTorch profiler uses), so it sees the
// products whatever module, kernel or LibTorch version runs them.
#pragma once

#include <cstdint>
#include <functional>

namespace svmoe::test {

// Forward FLOPs of `run`'s products on this thread: 2 M K N for each [M, K] x [K, N] product
// (mm, addmm, bmm, baddbmm, mv, addmv, ATen's grouped product; a batched one times its batch),
// and for a fused scaled_dot_product_attention 2 Tq Tk (D + Dv) per batch and head, its two
// products (the whole Tq x Tk square: a causal mask does not skip the masked half). Products
// inside a counted fused operator are not counted again.
double forward_matmul_flops(const std::function<void()>& run);

}  // namespace svmoe::test
