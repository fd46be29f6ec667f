// The Hugging Face tokenizers reference for svmoe's tokenizer.json implementation, run on the
// library's official Node binding (npm `tokenizers`, the Rust core). Run it through
// scripts/reference/hf-tokenizers.sh, which installs the binding into build/.
//
//   shapes DATA_DIR TRAIN_TXT   builds the tokenizer.json shapes of the model families svmoe
//                               reads into DATA_DIR/<shape>/ (from the SentencePiece-made
//                               vocabularies already in DATA_DIR/unigram and DATA_DIR/bpe, and a
//                               byte-level BPE trained here by the binding on TRAIN_TXT), with
//                               expected.json for the fixed strings (committed)
//   fuzz DATA_DIR OUT_DIR N     N seeded random strings per shape -> OUT_DIR/<shape>.fuzz.json
//                               (made at test time, not committed)
//
// Expected files: {tokenizers_version, strings, ids_no_special, ids_with_special,
// pieces_no_special (idToToken of each id), decode (skip_special_tokens=true),
// decode_with_special (false)}.
'use strict';
const fs = require('fs');
const path = require('path');
const os = require('os');
const tk = require('tokenizers');

const TOKENIZERS_VERSION = require('tokenizers/package.json').version;
const SPACE = '\u2581';  // "▁"

// Shapes of real base models' tokenizer.json, as each family's converter writes them.
const LLAMA3_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

