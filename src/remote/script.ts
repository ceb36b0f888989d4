/**
 * The POSIX sh programs run on deploy targets. Nothing but sh, coreutils or a BSD userland is
 * assumed; every value reaches the shell single-quoted by shQuote, never pasted raw.
 *
 * Output protocol: NUL-terminated `tag`, `value` pairs on stdout (`printf '%s\000%s\000'`), so
 * any file name survives; stderr carries diagnostics and hook output.
 *
 * The switch is one rename(2) on every mv: the new link is made as `.tmp/current.<rand>/current`
 * and moved with `mv -f <that> <root>`. The last operand is a real directory, so GNU, BSD and
 * BusyBox mv all take the "move into directory" form, aim at `<root>/current`, and rename(2)
 * replaces that symlink itself. The two-operand `mv -f tmp <root>/current` would stat current,
 * see (through the link) a directory, and move tmp INTO the live release instead.
 *
 * A file is made with `true > file`, never `: > file`: `:` is a special built-in, and a failed
 * redirection of one ends a non-interactive POSIX shell (dash, BusyBox sh, bash as sh) whatever
 * `||` follows it; `true` only fails, so the program takes its own path.
 */
import { posix } from 'node:path';
import type { LockIdentity, RootProgram } from '../root/effects.ts';
import { placeRelease } from '../root/place.ts';
import { retireRelease } from '../root/release.ts';
import { stagedRootPath } from './staging.ts';
import type { Frame } from './facts.ts';
import { dropRemovedLock, lockDraft, ownsLock, placeLock, releaseLock, removeLock, takeOverLock } from '../root/lock.ts';
import { clearJournalProgram, journalProgram, recordProgram } from '../root/record.ts';
import { EFFECT_FUNCTIONS, renderCall, renderFunction } from '../root/sh.ts';
import { sharedPathSteps, sharedTargetAction, type SharedTargetKind, type SharedType } from '../plan/shared.ts';
import { LIVE_THREADS, PICK_SUM, shQuote } from './shell.ts';
import { KILL_GRACE_MS } from '../act/hooks.ts';
import { releaseListing } from './verify-script.ts';
import { RESERVE_BYTES, RESERVE_NAME, RESERVE_ROOM_BYTES } from '../act/reserve.ts';

/** Seconds without a heartbeat from the deploying machine after which a lock holder gives up. */
export const LOCK_LEASE_S = 30;

const q = shQuote;

