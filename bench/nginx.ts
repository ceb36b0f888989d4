// nginx under wrk while `current` is switched: our CLI deploys against the naive unlink + symlink
// (at the deploys' own pace and flat out), BusyBox `ln -sfn`, and our library switch flat out.
// The system test test/system/nginx-deploy.test.ts is the short version of the first two rows.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { layoutOf } from '../src/act/layout.ts';
import { switchCurrent } from '../src/act/switch.ts';
import { cliDeploy, makeSite, switchesUnderLoad, type LoadOptions, type LoadResult } from '../test/harness/deploy-load.ts';
import { startNginx, type NginxServer } from '../test/harness/nginx.ts';
import { busyboxLnSfn, unlinkSymlinkSwap } from '../test/harness/swappers.ts';
import { benchBin } from './bin.ts';
import { describeMachine, runNote } from './lib/env.ts';
import { median } from './lib/measure.ts';
import type { Result } from './lib/report.ts';

interface Row {
  name: string;
  /** What a correct switch must give: 0 non-2xx and 0 foreign bodies (controls: failures expected). */
  control: boolean;
  run: LoadResult;
}

const THREADS = 2;
const CONNECTIONS = 32;

export async function runNginxBench(opts: { quick: boolean; log?: (line: string) => void }): Promise<Result> {
  const log = opts.log ?? ((): void => undefined);
  const deploys = opts.quick ? 4 : 120;
  const flatOutMs = opts.quick ? 1000 : 5000;
  const machine = await describeMachine();
  const bin = benchBin();
  const started = Date.now();
  const site = await makeSite();
  let nginx: NginxServer | undefined;
  const rows: Row[] = [];
  try {
    await cliDeploy(site.builds[0], site.root, { bin });
    nginx = await startNginx({ docroot: path.join(site.root, 'current') });
    const load: Pick<LoadOptions, 'url' | 'bodies' | 'threads' | 'connections'> = {
      url: `${nginx.url}/index.html`,
      bodies: site.bodies,
      threads: THREADS,
      connections: CONNECTIONS,
    };
    const row = async (name: string, control: boolean, o: Omit<LoadOptions, keyof typeof load>): Promise<LoadResult> => {
      const run = await switchesUnderLoad({ ...load, ...o });
      rows.push({ name, control, run });
      log(`nginx: ${name}: ${run.switches} switches, ${run.requests} requests, ${run.non2xx} non-2xx, ${run.foreignBodies} foreign, ${run.socketErrors} socket errors`);
      return run;
    };

    const ours = await row(`our CLI deploy (${deploys} deploys)`, false, {
      switches: deploys,
      switchOnce: (i) => cliDeploy(site.builds[(i + 1) % 2] as string, site.root, { bin }),
    });
    const releases = readdirSync(path.join(site.root, 'releases')).sort();
    const targets = releases.slice(-2).map((id) => `releases/${id}`);
    const alternate = (swap: (root: string, target: string) => Promise<void>) => (i: number) => swap(site.root, targets[i % 2] as string);
    // The same number of switches at the same pace as the deploys: only the way of switching differs.
    const pace = Math.round(median(ours.switchMs));
    await row(`unlink + symlink, ${deploys} switches at the deploys' pace (${pace} ms apart)`, true, {
      switches: deploys,
      paceMs: pace,
      switchOnce: alternate(unlinkSymlinkSwap),
    });
    await row(`unlink + symlink, flat out for ${flatOutMs / 1000} s`, true, { durationMs: flatOutMs, switchOnce: alternate(unlinkSymlinkSwap) });
    await row(`busybox ln -sfn, flat out for ${flatOutMs / 1000} s`, true, { durationMs: flatOutMs, switchOnce: alternate(busyboxLnSfn) });
    const layout = layoutOf(site.root);
    await row(`our library switch, flat out for ${flatOutMs / 1000} s`, false, {
      durationMs: flatOutMs,
      switchOnce: (i) => switchCurrent(layout, path.basename(targets[i % 2] as string), { durable: true }),
    });
  } finally {
    await nginx?.stop();
    await site.cleanup();
  }

  const ours = rows[0]?.run;
  const oursClean = rows.filter((r) => !r.control).every((r) => r.run.non2xx === 0 && r.run.foreignBodies === 0 && r.run.socketErrors === 0);
  const controlsFail = rows.filter((r) => r.control).every((r) => r.run.non2xx > 0);
  const oursRows = rows.filter((r) => !r.control);
  return {
    name: 'nginx',
    title: 'nginx under wrk load during deploys',
    description:
      `Debian's nginx serves \`<root>/current\` on 127.0.0.1 (one worker, \`root <root>/current;\`, no \`open_file_cache\`, so every request resolves the link) ` +
      `while wrk (${THREADS} threads, ${CONNECTIONS} connections) requests \`/index.html\`. The CLI deploys two builds whose pages differ, in turn; the controls switch the same root between the last two releases. ` +
      'A failure is a non-2xx response, a socket error, or a 2xx body that is neither release\'s page.',
    machine,
    quick: opts.quick,
    tables: [
      {
        caption: 'Responses while switching',
        columns: ['switching', 'switches', 'requests', 'non-2xx', 'foreign bodies', 'socket errors', 'seconds'],
        rows: rows.map((r) => [r.name, r.run.switches, r.run.requests, r.run.non2xx, r.run.foreignBodies, r.run.socketErrors, Math.round(r.run.elapsedMs / 100) / 10]),
      },
      {
        caption: 'Targets',
        columns: ['target', 'measured', 'met'],
        rows: [
          ['0 non-2xx and 0 foreign bodies during our switches', oursRows.map((r) => `${r.run.non2xx} + ${r.run.foreignBodies}`).join(', '), oursClean ? 'met' : 'MISSED'],
          [`at least 100 CLI deploys under load${opts.quick ? ' (quick run: fewer)' : ''}`, ours?.switches ?? 0, (ours?.switches ?? 0) >= 100 ? 'met' : 'MISSED'],
          ['the unlink + symlink controls fail in the same run', rows.filter((r) => r.control).map((r) => r.run.non2xx).join(', '), controlsFail ? 'met' : 'MISSED'],
        ],
      },
    ],
    charts: [],
    notes: [
      ours ? `A CLI deploy under this load took ${Math.round(median(ours.switchMs))} ms (median; min ${Math.round(Math.min(...ours.switchMs))}, max ${Math.round(Math.max(...ours.switchMs))}), most of it Node starting and loading the CLI.` : '',
      'The paced control makes as many switches as the deploys, as far apart: the difference from our row is only the way `current` is replaced.',
      'Long loads are several wrk runs back to back; each run is started and warmed up before the next switch and ended (SIGINT, wrk still reports) only between switches, so every switch happened under load.',
      'nginx logs at level `crit` only; the 404s of the controls are counted by wrk, not from the log.',
      runNote(started, machine),
    ].filter((n) => n !== ''),
  };
}
