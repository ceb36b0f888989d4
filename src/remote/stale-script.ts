/**
 * The POSIX sh a fleet host runs after its switch: the reloads (systemctl, php-fpm), and the scan
 * for processes that still hold the release it left. Same frame protocol as script.ts; works under
 * dash and BusyBox sh (ls, grep, sed and the shell's builtins only).
 */
import { frameValue, type Frame } from './facts.ts';
import type { RawStaleScan } from '../plan/remote-stale.ts';
import { LIVE_THREADS, shQuote as q } from './shell.ts';

const EMIT = `emit() { printf '%s\\000%s\\000' "$1" "$2"; }`;

/**
 * Lists what the plan needs to name the holders of DIR: the links and fds that mention it, the
 * maps lines that do, the parent and command of every process, and which processes live in
 * another mount namespace; for a process whose main thread has exited while others run on, those
 * of one live thread (/proc/<pid>/task/<tid>/). The sh filters, so a busy host sends kilobytes,
 * not megabytes.
 */
export function staleScanScript(dir: string): string {
  return `${EMIT}
${LIVE_THREADS}
dir=${q(dir)}
# Out of every release first: this shell and its children must hold nothing the scan looks for.
cd / || exit 1
if [ ! -d /proc/self/fd ]; then emit stale unavailable; exit 0; fi
emit stale proc
emit self "$$"
_r=$(cd -P -- "$dir" 2>/dev/null && pwd -P) && [ -n "$_r" ] && dir=$_r
emit dir "$dir"
_ns=$(ls -l /proc/$$/ns/mnt 2>/dev/null); _ns=\${_ns##* -> }
# "pid ppid comm" from each stat line; comm may hold ") " itself, so the greedy match takes the last.
# A zombie's line also as "/proc/<pid>/stat:<line>" (sed's hold space keeps it for both): where it
# is a process whose main thread has exited while others run on, it shows nothing of its own, and
# one live thread's links, mount namespace and maps stand for it.
_ps=$(sed -n -e h -e 's/^\\([0-9]*\\) .*) Z .*/\\/proc\\/\\1\\/stat:&/p' -e g -e 's/^\\([0-9]*\\) (\\(.*\\)) [A-Za-z] \\([0-9]*\\) .*/\\1 \\3 \\2/p' /proc/[0-9]*/stat 2>/dev/null)
live_threads "$_ps"; _tl=; _tm=
for _t in $T_dirs; do _tl="$_tl $_t/cwd $_t/root $_t/ns/mnt $_t/fd"; _tm="$_tm $_t/maps"; done
printf 'links\\000'
ls -l /proc/[0-9]*/cwd /proc/[0-9]*/root /proc/[0-9]*/ns/mnt /proc/[0-9]*/fd $_tl 2>/dev/null | grep -F -e "$dir" -e '/fd:' -e '/ns/mnt -> ' | grep -v -F -e "/ns/mnt -> \${_ns:-?}"
printf '\\000'
printf 'maps\\000'; grep -F -- "$dir/" /proc/[0-9]*/maps $_tm 2>/dev/null; printf '\\000'
printf 'procs\\000'; printf '%s\\n' "$_ps"; printf '\\000'
exit 0
`;
}

/** The scan's frames as the plan reads them; undefined when the output is not a scan's. */
export function rawStaleScan(frames: readonly Frame[]): RawStaleScan | undefined {
  const check = frameValue(frames, 'stale');
  if (check === 'unavailable') return { check, self: 0, dir: '', links: '', maps: '', procs: '' };
  if (check !== 'proc') return undefined;
  return {
    check,
    self: Number(frameValue(frames, 'self') ?? 0),
    dir: frameValue(frames, 'dir') ?? '',
    links: frameValue(frames, 'links') ?? '',
    maps: frameValue(frames, 'maps') ?? '',
    procs: frameValue(frames, 'procs') ?? '',
  };
}

/**
 * A graceful php-fpm reload in sh, by the rules act/reload.ts follows locally (plan/serving.ts):
 * the master from the pid file, refused unless its comm says php-fpm, its parent's does not (a
 * worker), and `kill -0` may signal it; SIGUSR2, then wait until every worker that ran before has
 * exited and the master has re-exec'd (new code and stack addresses in its stat, its title back),
 * or, where it went away (daemonize = yes forks a new one), until the pid file names a new master.
 */
