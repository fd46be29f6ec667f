// svmoe inspect: what a checkpoint directory holds, for people: its config, its tokenizer (which
// file svmoe reads, or why it cannot), and a table of its tensors with the parameter count.
#pragma once

#include <string>

#include "svmoe/io/hf_checkpoint.h"

namespace svmoe {

std::string describe_checkpoint(const HfCheckpoint& checkpoint);

}  // namespace svmoe
