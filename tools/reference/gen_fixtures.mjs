// Produces dapt's tokenizer fixtures from the JavaScript port of Hugging
// Face's tokenizers (@huggingface/tokenizers 0.2.0), corrected to the Rust
// library where the port is known to differ (see rustCorrection below).
//
//   mkdir /tmp/ref && cp package.json /tmp/ref && (cd /tmp/ref && npm install)
//   sh collect_lines.sh /tmp/ref/node_modules > /tmp/ref/lines.txt
//   NODE_MODULES=/tmp/ref/node_modules node gen_fixtures.mjs /tmp/ref/lines.txt VOCAB_DIR OUT_DIR
//
// VOCAB_DIR holds bert-base-uncased/, gpt2/, roberta-base/ with tokenizer.json
// and tokenizer_config.json (/work/shared/vocab).  OUT_DIR is
// tests/fixtures/tokenizer; hard_cases.jsonl is read from there.
// Writes (gzip, deterministic):
//   corpus.jsonl.gz            one JSON string per line: the texts
//   <model>.corpus.ids.gz      per text: ids without specials
//   <model>.hard.ids.gz        per hard case: ids without specials <TAB> ids with the template
//   <model>.pairs.ids.gz       pairs (text i, text i+1) of hard cases and the first 400 corpus
//                              lines: ids <TAB> token_type_ids, with the template
//   <model>.decode.jsonl.gz    JSON strings: decode(encode(text), skip_special_tokens) for
//                              the hard cases then the first 1000 corpus lines
import fs from "fs";
import path from "path";
import { pathToFileURL } from "url";
import zlib from "zlib";

const nodeModules = process.env.NODE_MODULES || path.resolve("node_modules");
const { Tokenizer } = await import(
  pathToFileURL(path.join(nodeModules, "@huggingface/tokenizers/dist/tokenizers.mjs")).href);

const [linesPath, vocabDir, outDir] = process.argv.slice(2);
if (!outDir) {
  console.error("usage: node gen_fixtures.mjs LINES.txt VOCAB_DIR OUT_DIR");
  process.exit(2);
}
const models = ["bert-base-uncased", "gpt2", "roberta-base"];
const corpus = fs.readFileSync(linesPath, "utf8").split("\n").filter((l) => l.length > 0);
const hard = fs
  .readFileSync(`${outDir}/hard_cases.jsonl`, "utf8")
  .split("\n")
  .filter((l) => l.length > 0)
  .map((l) => JSON.parse(l));

// Rewrites a text so that the JS port gives the ids the Rust library gives
// for the original.  Each rule is an equivalence under the Rust library's
// semantics for that model's settings, applied only where the port differs.
function rustCorrection(model, text) {
  if (model !== "bert-base-uncased") return text;
  let t = text;
  // (1) The Rust BertNormalizer puts spaces around CJK ideographs in
  //     0x20000-0x2A6DF, 0x2A700-0x2B73F, 0x2B740-0x2B81F, 0x2B920-0x2CEAF
  //     and 0x2F800-0x2FA1F too; the port only handles the BMP ranges.
  //     Adding the spaces ourselves is what Rust does internally.
  t = t.replace(/[\u{20000}-\u{2A6DF}\u{2A700}-\u{2B73F}\u{2B740}-\u{2B81F}\u{2B920}-\u{2CEAF}\u{2F800}-\u{2FA1F}]/gu,
    (c) => ` ${c} `);
  // (2) Rust lowercases character by character (char::to_lowercase), so a
  //     word-final capital sigma becomes σ, not ς as JavaScript's
  //     String.toLowerCase does.  Writing σ (which lowercases to itself)
  //     gives the Rust result.
  t = t.replace(/Σ/g, "σ");
  // (3) U+FEFF is a format character (Cf): Rust's clean_text removes it.
  //     The issue reports the port treating it as whitespace; with 0.2.0 and
  //     bert-base-uncased removing it first changes none of the hard cases
  //     (checked), so this rule is a guard that costs nothing.
  t = t.replace(/\uFEFF/g, "");
  // (4) U+0085 is a control character (Cc): Rust's clean_text removes it
  //     (is_control is checked before is_whitespace).  Remove it.  As for
  //     (3), 0.2.0 already agrees on the hard cases; kept as a guard.
  // Measured on hard_cases.jsonl: rules (1) and (2) change the port's ids
  // on 4 lines (two CJK lines, two sigma lines); (3) and (4) on none.
  // For gpt2/roberta-base no rule is needed: the port's ByteLevel split
  // already treats U+0085 as whitespace and U+FEFF as not (as Oniguruma's
  // \s does in the Rust library), which dapt's PCRE2 pattern spells out.
  t = t.replace(/\u0085/g, "");
  return t;
}

