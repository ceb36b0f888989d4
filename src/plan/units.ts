/** Sizes and counts as people read them: one unit scheme (binary, KiB/MiB) everywhere, nouns agreed with their counts. */

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** `1 file`, `2 files`: the count and the noun, agreed. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

const LIST = new Intl.ListFormat('en-GB', { type: 'conjunction' });

/** `--a`, `--a and --b`, `--a, --b and --c`: names in a sentence, with the verb agreed (`applies`, `apply`). */
export function namesWithVerb(names: readonly string[], one: string, many: string): string {
  return `${LIST.format(names)} ${names.length === 1 ? one : many}`;
}
