// svmoe report (docs/eval.md): gathers an experiment's loss curves (each run's metrics.jsonl),
// svmoe eval's results (tables, expert selection) and a routed text (each MoE model of the eval
// run on report.text) into one self-contained HTML file.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "svmoe/config/settings.h"

namespace svmoe {

// The split whose expert selection the report draws (the paper's Fig. 3 counts the test split's):
// the test split wherever eval.splits lists it, else the first listed; none when none is.
std::optional<DataSplit> fig3_split(const std::vector<DataSplit>& splits);

// Returns the path of the written report.
std::filesystem::path run_report(const ReportSettings& report, const EvalSettings& eval,
                                 const RuntimeSettings& runtime);

}  // namespace svmoe