function load(model) {
  const tj = JSON.parse(fs.readFileSync(`${vocabDir}/${model}/tokenizer.json`, "utf8"));
  const tc = JSON.parse(fs.readFileSync(`${vocabDir}/${model}/tokenizer_config.json`, "utf8"));
  return new Tokenizer(tj, tc);
}

function gz(path, lines) {
  fs.writeFileSync(path, zlib.gzipSync(Buffer.from(lines.join("\n") + "\n", "utf8"), { level: 9 }));
}

gz(`${outDir}/corpus.jsonl.gz`, corpus.map((t) => JSON.stringify(t)));
for (const model of models) {
  const tok = load(model);
  const enc = (texts, withFull) =>
    texts.map((t0) => {
      const t = rustCorrection(model, t0);
      const plain = tok.encode(t, { add_special_tokens: false }).ids;
      if (!withFull) return plain.join(" ");
      const full = tok.encode(t).ids;
      return `${plain.join(" ")}\t${full.join(" ")}`;
    });
  gz(`${outDir}/${model}.corpus.ids.gz`, enc(corpus, false));
  gz(`${outDir}/${model}.hard.ids.gz`, enc(hard, true));
  const pairTexts = hard.concat(corpus.slice(0, 400));
  const pairs = [];
  for (let i = 0; i + 1 < pairTexts.length; i += 1) {
    const a = rustCorrection(model, pairTexts[i]), b = rustCorrection(model, pairTexts[i + 1]);
    let ids, types;
    if (model === "gpt2") {
      // The port's ByteLevel post-processor drops the second text of a pair.
      // The Rust library encodes B with type id 1 (encode_single_sequence(pair, 1))
      // and its ByteLevel post-processor only concatenates: ids A ++ B, types 0.. 1..
      const ea = tok.encode(a, { add_special_tokens: false }).ids;
      const eb = tok.encode(b, { add_special_tokens: false }).ids;
      ids = ea.concat(eb);
      types = ea.map(() => 0).concat(eb.map(() => 1));
    } else {
      const e = tok.encode(a, { text_pair: b, return_token_type_ids: true });
      ids = e.ids;
      types = e.token_type_ids || e.ids.map(() => 0);
      // The Rust RobertaProcessing gives the whole pair type id 0
      // (pair_type_ids = vec![0; len + 2]); the port gives B type id 1.
      if (model === "roberta-base") types = types.map(() => 0);
    }
    pairs.push(`${ids.join(" ")}\t${types.join(" ")}`);
  }
  gz(`${outDir}/${model}.pairs.ids.gz`, pairs);
  // Decoding (skip_special_tokens) of the hard cases and the first 1000 corpus lines, as
  // the Rust library decodes: without transformers' extra clean_up_tokenization_spaces
  // pass over the whole string (the WordPiece decoder still cleans up per token).
  const dec = hard.concat(corpus.slice(0, 1000)).map((t0) => {
    const ids = tok.encode(rustCorrection(model, t0)).ids;
    return JSON.stringify(tok.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false }));
  });
  gz(`${outDir}/${model}.decode.jsonl.gz`, dec);
  console.error(`${model}: ${corpus.length} corpus lines, ${hard.length} hard cases, ${pairs.length} pairs`);
}