function addedToken(id, content, special, extra = {}) {
  return Object.assign({id, content, single_word: false, lstrip: false, rstrip: false, normalized: !special, special},
                       extra);
}
const SPM_SPECIALS = [addedToken(0, '<unk>', true), addedToken(1, '<s>', true), addedToken(2, '</s>', true)];
function template(prefix, suffix) {
  const single = [];
  const special = {};
  for (const t of prefix) single.push({SpecialToken: {id: t.content, type_id: 0}});
  single.push({Sequence: {id: 'A', type_id: 0}});
  for (const t of suffix) single.push({SpecialToken: {id: t.content, type_id: 0}});
  for (const t of [...prefix, ...suffix]) special[t.content] = {id: t.content, ids: [t.id], tokens: [t.content]};
  const pair = [...single, {Sequence: {id: 'B', type_id: 1}}];
  return {type: 'TemplateProcessing', single, pair, special_tokens: special};
}
function tokenizerJson(model, parts) {
  return Object.assign({version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null,
                        pre_tokenizer: null, post_processor: null, decoder: null, model}, parts);
}
const spmConfig = {bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>'};

function buildShapes(dataDir, trainTxt) {
  const unigram = JSON.parse(fs.readFileSync(path.join(dataDir, 'unigram', 'tokenizer.json'), 'utf8')).model;
  const shapes = {};

  // LLM-jp's converter (llm-jp-3): a regex normaliser instead of a pre-tokenizer.
  const llmjpAdded = [...SPM_SPECIALS, addedToken(3000, '<EOD|LLM-jp>', true), addedToken(3001, '<CLS|LLM-jp>', true),
                      addedToken(3002, '<SEP|LLM-jp>', true), addedToken(3003, '<|user|>', false)];
  shapes.llm_jp_3 = {
    json: tokenizerJson(unigram, {
      added_tokens: llmjpAdded,
      normalizer: {type: 'Sequence', normalizers: [
        {type: 'Replace', pattern: {Regex: '(?<!\\n)^'}, content: SPACE},
        {type: 'Replace', pattern: {Regex: ' '}, content: SPACE}]},
      post_processor: template([SPM_SPECIALS[1]], []),
      decoder: {type: 'Sequence', decoders: [
        {type: 'ByteFallback'}, {type: 'Replace', pattern: {String: SPACE}, content: ' '}, {type: 'Fuse'},
        {type: 'Replace', pattern: {Regex: '(?<!\\n)^ '}, content: ''}]},
    }),
    config: spmConfig,
  };
  // Metaspace pre-tokenizers with Unicode normalisation and digit splitting.
  shapes.metaspace_nfkc_digits = {
    json: tokenizerJson(unigram, {
      added_tokens: [...SPM_SPECIALS, addedToken(3000, '[MASK]', false, {lstrip: true, rstrip: true, normalized: false})],
      normalizer: {type: 'Sequence', normalizers: [{type: 'NFKC'}, {type: 'Strip', strip_left: true, strip_right: false}]},
      pre_tokenizer: {type: 'Sequence', pretokenizers: [
        {type: 'Digits', individual_digits: false},
        {type: 'Metaspace', replacement: SPACE, prepend_scheme: 'always', split: true}]},
      post_processor: template([SPM_SPECIALS[1]], [SPM_SPECIALS[2]]),
      decoder: {type: 'Metaspace', replacement: SPACE, prepend_scheme: 'always', split: true},
    }),
    config: spmConfig,
  };
  shapes.metaspace_nfkd_lowercase = {
    json: tokenizerJson(unigram, {
      added_tokens: [...SPM_SPECIALS, addedToken(3000, 'hello world', false, {single_word: true})],
      normalizer: {type: 'Sequence', normalizers: [
        {type: 'NFKD'}, {type: 'StripAccents'}, {type: 'Lowercase'}, {type: 'NFC'}, {type: 'NFD'}, {type: 'NFC'},
        {type: 'Strip', strip_left: true, strip_right: true}]},
      pre_tokenizer: {type: 'Sequence', pretokenizers: [
        {type: 'Digits', individual_digits: true},
        {type: 'Metaspace', replacement: SPACE, prepend_scheme: 'first', split: true}]},
      post_processor: template([SPM_SPECIALS[1]], []),
      decoder: {type: 'Sequence', decoders: [
        {type: 'ByteFallback'}, {type: 'Metaspace', replacement: SPACE, prepend_scheme: 'first', split: true}]},
    }),
    config: spmConfig,
  };
  // Every Split behaviour, inverted and not, before a Metaspace that never prepends.
  shapes.split_behaviours = {
    json: tokenizerJson(unigram, {
      added_tokens: SPM_SPECIALS,
      normalizer: {type: 'Replace', pattern: {String: '\r\n'}, content: '\n'},
      pre_tokenizer: {type: 'Sequence', pretokenizers: [
        {type: 'Split', pattern: {Regex: '\\n+'}, behavior: 'MergedWithPrevious', invert: false},
        {type: 'Split', pattern: {String: '\u3002'}, behavior: 'MergedWithNext', invert: false},
        {type: 'Split', pattern: {Regex: '[0-9]'}, behavior: 'Contiguous', invert: false},
        {type: 'Split', pattern: {Regex: '\\s{2,}'}, behavior: 'Removed', invert: false},
        {type: 'Split', pattern: {Regex: '\\p{Han}+'}, behavior: 'Isolated', invert: true},
        {type: 'Split', pattern: {Regex: '[!?]'}, behavior: 'Removed', invert: true},
        {type: 'Metaspace', replacement: SPACE, prepend_scheme: 'never', split: false}]},
      post_processor: template([SPM_SPECIALS[1]], []),
      decoder: {type: 'Sequence', decoders: [
        {type: 'Replace', pattern: {String: SPACE}, content: ' '}, {type: 'ByteFallback'}, {type: 'Fuse'},
        {type: 'Strip', content: ' ', start: 2, stop: 0}]},
    }),
    config: spmConfig,
  };

  // Byte-level BPE, trained here by the binding and cut to the first 3000 merges.
  const bpe = trainByteLevelBpe(trainTxt, 3000);
  const llama3Specials = [addedToken(bpe.size, '<|begin_of_text|>', true), addedToken(bpe.size + 1, '<|end_of_text|>', true),
                          addedToken(bpe.size + 2, '<|eot_id|>', true)];
  shapes.byte_level_llama3 = {
    json: tokenizerJson(Object.assign({}, bpe.model, {ignore_merges: true}), {
      added_tokens: llama3Specials,
      pre_tokenizer: {type: 'Sequence', pretokenizers: [
        {type: 'Split', pattern: {Regex: LLAMA3_PATTERN}, behavior: 'Isolated', invert: false},
        {type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false}]},
      post_processor: {type: 'Sequence', processors: [
        {type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true},
        template([llama3Specials[0]], [])]},
      decoder: {type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true},
    }),
    config: {bos_token: '<|begin_of_text|>', eos_token: '<|end_of_text|>'},
  };
  shapes.byte_level_gpt2 = {
    json: tokenizerJson(bpe.model, {
      added_tokens: [addedToken(bpe.size, '<|endoftext|>', true), addedToken(bpe.size + 1, '<mask>', true, {lstrip: true}),
                     addedToken(bpe.size + 2, 'cat', false, {single_word: true}),
                     addedToken(bpe.size + 3, '[END]', false, {rstrip: true})],
      pre_tokenizer: {type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true},
      post_processor: {type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true},
      decoder: {type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true},
    }),
    config: {bos_token: '<|endoftext|>', eos_token: '<|endoftext|>'},
  };
  return shapes;
}

function trainByteLevelBpe(trainTxt, merges) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'svmoe-bpe-'));
  const trainer = new tk.Tokenizer(tk.BPE.empty());
  trainer.setPreTokenizer(tk.byteLevelPreTokenizer(false, true));
  trainer.train([trainTxt]);
  trainer.save(path.join(tmp, 'trained.json'));
  const trained = JSON.parse(fs.readFileSync(path.join(tmp, 'trained.json'), 'utf8')).model;
  fs.rmSync(tmp, {recursive: true});
  // Every byte-level character first (ids 0..255 in byte order), then the kept merges' results.
  const vocab = {};
  let next = 0;
  for (const c of tk.byteLevelAlphabet().sort((a, b) => byteOf(a) - byteOf(b))) vocab[c] = next++;
  const kept = trained.merges.slice(0, merges).map((m) => (Array.isArray(m) ? m : m.split(' ')));
  for (const [a, b] of kept) {
    if (!(a + b in vocab)) vocab[a + b] = next++;
  }
  return {model: Object.assign({}, trained, {vocab, merges: kept}), size: next};
}