/** Shell functions shared by every program; `$root` and `$fsync` are set before it. */
const PRELUDE = `
nl='
'
rel="$root/releases"; tmp="$root/.tmp"; lock="$root/.deploy.lock"; state="$root/.atomic-deploy"
log="$state/releases"; journal="$state/journal.json"; shared="$root/shared"; reserve="$state/${RESERVE_NAME}"
# Builtins where a file is small: every process costs milliseconds on a busy host.
emit() { printf '%s\\000%s\\000' "$1" "$2"; }
# NAME: what prints the stderr lines from here on (a hook kind, reload, health-check; - for none),
# said on stderr itself, so that the deploying side labels each line exactly (remote/armed.ts).
step_out() { printf '\\001step %s\\n' "$1" >&2; }
emit_file() {
  printf '%s\\000' "$1"
  while IFS= read -r _l || [ -n "$_l" ]; do printf '%s\\n' "$_l"; done 2>/dev/null < "$2"
  printf '\\000'
}
fail() { emit error "$1"; emit message "$2"; exit 1; }
# K_out: command output without losing trailing newlines of a name (x guards them, then one newline goes).
keep_nl() { K_out=\${1%x}; K_out=\${K_out%"$nl"}; }
durable() { [ "$fsync" = 1 ] || return 0; sync -f "$1" 2>/dev/null || sync; }
# DIR NAME CONTENT: replaced with one rename. The temp file sits in a private directory, so mv
# never moves it into a directory that happens to be called NAME.
put_dir() {
  _w="$state/.put.$$"
  [ -d "$_w" ] || { mkdir -p -- "$state" && mkdir -- "$_w" && trap 'rm -rf -- "$_w"' EXIT; }
}
put_file() {
  put_dir || return 1
  printf '%s\\n' "$3" > "$_w/$2" && mv -f -- "$_w/$2" "$1"
}
# J_str: VALUE as a JSON string; plain printable ASCII (the usual host and user names) costs no process.
json_str() {
  case $1 in
  *[!A-Za-z0-9._:@/+=,-]*) J_str='"'"$(printf '%s' "$1" | tr -d '\\000-\\037' | sed 's/\\\\/\\\\\\\\/g; s/"/\\\\"/g')"'"' ;;
  *) J_str='"'"$1"'"' ;;
  esac
}
# P_start: field 22 of /proc/PID/stat (start time in clock ticks), read after the last ") ";
# P_exited=1 for a zombie (state Z or X with one thread: with more, only its main thread exited).
proc_start() {
  P_start=; P_exited=
  read -r _s 2>/dev/null < "/proc/$1/stat" || return 0
  _s=\${_s##*) }
  set -f; set -- $_s; set +f
  [ $# -ge 20 ] && P_start=\${20}
  case $1:\${18-} in Z:1|X:1) P_exited=1 ;; esac
  return 0
}
# kill -0 fails with EPERM for another user's live process: only ESRCH means gone.
pid_alive() {
  [ -d "/proc/$1" ] && return 0
  _a=$(kill -0 "$1" 2>&1) && return 0
  case $_a in *ermit*) return 0 ;; esac
  return 1
}
inode_of() { _i=$(ls -di -- "$1" 2>/dev/null) || return 0; _i=\${_i#"\${_i%%[! ]*}"}; printf '%s' "\${_i%%[!0-9]*}"; }
mtime_of() { stat -c %Y -- "$1" 2>/dev/null || stat -f %m -- "$1" 2>/dev/null || :; }
dev_of() { stat -c %d -- "$1" 2>/dev/null || stat -f %d -- "$1" 2>/dev/null || :; }
# DIR: the KiB this user may still write on DIR's filesystem (df -P, as BusyBox's); 0 and status 1 when unknown.
free_kib() {
  _f=$(df -Pk -- "$1" 2>/dev/null) || _f=
  _f=\${_f#*"$nl"}
  set -f; set -- $_f; set +f
  case $4 in ''|*[!0-9]*) echo 0; return 1 ;; *) echo "$4" ;; esac
}
# MESSAGE: W_why, why a write into the root failed. A full filesystem says so whatever the shell
# said (dash's printf says "I/O error", BusyBox's printf nothing at all); else the shell's reason.
write_reason() {
  if _fk=$(free_kib "$root") && [ "$_fk" = 0 ]; then W_why='No space left on device'; else W_why=\${1##*: }; fi
  [ -n "$W_why" ] || W_why='the write failed'
}
# The space reserve, made whole under the lock by a command that succeeded, while its filesystem has room (act/reserve.ts keepReserve); best effort.
keep_reserve() {
  { [ -d "$state" ] && [ ! -h "$reserve" ]; } || return 0
  if [ -e "$reserve" ]; then
    [ -f "$reserve" ] || return 0
    [ "$(($(wc -c 2>/dev/null < "$reserve") + 0))" -lt ${RESERVE_BYTES} ] || return 0
  fi
  [ "$(dev_of "$state")" = "$(dev_of "$tmp")" ] || return 0
  [ "$(free_kib "$state")" -ge ${RESERVE_ROOM_BYTES / 1024} ] || return 0
  head -c ${RESERVE_BYTES} /dev/urandom > "$reserve" 2>/dev/null || rm -f -- "$reserve"
}
# J_val: the scalar of KEY in the JSON on stdin, compact or pretty-printed (our own owner.json).
json_scan() {
  J_val=
  while IFS= read -r _l || [ -n "$_l" ]; do
    case $_l in *"\\"$1\\""*) ;; *) continue ;; esac
    _v=\${_l#*"\\"$1\\""}; _v=\${_v#*:}; _v=\${_v#"\${_v%%[! ]*}"}
    case $_v in '"'*) _v=\${_v#?}; J_val=\${_v%%'"'*} ;; *) J_val=\${_v%%[!0-9]*} ;; esac
    return 0
  done
  return 0
}
# J_val: the scalar of KEY in the JSON FILE (empty when it cannot be read).
json_get() { J_val=; json_scan "$2" 2>/dev/null < "$1"; }
# R_dir: the real path of a directory ('' if it cannot be entered).
real_dir() { keep_nl "$(cd -P -- "$1" 2>/dev/null && pwd -P; printf x)"; R_dir=$K_out; }
load_host() {
  H_host=$(uname -n); H_user=$(id -un 2>/dev/null) || H_user=unknown; H_now=$(date +%s)
  H_boot=; read -r H_boot 2>/dev/null < /proc/sys/kernel/random/boot_id
  H_btime=
  if [ -r /proc/stat ]; then while read -r _k _v; do [ "$_k" = btime ] && { H_btime=$_v; break; }; done < /proc/stat; fi
  return 0
}
host_facts() {
  load_host
  emit host "$H_host"; emit user "$H_user"
  [ -z "$H_boot" ] || emit bootid "$H_boot"
  [ -z "$H_btime" ] || emit btime "$H_btime"
  emit now "$H_now"
}
${LIVE_THREADS}
# Which processes use what (Linux /proc): cwd, root, exe and open files in one ls, mapped files by
# grep, which also finds the zombies (stat lines, first); where one is a process whose main thread
# has exited while others run on, one live thread's links and maps stand for its own.
use_facts() {
  if [ ! -d /proc/self/fd ]; then emit inuse unavailable; return 0; fi
  emit inuse proc
  _m=$(grep -F -e ') Z ' -e "$rel/" /proc/[0-9]*/stat /proc/[0-9]*/maps 2>/dev/null)
  live_threads "$_m"; _tl=; _tm=
  for _t in $T_dirs; do _tl="$_tl $_t/cwd $_t/root $_t/exe $_t/fd"; _tm="$_tm $_t/maps"; done
  printf 'uses\\000'; ls -l /proc/[0-9]*/cwd /proc/[0-9]*/root /proc/[0-9]*/exe /proc/[0-9]*/fd $_tl 2>/dev/null; printf '\\000'
  printf 'maps\\000'; printf '%s\\n' "$_m"; [ -z "$_tm" ] || grep -F -- "$rel/" $_tm 2>/dev/null; printf '\\000'
}
# The lock's owner and times, read as one lock's: a lock released and taken again between the
# reads paired the first one's owner (or none, read between the taker's two renames) with the
# second's inode. Read until the inode held still across the reads (as src/act/lock.ts
# inspectLock), 10 times at most: a read here takes milliseconds (ls, stat), and a lock changes
# hands a few times a second at most.
lock_facts() {
  _n=0
  while :; do
    _i=$(inode_of "$lock"); _k=other; _own=; _ho=; _pf=; _hp=; _bl=; _hb=
    # None, or gone between a taker's two renames: no lock, as locally.
    if [ -z "$_i" ] && [ ! -e "$lock" ] && [ ! -h "$lock" ]; then emit lock none; return 0; fi
    if [ -d "$lock" ] && [ ! -h "$lock" ]; then _k=dir; fi
    if [ -f "$lock/owner.json" ] && while IFS= read -r _l || [ -n "$_l" ]; do _own="$_own$_l$nl"; done 2>/dev/null < "$lock/owner.json"; then _ho=1; fi
    if [ -f "$lock/pid" ]; then read -r _pf 2>/dev/null < "$lock/pid"; _hp=1; fi
    # A lock file of another tool (echo $$ > .deploy.lock): the pid, if that is all it holds (see plan/lock.ts bashLockPid).
    if [ -f "$lock" ] && [ ! -h "$lock" ] && [ "$(wc -c < "$lock" 2>/dev/null || echo 99)" -le 32 ]; then read -r _bl 2>/dev/null < "$lock"; _hb=1; fi
    _m=$(mtime_of "$lock")
    [ "$(inode_of "$lock")" != "$_i" ] || break
    _n=$((_n + 1)); [ "$_n" -lt 10 ] || break
  done
  emit lock "$_k"
  _p=
  if [ -n "$_ho" ]; then emit owner "$_own"; json_scan pid <<OWNER_JSON
$_own
OWNER_JSON
    _p=$J_val
  fi
  if [ -n "$_hp" ]; then emit pidfile "$_pf"; [ -n "$_p" ] || _p=$_pf; fi
  if [ -n "$_hb" ]; then emit pidfile "$_bl"; _p=$_bl; fi
  emit inode "$_i"
  emit mtime "$_m"
  case $_p in ''|*[!0-9]*) return 0 ;; esac
  emit pid "$_p"
  if ! pid_alive "$_p"; then emit alive 0; return 0; fi
  proc_start "$_p"
  if [ -n "$P_exited" ]; then emit alive exited; else emit alive 1; fi
  emit pstart "$P_start"
}
# 0 if the directory DIR holds nothing (a folder made by hand; no deploy makes one): a rollback target must not be.
release_empty() {
  for _x in "$1"/* "$1"/.[!.]* "$1"/..?*; do { [ -e "$_x" ] || [ -h "$_x" ]; } && return 1; done
  return 0
}
# The root's top-level entries, each \`rootentry\` "<d|f|l|o> <name>", then \`rootlisted yes\` (neither
# when the root cannot be listed): its shape, judged by the local engine's rule (plan/root-shape.ts classifyRoot).
# As the local rootShapeOf: releases/ or shared/ as a link to a directory is a directory.
root_entries() {
  [ -r "$root" ] && [ -x "$root" ] || return 0
  for _x in "$root"/* "$root"/.[!.]* "$root"/..?*; do
    { [ -e "$_x" ] || [ -h "$_x" ]; } || continue
    _n=\${_x##*/}
    if [ -h "$_x" ]; then
      case $_n in releases|shared) if [ -d "$_x" ]; then _t=d; else _t=l; fi ;; *) _t=l ;; esac
    elif [ -d "$_x" ]; then _t=d
    elif [ -f "$_x" ]; then _t=f
    else _t=o; fi
    emit rootentry "$_t $_n"
  done
  emit rootlisted yes
}
# With an argument, the lock is not described (the holder knows it is its own).
state_facts() {
  if [ ! -d "$root" ]; then emit root missing; return 0; fi
  emit root ok
  root_entries
  real_dir "$root"; emit rootreal "$R_dir"
  if [ -h "$root/current" ]; then emit current link; keep_nl "$(readlink -- "$root/current"; printf x)"; emit target "$K_out"
  elif [ -d "$root/current" ]; then emit current directory
  elif [ -e "$root/current" ]; then emit current file
  else emit current missing; fi
  for _d in "$rel"/*; do [ -d "$_d" ] && [ ! -h "$_d" ] && { emit release "\${_d##*/}"; release_empty "$_d" && emit empty "\${_d##*/}"; }; done
  # Each record with its file name: the release it belongs to is the name's, whatever the text says.
  for _f in "$log"/*.json; do [ -f "$_f" ] && { emit recordname "\${_f##*/}"; emit_file record "$_f"; }; done
  [ -f "$journal" ] && emit_file journal "$journal"
  for _t in "$tmp"/*; do { [ -e "$_t" ] || [ -h "$_t" ]; } && emit tmp "\${_t##*/}"; done
  for _t in "$rel"/.stage.* "$rel"/.trash.*; do { [ -e "$_t" ] || [ -h "$_t" ]; } && emit hidden "\${_t##*/}"; done
  [ $# -gt 0 ] || lock_facts
}
# A_path: where a stage or trash NAME lives; hidden names (remote/staging.ts) sit inside releases/.
area() { case $1 in .stage.*|.trash.*) A_path="$rel/$1" ;; *) A_path="$tmp/$1" ;; esac; }
# DEST: 0 if a file made in .tmp/ can be hard-linked as DEST (both removed again), 1 if not (link(2)
# fails across mounts, bind mounts too, as rename(2) does; L_err holds ln's message), 2 if .tmp/ takes no file.
link_probe() {
  _m="$tmp/stage.mount-probe.$$"
  true 2>/dev/null > "$_m" || return 2
  if L_err=$(LC_ALL=C ln -- "$_m" "$1" 2>&1); then _r=0; else _r=1; fi
  rm -f -- "$_m" "$1"
  return $_r
}
# releases/ on another mount than .tmp/: stages and trash then go inside releases/.
staging_facts() {
  [ -d "$rel" ] && [ -d "$tmp" ] || return 0
  link_probe "$rel/.stage.mount-probe.$$"
  [ $? = 1 ] && emit staging releases
  return 0
}
# R_out: the deploy root the root would be made inside (in a release, through current, in its state),
# the same marks as plan/root-shape.ts isEnclosingRoot; 1 if none. The root is resolved first.
enclosing_root() {
  _e=$root; _rest=
  while [ ! -d "$_e" ]; do _rest="/\${_e##*/}$_rest"; _e=\${_e%/*}; [ -n "$_e" ] || _e=/; done
  real_dir "$_e"; [ -n "$R_dir" ] || return 1
  _e="\${R_dir%/}$_rest"; [ -n "$_e" ] || return 1
  while [ "$_e" != / ]; do
    _e=\${_e%/*}; [ -n "$_e" ] || _e=/
    _o=\${_e%/}
    if [ -d "$_o/.atomic-deploy" ] || { [ -d "$_o/releases" ] && { [ -h "$_o/current" ] || [ -d "$_o/.deploy.lock" ] || [ -d "$_o/.dep" ] || [ -f "$_o/revisions.log" ] || [ -d "$_o/repo" ]; }; }; then R_out=$_e; return 0; fi
  done
  return 1
}
# .tmp/ on another mount than the root: the lock and the switch, renames from .tmp/ into the root, would be copies.
tmp_apart() {
  link_probe "$root/.tmp-probe.$$"
  [ $? = 1 ] || return 1
  case $L_err in *[Cc]ross-device*) return 0 ;; esac
  return 1
}
# Whether releases/ID is the directory current resolves to (relative or absolute link alike), or
# one its text passes through (releases/ID/../other): removing that would leave current dangling.
is_current() {
  real_dir "$root/current"; _c=$R_dir; real_dir "$rel/$1"
  [ -n "$_c" ] && [ "$_c" = "$R_dir" ] && return 0
  case "/$(readlink -- "$root/current" 2>/dev/null)/" in *"/releases/$1/"*) return 0 ;; esac
  return 1
}
# ID NAME: the link that will become current, made as .tmp/NAME/current.
arm_link() { mkdir -- "$tmp/$2" && ln -s -- "releases/$1" "$tmp/$2/current"; }
# NAME: one rename(2) of .tmp/NAME/current onto ROOT/current (see the header).
switch_now() { _e=$(mv -f -- "$tmp/$1/current" "$root" 2>&1) || return 1; rmdir -- "$tmp/$1" 2>/dev/null; return 0; }
# NAME: current is removed (a first deploy switched back): moved aside, then deleted.
drop_current() { mkdir -- "$tmp/$1" && mv -- "$root/current" "$tmp/$1" && rm -rf -- "$tmp/$1"; }
# OUT COMMAND...: the command in the background, waited for, its pid in $_run: a trap (the
# fleet's \`abort\` during the before-switch hooks, its \`stop\` after the switch) is taken during
# a wait but not during a foreground command, so it can end the command at once. OUT 1 sends its
# stdout to stderr (a user's command's output).
bg_wait() {
  _o=$1; shift; _rk=
  if [ "$_o" = 1 ]; then "$@" </dev/null 1>&2 & else "$@" </dev/null & fi
  _run=$!; [ -z "$_stop" ] || stop_run
  wait "$_run"; _rc=$?
  # Stopped: wait returned when the trap was taken; the command is still ending.
  [ -z "$_stop" ] || { [ -n "$_rk" ] || stop_run; wait "$_run" 2>/dev/null; }
  [ -z "$_rk" ] || { kill "$_rk" 2>/dev/null; wait "$_rk" 2>/dev/null; }
  _run=; _rk=; return "$_rc"
}
# TERM to the command of bg_wait, and again 0.2 s and 1.2 s later until it is reaped: a TERM that
# reaches it between its fork and its exec can be lost (bash, with an EXIT trap, holds it in a
# handler of its own, which the exec drops), and the command would run to its end. GNU timeout
# runs in a process group of its own, which the command it runs is in too: the TERM goes to that
# group, because a TERM that reaches timeout after its fork but before it has the child's pid ends
# timeout alone (its handler exits when it knows no child), and the hook would run on, orphaned,
# holding the program's stderr (so the deploying side too) to its end. Where there is no such group
# (BusyBox timeout, no timeout), to the command itself.
# kill -TERM -<pid>: the form dash, BusyBox sh and bash all read as a group (dash and BusyBox take no --).
term_run() { kill -TERM "-$_run" 2>/dev/null || kill -TERM "$_run" 2>/dev/null; }
stop_run() {
  term_run
  ( sleep 0.2 2>/dev/null || sleep 1; term_run; sleep 1; term_run ) </dev/null >/dev/null 2>&1 &
  _rk=$!
}
# N_cs: a clock in centiseconds (Linux /proc/uptime, read without a process), else whole seconds from date.
now_cs() {
  if read -r _u _ 2>/dev/null < /proc/uptime && case $_u in *.[0-9][0-9]) true ;; *) false ;; esac; then N_cs=\${_u%.*}\${_u#*.}
  else N_cs=$(( $(date +%s) * 100 )); fi
}
# SECONDS COMMAND: a user's command (a hook, a health check), its output on stderr so the frames on
# stdout stay clean, stoppable (GNU timeout passes the TERM to the command's process group), killed
# ${KILL_GRACE_MS / 1000} s after a TERM it ignores, as locally. _to=1: its time ran out (timeout's 124, 137 after
# the KILL, BusyBox's 143, once SECONDS have passed): a command that exits 124 itself did not time out.
run_stoppable() {
  now_cs; _t0=$N_cs; _to=
  if command -v timeout >/dev/null 2>&1; then bg_wait 1 timeout -s TERM -k ${KILL_GRACE_MS / 1000} "$1" sh -c "$2"
  else bg_wait 1 sh -c "$2"; fi
  case $_rc in 124|137|143) now_cs; [ $(( N_cs - _t0 )) -lt $(( $1 * 100 )) ] || _to=1 ;; esac
  return "$_rc"
}
`;

