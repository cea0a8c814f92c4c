// Reference tokenizer throughput on the same text as bench_tokenize:
// @huggingface/tokenizers 0.2.0 (WordPiece bert-base-uncased, byte-level BPE
// gpt2) and gpt-tokenizer 4.0.0 (GPT-2 r50k_base), one line at a time, no
// special tokens.  MB/s per second of CPU time (process.cpuUsage, user +
// system) and per wall second; best of REPEATS passes.
//   node js_bench.mjs NODE_MODULES VOCAB_DIR TEXT_FILE [REPEATS]
import fs from "fs";
import path from "path";
import { pathToFileURL } from "url";

const [nm, vocabDir, textFile, rep] = process.argv.slice(2);
const repeats = Number(rep || 3);
const { Tokenizer } = await import(pathToFileURL(path.join(nm, "@huggingface/tokenizers/dist/tokenizers.mjs")).href);
const gptTok = await import(pathToFileURL(path.join(nm, "gpt-tokenizer/esm/encoding/r50k_base.js")).href);
const text = fs.readFileSync(textFile, "utf8");
const bytes = Buffer.byteLength(text, "utf8");
const lines = text.split("\n");

function bench(name, encode) {
  let bestCpu = Infinity, bestWall = Infinity, ntok = 0;
  for (let r = 0; r < repeats; r++) {
    const c0 = process.cpuUsage(), w0 = process.hrtime.bigint();
    ntok = 0;
    for (const l of lines) ntok += encode(l).length;
    const c = process.cpuUsage(c0), w = Number(process.hrtime.bigint() - w0) / 1e9;
    bestCpu = Math.min(bestCpu, (c.user + c.system) / 1e6);
    bestWall = Math.min(bestWall, w);
  }
  console.log(`${name}\t${(bytes / bestCpu / 1e6).toFixed(1)} MB/s cpu\t${(bytes / bestWall / 1e6).toFixed(1)} MB/s wall\t` +
    `${(ntok / bestCpu / 1e6).toFixed(2)} Mtokens/s cpu\t${ntok} tokens\t${(bytes / 1e6).toFixed(2)} MB`);
}

function hf(model) {
  const tj = JSON.parse(fs.readFileSync(path.join(vocabDir, model, "tokenizer.json"), "utf8"));
  const tc = JSON.parse(fs.readFileSync(path.join(vocabDir, model, "tokenizer_config.json"), "utf8"));
  return new Tokenizer(tj, tc);
}
const bert = hf("bert-base-uncased"), gpt2 = hf("gpt2");
bench("@huggingface/tokenizers wordpiece", (l) => bert.encode(l, { add_special_tokens: false }).ids);
bench("@huggingface/tokenizers bpe", (l) => gpt2.encode(l, { add_special_tokens: false }).ids);
const enc = gptTok.encode || gptTok.default.encode;
bench("gpt-tokenizer bpe", (l) => enc(l));
