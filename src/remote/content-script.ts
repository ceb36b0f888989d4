/**
 * The POSIX sh programs that move release content by manifest on a target: read a release's
 * manifest, receive the new one, and hardlink then check the files the plan takes from the
 * previous release. Output uses the same NUL-framed `tag`, `value` pairs as remote/script.ts.
 */
import { PICK_SUM, shQuote as q } from './shell.ts';
import { stagedPath } from './staging.ts';

/** One `tag`, `value` frame with a fixed value. */
const emit = (tag: string, value: string): string => `printf '%s\\000%s\\000' ${q(tag)} ${q(value)}`;

/**
 * Prints `<root>/.atomic-deploy/manifests/<id>.json` as a `manifest` frame, or a `no-manifest`
 * frame. With `hashOnly` (the deploy already holds a manifest with the digest this host's record
 * names) it prints the file's SHA-256 as a `manifest-sha256` frame instead, where the host has
 * sha256sum or shasum: a few bytes instead of the whole manifest. With `seed` (a stage name) it
 * also copies the file into that stage as `manifest.json`: the basis the new manifest is sent
 * against by rsync's delta transfer (remote/rsync.ts sendManifestDelta).
 */
export function readManifestScript(root: string, id: string, options: { hashOnly?: boolean; seed?: string } = {}): string {
  const hash = options.hashOnly
    ? `${PICK_SUM}
if [ -n "$sum" ]; then h=$($sum < "$f") || exit 1; printf 'manifest-sha256\\000%s\\000' "\${h%% *}"; exit 0; fi
`
    : '';
  // The copy first: the hash-only branch ends the program.
  const seed = options.seed === undefined ? '' : `mkdir -p -- ${q(stagedPath(root, options.seed))} && cp -- "$f" ${q(`${stagedPath(root, options.seed)}/manifest.json`)} 2>/dev/null || :\n`;
  return `f=${q(`${root}/.atomic-deploy/manifests/${id}.json`)}
if [ -f "$f" ] && [ ! -h "$f" ]; then ${seed}${hash}printf 'manifest\\000'; cat -- "$f" || exit 1; printf '\\000'
else ${emit('no-manifest', 'yes')}; fi
`;
}

/** Stores stdin as `<stage>/manifest.json` (remote/staging.ts), next to the release directory rsync fills. */
export function putManifestScript(root: string, stage: string): string {
  return `s=${q(stagedPath(root, stage))}
mkdir -p -- "$s" && cat > "$s/manifest.json" || exit 1
${emit('stored', 'manifest')}
`;
}

/**
 * The files a host links from its current release, decided there from the two manifests it holds:
 * every file line of the new manifest (`<stage>/manifest.json`) that the previous release's
 * manifest holds byte for byte (the same path, type, mode, size and SHA-256: our manifests are
 * canonical, one entry a line, so equal entries are equal lines), whose mode may be shared (no
 * group or world write bit, no setuid or setgid: plan/strategy.ts linkGuard, tested with division
 * because POSIX awk has no bit operators) and whose path needs no escape in JSON
 * (plan/fleet-send.ts linkablePath: no quote, backslash or control character, so the path is the
 * text between the quotes). The deploying side plans the same list from the same two manifests
 * and compares its digest with this one's; the host's list is only used when they agree.
 * Writes, in the current directory: `link.paths` (one path a line), `link.check` (`<sha256>  <path>`,
 * as `sha256sum -c` reads it) and `link.modes` (`<octal mode> <path>`, as `stat -c '%a %n'` prints it).
 */
export function linkListScript(previousManifest: string, newManifest: string): string {
  // Both are shell words as given (a quoted path, or "$var"), so that the caller chooses how they expand.
  // `true`, not `:`: a failed redirection of a special built-in ends the shell before `|| exit 1` (remote/script.ts).
  return `true > link.paths && true > link.check && true > link.modes || exit 1
awk '
FNR == 1 { f++ }
{ sub(/,$/, "") }
f == 1 { if (index($0, "\\\\") == 0) old[$0] = 1; next }
!($0 in old) { next }
{
  n = split($0, a, "\\"")
  if (n != 17 || a[1] != "{" || a[2] != "path" || a[6] != "type" || a[8] != "file" || a[10] != "mode" || a[12] != "size" || a[14] != "sha256") next
  m = a[11]; gsub(/[:,]/, "", m); m += 0
  if (int(m / 2) % 2 || int(m / 16) % 2 || int(m / 1024) % 2 || int(m / 2048) % 2) next
  print a[4] > "link.paths"
  print a[16] "  " a[4] > "link.check"
  printf "%o %s\\n", m, a[4] > "link.modes"
}' ${previousManifest} ${newManifest} 2>/dev/null || :
`;
}

