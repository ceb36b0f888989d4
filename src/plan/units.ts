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

// Made on first use: building a ListFormat loads ICU's locale data, 20 to 50 ms here, which every
// command would otherwise pay at start-up whether or not it ever lists names.
let list: Intl.ListFormat | undefined;

/** `--a`, `--a and --b`, `--a, --b and --c`: names in a sentence, with the verb agreed (`applies`, `apply`). */
export function namesWithVerb(names: readonly string[], one: string, many: string): string {
  list ??= new Intl.ListFormat('en-GB', { type: 'conjunction' });
  return `${list.format(names)} ${names.length === 1 ? one : many}`;
}