export interface ScriptBase {
  /** Absolute deploy root on the target. */
  root: string;
  /** Run sync after writes (`--no-fsync` turns it off). */
  fsync: boolean;
}

function header(base: ScriptBase): string {
  return `root=${q(base.root)}; fsync=${base.fsync ? 1 : 0}\n${PRELUDE}${EFFECT_FUNCTIONS}`;
}

/** `release_lock`: src/root/lock.ts's releaseLock for TOKEN, reporting `unlocked yes|no`. */
function releaseLockFunction(token: string): string {
  return `${renderFunction(releaseLock(token))}
${renderFunction(ownsLock(token))}
# Why the lock is no longer ours: gone (unlock --force, or by hand), or another command's now.
lock_gone_why() {
  if [ -e "$root/.deploy.lock" ] || [ -L "$root/.deploy.lock" ]; then
    _why="the lock on this host is another command's now (taken over while this one was silent for longer than its ${LOCK_LEASE_S} s lease, or removed and taken)"
  else
    _why="the lock on this host is gone (another command took it over while this one was silent for longer than its ${LOCK_LEASE_S} s lease, and released it since; or it was removed: atomic-deploy unlock --force, or by hand)"
  fi
}
release_own_lock() { release_lock; if [ "$R_out" = released ]; then emit unlocked yes; else emit unlocked no; fi; }`;
}

/** src/root/release.ts's retirement of release ID into TRASH (`.tmp/`, or hidden in `releases/`: remote/staging.ts), defined and run; the trash is deleted later. */
function retireLines(id: string, trash: string, protect: readonly string[]): string {
  return `${renderFunction(retireRelease(id, protect, stagedRootPath(trash)))}\nretire_release`;
}

/**
 * Prune's retire of one release, run in a subshell whose `fail` reports instead of ending the
 * program: a release that cannot be moved (immutable, another owner's) stays and is named in a
 * `prune-failed` frame, and the rest goes on (the others pruned, the journal cleared, the lock
 * released), as the local prune does. Only a release moved out gets its record marked pruned and
 * its manifest removed (the record stays as history, its digest in it; the manifest served only
 * the release, as act/manifest.ts removeManifest does locally).
 */
function pruneLines(p: { id: string; trash: string; record: string }, protect: readonly string[], fn: string): string {
  const record = recordProgram(p.id, fn);
  const manifest = `"$state/manifests/"${q(p.id)}`;
  return `${renderFunction(retireRelease(p.id, protect, stagedRootPath(p.trash)))}
${renderFunction(record)}
if ( fail() { emit prune-failed ${q(`${p.id} `)}"$2"; exit 1; }; retire_release ); then ${p.record === '' ? ':' : renderCall(record, { record: { literal: p.record } })}; rm -f -- ${manifest}.json ${manifest}.stat.json; fi`;
}

/** The releases a program's `prune-failed` frames name, each with why it stays. */
export function pruneFailures(frames: readonly Frame[]): { id: string; message: string }[] {
  return frames
    .filter((f) => f.tag === 'prune-failed')
    .map((f) => {
      const space = f.value.indexOf(' ');
      return space < 0 ? { id: f.value, message: 'cannot be moved' } : { id: f.value.slice(0, space), message: f.value.slice(space + 1) };
    });
}

/** The whole program as one word for the remote login shell. */
export function remoteCommand(script: string): string {
  return `sh -c ${q(script)}`;
}