/**
 * Hardlinks the files the two manifests on the host agree on (linkListScript) from
 * `releases/<previous>` into `<stage>/<id>`, then checks what landed: its bytes against the new
 * manifest's SHA-256 (`sha256sum -c`, or `shasum -a 256 -c`), its mode against the new
 * manifest's mode (`stat`: a hardlink shares its inode's mode, so a file chmod-ed in the previous
 * release after it was made would carry that mode into this one), and its owner against the
 * owner of the previous release's directory, whose files the deploy made: a linked file's mode
 * has no group or world write bit (linkListScript), so only its owner writes it in place, and one
 * chown-ed on the host (to the web server's user, say) must not be shared with the new release.
 * The local engine compares owners with the build's; manifests hold none (it differs per host).
 * And its names: a linked file passes only when its link count is the stage's own name plus the
 * names at the same path in the releases under `releases/` (hidden leftovers not counted), as the
 * local engine rules (act/copy.ts namesAllInReleases). A file a dedup tool or an `ln` gave a name
 * elsewhere would otherwise share the new live release with it, and a write in place there would
 * change the live site. One `find -links +1` pass over `releases/` gives the names (GNU find's
 * `-printf`, else `stat`).
 * Nothing of the plan travels on stdin: the deploying side sent the new manifest already, and the
 * host prints its list's SHA-256 (`link-list`) for the deploying side to compare with its own
 * plan. Then it prints the stored new manifest's SHA-256 (`stored-sha256`), how many linked files passed every check (`checked`) and
 * `<path>: FAILED` for each that did not (`failed`): a few bytes when all is well. A path that is
 * not a regular file there (a symlink put in its place) is removed, so it fails the check and is
 * sent. Nor is a file reached through a symlinked directory linked (cp would follow it, and the
 * release would share an inode with whatever it points to, a shared path's files for one): a
 * listed path under any symlink of the previous release is left out of the linking, fails the check
 * and is sent. (`grep -F` may also match such a prefix after a name ending in a dot: that file is
 * sent too, never wrongly linked.) GNU cp links the list (`cp -P -l --parents`, a symlink linked as
 * one), several times faster than rsync on many small files; where cp lacks --parents (an old
 * BusyBox) or fails, a host-side rsync whose link-dest is its own source links what is left (those
 * already linked stay as they are). Directory modes do not matter here: rsync sends every directory
 * of the build afterwards. A host without sha256sum or shasum, without a `stat` that prints
 * modes, without awk, or whose find cannot test link counts, links nothing and says so (`no-sum`,
 * `no-stat`, `no-awk`, `no-find-links`): every file is sent. (A BSD `stat -f` prints no setuid,
 * setgid or sticky bit in `%Lp`: such files fail the check there and are sent.) LC_ALL=C: the check's OK and FAILED are never translated, and paths
 * are compared as bytes. With `copy` the same files are copied from the current release instead
 * (a release whose before-switch hooks could otherwise write into the live one's inodes), and
 * checked the same way.
 */
