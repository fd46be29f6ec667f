// A config/ header that includes LibTorch: the layer check must reject it (config/ builds
// without the precompiled LibTorch header).
#pragma once

#include <torch/types.h>
