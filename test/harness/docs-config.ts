// The configuration blocks of docs/serving.md, extracted as they stand so the tests run what the docs say.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const DOC = fileURLToPath(new URL('../../docs/serving.md', import.meta.url));

/** The fenced block right after `<!-- config: name -->`; throws if the docs lost it. */
export function docsConfig(name: string): string {
  const text = fs.readFileSync(DOC, 'utf8');
  const marker = `<!-- config: ${name} -->`;
  const at = text.indexOf(marker);
  if (at < 0) throw new Error(`docs/serving.md has no block marked ${marker}`);
  const m = /^\s*```[a-z]*\n([\s\S]*?)^```$/m.exec(text.slice(at + marker.length));
  if (!m?.[1]) throw new Error(`docs/serving.md: no fenced block after ${marker}`);
  return m[1];
}

/** Replaces each example value, failing if one is not there: a silent miss would test another config. */
export function substitute(block: string, pairs: readonly (readonly [string, string])[]): string {
  let out = block;
  for (const [from, to] of pairs) {
    if (!out.includes(from)) throw new Error(`config block lacks ${JSON.stringify(from)}:\n${block}`);
    out = out.split(from).join(to);
  }
  return out;
}