// The byte a byte-level character stands for (GPT-2's bytes_to_unicode, inverted).
function byteOf(c) {
  const printable = [];
  for (let b = 0; b < 256; ++b) {
    if ((b >= 33 && b <= 126) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae)) printable.push(b);
  }
  const code = c.codePointAt(0);
  if (printable.includes(code)) return code;
  let n = 0;
  for (let b = 0; b < 256; ++b) {
    if (printable.includes(b)) continue;
    if (256 + n === code) return b;
    ++n;
  }
  throw new Error('not a byte-level character: ' + c);
}

// ---- strings ----

function fixedStrings(base, specials) {
  const out = [...base];
  out.push(
    '第一条　この法律は、国民の健康の保持に寄与することを目的とする。\n第二条　前条の規定は、次に掲げる場合には、適用しない。',
    '（所得税法）第二十二条　居住者の各年分の総所得金額は、…の合計額とする。ただし、第三項の規定の適用がある場合を除く。',
    'ＡＢＣ　ａｂｃ　１２３　ｶﾀｶﾅ　ﾊﾟﾋﾟﾌﾟ　！？＃＄％',
    'ABC abc 123 カタカナ パピプ !?#$%',
    'a'.repeat(300), 'あ'.repeat(257), ' '.repeat(130), '\n'.repeat(90), '0'.repeat(200), '▁'.repeat(64), '😀'.repeat(40),
    'def f(x):\n\treturn {"a": [1, 2, 3]}  # comment\n', 'for (int i = 0; i < n; ++i) { sum += a[i]; }',
    '\tleading tab', 'trailing tab\t', 'tab\tin\tthe\tmiddle', '\t\t\t',
    '   three leading spaces', 'three trailing spaces   ', 'many     spaces  in  between', ' ', '  ', '',
    '👩‍👩‍👧‍👦 family, 🇯🇵 flag, ❤️ heart, 👍🏽 thumbs',
    '안녕하세요 세계. 대한민국 헌법 제1조', '中华人民共和国宪法 第一条 中华人民共和国是工人阶级领导的', '繁體中文測試：臺灣',
    'İstanbul ΣΊΣΥΦΟΣ Straße ǅ ﬁ ﬀ Ⅻ ½ ² ①', 'café naïve résumé Ångström',
    'x\r\ny\rz\u2028w\u2029v\u0085u\u000bt\u000cs', '\u00a0nbsp\u3000ideographic\u2009thin\u202fnarrow');
  const base2 = '今日は 良い天気 です';
  for (let i = 0; i <= base2.length; ++i) out.push(base2.slice(0, i) + '\n' + base2.slice(i));
  for (const s of specials) {
    out.push(s, `${s}text`, `text${s}`, `a ${s} b`, `  ${s}  `, `${s}${s}`, `前${s}後`, `\n${s}\n`, `one${s}two ${s} three`);
  }
  return out;
}

