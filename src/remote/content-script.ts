/**
 * The POSIX sh programs that move release content by manifest on a target: read a release's
 * manifest, receive the new one, and hardlink then re-hash the files the plan takes from the
 * previous release. Output uses the same NUL-framed `tag`, `value` pairs as remote/script.ts.
 */
import { shQuote as q } from './shell.ts';
import { stagedPath } from './staging.ts';

/** One `tag`, `value` frame with a fixed value. */
const emit = (tag: string, value: string): string => `printf '%s\\000%s\\000' ${q(tag)} ${q(value)}`;

/** Prints `<root>/.atomic-deploy/manifests/<id>.json` as a `manifest` frame, or a `no-manifest` frame. */
export function readManifestScript(root: string, id: string): string {
  return `f=${q(`${root}/.atomic-deploy/manifests/${id}.json`)}
if [ -f "$f" ] && [ ! -h "$f" ]; then printf 'manifest\\000'; cat -- "$f" || exit 1; printf '\\000'
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
 * Reads a NUL-separated list of files on stdin, hardlinks each from `releases/<previous>` into
 * `<stage>/<id>` (a host-side rsync whose link-dest is its own source, so every file listed
 * becomes a link), then hashes what landed and prints it as a `sums` frame. A path that is not a
 * regular file there (a symlink put in its place) is removed, so it hashes as missing and is sent.
 */
export function linkScript(root: string, previous: string, stage: string, id: string): string {
  return `p=${q(`${root}/releases/${previous}`)}; w=${q(stagedPath(root, stage))}; s="$w"/${q(id)}
mkdir -p -- "$s" && cat > "$w/link.list" || exit 1
cd -- "$p" || exit 1
rsync -a --from0 --files-from="$w/link.list" --link-dest="$p" ./ "$s/" 1>&2 || ${emit('link-partial', 'yes')}
cd -- "$s" || exit 1
find . ! -type d ! -type f -exec rm -f -- {} + 2>/dev/null
if command -v sha256sum >/dev/null 2>&1; then sum='sha256sum --'
elif command -v shasum >/dev/null 2>&1; then sum='shasum -a 256 --'
else ${emit('no-sum', 'yes')}; rm -f -- "$w/link.list"; exit 0; fi
printf 'sums\\000'
xargs -0 $sum < "$w/link.list" 2>/dev/null
printf '\\000'
rm -f -- "$w/link.list"
`;
}
