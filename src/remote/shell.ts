// POSIX shell quoting for the commands sent to remote hosts over ssh.
// ssh hands its command to the remote user's login shell as one string, so every
// word must be quoted for that shell: single quotes are the only POSIX form in
// which no character is special, which makes the escaping total and simple.

// A lone UTF-16 surrogate cannot be encoded as UTF-8, so it would reach the remote
// side as U+FFFD: a different path than the caller meant.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/**
 * Quote one word for a POSIX shell: the result, read by `sh`, yields exactly `s`.
 * Always quotes (even "safe" words) so that no word can start with `-` unquoted
 * or be read as an option by ssh itself. Throws on NUL (no argv string can hold one)
 * and on lone surrogates (no byte string matches them).
 */
export function shQuote(s: string): string {
  if (typeof s !== 'string') {
    throw new TypeError(`shQuote: expected a string, got ${typeof s}`);
  }
  if (s.includes('\0')) {
    throw new TypeError(
      `shQuote: the string contains a NUL byte, which no shell word or process argument can carry: ${JSON.stringify(s)}`,
    );
  }
  if (LONE_SURROGATE.test(s)) {
    throw new TypeError(
      `shQuote: the string contains a lone UTF-16 surrogate, which has no byte encoding: ${JSON.stringify(s)}`,
    );
  }
  // Inside single quotes only `'` is special: close, emit an escaped quote, reopen.
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** Join argv into one POSIX shell command line that the shell splits back into exactly argv. */
export function shJoin(argv: readonly string[]): string {
  if (argv.length === 0) {
    throw new TypeError('shJoin: empty argv has no command to run');
  }
  return argv.map(shQuote).join(' ');
}

/** sh that sets `$sum` to the host's SHA-256 command (`sha256sum`, else `shasum -a 256`), or to nothing without either. */
export const PICK_SUM = `if command -v sha256sum >/dev/null 2>&1; then sum='sha256sum'
elif command -v shasum >/dev/null 2>&1; then sum='shasum -a 256'
else sum=; fi`;