function mulberry32(seed) {
  return function () {
    let t = (seed += 0x6d2b79f5);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const RANGES = [
  [0x20, 0x7e, 30], [0x61, 0x7a, 20], [0x30, 0x39, 6], [0x3041, 0x3096, 20], [0x30a1, 0x30fa, 15],
  [0x4e00, 0x9fff, 15], [0xff01, 0xff5e, 6], [0xff61, 0xff9f, 4], [0xac00, 0xd7a3, 4], [0xc0, 0x17f, 5],
  [0x300, 0x36f, 2], [0x391, 0x3c9, 2], [0x410, 0x44f, 2], [0x1f300, 0x1f64f, 4], [0x660, 0x669, 1],
  [0x2160, 0x217f, 1], [0x2460, 0x249b, 1], [0xb2, 0xbe, 1],
];
const SPACES = [' ', ' ', ' ', '\t', '\n', '\n', '\r', '\r\n', '\u3000', '\u00a0', '\u2009', '\u202f', '\u2028',
                '\u0085', '\u000b', '\u200d', '\ufe0f', '\u0130', '\u1e9e'];

function fuzzStrings(count, seed, specials) {
  const random = mulberry32(seed);
  const pick = (n) => Math.floor(random() * n);
  const total = RANGES.reduce((s, r) => s + r[2], 0);
  const randomChar = () => {
    let w = pick(total);
    for (const [lo, hi, weight] of RANGES) {
      if (w < weight) return String.fromCodePoint(lo + pick(hi - lo + 1));
      w -= weight;
    }
    return 'x';
  };
  const out = [];
  for (let i = 0; i < count; ++i) {
    const length = pick(4) === 0 ? pick(120) : pick(24);
    let s = '';
    for (let j = 0; j < length; ++j) {
      const r = random();
      if (r < 0.2) s += SPACES[pick(SPACES.length)];
      else if (r < 0.23 && specials.length) s += specials[pick(specials.length)];
      else if (r < 0.24) s += randomChar().repeat(2 + pick(200));
      else s += randomChar();
    }
    out.push(s);
  }
  return out;
}

async function expectations(tokenizer, strings) {
  const e = {tokenizers_version: TOKENIZERS_VERSION, strings, ids_no_special: [], ids_with_special: [],
             pieces_no_special: [], decode: [], decode_with_special: []};
  for (const s of strings) {
    const plain = await tokenizer.encode(s, null, {addSpecialTokens: false});
    const withSpecial = await tokenizer.encode(s, null, {addSpecialTokens: true});
    e.ids_no_special.push(plain.getIds());
    e.pieces_no_special.push(plain.getIds().map((id) => tokenizer.idToToken(id)));
    e.ids_with_special.push(withSpecial.getIds());
    e.decode.push(await tokenizer.decode(withSpecial.getIds(), true));
    e.decode_with_special.push(await tokenizer.decode(withSpecial.getIds(), false));
  }
  return e;
}

function specialsOf(json) {
  return json.added_tokens.map((t) => t.content);
}

function shapeDirs(dataDir) {
  return fs.readdirSync(dataDir).filter((d) => fs.existsSync(path.join(dataDir, d, 'tokenizer.json'))).sort();
}

async function main() {
  const [mode, dataDir, third, fourth] = process.argv.slice(2);
  if (mode === 'shapes') {
    const base = JSON.parse(fs.readFileSync(path.join(dataDir, 'test_strings.json'), 'utf8'));
    for (const [name, shape] of Object.entries(buildShapes(dataDir, third))) {
      const dir = path.join(dataDir, name);
      fs.mkdirSync(dir, {recursive: true});
      const text = JSON.stringify(shape.json) + '\n';
      fs.writeFileSync(path.join(dir, 'tokenizer.json'), text);
      fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(shape.config, null, 2) + '\n');
      const tokenizer = tk.Tokenizer.fromString(text);
      const e = await expectations(tokenizer, fixedStrings(base, specialsOf(shape.json)));
      fs.writeFileSync(path.join(dir, 'expected.json'), JSON.stringify(e) + '\n');
      console.log(`${name}: ${e.strings.length} fixed strings`);
    }
  } else if (mode === 'fuzz') {
    const count = Number(fourth || 5000);
    fs.mkdirSync(third, {recursive: true});
    let seed = 1;
    for (const name of shapeDirs(dataDir)) {
      const text = fs.readFileSync(path.join(dataDir, name, 'tokenizer.json'), 'utf8');
      const tokenizer = tk.Tokenizer.fromString(text);
      const e = await expectations(tokenizer, fuzzStrings(count, seed++, specialsOf(JSON.parse(text))));
      fs.writeFileSync(path.join(third, `${name}.fuzz.json`), JSON.stringify(e) + '\n');
      console.log(`${name}: ${count} fuzz strings`);
    }
  } else {
    console.error('usage: hf_tokenizers_reference.js shapes DATA_DIR TRAIN_TXT | fuzz DATA_DIR OUT_DIR [N]');
    process.exit(2);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