/**
 * The root and each missing parent, made one level at a time (0755, as mkdir_reachable), topmost
 * first, with a `made` frame for each the lock program made itself: a refused deploy takes those away.
 */
/** The local engine's hints (ops/root.ts) for a root that is a file, or a dangling link. */
const NOT_A_DIRECTORY_HINT = 'give the directory that holds (or will hold) current and releases/';
const DANGLING_ROOT_HINT = "create the link's target first, or give another root";

const MAKE_ROOT = `make_root() {
  _d=$root; M_why=
  while _u=\${_d%/*}; [ -n "$_u" ] && [ ! -d "$_u" ]; do _d=$_u; done
  while :; do
    # M_why: what stopped it, in the local engine's words for a file on the way (ops/root.ts), else mkdir's reason.
    if _e=$( (umask 022; mkdir -- "$_d") 2>&1 ); then emit made "$_d"; elif [ ! -d "$_d" ]; then
      if [ -h "$_d" ] && [ ! -e "$_d" ]; then M_why="$_d is a symbolic link to $(readlink -- "$_d"), which does not exist"
      elif [ -e "$_d" ]; then M_why="$_d is not a directory"; else M_why=\${_e##*: }; fi
      return 1
    fi
    [ "$_d" = "$root" ] && return 0
    _r=\${root#"$_d"/}; _d=$_d/\${_r%%/*}
  done
}
`;

export interface LockScript extends ScriptBase {
  token: string;
  /** Recorded in the lock, so that others see who holds it. */
  command: string;
  /** Create the root if it is missing (deploy). */
  create: boolean;
  /** Seconds without a heartbeat line on stdin before the holder exits. */
  leaseS?: number;
  /** Also report which processes use files under releases/ (for prune). */
  uses?: boolean;
  /** On a full disk, delete the space reserve to take the lock (rollback, prune: act/reserve.ts). */
  spend?: boolean;
}

/**
 * The lock holder. Takes the lock the local way (owner written into a directory, then renamed
 * to `.deploy.lock`), reports the root's state, then stays alive: its pid is the lock's owner,
 * so the lock is held exactly as long as this deploy's connection is. It exits when stdin
 * ends, or when no heartbeat line arrives for the lease. On a held lock it reports its facts.
 */
export function lockScript(s: LockScript): string {
  const lease = s.leaseS ?? LOCK_LEASE_S;
  return `${header(s)}
token=${q(s.token)}; cmd=${q(s.command)}
if [ ${s.create ? 1 : 0} = 1 ] && enclosing_root; then
  emit hint "a deploy root's folders belong to its releases and state: give a folder outside $R_out"
  fail INVALID_ROOT "the deploy root $root is inside the deploy root $R_out"
fi
if [ ${s.create ? 1 : 0} = 1 ] && [ -L "$root" ] && [ ! -e "$root" ]; then
  emit hint ${q(DANGLING_ROOT_HINT)}
  fail INVALID_ROOT "the deploy root $root is a symbolic link to $(readlink -- "$root"), which does not exist"
fi
if [ ${s.create ? 1 : 0} = 1 ] && [ ! -d "$root" ] && [ -e "$root" ]; then
  emit hint ${q(NOT_A_DIRECTORY_HINT)}
  fail INVALID_ROOT "$root is not a directory"
fi
${s.create ? MAKE_ROOT : ''}if [ ${s.create ? 1 : 0} = 1 ] && [ ! -d "$root" ]; then make_root || fail INVALID_ROOT "cannot create $root\${M_why:+: $M_why}"; fi
[ -d "$root" ] || { emit root missing; fail INVALID_ROOT "$root does not exist or is not a directory"; }
host_facts
command -v rsync >/dev/null 2>&1 && emit rsync yes
own="$root/"${q(lockDraft(s.token))}
mkdir -p -- "$tmp" || fail IO "cannot create $tmp"
tmp_apart && { emit hint "make $tmp a plain directory of the root (releases/ may be a mount of its own)"; fail INVALID_ROOT "$tmp is on another filesystem than $root: the lock and the switch are renames from it into the root"; }
proc_start $$
json_str "$H_host"; j_host=$J_str; json_str "$H_user"; j_user=$J_str; json_str "$cmd"; j_cmd=$J_str
j_start=null; [ -z "$P_start" ] || j_start='"'"$P_start"'"'
j_boot=null; [ -z "$H_boot" ] || { json_str "$H_boot"; j_boot=$J_str; }
# The draft, owner written: 1 with D_err set when it cannot be made (then nothing of it stays).
draft() {
  _e=$(mkdir -- "$own" 2>&1) || { D_err="cannot create $own: \${_e##*: }"; return 1; }
  # In a subshell only for its messages: $$ there is still this shell's pid.
  _e=$({ printf '{"pid":%s,"host":%s,"user":%s,"since":"%s","token":"%s","startTime":%s,"bootId":%s,"command":%s,"format":"atomic-deploy"}\\n' \\
    "$$" "$j_host" "$j_user" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$token" "$j_start" "$j_boot" "$j_cmd" > "$own/owner.json" &&
    printf '%s\\n' "$$" > "$own/pid"; } 2>&1) || { rm -rf -- "$own"; write_reason "$_e"; D_err="cannot write the lock owner in $own: $W_why"; return 1; }
}
# NO_SPACE where df shows the filesystem full (the deploying side adds the hint), IO otherwise.
draft_failed() {
  if _fk=$(free_kib "$tmp") && [ "$_fk" -lt ${RESERVE_BYTES / 1024} ]; then fail NO_SPACE "$D_err"; fi
  fail IO "$D_err"
}
spent=
if ! draft; then
  # A full disk (act/reserve.ts: on ext4 a directory needs a data block): rollback and prune delete
  # the space reserve and try once more. The shell cannot see errno; df tells a full filesystem.
  if [ ${s.spend === true ? 1 : 0} = 1 ] && [ -s "$reserve" ] && [ ! -h "$reserve" ] && [ "$(free_kib "$tmp")" -lt ${RESERVE_BYTES / 1024} ] && rm -f -- "$reserve"; then
    spent=1; draft || draft_failed
  else
    draft_failed
  fi
fi
${renderFunction(placeLock(s.token))}
place_lock
if [ "$R_out" != locked ]; then
  rm -rf -- "$own"
  emit busy yes
  lock_facts
  exit 0
fi
emit locked "$$"
[ -z "$spent" ] || emit reserve spent
# put_file's private directories that a program killed before its EXIT trap left (a host disarmed
# by its deploy): each belongs to a program of an earlier lock holder, and none writes without the lock.
for _p in "$state"/.put.*; do [ -d "$_p" ] && rm -rf -- "$_p"; done
state_facts own
staging_facts
${s.uses ? 'use_facts\n' : ''}beat="$tmp/beat.$token"
# Without its heartbeat file the holder could not keep its lease: said before the report ends, so the deploying side releases the lock.
_e=$(true 2>&1 > "$beat") || fail IO "cannot create the lock holder's heartbeat file $beat: \${_e##*: }"
emit end state
exec 3<&0
# A beat that cannot be written (no free inode for a moment) is one missed beat, not the end of the reader.
( while IFS= read -r _l; do true > "$beat"; done; rm -f -- "$beat"; kill $$ 2>/dev/null ) <&3 >/dev/null 2>&1 &
reader=$!
exec 3<&-
misses=0
while :; do
  sleep 1 </dev/null >/dev/null 2>&1
  emit beat . || break
  if [ -e "$beat" ]; then rm -f -- "$beat"; misses=0; else misses=$((misses + 1)); fi
  [ "$misses" -lt ${lease} ] || break
done
kill "$reader" 2>/dev/null
rm -f -- "$beat"
exit 0
`;
}

export interface TakeoverScript extends ScriptBase {
  /** Names the lock instance: its tombstone is `.tmp/stale-lock.<instance>`. */
  instance: string;
  /** How the lock judged stale is recognised once moved. */
  lock: LockIdentity;
  /** Delete the lock once moved aside (unlock), instead of leaving its tombstone. */
  remove: boolean;
}

/**
 * Moves a stale lock aside (src/root/lock.ts: takeOverLock, or removeLock then dropRemovedLock
 * for unlock) and reports `takeover ok|lost|changed`.
 */
export function takeoverScript(s: TakeoverScript): string {
  const move = s.remove ? removeLock(s.instance, s.lock) : takeOverLock(s.instance, s.lock);
  return `${header(s)}
${renderFunction(move)}
${s.remove ? `${renderFunction(dropRemovedLock(s.instance))}\n` : ''}${move.name}
case $R_out in
moved) ${s.remove ? 'drop_removed_lock; ' : ''}emit takeover ok ;;
*) emit takeover "$R_out" ;;
esac
`;
}