const PHP_FPM = `
# F_state F_ppid F_start F_image (fields 3, 4, 22 and 26-28) of /proc/<pid>/stat; empty when it is gone.
fpm_stat() { F_state=; F_ppid=; F_start=; F_image=; _s=; read -r _s 2>/dev/null < "/proc/$1/stat" || return 0; _s=\${_s##*) }; set -f; set -- $_s; set +f; F_state=$1; F_ppid=$2; [ $# -ge 20 ] && F_start=\${20}; [ $# -ge 26 ] && F_image="\${24} \${25} \${26}"; return 0; }
fpm_workers() {
  F_list=
  for _d in /proc/[0-9]*; do
    _s=; read -r _s 2>/dev/null < "$_d/stat" || continue
    _s=\${_s##*) }; set -f; set -- $_s; set +f
    [ "$2" = "$F_master" ] && [ "$1" != Z ] && F_list="$F_list \${_d#/proc/}:\${20}"
  done
}
# How many of the workers listed in $1 (pid:starttime) still run, wherever they are now, in F_left.
fpm_left() {
  F_left=0
  for _w in $1; do fpm_stat "\${_w%%:*}"; [ "$F_start" = "\${_w#*:}" ] && [ "$F_state" != Z ] && F_left=$((F_left + 1)); done
  return 0
}
# A php-fpm command name: php-fpm, or php-fpm and a version (php-fpm8.2, php-fpm83), as plan/serving.ts isPhpFpmCommand; php-fpm_exporter is none.
fpm_comm() {
  case $1 in php-fpm*) case \${1#php-fpm} in *[!0-9.]*) return 1 ;; esac; return 0 ;; esac
  return 1
}
# The master a pid file names, in F_master (F_mstart: its start time); or why there is none, in F_problem (the words the local check uses).
fpm_master() {
  F_master=; F_mstart=; F_problem=
  # Only a regular file is read: a FIFO would block the shell (and the deploy) for ever, and a
  # character device such as /dev/zero never ends (act/reload.ts readPidFile).
  if [ ! -f "$1" ]; then
    if [ -S "$1" ]; then F_problem='cannot read the pid file (it is a socket: a fleet host finds php-fpm by its pid file only)'
    elif [ -p "$1" ]; then F_problem='cannot read the pid file: it is a FIFO (named pipe), not a file php-fpm wrote'
    elif [ -c "$1" ]; then F_problem='cannot read the pid file: it is a character device, not a file php-fpm wrote'
    elif [ -b "$1" ]; then F_problem='cannot read the pid file: it is a block device, not a file php-fpm wrote'
    elif [ -d "$1" ]; then F_problem='cannot read the pid file: it is a directory, not a file php-fpm wrote'
    else F_problem='cannot read the pid file'; fi
    return 1
  fi
  # A pid file php-fpm wrote ends without a newline: read then fails, having read the pid.
  _m=
  if ! read -r _m 2>/dev/null < "$1" && [ -z "$_m" ]; then
    [ -r "$1" ] || { F_problem='cannot read the pid file'; return 1; }
  fi
  _m=\${_m%%[!0-9]*}
  [ -n "$_m" ] || { F_problem='the pid file holds no pid'; return 1; }
  _c=; read -r _c 2>/dev/null < "/proc/$_m/comm"
  fpm_stat "$_m"
  [ -n "$_c" ] && [ "$F_state" != Z ] || { F_problem="no process $_m is running (stale pid file?)"; return 1; }
  fpm_comm "$_c" || { F_problem="process $_m is $_c, not php-fpm (stale pid file?)"; return 1; }
  _p=$F_ppid; _pc=; read -r _pc 2>/dev/null < "/proc/$_p/comm"
  ! fpm_comm "$_pc" || { F_problem="process $_m is a php-fpm worker of master $_p, not a master (stale pid file?)"; return 1; }
  kill -0 "$_m" 2>/dev/null || { F_problem="cannot signal php-fpm master $_m (EPERM): run the deploy as the pool's user or root"; return 1; }
  F_master=$_m; F_mstart=$F_start
}
fpm_reload() {
  fpm_master "$1" || { echo "php-fpm reload ($1): $F_problem" >&2; return 1; }
  _fm=$F_master; _ms=$F_mstart; fpm_stat "$_fm"; _mi=$F_image
  # The re-exec shows only where the kernel randomizes addresses and lets us read them.
  _r=; read -r _r 2>/dev/null < /proc/sys/kernel/randomize_va_space
  case "$_r:$_mi" in 0:* | :* | *:'0 0 0' | *:) _see= ;; *) _see=1 ;; esac
  fpm_workers; _before=$F_list
  set -- "$1" "$2" $_before; _n=$(($# - 2)); [ $_n = 1 ] && _ws=worker || _ws=workers
  kill -USR2 "$_fm" 2>/dev/null || { echo "php-fpm reload ($1): cannot signal php-fpm master $_fm" >&2; return 1; }
  echo "sent SIGUSR2 to php-fpm master $_fm; $_n $_ws finish their requests" >&2
  _end=$(( $(date +%s) + $2 ))
  while :; do
    fpm_stat "$_fm"
    if [ "$F_start" = "$_ms" ] && [ "$F_state" != Z ]; then
      _why=old; _mi2=$F_image
      fpm_workers; _old=0
      for _w in $_before; do case "$F_list " in *" $_w "*) _old=1 ;; esac; done
      if [ $_old = 0 ]; then
        _why=exec
        if [ -z "$_see" ]; then _why=; elif [ "$_mi2" != "$_mi" ]; then _t=; read -r _t 2>/dev/null < "/proc/$_fm/cmdline"; case $_t in 'php-fpm: master process'*) _why= ;; esac; fi
      fi
      [ -n "$_why" ] || { echo "php-fpm master $_fm reloaded" >&2; return 0; }
    else
      _why=gone
      fpm_left "$_before"
      if [ "$F_left" = 0 ] && fpm_master "$1" && { [ "$F_master" != "$_fm" ] || [ "$F_mstart" != "$_ms" ]; }; then
        echo "php-fpm master $_fm reloaded as $F_master (daemonized)" >&2; return 0
      fi
    fi
    if [ "$(date +%s)" -ge "$_end" ]; then
      case $_why in
        gone) echo "php-fpm reload ($1): php-fpm master $_fm exited during the reload and no new master came up (see its error log)" >&2 ;;
        old) echo "php-fpm reload ($1): timed out after $2 s with old workers still running" >&2 ;;
        *) echo "php-fpm reload ($1): timed out after $2 s before php-fpm master $_fm re-executed (see its error log)" >&2 ;;
      esac
      return 1
    fi
    sleep 0.05 2>/dev/null || sleep 1
  done
}
`;

