// Our own rows of the race table: the library's switch of `current`, and whole CLI deploys.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { layoutOf } from '../src/act/layout.ts';
import { switchCurrent } from '../src/act/switch.ts';
import { runCli } from '../test/harness/cli.ts';
import { benchBin } from './bin.ts';
import type { Swapper } from '../test/harness/swappers.ts';
import type { RaceRow } from './race.ts';

export interface OurRaceRows {
  rows: RaceRow[];
  /** Removes the build directories the CLI row deploys from. */
  cleanup(): Promise<void>;
}

/** The library switch exactly as a deploy calls it, fsync of the root included. */
export const librarySwitch: Swapper = async (root, target) => {
  await switchCurrent(layoutOf(root), basename(target), { durable: true });
};

/**
 * A switch by a full CLI deploy: `releases/<id>` of the race root stands for "the build whose
 * index.html reads release-<id>", deployed from a build directory outside the root.
 */
export async function ourRaceRows(opts: { quick: boolean }): Promise<OurRaceRows> {
  const bin = benchBin();
  const builds = await mkdtemp(join(tmpdir(), 'atomic-deploy-race-builds-'));
  const sourceOf = async (id: string): Promise<string> => {
    const dir = join(builds, id);
    // The same bytes makeRaceRoot writes, so the reader accepts both releases and nothing else.
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'index.html'), `release-${id}\n`);
    return dir;
  };
  const made = new Map<string, Promise<string>>();
  const cliDeploy: Swapper = async (root, target) => {
    const id = basename(target);
    let src = made.get(id);
    if (src === undefined) {
      src = sourceOf(id);
      made.set(id, src);
    }
    const r = await runCli(['deploy', await src, root, '--quiet'], { bin });
    if (r.code !== 0) throw new Error(`atomic-deploy deploy exited ${String(r.code)}: ${r.stderr.trim()}`);
  };
  return {
    rows: [
      { name: 'library switch', swap: librarySwitch },
      // A deploy spawns Node and copies; a count, not only the row's time, makes the zero mean something.
      { name: 'CLI deploy', swap: cliDeploy, minSwitches: opts.quick ? 4 : 100, maxMs: opts.quick ? 60_000 : 600_000 },
    ],
    cleanup: () => rm(builds, { recursive: true, force: true }),
  };
}