/**
 * The root's shape alone (its top-level entries): what a deploy checks before any lock, at the cost
 * of one shell and no other process; with `shared`, each shared target as sharedKindsScript reads it.
 */
export function rootShapeScript(s: ScriptBase & { shared?: { paths: readonly string[]; create: boolean } }): string {
  return `${header(s)}
if [ -d "$root" ]; then emit root ok; root_entries; else emit root missing; fi
${s.shared && s.shared.paths.length > 0 ? `${sharedFactsLines(s.shared.paths, s.shared.create)}\n` : ''}emit end shape
`;
}

/** Reads where a root stands: host facts, current, releases, release log, journal, .tmp, lock. */
export function stateScript(s: ScriptBase & { uses?: boolean; rsync?: boolean }): string {
  return `${header(s)}
host_facts
${s.rsync ? 'command -v rsync >/dev/null 2>&1 && emit rsync yes\n' : ''}state_facts
${s.uses ? 'use_facts\n' : ''}emit end state
`;
}

/** One step of an apply program; the state it acts on was read under the same lock. */
export type Step =
  | { op: 'remove-tmp'; name: string }
  /** A stage, a trash or a hidden leftover: in .tmp/, or inside releases/ for a hidden name (remote/staging.ts). */
  | { op: 'remove-staged'; name: string }
  /**
   * After the lock's release, and only while no other command holds the lock: absolute
   * directories, each removed only while empty (what a refused deploy made: plan/root-shape.ts).
   */
  | { op: 'remove-made'; dirs: string[] }
  | { op: 'remove-release'; id: string; trash: string; protect: string[] }
  /**
   * Prune's retire of one release, then its record (`record`, marked pruned): a release that
   * cannot be moved stays, a `prune-failed` frame (`<id> <message>`) says so, and the program
   * goes on, as the local prune does.
   */
  | { op: 'prune-release'; id: string; trash: string; protect: string[]; record: string }
  | { op: 'write-record'; id: string; json: string }
  | { op: 'clear-journal' }
  | { op: 'durable' }
  /** `gate`, a takeover's tombstone, is left for the sweep (src/root/lock.ts). */
  | { op: 'release-lock'; token: string; gate?: string }
  | { op: 'note'; text: string }
  /** A root program (src/root/), rendered and run. */
  | { op: 'run'; program: RootProgram<string> };

/** The record, journal and durability steps as root programs (src/root/): the same effects the local engine runs. */
function stepLinesOf(st: Extract<Step, { op: 'write-record' | 'clear-journal' | 'durable' }>): string {
  switch (st.op) {
    case 'write-record': {
      const program = recordProgram(st.id);
      return `${renderFunction(program)}\n${renderCall(program, { record: { literal: st.json } })}\n[ "$R_out" = written ] || fail IO ${q(`cannot write the record of ${st.id}`)}`;
    }
    case 'clear-journal':
      return runLines(clearJournalProgram());
    case 'durable':
      return runLines({ name: 'make_durable', ops: [{ effect: { do: 'durable', path: '.' } }], done: 'done' });
  }
}

/** Removes a stage or trash NAME wherever it lives (`area`: .tmp/, or releases/ for a hidden name). */
function removeStagedLine(name: string): string {
  return `area ${q(name)}; remove_tree "$A_path"`;
}

function runLines(program: RootProgram<string>): string {
  return `${renderFunction(program)}\n${program.name}`;
}

function stepLines(steps: readonly Step[]): string {
  return steps
    .map((st) => {
      switch (st.op) {
        case 'remove-tmp':
          return `remove_tree "$tmp/"${q(st.name)}`;
        case 'remove-release':
          return retireLines(st.id, st.trash, st.protect);
        case 'prune-release':
          return pruneLines(st, st.protect, 'write_record_prune');
        case 'remove-staged':
          return removeStagedLine(st.name);
        case 'remove-made':
          // First the private directory of a put_file whose program was stopped before its EXIT trap
          // (an armed host disarmed by the deploy's end): it alone kept .atomic-deploy/ from being empty.
          return `if [ ! -e "$lock" ] && [ ! -h "$lock" ]; then\n  for _p in "$state"/.put.*; do [ -d "$_p" ] && rm -rf -- "$_p"; done\n${st.dirs.map((dir) => `  rmdir -- ${q(dir)} 2>/dev/null || :`).join('\n')}\nfi`;
        case 'write-record':
        case 'clear-journal':
        case 'durable':
          return stepLinesOf(st);
        case 'release-lock':
          return `${releaseLockFunction(st.token)}\nrelease_own_lock`;
        case 'note':
          return `emit note ${q(st.text)}`;
        case 'run':
          return runLines(st.program);
      }
    })
    .join('\n');
}

/** Runs steps in order and stops at the first failure (reported as an `error` frame). */
export function applyScript(s: ScriptBase & { steps: readonly Step[] }): string {
  return `${header(s)}
${stepLines(s.steps)}
emit end apply
`;
}

export interface SharedLinkStep {
  path: string;
  /** Declared (--shared-file, --shared-dir) or what the build holds; undefined: only the host's target can tell. */
  type?: SharedType;
  linkText: string;
  mkdirs: string[];
  replaces: boolean;
}

/** How an armed host switches, and what it does on each word the fleet sends after the switch. */
export interface ArmedTail {
  /** The release current goes to. */
  id: string;
  /** Where `back` returns current to; null removes current (the host had none). */
  backTo: string | null;
  /** `.tmp/<link>/current` is the new link. */
  link: string;
  /** The journal written right after the switch: with the after-switch steps, it names them (`verifying`). */
  journalSwitched?: string;
  /**
   * The same journal without `verifying`, written once this host's after-switch steps passed, as
   * the local engine writes its own again: the deploying process killed from then on leaves a
   * release that verified here. Without it (or when a step failed or was stopped) the journal
   * keeps naming them, and the next command records the release unverified.
   */
  journalVerified?: string;
  afterSwitch: string[];
  hookTimeoutS: number;
  healthCheck?: { command: string; timeoutS: number };
  /** The reloads (remote/stale-script.ts reloadScript, its \`embedded\` form): after the after-switch hooks, before the health check. */
  reload?: string;
  /** After `commit`, one line per id: that release's record (an empty line leaves it). */
  commitRecords: string[];
  /** After `back`, a journal line, then one line per id: that release's record. */
  backRecords: string[];
  /** Releases retired on commit (prune), with the records marking them pruned. */
  prune: { id: string; trash: string; record: string }[];
  /** Releases prune must never touch. */
  protect: string[];
  token: string;
  /** The tombstone of a takeover on the way in: it stays for the sweep (src/root/lock.ts), so it is not used here. */
  gate?: string;
}

function hookLines(kind: 'before-switch' | 'after-switch', commands: readonly string[], timeoutS: number): string {
  return commands
    .map((cmd, i) =>
      kind === 'before-switch'
        ? // The first failure stops the rest (said once the reader of beforeSwitchLines is gone). A stopped hook is no failure.
          `[ -n "$_bsf$_stop" ] || { emit hook ${q(`${kind} ${i + 1}`)}; step_out ${kind}\nrun_stoppable ${timeoutS} ${q(cmd)} || { _rc=$?; [ -n "$_stop" ] || _bsf="${i + 1} $_rc\${_to:+ 1}"; }; }`
        : // The first failure stops the rest, as locally; `after-switch-failed N CODE` tells the fleet which. A stopped hook is no failure.
          `[ -n "$_asf$_stop" ] || { emit hook ${q(`${kind} ${i + 1}`)}; step_out ${kind}\nrun_stoppable ${timeoutS} ${q(cmd)} || { _rc=$?; [ -n "$_stop" ] || _asf="${i + 1} $_rc\${_to:+ 1}"; }; }`,
    )
    .join('\n');
}

/**
 * The record programs (src/root/record.ts) of `ids`, one shell function each (`<fn>N`), and the
 * lines that read one line of stdin per id (`$_<fn>N`) and write it; an empty line leaves that record.
 */
function recordLines(ids: readonly string[], fn: string): { define: string; read: string; write: string } {
  const programs = ids.map((id, i) => recordProgram(id, `${fn}${i}`));
  return {
    define: programs.map((p) => renderFunction(p)).join('\n'),
    read: programs.map((p) => `IFS= read -r _${p.name} || _${p.name}=`).join('; '),
    write: programs.map((p) => `[ -z "$_${p.name}" ] || { ${renderCall(p, { record: { variable: `_${p.name}` } })}; [ "$R_out" = written ] || _rf=1; }`).join('\n  '),
  };
}

