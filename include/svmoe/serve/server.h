// svmoe serve: one model behind an OpenAI-compatible HTTP API (docs/serving.md), on cpp-httplib
// (Debian's libcpp-httplib-dev):
//   POST /v1/completions   text completions (serve/completions.h), streamed as server-sent events
//                          when asked; log-probs, echo, and svmoe_routing (each token's experts)
//   GET  /v1/models        the one model served
//   GET  /health           200 while serving, 503 while shutting down (no key needed)
//   POST /tokenize         text -> ids, as the model reads them
//   POST /detokenize       ids -> text
// Binds 127.0.0.1 unless told otherwise; with an API key every route but /health wants
// `Authorization: Bearer KEY`. SIGTERM or SIGINT: new requests get 503, the queued ones finish,
// then the server stops and the process exits 0.
#pragma once

#include "svmoe/config/settings.h"

namespace svmoe {

void run_serve(const ServeSettings& settings, const RuntimeSettings& runtime);

}  // namespace svmoe