export function linkScript(root: string, previous: string, stage: string, id: string, copy = false): string {
  // With `copy` (before-switch hooks will run in the release) the files are copied, not linked,
  // from the current release: a hook writing into one in place then writes into the new release's
  // own file, never into the live one. cp -p keeps mode and times (and owner, as root); GNU cp
  // clones where the filesystem can (reflink=auto is its default since coreutils 9).
  const place = copy
    ? `xargs -0 cp -P -p --parents -t "$s" -- < "$w/link.list" 2>/dev/null ||
rsync -a --from0 --files-from="$w/link.list" ./ "$s/" 1>&2 || ${emit('link-partial', 'yes')}`
    : `xargs -0 cp -P -l --parents -t "$s" -- < "$w/link.list" 2>/dev/null ||
rsync -a --from0 --files-from="$w/link.list" --link-dest="$p" ./ "$s/" 1>&2 || ${emit('link-partial', 'yes')}`;
  return `p=${q(`${root}/releases/${previous}`)}; w=${q(stagedPath(root, stage))}; s="$w"/${q(id)}
m=${q(`${root}/.atomic-deploy/manifests/${previous}.json`)}
LC_ALL=C; export LC_ALL
nl='
'
${PICK_SUM}
[ -n "$sum" ] || { ${emit('no-sum', 'yes')}; exit 0; }
if stat -c '%a %n' / >/dev/null 2>&1; then sf=-c; fmt='%a %u %d %i %h %n'; nfmt='%d %i %n'
elif stat -f '%Lp %N' / >/dev/null 2>&1; then sf=-f; fmt='%Lp %u %d %i %l %N'; nfmt='%d %i %N'
else ${emit('no-stat', 'yes')}; exit 0; fi
o=$(stat "$sf" '%u' -- "$p/.") || exit 1
command -v awk >/dev/null 2>&1 || { ${emit('no-awk', 'yes')}; exit 0; }
find "$p" -prune -links +0 >/dev/null 2>&1 || { ${emit('no-find-links', 'yes')}; exit 0; }
mkdir -p -- "$s" && cd -- "$w" || exit 1
h=$($sum < manifest.json) || exit 1
printf 'stored-sha256\\000%s\\000' "\${h%% *}"
${linkListScript('"$m"', 'manifest.json')}true > link.names || exit 1
h=$($sum < link.paths) || exit 1
printf 'link-list\\000%s\\000' "\${h%% *}"
cd -- "$p" || exit 1
find . -type l 2>/dev/null | sed 's|$|/|' > "$w/link.skip" || exit 1
sed 's|^|./|' < "$w/link.paths" | grep -v -F -f "$w/link.skip" | sed 's|^\\./||' | tr '\\n' '\\000' > "$w/link.list" || exit 1
if [ -s "$w/link.list" ]; then
${place}
fi
cd -- "$s" || exit 1
find . ! -type d ! -type f -exec rm -f -- {} + 2>/dev/null
$sum -c < "$w/link.check" > "$w/link.out" 2>/dev/null
tr '\\n' '\\000' < "$w/link.paths" | xargs -0 stat "$sf" "$fmt" -- > "$w/link.stat" 2>/dev/null
# Every name under releases/ that shares an inode, for the rule below (a name holding a newline is
# left out: it then counts as one elsewhere). GNU find prints them itself, at half the cost of a stat process.
cd -- ${q(`${root}/releases`)} || exit 1
if find . -maxdepth 0 -printf '' 2>/dev/null; then find . -type f -links +1 ! -path "*$nl*" -printf '%D %i %p\\n' > "$w/link.names" 2>/dev/null
else find . -type f -links +1 ! -path "*$nl*" -exec stat "$sf" "$nfmt" -- {} + > "$w/link.names" 2>/dev/null; fi
cd -- "$w" || exit 1
awk -v owner="$o" '
function word() { sp = index(r, " "); x = substr(r, 1, sp - 1); r = substr(r, sp + 1); return x }
FILENAME == "link.out" { if (sub(/: OK$/, "")) ok[$0] = 1; next }
FILENAME == "link.names" { r = substr($0, length($1) + length($2) + 3); if (substr(r, 1, 2) != "./") next; r = substr(r, 3); sp = index(r, "/"); if (sp < 2 || substr(r, 1, 1) == ".") next; names[$1 " " $2 " " substr(r, sp + 1)]++; next }
FILENAME == "link.stat" { r = $0; v = word(); u = word(); d = word(); i = word(); h = word(); if (u == owner && h + 0 == names[d " " i " " r] + 1) got[r] = v; next }
FILENAME == "link.modes" { sp = index($0, " "); want[substr($0, sp + 1)] = substr($0, 1, sp - 1); next }
{ if (($0 in ok) && ($0 in got) && got[$0] == want[$0]) n++; else print $0 ": FAILED" > "link.failed" }
END { print n + 0 > "link.count" }
' link.out link.names link.stat link.modes link.paths || exit 1
printf 'checked\\000%s\\000' "$(cat link.count)"
printf 'failed\\000'
# awk makes link.failed only for a failed check: none, no file (and no inode needed to say so).
[ ! -f link.failed ] || cat link.failed
printf '\\000'
rm -f -- link.paths link.check link.modes link.list link.skip link.out link.names link.stat link.failed link.count
`;
}