/**
 * The journal written again without `verifying` once every after-switch step passed here (none
 * failed or was stopped; with a health check, it passed), and made durable, as the local engine
 * writes its own. Only while the lock is still this program's: a deploying process killed
 * meanwhile has had its lock taken over by the next command, which may have finished the deploy
 * and cleared the journal already.
 */
function verifiedLines(t: ArmedTail, health: boolean): string {
  if (t.journalVerified === undefined) return '';
  const passed = health ? '[ -z "$_stop" ] && [ "$_ok" = 1 ]' : '[ -z "$_stop$_asf$_rlf" ]';
  return `if ${passed}; then owns_lock; if [ "$R_out" = ours ]; then ${renderCall(journalProgram(), { journal: { literal: t.journalVerified } })}; if [ "$R_out" = written ]; then durable "$state"; else emit warning "cannot write the journal"; fi; fi; fi`;
}

/**
 * Waits, armed, for the fleet's word on stdin: `go` switches with one rename, anything else
 * (or the end of stdin) disarms. After the switch: after-switch hooks, reloads and the health
 * check (`stop` ends them), then the second word: `commit`, `back`, or nothing (the connection
 * was lost: the journal says switched and the next command reconciles).
 */
function armedTail(t: ArmedTail): string {
  // Each attempt in the new release, as a local check runs (same cwd as the hooks), in this shell (a subshell would hold the stop trap until it ended).
  const health = t.healthCheck
    ? `_at=health; _end=$(( $(date +%s) + ${Math.max(1, Math.ceil(t.healthCheck.timeoutS))} )); _wait=1; _ok=0; _n=0; _hc=
while [ -z "$_stop" ]; do
  _left=$(( _end - $(date +%s) )); [ "$_left" -ge 1 ] || _left=1; _n=$((_n + 1)); _rc=1; _to=
  if cd -- "$rel/"${q(t.id)} && run_stoppable "$_left" ${q(t.healthCheck.command)}; then _ok=1; cd / || :; break; fi
  _hc="$_rc\${_to:+ 1}"; cd / || :
  [ -z "$_stop" ] && [ "$(date +%s)" -lt "$_end" ] || break
  # Said as a local check says each retry (on stderr, which the deploying side shows with the host).
  echo "health check attempt $_n failed (exit code $_hc); retrying in $_wait s" >&2
  bg_wait 0 sleep "$_wait" >/dev/null 2>&1; [ "$_wait" -ge 4 ] || _wait=$((_wait * 2))
done
if [ "$_ok" = 1 ]; then emit health ok; elif [ -z "$_stop" ]; then emit health-code "$_hc"; emit health failed; fi`
    : '';
  // The reloads run as a local deploy runs them: after the hooks, and after a failed hook only when no health check can switch back.
  const reload = t.reload === undefined
    ? ''
    : `if [ -z "$_stop" ] && ${t.healthCheck ? '[ -z "$_asf" ]' : ':'}; then
  _at=reloads; step_out reload; bg_wait 0 sh -c ${q(t.reload)} || { [ -n "$_stop" ] || _rlf=1; }; step_out -
fi`;
  const afterSwitchSteps = t.afterSwitch.length > 0 || reload !== '' || health !== '';
  const firstStep = t.afterSwitch.length > 0 ? 'hooks' : reload !== '' ? 'reloads' : 'health';
  const back = `${t.link}.back`;
  const commit = recordLines(t.commitRecords, 'write_record_c');
  const backs = recordLines(t.backRecords, 'write_record_b');
  const pruneMove = t.prune.map((p, i) => pruneLines(p, t.protect, `write_record_p${i}`)).join('\n  ');
  const journal = journalProgram();
  const pruneDelete = t.prune.map((p) => removeStagedLine(p.trash)).join('\n  ');
  const switchBack =
    t.backTo === null
      ? `drop_current ${q(back)} || fail IO "cannot remove current"`
      : `arm_link ${q(t.backTo)} ${q(back)} && switch_now ${q(back)} || { rm -rf -- "$tmp/"${q(back)}; fail IO "switching back failed: $_e"; }`;
  return `${releaseLockFunction(t.token)}
# The bookkeeping after the switch (src/root/record.ts): the texts come as arguments, the records' from stdin with the word.
${renderFunction(journal)}
${renderFunction(clearJournalProgram())}
# A record that could not be written (a full disk, an immutable file): the journal stays, so the
# next command's recovery finishes the record, as it does after a crash at this point.
keep_or_clear_journal() { if [ -n "$_rf" ]; then emit warning "cannot write the release log; the journal stays and the next command finishes the record"; else clear_journal; fi; }
${[commit.define, backs.define].filter(Boolean).join('\n')}
arm_link ${q(t.id)} ${q(t.link)} || fail IO "cannot make the new link in $tmp"
# mv's error file is made while arming: the word then needs no new inode (the rename needs none), and a
# filesystem that runs out meanwhile cannot stop the switch before mv runs.
_e=$(true 2>&1 > "$tmp/"${q(`${t.link}.err`)}) || { rm -rf -- "$tmp/"${q(t.link)}; fail IO "cannot create a file in $tmp: \${_e##*: }"; }
emit ready ${q(t.id)}
# Forked while armed, so that the word costs one exec of mv (the rename of switch_now).
(
  IFS= read -r _go || exit 100
  [ "$_go" = go ] || exit 100
  owns_lock; [ "$R_out" = ours ] || exit 101
  exec mv -f -- "$tmp/"${q(t.link)}"/current" "$root" 2>"$tmp/"${q(`${t.link}.err`)}
)
_rc=$?
if [ "$_rc" = 100 ]; then rm -rf -- "$tmp/"${q(t.link)} "$tmp/"${q(`${t.link}.err`)}; emit disarmed yes; exit 0; fi
if [ "$_rc" = 101 ]; then rm -rf -- "$tmp/"${q(t.link)} "$tmp/"${q(`${t.link}.err`)}; lock_gone_why; emit switch-failed "$_why; nothing was switched here"; exit 0; fi
if [ "$_rc" != 0 ]; then
  _e=; while IFS= read -r _l; do _e="$_e$_l "; done < "$tmp/"${q(`${t.link}.err`)}
  rm -rf -- "$tmp/"${q(t.link)} "$tmp/"${q(`${t.link}.err`)}; emit switch-failed "\${_e:-mv ended with exit $_rc and no message}"; exit 0
fi
emit switched ${q(t.id)}
rm -rf -- "$tmp/"${q(t.link)} "$tmp/"${q(`${t.link}.err`)}
# The rename stamped the link's ctime: the host's own clock at the switch, read without racing it.
emit switched-ctime "$(stat -c '%.9Z %z' -- "$root/current" 2>/dev/null || stat -f %Fc -- "$root/current" 2>/dev/null)"
${t.journalSwitched ? `${renderCall(journal, { journal: { literal: t.journalSwitched } })}; [ "$R_out" = written ] || emit warning "cannot write the journal"` : ''}
# The switch (and the journal saying so) on disk: a power cut must not bring the old link back.
durable "$root"
${
  afterSwitchSteps
    ? `# After the switch, in a local deploy's order: the after-switch hooks, the reloads, the health
# check (which must see the reloaded service). A reader beside them waits for the fleet's \`stop\`
# (the deploying side was interrupted) and signals this shell, whose trap ends the step running,
# as a signal does locally: it says \`stopped\` and what it was doing, and the switch stands. The
# trap is set before the reader exists, so no \`stop\` can come before it; the steps run in this
# shell (started in the background and waited for: a trap is taken during \`wait\`).
_asf=; _rlf=; _stop=; _run=; _ok=; _at=${firstStep}
trap '[ "$_at" = done ] || { _stop=$_at; [ -z "$_run" ] || term_run; }' USR1
exec 3<&0
( IFS= read -r _s <&3 && [ "$_s" = stop ] && kill -USR1 $$ ) </dev/null >/dev/null 2>&1 &
_rd=$!
exec 3<&-
${t.afterSwitch.length > 0 ? `cd -- "$rel/"${q(t.id)} && {\n${hookLines('after-switch', t.afterSwitch, t.hookTimeoutS)}\n}; step_out -; cd / || :\n[ -n "$_stop" ] || [ -z "$_asf" ] || emit after-switch-failed "$_asf"` : ''}
${reload}
${health ? `# A failed hook or reload fails the check without running it, as locally: the fleet switches back.\nif [ -n "$_stop" ]; then :; elif [ -n "$_asf$_rlf" ]; then emit health failed; else\nemit checking health; step_out health-check\n${health}\nstep_out -\nfi` : ''}
_at=done
# The fleet sends nothing else before \`waiting\`: the reader holds at most part of a \`stop\`.
kill "$_rd" 2>/dev/null; wait "$_rd" 2>/dev/null
trap - USR1
[ -z "$_stop" ] || emit stopped "$_stop"
${verifiedLines(t, health !== '')}
emit waiting decision`
    : 'emit waiting decision'
}
# The decision; a \`stop\` that came once nothing ran any more (or what the reader left of one) is skipped.
while :; do IFS= read -r _d || { _d=; break; }; case $_d in ''|p|op|top|stop) ;; *) break ;; esac; done
# The word may come late (a deploying process stopped for longer than the lease): another command
# may hold the lock and have switched since. Then nothing here is this program's to change.
case $_d in commit|commit-unverified|back) owns_lock; [ "$R_out" = ours ] || { lock_gone_why; emit not-carried-out "$_why: its \${_d%-unverified} was not carried out"; exit 0; } ;; esac
case $_d in
commit|commit-unverified)
  ${commit.read || ':'}
  _rf=
  ${commit.write || ':'}
  # Unverified (an after-switch hook or reload failed, exit 7): live, but nothing is pruned for it.
  if [ "$_d" = commit ]; then
  ${pruneMove || ':'}
  fi
  keep_or_clear_journal
  # As a local command that succeeded (src/ops/root.ts withLock), before the next deploy can fill the disk.
  keep_reserve
  release_own_lock
  if [ "$_d" = commit ]; then
  ${pruneDelete || ':'}
  fi
  emit committed ${q(t.id)} ;;
back)
  IFS= read -r _j || _j=; ${backs.read || ':'}
  [ -z "$_j" ] || ${renderCall(journal, { journal: { variable: '_j' } })}
  ${switchBack}
  emit switched-back ${q(t.backTo ?? '')}
  _rf=
  ${backs.write || ':'}
  keep_or_clear_journal
  release_own_lock
  emit back ${q(t.id)} ;;
*)
  emit undecided ${q(t.id)} ;;
esac
exit 0
`;
}