/**
 * The reloads in order, output on stderr (the caller prefixes it with the host); the first
 * failure stops them and is named in a \`failed\` frame. systemctl gets \`timeout\` where there is one.
 * \`embedded\`: run by a deploy's armed program after its after-switch hooks (remote/script.ts),
 * whose frames it shares: it says \`reloading\` first, a failure is \`reload-failed\` and exit 1.
 */
export function reloadScript(r: { units: readonly string[]; phpFpm: readonly string[]; timeoutS: number }, options: { embedded?: boolean } = {}): string {
  const t = String(Math.max(1, Math.ceil(r.timeoutS)));
  const embedded = options.embedded === true;
  const fail = (message: string): string => (embedded ? `{ emit reload-failed ${q(message)}; exit 1; }` : `{ emit failed ${q(message)}; exit 0; }`);
  const lines = [
    EMIT,
    PHP_FPM,
    'cd / || exit 1',
    ...(embedded ? ['emit reloading .'] : []),
    'if command -v timeout >/dev/null 2>&1; then T=timeout; else T=; fi',
    ...r.units.map((u) => `echo ${q(`systemctl reload-or-restart ${u}`)} >&2; $T ${timeoutArg(t)} systemctl reload-or-restart -- ${q(u)} >&2 </dev/null || ${fail(`reload of unit ${u} failed`)}`),
    ...r.phpFpm.map((f) => `fpm_reload ${q(f)} ${t} || ${fail(`php-fpm reload (${f}) failed`)}`),
    'emit reloaded ok',
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * What a host says, before anything is locked or written there, about its reload targets: for
 * each unit (in order) what `systemctl show --property=LoadState` printed, or why it failed; for
 * each php-fpm pid file the master it names, or why there is none. The caller decides
 * (plan/serving.ts: unitLoadProblem), with the rule the local check uses.
 */
export function reloadCheckScript(r: { units: readonly string[]; phpFpm: readonly string[] }): string {
  const show = (u: string, redirect: string): string => `$T ${timeoutArg('10')} systemctl show --property=LoadState --value -- ${q(u)} ${redirect} </dev/null`;
  const lines = [
    EMIT,
    PHP_FPM,
    'cd / || exit 1',
    'if command -v timeout >/dev/null 2>&1; then T=timeout; else T=; fi',
    'if command -v systemctl >/dev/null 2>&1; then S=1; else S=; fi',
    ...r.units.map(
      (u) =>
        `if [ -z "$S" ]; then emit unit-problem 'systemctl is not installed (no systemd here)'; ` +
        `elif _o=$(${show(u, '2>/dev/null')}); then emit unit-state "$_o"; ` +
        // Failed: ask again for its error alone; its last line says why (as the local check reads it).
        `else _o=$(${show(u, '2>&1 >/dev/null')}); emit unit-problem "$(printf '%s\\n' "$_o" | sed -n '$p')"; fi`,
    ),
    ...r.phpFpm.map((f) => `if fpm_master ${q(f)}; then emit fpm-master "$F_master"; else emit fpm-problem "$F_problem"; fi`),
    'emit checked ok',
  ];
  return `${lines.join('\n')}\n`;
}

/** `timeout`'s duration argument, only when `timeout` was found. */
function timeoutArg(t: string): string {
  return `\${T:+${t}}`;
}
