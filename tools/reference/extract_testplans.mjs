// Extracts the GPT-2 (r50k_base) cases of gpt-tokenizer@4.0.0's
// data/TestPlans.txt (MIT licence, expected ids by OpenAI's tiktoken) into
// JSON lines [sample, [ids]] for dapt's tests.
//   node extract_testplans.mjs node_modules/gpt-tokenizer/data/TestPlans.txt > gpt2_testplans.jsonl
import fs from "fs";
const text = fs.readFileSync(process.argv[2], "utf8");
const blocks = text.split(/\n(?=EncodingName: )/);
let n = 0;
for (const b of blocks) {
  const m = /^EncodingName: (\S+)\nSample: ([\s\S]*)\nEncoded: (\[[^\]]*\])\s*$/.exec(b);
  if (!m) {
    if (b.trim()) throw new Error(`unparsed block: ${b.slice(0, 80)}`);
    continue;
  }
  if (m[1] !== "r50k_base") continue;
  process.stdout.write(JSON.stringify([m[2], JSON.parse(m[3])]) + "\n");
  n++;
}
console.error(`${n} r50k_base cases`);
