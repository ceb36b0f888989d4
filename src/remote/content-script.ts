/**
 * The POSIX sh programs that move release content by manifest on a target: read a release's
 * manifest, receive the new one, and hardlink then check the files the plan takes from the
 * previous release. Output uses the same NUL-framed `tag`, `value` pairs as remote/script.ts.
 */
import { shQuote as q } from './shell.ts';
import { stagedPath } from './staging.ts';

/** One `tag`, `value` frame with a fixed value. */
const emit = (tag: string, value: string): string => `printf '%s\\000%s\\000' ${q(tag)} ${q(value)}`;

/**
 * Prints `<root>/.atomic-deploy/manifests/<id>.json` as a `manifest` frame, or a `no-manifest`
 * frame. With `hashOnly` (the deploy already holds a manifest with the digest this host's record
 * names) it prints the file's SHA-256 as a `manifest-sha256` frame instead, where the host has
 * sha256sum or shasum: a few bytes instead of the whole manifest.
 */
export function readManifestScript(root: string, id: string, options: { hashOnly?: boolean } = {}): string {
  const hash = options.hashOnly
    ? `if command -v sha256sum >/dev/null 2>&1; then h=$(sha256sum < "$f") || exit 1
elif command -v shasum >/dev/null 2>&1; then h=$(shasum -a 256 < "$f") || exit 1
else h=; fi
if [ -n "$h" ]; then printf 'manifest-sha256\\000%s\\000' "\${h%% *}"; exit 0; fi
`
    : '';
  return `f=${q(`${root}/.atomic-deploy/manifests/${id}.json`)}
if [ -f "$f" ] && [ ! -h "$f" ]; then ${hash}printf 'manifest\\000'; cat -- "$f" || exit 1; printf '\\000'
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
 * Reads a check list on stdin (`<sha256>  <path>` lines, plan/fleet-send.ts checkList), hardlinks
 * each listed file from `releases/<previous>` into `<stage>/<id>`, then checks what landed against
 * those hashes with `sha256sum -c` (or `shasum -a 256 -c`) on the host. It prints how many files
 * matched as a `checked` frame and the rest of the check's lines (`<path>: FAILED ...`) as a
 * `failed` frame: a few bytes when all is well, instead of a hash per file for this machine to
 * read. A path that is not a regular file there (a symlink put in its place) is removed, so it
 * fails the check and is sent. Nor is a file reached through a symlinked directory linked (cp
 * would follow it, and the release would share an inode with whatever it points to, a shared
 * path's files for one): a listed path under any symlink of the previous release is left out of
 * the list, fails the check and is sent. (`grep -F` may also match such a prefix after a name
 * ending in a dot: that file is sent too, never wrongly linked.) GNU cp links the list
 * (`cp -P -l --parents`, a symlink linked as one), several times faster than rsync on many small
 * files; where cp lacks --parents (an old BusyBox) or fails, a host-side rsync whose link-dest is its
 * own source links what is left (those already linked stay as they are). Directory modes do not matter here: rsync sends every directory of
 * the build afterwards. LC_ALL=C: the check's OK and FAILED are never translated, and the 66
 * bytes before each path are cut as bytes.
 */
export function linkScript(root: string, previous: string, stage: string, id: string): string {
  return `p=${q(`${root}/releases/${previous}`)}; w=${q(stagedPath(root, stage))}; s="$w"/${q(id)}
LC_ALL=C; export LC_ALL
mkdir -p -- "$s" && cat > "$w/link.check" || exit 1
cd -- "$p" || exit 1
find . -type l 2>/dev/null | sed 's|$|/|' > "$w/link.skip" || exit 1
sed 's/^.\\{66\\}//; s|^|./|' < "$w/link.check" | grep -v -F -f "$w/link.skip" | sed 's|^\\./||' | tr '\\n' '\\000' > "$w/link.list" || exit 1
xargs -0 cp -P -l --parents -t "$s" -- < "$w/link.list" 2>/dev/null ||
rsync -a --from0 --files-from="$w/link.list" --link-dest="$p" ./ "$s/" 1>&2 || ${emit('link-partial', 'yes')}
cd -- "$s" || exit 1
find . ! -type d ! -type f -exec rm -f -- {} + 2>/dev/null
if command -v sha256sum >/dev/null 2>&1; then sum='sha256sum -c'
elif command -v shasum >/dev/null 2>&1; then sum='shasum -a 256 -c'
else ${emit('no-sum', 'yes')}; rm -f -- "$w/link.list" "$w/link.check" "$w/link.skip"; exit 0; fi
$sum < "$w/link.check" > "$w/link.out" 2>/dev/null
printf 'checked\\000%s\\000' "$(grep -c ': OK$' "$w/link.out")"
printf 'failed\\000'
grep -v ': OK$' "$w/link.out"
printf '\\000'
rm -f -- "$w/link.list" "$w/link.check" "$w/link.out" "$w/link.skip"
`;
}
