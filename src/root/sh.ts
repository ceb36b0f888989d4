/**
 * Renders root programs (effects.ts) to POSIX sh: the fleet's interpreter. A program becomes a
 * shell function that sets `$R_out` to its outcome; the host's programs (remote/script.ts)
 * define these functions once and branch on the outcome. Every path is single-quoted.
 */
import { DeployError } from '../errors.ts';
import { shQuote as q } from '../remote/shell.ts';
import type { Cond, Effect, Op, RootPath, RootProgram, Text } from './effects.ts';

/**
 * The shell functions the rendered effects call; `$root`, `$fsync`, `json_get`, `inode_of`,
 * `mtime_of`, `durable`, `fail`, `put_dir`, `put_file`, `is_current`, `arm_link`, `switch_now` and
 * `drop_current` come from the program around them.
 */
export const EFFECT_FUNCTIONS = `
# FROM TO: rename(2) onto exactly TO; -T (GNU, BusyBox) keeps mv from moving FROM into a directory TO.
rename_exact() {
  _re=$(mv -T -- "$1" "$2" 2>&1) && return 0
  case $_re in *illegal*|*invalid\\ option*|*unrecognized*|*unknown\\ option*) ;; *) return 1 ;; esac
  # A userland without -T (BSD): check first; if TO appeared meanwhile and mv moved FROM into it, move it back.
  { [ -e "$2" ] || [ -h "$2" ]; } && return 1
  mv -- "$1" "$2" 2>/dev/null || return 1
  { [ -e "$2/\${1##*/}" ] || [ -h "$2/\${1##*/}" ]; } || return 0
  mv -- "$2/\${1##*/}" "\${1%/*}" 2>/dev/null
  return 1
}
# FROM TO: rename_exact of a directory its owner may not write (a 0555 build): its .. changes with
# the move, which needs write permission on it, so u+w is lent for the move (fs.ts renameReadOnlyDir).
rename_dir() {
  [ -w "$1" ] && { rename_exact "$1" "$2"; return; }
  chmod u+w -- "$1" 2>/dev/null || return 1
  rename_exact "$1" "$2" || { chmod u-w -- "$1" 2>/dev/null; return 1; }
  chmod u-w -- "$2"
}
# DIR CMD...: CMD, which adds or removes a name in DIR, with u+w lent to DIR for it: a release keeps
# its build's modes, and a shared link into a 0555 directory failed for any user but root
# (act/shared.ts inWritableDir). Only the deploy's own stage is changed this way.
in_writable() {
  _iw=$1; shift
  [ -w "$_iw" ] && { "$@"; return; }
  chmod u+w -- "$_iw" 2>/dev/null || { "$@"; return; }
  "$@"; _iwr=$?
  chmod u-w -- "$_iw"
  return $_iwr
}
# DIR: mkdir -p in which every directory made is 0755 whatever the umask (act/mkdirs.ts makeReachableDirs).
mkdir_reachable() { (umask 022; mkdir -p -- "$1"); }
# FROM DIR NAME: FROM copied to DIR/NAME whole, by one rename of a copy made in put_file's private directory.
copy_file() { put_dir && cp -- "$1" "$_w/$3" && mv -f -- "$_w/$3" "$2"; }
# DIR TOKEN INODE MTIME: whether DIR is the lock named by its owner TOKEN, or (TOKEN empty) by its inode and mtime.
same_lock() {
  if [ -n "$2" ]; then { [ -d "$1" ] && [ ! -h "$1" ]; } || return 1; json_get "$1/owner.json" token; [ "$J_val" = "$2" ]; return; fi
  # Named by its inode: maybe another tool's lock file or symlink, moved aside as it is.
  { [ -e "$1" ] || [ -h "$1" ]; } || return 1
  [ "$(inode_of "$1")" = "$3" ] && [ "$(mtime_of "$1")" = "$4" ]
}
# DIR GRACE: a directory with no entries, modified less than GRACE seconds ago.
fresh_empty_dir() {
  { [ -d "$1" ] && [ ! -h "$1" ]; } || return 1
  _ls=$(ls -A -- "$1" 2>/dev/null) || return 1
  [ -z "$_ls" ] || return 1
  _m=$(mtime_of "$1"); [ -n "$_m" ] || return 1
  [ $(( $(date +%s) - _m )) -lt "$2" ]
}
# PATH...: rm -rf; where that fails (a directory its non-root owner may not write, copied with the
# build's modes: 0555, as Nix store paths are), once more after giving the owner rwx on every
# directory below (find never follows a link; chmod runs on each directory before find reads it).
remove_tree() {
  rm -rf -- "$@" 2>/dev/null && return 0
  for _rt in "$@"; do { [ -d "$_rt" ] && [ ! -h "$_rt" ]; } && find "$_rt" -type d -exec chmod u+rwx {} \\; 2>/dev/null; done
  rm -rf -- "$@"
}
# DIR AGE PREFIX...: removes entries of DIR named PREFIX* whose mtime is more than AGE seconds old.
sweep_old() {
  _sd=$1; _age=$2; shift 2; _now=$(date +%s)
  for _p in "$@"; do
    for _f in "$_sd/$_p"*; do
      { [ -e "$_f" ] || [ -h "$_f" ]; } || continue
      _m=$(mtime_of "$_f"); [ -n "$_m" ] || continue
      [ $(( _now - _m )) -le "$_age" ] || remove_tree "$_f"
    done
  done
  return 0
}
`;

