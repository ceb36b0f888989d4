/**
 * The POSIX sh program behind `verify --host`: prints a release's manifest and re-hashes the
 * release on the host itself (find, `stat -c`, sha256sum), so no release byte crosses the
 * network. Output: the NUL-framed pairs read by plan/fleet-verify.ts.
 */
import { PICK_SUM, shQuote as q } from './shell.ts';

/**
 * Lists the current directory (a release) as plan/fleet-verify.ts treeFromListing reads it: `stat`,
 * `root-stat`, `sums` (and `present` when a hash failed), `link`/`target`, `odd`/`odd-stat`/`odd-sum`,
 * `closed` and `denied` frames. Needs `$sum` (the host's SHA-256 command) and `$nl` set, `emit`
 * defined, and LC_ALL=C.
 */
export function releaseListing(): string {
  return `cr=$(printf '\\r')
# The release directory's own mode first (the manifest's root).
printf 'root-stat\\000'; stat -c '%f %s' -- . 2>/dev/null; printf '\\000'
# Plain names go through one stat and one sha256sum per batch of files; names that sha256sum would
# escape (newline, carriage return, backslash) and symlinks get a process each, framed by name.
printf 'stat\\000'
find . ! -name . ! -type l ! -name "*$nl*" ! -name "*$cr*" ! -name '*\\\\*' -exec stat -c '%f %s %n' -- {} + 2>/dev/null
printf '\\000sums\\000'
hashed=yes
find . -type f ! -name "*$nl*" ! -name "*$cr*" ! -name '*\\\\*' -exec $sum -- {} + 2>/dev/null || hashed=no
printf '\\000'
# A file listed above and not hashed here was removed in between, unless hashing failed: then the
# files still there are listed again, and one of them without a hash shows as modified.
if [ "$hashed" = no ]; then printf 'present\\000'; find . -type f ! -name "*$nl*" ! -name "*$cr*" ! -name '*\\\\*' -print 2>/dev/null; printf '\\000'; fi
find . ! -name . \\( -type l -o -name "*$nl*" -o -name "*$cr*" -o -name '*\\\\*' \\) -exec sh -c '
sum=$1; shift
for f; do
  if [ -h "$f" ]; then printf "link\\\\000%s\\\\000target\\\\000" "$f"; readlink -- "$f"; printf "\\\\000"
  else
    printf "odd\\\\000%s\\\\000odd-stat\\\\000" "$f"; stat -c "%f %s" -- "$f"; printf "\\\\000odd-sum\\\\000"
    # Gone since its stat: removed, not a file that could not be hashed.
    if [ -f "$f" ] && $sum < "$f"; then :; elif [ ! -e "$f" ] && [ ! -h "$f" ]; then printf gone; fi; printf "\\\\000"
  fi
done' sh "$sum" {} + 2>/dev/null
# What permissions keep this user from reading, by access(2) as the local walk meets it on open:
# a file (its content unchecked) or a directory it may not list or search (nothing under it).
find . \\( -type f -o -type d \\) -exec sh -c '
for f; do
  if [ -d "$f" ]; then [ -r "$f" ] && [ -x "$f" ] || printf "closed\\000%s\\000" "$f"
  else [ -r "$f" ] || printf "denied\\000%s\\000" "$f"; fi
done' sh {} + 2>/dev/null`;
}

/**
 * Lists `releases/<id>` of `root` after its manifest. `expect` is the hex digest its record
 * names: a manifest with other bytes is printed (the deploying side judges it) but the release
 * is not hashed for nothing.
 */
/** `manifest-file yes` when release ID's manifest file is on the host (a plain file), nothing when not. */
export function manifestFileScript(root: string, id: string): string {
  return `emit() { printf '%s\\000%s\\000' "$1" "$2"; }
m=${q(`${root}/.atomic-deploy/manifests/${id}.json`)}
if [ -f "$m" ] && [ ! -h "$m" ]; then emit manifest-file yes; fi
`;
}

export function verifyScript(root: string, id: string, expect: string): string {
  return `LC_ALL=C; export LC_ALL
nl='
'
emit() { printf '%s\\000%s\\000' "$1" "$2"; }
fail() { emit error "$1"; emit message "$2"; exit 1; }
r=${q(`${root}/releases/${id}`)}; m=${q(`${root}/.atomic-deploy/manifests/${id}.json`)}
[ -d "$r" ] && [ ! -h "$r" ] || fail UNKNOWN_RELEASE ${q(`release ${id} does not exist in ${root}/releases`)}
# Both forms print one line per file; stat -c is GNU and BusyBox (a BSD host has neither form).
stat -c '%f %s' -- "$r" >/dev/null 2>&1 || fail REMOTE 'verify needs stat -c (GNU coreutils or BusyBox) on the host'
${PICK_SUM}
[ -n "$sum" ] || fail REMOTE 'verify needs sha256sum or shasum on the host'
if [ ! -f "$m" ] || [ -h "$m" ]; then emit no-manifest yes; exit 0; fi
printf 'manifest\\000'; cat -- "$m" || exit 1; printf '\\000'
h=$($sum < "$m") || exit 1
[ "\${h%% *}" = ${q(expect)} ] || { emit manifest-digest "\${h%% *}"; exit 0; }
# A release the user may not search is one closed directory, as the local walk reports it.
if [ ! -x "$r" ]; then printf 'root-stat\\000'; stat -c '%f %s' -- "$r" 2>/dev/null; printf '\\000'; emit closed .; emit end verify; exit 0; fi
cd -- "$r" || fail IO ${q(`cannot enter release ${id}`)}
${releaseListing()}
emit end verify
`;
}
