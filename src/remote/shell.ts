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

/**
 * sh function `live_threads TEXT`: TEXT holds, among other lines, `/proc/<pid>/stat:<its stat
 * line>` for zombies (as `grep -F -e ') Z '` over stat files prints them). Sets `T_dirs` to
 * `/proc/<pid>/task/<tid>` of one live thread of each process whose main thread has exited while
 * others run on (state Z, more than one thread): a program that called pthread_exit() in main().
 * Its own cwd, root, exe, fd and maps show nothing of what it holds; that thread's show what the
 * process holds. Builtins only, and nothing but one pattern match where no zombie is listed.
 */
export const LIVE_THREADS = `live_threads() {
  T_dirs=
  case $1 in */stat:*) ;; *) return 0 ;; esac
  _ifs=$IFS; IFS='
'; set -f; set -- $1; set +f; IFS=$_ifs
  for _l in "$@"; do
    case $_l in /proc/*/stat:*) ;; *) continue ;; esac
    _p=\${_l#/proc/}; _p=\${_p%%/stat:*}
    case $_p in '' | *[!0-9]*) continue ;; esac
    # State (field 3) and the number of threads (field 20), counted after the command's last ") ".
    _s=\${_l##*) }; set -f; set -- $_s; set +f
    [ "$1" = Z ] && [ $# -ge 18 ] && [ "\${18}" != 1 ] || continue
    for _t in "/proc/$_p/task/"[0-9]*; do
      [ "$_t" = "/proc/$_p/task/$_p" ] && continue
      _s=; read -r _s 2>/dev/null < "$_t/stat" || continue
      case \${_s##*) } in [ZX]*) continue ;; esac
      T_dirs="$T_dirs $_t"
      break
    done
  done
}`;
