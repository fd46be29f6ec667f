// Drives `svmoe serve` with the official OpenAI client for Node (npm `openai`) the way the field's
// harnesses do, and prints what it got as one JSON object for the test to judge
// (tests/e2e/test_serve_client.cpp):
//   node openai_client_check.js BASE_URL MODEL API_KEY
// {"models": [ids], "greedy": completion, "score": completion (token ids, echo, logprobs 1,
//  max_tokens 1: lm-evaluation-harness's loglikelihood request), "stream": {"text", "finish",
//  "usage", "chunks"}, "errors": {name: {"status", "message", "param", "code"}}}
'use strict';
const { OpenAI } = require('openai');

async function main() {
  const [base, model, apiKey] = process.argv.slice(2);
  const client = new OpenAI({ baseURL: `${base}/v1`, apiKey, maxRetries: 0, timeout: 120000 });
  const out = { errors: {} };

  out.models = (await client.models.list()).data.map((m) => m.id);
  const prompt = 'The kernel schedules';
  out.greedy = await client.completions.create({ model, prompt, max_tokens: 12, temperature: 0, logprobs: 2 });

  // lm-evaluation-harness's local-completions loglikelihood request, with tokenized_requests.
  const tokenized = await fetch(`${base}/tokenize`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${apiKey}` },
    body: JSON.stringify({ prompt: 'The kernel schedules tasks on every CPU' }),
  });
  out.score_ids = (await tokenized.json()).tokens;
  out.score = await client.completions.create({
    model, prompt: [out.score_ids], max_tokens: 1, temperature: 0, logprobs: 1, echo: true, seed: 1234,
  });

  // The greedy request again, streamed.
  const stream = await client.completions.create({
    model, prompt, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  const streamed = { text: '', finish: null, usage: null, chunks: 0 };
  for await (const chunk of stream) {
    streamed.chunks += 1;
    for (const choice of chunk.choices) {
      streamed.text += choice.text;
      if (choice.finish_reason) streamed.finish = choice.finish_reason;
    }
    if (chunk.usage) streamed.usage = chunk.usage;
  }
  out.stream = streamed;

  // Errors arrive as the client's APIError with the status and OpenAI's fields.
  const bad = {
    unknown_field: { model, prompt: 'x', max_token: 3 },
    empty_prompt: { model, prompt: '' },
    wrong_model: { model: 'gpt-3.5-turbo-instruct', prompt: 'x' },
    huge_max_tokens: { model, prompt: 'x', max_tokens: 1e9 },
    ids_out_of_range: { model, prompt: [1, 2, 10000000] },
  };
  for (const [name, body] of Object.entries(bad)) {
    try {
      await client.completions.create(body);
      out.errors[name] = 'accepted';
    } catch (e) {
      out.errors[name] = { status: e.status, message: e.message, param: e.param ?? null, code: e.code ?? null };
    }
  }
  try {
    await new OpenAI({ baseURL: `${base}/v1`, apiKey: 'wrong', maxRetries: 0 }).models.list();
    out.errors.wrong_key = 'accepted';
  } catch (e) {
    out.errors.wrong_key = { status: e.status, message: e.message, code: e.code ?? null };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  console.error(`openai_client_check: ${e.stack || e}`);
  process.exit(1);
});