function at(path: RootPath): string {
  return path === '.' ? '"$root"' : `"$root/"${q(path)}`;
}

/** A root-relative file path as its directory ('.' for the root) and its name. */
function dirAndName(p: RootPath): { dir: RootPath; name: string } {
  const slash = p.lastIndexOf('/');
  return { dir: slash === -1 ? '.' : p.slice(0, slash), name: p.slice(slash + 1) };
}

/** The parameters of the function being rendered, in the order of its positional parameters. */
type Params = readonly string[];

/** A text as one shell word: a literal single-quoted, a parameter as the function's positional parameter. */
function word<P extends string>(text: Text<P>, params: Params): string {
  if (typeof text === 'string') return q(text);
  const i = params.indexOf(text.arg);
  if (i === -1) throw new DeployError('INTERNAL', `a root program uses ${text.arg} but does not declare it`);
  return `"\${${i + 1}}"`;
}

function effectLine<P extends string>(effect: Effect<P>, params: Params): string {
  switch (effect.do) {
    case 'mkdir':
      if (effect.reachable === true) return `mkdir_reachable ${at(effect.path)} 2>/dev/null`;
      return `mkdir ${effect.parents ? '-p ' : ''}-- ${at(effect.path)} 2>/dev/null`;
    case 'rename':
      return `${effect.readOnlyDir === true ? 'rename_dir' : 'rename_exact'} ${at(effect.from)} ${at(effect.to)}`;
    case 'open-dir':
      return `chmod a+rx -- ${at(effect.path)}`;
    case 'remove':
      return `remove_tree ${at(effect.path)}`;
    case 'touch':
      return `touch -- ${at(effect.path)} 2>/dev/null`;
    case 'durable':
      return `durable ${at(effect.path)}`;
    case 'sweep':
      return `sweep_old ${at(effect.dir)} ${effect.olderThanS} ${effect.prefixes.map(q).join(' ')}`;
    case 'write': {
      const { dir, name } = dirAndName(effect.path);
      return `{ mkdir -p -- ${at(dir)} && put_file ${at(dir)} ${q(name)} ${word(effect.text, params)}; }`;
    }
    case 'copy': {
      const { dir, name } = dirAndName(effect.to);
      return `{ mkdir -p -- ${at(dir)} && copy_file ${at(effect.from)} ${at(dir)} ${q(name)}; }`;
    }
    case 'switch':
      return effect.to === null ? `drop_current ${q(effect.via)}` : `{ arm_link ${q(effect.to)} ${q(effect.via)} && switch_now ${q(effect.via)} || { rm -rf -- "$tmp/"${q(effect.via)}; false; }; }`;
  }
}