export interface DeployArmScript extends ScriptBase {
  id: string;
  previous: string | null;
  /** `<stage>/<id>` holds the copy rsync made: `.tmp/<stage>`, or `releases/<stage>` for a hidden name. */
  stage: string;
  shared: SharedLinkStep[];
  sharedCreate: boolean;
  beforeSwitch: string[];
  journalCopying: string;
  journalReady: string;
  recordPending: string;
  /** `.tmp/<stage>/manifest.json` becomes `.atomic-deploy/manifests/<id>.json` with the release. */
  manifest?: boolean;
  /**
   * With before-switch hooks: the stage name where the deploying side stores the manifest made
   * again after them (hookManifestLines).
   */
  remakeStage?: string;
  tail: ArmedTail;
}

/**
 * The before-switch hooks, in the release, stoppable as the after-switch steps are (armedTail): the
 * deploying side sends nothing before \`hooked\` (or \`ready\`) but its \`abort\` (it was
 * interrupted), so a reader beside the hooks takes any line, or the end of stdin (the connection
 * went), as the word to stop; it signals this shell, whose trap (set before the reader exists) ends
 * the hook running, as a signal ends a local one, and the program fails INTERRUPTED before it arms.
 * The reader is gone before the program says anything more or ends: it must not take a later word,
 * nor signal a shell that has exited.
 */
function beforeSwitchLines(commands: readonly string[], timeoutS: number): string {
  return `cd -- "$rel/$id" || fail IO "cannot enter the release"
_bsf=; _stop=; _run=; _at=hooks
trap '[ "$_at" = done ] || { _stop=$_at; [ -z "$_run" ] || term_run; }' USR1
exec 3<&0
( IFS= read -r _s <&3; kill -USR1 $$ ) </dev/null >/dev/null 2>&1 &
_rd=$!
exec 3<&-
${hookLines('before-switch', commands, timeoutS)}
step_out -
_at=done
kill "$_rd" 2>/dev/null; wait "$_rd" 2>/dev/null
trap - USR1
cd / || :
[ -z "$_stop" ] || fail INTERRUPTED "stopped by the deploying side during the before-switch hooks; nothing was switched here"
# \`hook-failed N CODE [1]\` (1: its time ran out): the deploying side says it in a local deploy's words.
[ -z "$_bsf" ] || { emit hook-failed "$_bsf"; _rc=\${_bsf#* }; fail HOOK_FAILED "before-switch hook \${_bsf%% *} exited with code \${_rc%% *}"; }`;
}

/**
 * After the before-switch hooks: the release is listed (`hooked`, the listing frames, `listed yes`;
 * `listed no` where the host has no `stat -c` or SHA-256 command), and the program waits for the
 * deploying side's word on stdin: `same` (the hooks changed nothing the manifest holds), or
 * `manifest <sha256>` and one line of release record, after the manifest made again from the
 * listing was stored as `<remakeStage>/manifest.json` (checked here by its SHA-256) and then moved
 * over the release's, and the record rewritten to name its digest. Anything else, or the end of
 * stdin, fails the program: the deploy is undone, or recovered by the next command.
 */
function hookManifestLines(remakeStage: string): string {
  return `emit hooked yes
${PICK_SUM}
if [ -n "$sum" ] && stat -c '%f %s' -- "$rel/$id" >/dev/null 2>&1; then
  (LC_ALL=C; export LC_ALL; cd -- "$rel/$id" && {
${releaseListing()}
  }) || fail IO "cannot list the release after its before-switch hooks"
  emit listed yes
else emit listed no; fi
IFS= read -r _w || _w=
case $_w in
same) ;;
'manifest '*)
  area ${q(remakeStage)}; _m="$A_path/manifest.json"
  _g=$($sum < "$_m") || fail IO "cannot read the manifest made after the before-switch hooks"
  [ "\${_g%% *}" = "\${_w#manifest }" ] || fail IO "the manifest stored after the before-switch hooks is not the one sent"
  IFS= read -r _rec || fail INTERRUPTED "the deploying side went away after the before-switch hooks"
  { mkdir -p -- "$state/manifests" && mv -f -- "$_m" "$state/manifests/$id.json"; } || fail IO "cannot store the manifest made after the before-switch hooks"
  put_file "$log" "$id.json" "$_rec" || fail IO "cannot write the release record"
  rm -rf -- "$A_path" ;;
*) fail INTERRUPTED "stopped by the deploying side after the before-switch hooks" ;;
esac`;
}

const TARGET_KINDS: readonly SharedTargetKind[] = ['file', 'dir', 'other', 'missing', 'dangling', 'blocked'];

/**
 * Each shared target's kind on the host, answered by the local engine's own rule
 * (sharedTargetAction) rendered per kind; every target is checked before any is created,
 * so a host that refuses creates nothing.
 */
/** Sets `_k<i>` to the kind of shared target `path` on the host: the local sharedTargetKind's answer. */
function sharedKindLine(path: string, i: number): string {
  const t = `"$shared/"${q(path)}`;
  // As the local sharedTargetKind: shared/ or a step under it that is a link to nothing, or (before the last) not a directory.
  const steps = ['"$shared"', ...sharedPathSteps(path).map((step) => `"$shared/"${q(step)}`)];
  const dangling = steps.map((x) => `{ [ -h ${x} ] && [ ! -e ${x} ]; }`).join(' || ');
  const blocked = steps.slice(0, -1).map((x) => `{ [ -e ${x} ] && [ ! -d ${x} ]; }`).join(' || ');
  return [
    `if [ -d ${t} ]; then _k${i}=dir; elif [ -f ${t} ]; then _k${i}=file`,
    `elif ${dangling}; then _k${i}=dangling`,
    `elif ${blocked}; then _k${i}=blocked`,
    `elif [ -e ${t} ] || [ -h ${t} ]; then _k${i}=other; else _k${i}=missing; fi`,
  ].join('; ');
}

/**
 * Whether a root that is not there could be made, as a deploy's lock program would make it: the
 * path is not taken (a file, a dangling link: a state read cannot tell those from nothing), and its
 * nearest existing parent is a directory. Reads only: a dry run asks it.
 */
