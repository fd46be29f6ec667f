// A bounded load test of `svmoe serve` through the official OpenAI client (npm `openai`): N
// concurrent clients for a fixed time, each alternating a short scoring request (echo +
// logprobs, max_tokens 1: what lm-evaluation-harness sends for loglikelihood tasks) and a long
// sampled generation. Reports requests/s, tokens/s, p50/p99 latency per kind, errors, and the
// server's peak resident memory (/proc/PID/status). Run through scripts/serve-load-test.sh, or:
//   scripts/reference/openai-client.sh "$PWD/scripts/serve_load.js" --url URL --model NAME \
//     [--clients 8] [--seconds 30] [--max-tokens 64] [--pid SERVER_PID] [--api-key KEY]
// Prints a Markdown table, then one line "serve_load: {JSON}".
'use strict';
const fs = require('fs');
const { OpenAI } = require('openai');

function options() {
  const o = { clients: 8, seconds: 30, 'max-tokens': 64, pid: 0, 'api-key': 'none' };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) throw new Error(`bad argument ${argv[i]}`);
    o[argv[i].slice(2)] = argv[i + 1];
  }
  if (!o.url || !o.model) throw new Error('give --url and --model');
  for (const k of ['clients', 'seconds', 'max-tokens', 'pid']) o[k] = Number(o[k]);
  return o;
}

function residentKiB(pid, field) {
  if (!pid) return null;
  try {
    const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(`${field}:`));
    return line ? Number(line.split(/\s+/)[1]) : null;
  } catch {
    return null;
  }
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const prompts = [
  'The kernel schedules tasks on every CPU',
  'A device driver registers its interrupt handler',
  'The page cache keeps recently used file data in memory',
  'Memory management in the kernel',
  'The scheduler picks the next task to run',
  'Each network interface has a queue of packets',
];

async function main() {
  const o = options();
  const client = new OpenAI({ baseURL: `${o.url}/v1`, apiKey: o['api-key'], maxRetries: 0, timeout: 600000 });
  const kinds = {
    scoring: { latencies: [], tokens: 0, errors: 0 },
    generation: { latencies: [], tokens: 0, errors: 0 },
  };
  const failures = [];
  let peak = residentKiB(o.pid, 'VmRSS') || 0;
  const sampler = setInterval(() => { peak = Math.max(peak, residentKiB(o.pid, 'VmRSS') || 0); }, 100);
  const start = performance.now();
  const deadline = start + o.seconds * 1000;
  async function worker(w) {
    for (let i = 0; performance.now() < deadline; ++i) {
      const kind = (w + i) % 2 === 0 ? 'scoring' : 'generation';
      const prompt = prompts[(w * 7 + i) % prompts.length];
      const body = kind === 'scoring'
        ? { model: o.model, prompt, max_tokens: 1, echo: true, logprobs: 1, temperature: 0 }
        : { model: o.model, prompt, max_tokens: o['max-tokens'], temperature: 0.8, seed: w * 100000 + i };
      const t0 = performance.now();
      try {
        const r = await client.completions.create(body);
        kinds[kind].latencies.push(performance.now() - t0);
        kinds[kind].tokens += kind === 'scoring' ? r.usage.prompt_tokens : r.usage.completion_tokens;
      } catch (e) {
        kinds[kind].errors += 1;
        if (failures.length < 5) failures.push(`${kind}: ${e.status || ''} ${e.message}`);
      }
    }
  }
  await Promise.all(Array.from({ length: o.clients }, (_, w) => worker(w)));
  const seconds = (performance.now() - start) / 1000;
  clearInterval(sampler);
  peak = Math.max(peak, residentKiB(o.pid, 'VmRSS') || 0);
  const summary = { clients: o.clients, seconds: Number(seconds.toFixed(2)), max_tokens: o['max-tokens'] };
  let requests = 0;
  let errors = 0;
  for (const [name, k] of Object.entries(kinds)) {
    const sorted = k.latencies.slice().sort((a, b) => a - b);
    requests += sorted.length + k.errors;
    errors += k.errors;
    summary[name] = {
      requests: sorted.length,
      errors: k.errors,
      requests_per_s: Number((sorted.length / seconds).toFixed(2)),
      tokens_per_s: Number((k.tokens / seconds).toFixed(1)),
      p50_ms: sorted.length ? Number(percentile(sorted, 50).toFixed(1)) : null,
      p99_ms: sorted.length ? Number(percentile(sorted, 99).toFixed(1)) : null,
    };
  }
  summary.requests = requests;
  summary.requests_per_s = Number((requests / seconds).toFixed(2));
  summary.errors = errors;
  summary.failures = failures;
  summary.peak_rss_mib = o.pid ? Number((peak / 1024).toFixed(1)) : null;
  summary.server_vmhwm_mib = o.pid ? Number(((residentKiB(o.pid, 'VmHWM') || 0) / 1024).toFixed(1)) : null;
  const row = (name, k, what) =>
    `| ${name} | ${k.requests} | ${k.requests_per_s} | ${k.tokens_per_s} ${what} | ${k.p50_ms} | ${k.p99_ms} | ${k.errors} |`;
  console.log(`${o.clients} clients for ${o.seconds} s (done after ${summary.seconds} s); peak server RSS ${summary.peak_rss_mib} MiB`);
  console.log('| kind | requests | requests/s | tokens/s | p50 ms | p99 ms | errors |');
  console.log('|---|---|---|---|---|---|---|');
  console.log(row('scoring (echo, logprobs 1, max_tokens 1)', summary.scoring, 'scored'));
  console.log(row(`generation (max_tokens ${o['max-tokens']}, T 0.8)`, summary.generation, 'generated'));
  console.log(`serve_load: ${JSON.stringify(summary)}`);
}

main().catch((e) => {
  console.error(`serve_load: ${e.stack || e}`);
  process.exit(1);
});