function condLine(cond: Cond): string {
  switch (cond.is) {
    case 'same-lock': {
      const lock = cond.lock;
      return 'token' in lock ? `same_lock ${at(cond.path)} ${q(lock.token)}` : `same_lock ${at(cond.path)} '' ${q(lock.inode)} ${lock.mtimeS}`;
    }
    case 'fresh-empty-dir':
      return `fresh_empty_dir ${at(cond.path)} ${Math.ceil(cond.graceS)}`;
    case 'dir':
      return `{ [ -d ${at(cond.path)} ] && [ ! -h ${at(cond.path)} ]; }`;
    case 'current':
      return `is_current ${q(cond.id)}`;
  }
}

function describe<P extends string>(effect: Effect<P>): string {
  switch (effect.do) {
    case 'rename':
      return `cannot rename ${effect.from} to ${effect.to}`;
    case 'sweep':
      return `cannot clean ${effect.dir}`;
    case 'copy':
      return `cannot copy ${effect.from} to ${effect.to}`;
    case 'switch':
      return effect.to === null ? 'cannot remove current' : `cannot switch current to ${effect.to}`;
    default:
      return `cannot ${effect.do} ${effect.path}`;
  }
}

function opsLines<O extends string, P extends string>(name: string, ops: readonly Op<O, P>[], pad: string, params: Params): string[] {
  const lines: string[] = [];
  for (const op of ops) {
    if ('end' in op) {
      lines.push(`${pad}R_out=${q(op.end)}; return 0`);
    } else if ('fail' in op) {
      lines.push(`${pad}fail ${op.fail} ${q(op.message)}`);
    } else if ('if' in op) {
      const then = opsLines(name, op.then, `${pad}  `, params);
      const otherwise = opsLines(name, op.else ?? [], `${pad}  `, params);
      if (then.length === 0) {
        lines.push(`${pad}if ! ${condLine(op.if)}; then`, ...otherwise, `${pad}fi`);
      } else {
        lines.push(`${pad}if ${condLine(op.if)}; then`, ...then, ...(otherwise.length > 0 ? [`${pad}else`, ...otherwise] : []), `${pad}fi`);
      }
    } else if (op.bestEffort) {
      lines.push(`${pad}${effectLine(op.effect, params)} || :`);
    } else if (op.orElse) {
      lines.push(`${pad}if ! ${effectLine(op.effect, params)}; then`, ...opsLines(name, op.orElse, `${pad}  `, params), `${pad}fi`);
    } else {
      lines.push(`${pad}${effectLine(op.effect, params)} || fail IO ${q(`${name}: ${describe(op.effect)}`)}`);
    }
  }
  return lines;
}

/**
 * The program as a shell function of its name: it sets `$R_out` to the outcome. Its parameters are
 * the function's positional parameters, in the order of `params`: bound by the call (renderCall).
 */
export function renderFunction<O extends string, P extends string = never>(program: RootProgram<O, P>): string {
  const params: Params = program.params ?? [];
  return [`${program.name}() {`, '  R_out=', ...opsLines(program.name, program.ops, '  ', params), `  R_out=${q(program.done)}`, '}'].join('\n');
}

/** What a parameter is bound to in a call: a shell variable the program read when it ran (a line of stdin), or a literal. */
export type ShellArg = { variable: string } | { literal: string };

/** A call of a rendered program with a value for each of its parameters, in their order. */
export function renderCall<O extends string, P extends string>(program: RootProgram<O, P> & { params: readonly P[] }, args: Readonly<Record<P, ShellArg>>): string {
  const words = program.params.map((p) => {
    const a = args[p];
    if ('literal' in a) return q(a.literal);
    // A name, never an expression: the value reaches the function as one word, whatever it holds.
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(a.variable)) throw new DeployError('INTERNAL', `not a shell variable name: ${a.variable}`);
    return `"$${a.variable}"`;
  });
  return [program.name, ...words].join(' ');
}