export function creatableScript(root: string): string {
  // \`why\` and \`hint\`: the lock program's words for the same refusal (lockScript, MAKE_ROOT), the local engine's (ops/root.ts).
  return `r=${q(root)}; p=$r; emit() { printf '%s\\000%s\\000' "$1" "$2"; }
no() { emit why "$1"; [ -z "\${2-}" ] || emit hint "$2"; emit creatable no; exit 0; }
if [ -L "$p" ] && [ ! -e "$p" ]; then no "the deploy root $p is a symbolic link to $(readlink -- "$p"), which does not exist" ${q(DANGLING_ROOT_HINT)}; fi
if [ -e "$p" ]; then no "$p is not a directory" ${q(NOT_A_DIRECTORY_HINT)}; fi
while [ ! -e "$p" ] && [ ! -L "$p" ]; do p=$(dirname -- "$p"); done
if [ -L "$p" ] && [ ! -e "$p" ]; then no "cannot create $r: $p is a symbolic link to $(readlink -- "$p"), which does not exist" ${q(DANGLING_ROOT_HINT)}; fi
[ -d "$p" ] || no "cannot create $r: $p is not a directory"
[ -w "$p" ] || no "cannot create $r: Permission denied"
emit creatable yes
`;
}

/**
 * Each shared target's kind on the host, one `sharedkind` frame each, in order (`$shared` and
 * `emit` defined before). With `create` (\`--shared-create\`), a missing target is also asked what
 * the local sharedCreateProblem asks: root may make it; any other user must be able to write in and
 * search the folder it would be made in, or the nearest one on the way that exists, or frames right
 * after its `sharedkind` say who may not: `shareddenied` (that folder), `sharedowner` (`<uid>
 * <name>`, the name empty or UNKNOWN where the host has none) and `shareduser` (this user).
 */
function sharedFactsLines(paths: readonly string[], create: boolean): string {
  const kinds = paths.map((p, i) => `${sharedKindLine(p, i)}; emit sharedkind "$_k${i}"`);
  if (!create) return kinds.join('\n');
  // stat -c: GNU and BusyBox; stat -f: the BSDs. The user's name once, and only for a refusal.
  const denied = `_uid=$(id -u 2>/dev/null) || _uid=; _me=
shared_denied() {
  emit shareddenied "$1"
  _o=$(stat -c '%u %U' -- "$1" 2>/dev/null || stat -f '%u %Su' -- "$1" 2>/dev/null) || _o=
  emit sharedowner "$_o"
  [ -n "$_me" ] || _me=$(id -un 2>/dev/null) || _me="uid $_uid"
  emit shareduser "$_me"
}`;
  const checks = paths.map(
    (p, i) => `${kinds[i] as string}
if [ "$_k${i}" = missing ] && [ "$_uid" != 0 ]; then
  _d="$shared/"${q(p)}; _d=\${_d%/*}
  while [ -n "$_d" ] && [ ! -e "$_d" ]; do _d=\${_d%/*}; done
  [ -n "$_d" ] || _d=/
  [ -w "$_d" ] && [ -x "$_d" ] || shared_denied "$_d"
fi`,
  );
  return [denied, ...checks].join('\n');
}

/**
 * Each shared target's kind on a host (sharedFactsLines), then `checked`: read on every host of a
 * fleet deploy before any host creates one, so that a host that refuses leaves no target made on
 * the others (remote/deploy.ts).
 */
export function sharedKindsScript(root: string, paths: readonly string[], create: boolean): string {
  return `root=${q(root)}; shared="$root/shared"\nemit() { printf '%s\\000%s\\000' "$1" "$2"; }\n${sharedFactsLines(paths, create)}\nemit checked ok\n`;
}

function sharedTargetLines(s: Pick<DeployArmScript, 'root' | 'shared' | 'sharedCreate'>): string {
  const checks = s.shared.map((l, i) => {
    const cases = TARGET_KINDS.map((kind) => {
      const a = sharedTargetAction(l, kind, s.sharedCreate);
      const run = a.kind === 'problem' ? `emit hint ${q(a.hint)}; fail INVALID_SHARED_PATH ${q(a.problem)}` : a.kind === 'missing' ? `fail SHARED_MISSING ${q(`shared target missing: ${s.root}/shared/${l.path}`)}` : ':';
      return `${kind}) ${run} ;;`;
    });
    return `${sharedKindLine(l.path, i)}\ncase $_k${i} in ${cases.join(' ')} esac`;
  });
  const creates = s.shared.map((l, i) => {
    const a = sharedTargetAction(l, 'missing', s.sharedCreate);
    if (a.kind !== 'create') return '';
    const t = `"$shared/"${q(l.path)}`;
    const cannot = `fail IO ${q(`cannot create ${s.root}/shared/${l.path}`)}`;
    // noclobber: a file that appeared meanwhile is someone's content, never truncated; 600, since such files hold secrets.
    // Directories 0755 whatever the session's umask (they are on the way to what a release serves), as the local engine makes them.
    const make = a.type === 'dir' ? `mkdir_reachable ${t}` : `{ mkdir_reachable "$shared/"${q(posix.dirname(l.path))} && { (umask 077; set -C; true > ${t}) 2>/dev/null || [ -f ${t} ]; }; }`;
    return `[ "$_k${i}" != missing ] || ${make} || ${cannot}`;
  });
  return [...checks, ...creates].filter(Boolean).join('\n');
}

/**
 * Prepares a release, then waits armed (see armedTail). Before `ready`: journal, shared links,
 * placing (src/root/place.ts: manifest, rename into releases/, record, journal `ready`),
 * before-switch hooks, durability, the new link.
 */
export function deployArmScript(s: DeployArmScript): string {
  const stage = `"$sdir/"${q(s.id)}`;
  const staged = stagedRootPath(s.stage);
  // The same program as the local engine's (src/root/place.ts); the stage directory holds the tree and the manifest rsync sent.
  const place = placeRelease({ id: s.id, stage: `${staged}/${s.id}`, ...(s.manifest ? { manifest: `${staged}/manifest.json` } : {}), leftover: staged, record: s.recordPending, journal: s.journalReady });
  const sharedLines = s.shared
    .map((l) => {
      const inRelease = `${stage}"/"${q(l.path)}`;
      // Each change in a directory of the build, which may be read-only (0555): in_writable lends u+w.
      const parentOf = (p: string): string => `${stage}"/"${q(posix.dirname(p))}`;
      return [
        l.replaces ? `in_writable ${parentOf(l.path)} remove_tree ${inRelease}` : '',
        ...l.mkdirs.map((d) => `in_writable ${parentOf(d)} mkdir -m 755 -- ${stage}"/"${q(d)} 2>/dev/null || [ -d ${stage}"/"${q(d)} ] || fail IO "cannot create a directory in the release"`),
        `in_writable ${parentOf(l.path)} ln -s -- ${q(l.linkText)} ${inRelease} || fail IO ${q(`cannot link shared path ${l.path}`)}`,
      ]
        .filter(Boolean)
        .join('\n');
    })
    .join('\n');
  return `${header(s)}
id=${q(s.id)}; area ${q(s.stage)}; sdir=$A_path
export ATOMIC_DEPLOY_RELEASE_ID="$id" ATOMIC_DEPLOY_RELEASE_PATH="$rel/$id" ATOMIC_DEPLOY_PREVIOUS_ID=${q(s.previous ?? '')} ATOMIC_DEPLOY_ROOT="$root"
[ -d ${stage} ] || fail IO "the copy of release $id is missing from $sdir"
mkdir -p -- "$log" && put_file "$state" journal.json ${q(s.journalCopying)} || fail IO "cannot write the journal"
# The copy's data and the journal naming it reach the disk before the release enters releases/.
durable "$root"
${sharedTargetLines(s)}
${sharedLines}
${renderFunction(place)}
place_release
emit placed "$id"
${s.beforeSwitch.length > 0 ? beforeSwitchLines(s.beforeSwitch, s.tail.hookTimeoutS) : ''}
${s.beforeSwitch.length > 0 && s.remakeStage !== undefined ? hookManifestLines(s.remakeStage) : ''}
# Everything the hooks wrote and the links reach the disk before current can point here.
durable "$root"
${armedTail(s.tail)}`;
}

export interface RollbackArmScript extends ScriptBase {
  journalSwitching: string;
  tail: ArmedTail;
}

/** Arms a switch to an existing release (fleet rollback): journal, new link, then armedTail. */
/** The commit's `keep_reserve` alone (the space reserve made whole where there is room), for the programs' tests under each shell. */
export function reserveScript(s: ScriptBase): string {
  return `${header(s)}
keep_reserve
emit reserve "$(wc -c 2>/dev/null < "$reserve" || echo 0)"
`;
}

export function rollbackArmScript(s: RollbackArmScript): string {
  return `${header(s)}
[ -d "$rel/"${q(s.tail.id)} ] || fail UNKNOWN_RELEASE ${q(`release ${s.tail.id} does not exist`)}
mkdir -p -- "$state" && put_file "$state" journal.json ${q(s.journalSwitching)} || fail IO "cannot write the journal"
durable "$root"
${armedTail(s.tail)}`;
}
