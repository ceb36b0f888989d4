// docs/serving.md's configurations, taken from the markdown as they stand, under load: nginx +
// php-fpm 8.2 with OPcache on and validate_timestamps=0, >= 30 deploys of two PHP builds under
// wrk, with a control that runs without the documented setup and must serve stale responses;
// and the static nginx configuration.
// test-runner: alone (nginx and php-fpm under wrk load)
import assert from 'node:assert/strict';
import { request, Agent } from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runCli, tempDir, writeTree } from '../harness/cli.ts';
import { docsConfig, substitute } from '../harness/docs-config.ts';
import { startNginx, type NginxServer } from '../harness/nginx.ts';
import { startPhpFpm, type PhpFpm } from '../harness/php-fpm.ts';
import { runWrk } from '../harness/wrk.ts';

const DEPLOYS = 30;

/** index.php requires lib.php; both print their build's mark, so a mixed response shows. */
function phpBuild(dir: string, mark: string): string {
  return writeTree(dir, {
    'index.php': `<?php\nrequire __DIR__ . '/lib.php';\necho 'index:${mark} ', lib_mark(), "\\n";\n`,
    'lib.php': `<?php\nfunction lib_mark() { return 'lib:${mark}'; }\n`,
    'slow.php': `<?php\nusleep(2000000);\necho 'slow ${mark}', "\\n";\n`,
    'opcache.php': `<?php\necho opcache_get_status(false)['opcache_enabled'] ? 'on' : 'off', "\\n";\n`,
  });
}

interface Sample {
  start: number;
  end: number;
  status: number;
  body: string;
}

function get(agent: Agent, port: number, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: urlPath, agent, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** One request after another until stopped, each with its start and end time. */
function checker(port: number, stop: AbortSignal): Promise<Sample[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  return (async () => {
    const samples: Sample[] = [];
    while (!stop.aborted) {
      const start = performance.now();
      try {
        const r = await get(agent, port, '/index.php');
        samples.push({ start, end: performance.now(), ...r });
      } catch (error) {
        samples.push({ start, end: performance.now(), status: 0, body: String(error) });
      }
    }
    agent.destroy();
    return samples;
  })();
}

interface DeployMark {
  mark: string;
  started: number;
  returned: number;
}

/** Alternates the two builds; each deploy must succeed. */
async function deployRounds(root: string, builds: Record<string, string>, rounds: number, extra: readonly string[]): Promise<DeployMark[]> {
  const done: DeployMark[] = [];
  for (let i = 0; i < rounds; i++) {
    const mark = i % 2 === 0 ? 'B' : 'A';
    const started = performance.now();
    const r = await runCli(['deploy', builds[mark] as string, root, '--no-fsync', '--quiet', ...extra]);
    assert.equal(r.code, 0, r.stderr);
    done.push({ mark, started, returned: performance.now() });
    // A moment between deploys, so that requests start after one returned and before the next.
    await sleep(300);
  }
  return done;
}

/** Requests that started after a deploy returned and before the next one started, served by another build. */
function staleAfterDeploys(samples: readonly Sample[], deploys: readonly DeployMark[]): Sample[] {
  const wrong: Sample[] = [];
  deploys.forEach((d, i) => {
    const until = deploys[i + 1]?.started ?? Infinity;
    for (const s of samples) if (s.start >= d.returned && s.end <= until && s.body !== `index:${d.mark} lib:${d.mark}`) wrong.push(s);
  });
  return wrong;
}

async function phpSite(t: { after(fn: () => Promise<void> | void): void }, documented: boolean) {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  const builds = { A: phpBuild(path.join(dir, 'A'), 'A'), B: phpBuild(path.join(dir, 'B'), 'B') };
  const fpm: PhpFpm = await startPhpFpm();
  t.after(() => fpm.stop());
  const first = await runCli(['deploy', builds.A, root, '--no-fsync', '--quiet']);
  assert.equal(first.code, 0, first.stderr);
  let server = substitute(docsConfig('nginx-php'), [
    ['listen 80;', 'listen 127.0.0.1:PORT;'],
    ['/srv/www/shop', root],
    ['unix:/run/php/php8.2-fpm.sock', `unix:${fpm.socket}`],
  ]);
  // The control: what most examples show, SCRIPT_FILENAME and DOCUMENT_ROOT through `current`.
  if (!documented) server = substitute(server, [['$realpath_root', '$document_root']]);
  const nginx: NginxServer = await startNginx({ docroot: root, server: (port) => server.replace('PORT', String(port)) });
  t.after(() => nginx.stop());
  return { root, builds, fpm, nginx };
}

void test(`nginx + php-fpm as documented: ${DEPLOYS} deploys under wrk, 0 non-2xx, 0 mixed, every request after a deploy served by the new build`, async (t) => {
  const site = await phpSite(t, true);
  const port = site.nginx.port;
  assert.deepEqual(await get(new Agent(), port, '/opcache.php'), { status: 200, body: 'on' }, 'OPcache must be on');
  assert.deepEqual(await get(new Agent(), port, '/index.php'), { status: 200, body: 'index:A lib:A' });

  const stop = new AbortController();
  const load = runWrk({ url: `${site.nginx.url}/index.php`, durationSec: 110, threads: 1, connections: 4, expectBodies: ['index:A lib:A', 'index:B lib:B'], signal: stop.signal });
  const samples = checker(port, stop.signal);
  let deploys: DeployMark[];
  try {
    deploys = await deployRounds(site.root, site.builds, DEPLOYS, ['--reload-php-fpm', site.fpm.pidFile]);
  } finally {
    stop.abort();
  }
  const wrk = await load;
  const seen = await samples;
  assert.equal(deploys.length, DEPLOYS);
  assert.ok(wrk.requests > 1000, `wrk made only ${wrk.requests} requests`);
  assert.equal(wrk.non2xx, 0, wrk.raw);
  assert.equal(wrk.socketErrors, 0, wrk.raw);
  assert.equal(wrk.foreignBodies, 0, `mixed or foreign responses under wrk:\n${wrk.raw}`);
  assert.ok(seen.length > 200, `the checker made only ${seen.length} requests`);
  assert.deepEqual(seen.filter((s) => s.status !== 200 || !/^index:(A|B) lib:\1$/.test(s.body)), [], 'non-200 or mixed responses');
  const covered = seen.filter((s) => deploys.some((d, i) => s.start >= d.returned && s.end <= (deploys[i + 1]?.started ?? Infinity))).length;
  assert.ok(covered > 100, `only ${covered} requests fell between deploys`);
  assert.deepEqual(staleAfterDeploys(seen, deploys), [], 'a request that started after a deploy returned was served by the old build');
});

void test('control: the same load through current ($document_root) without the reload serves the old build after deploys', async (t) => {
  const site = await phpSite(t, false);
  const port = site.nginx.port;
  assert.deepEqual(await get(new Agent(), port, '/opcache.php'), { status: 200, body: 'on' });
  const stop = new AbortController();
  const load = runWrk({ url: `${site.nginx.url}/index.php`, durationSec: 110, threads: 1, connections: 4, signal: stop.signal });
  const samples = checker(port, stop.signal);
  let deploys: DeployMark[];
  try {
    deploys = await deployRounds(site.root, site.builds, 6, []);
  } finally {
    stop.abort();
  }
  await load;
  const seen = await samples;
  const wrong = staleAfterDeploys(seen, deploys);
  assert.ok(wrong.length > 0, `the control served no stale or mixed response in ${seen.length} requests: it proves nothing`);
  // Stale, not broken: each wrong answer is a whole build, the one compiled first.
  assert.ok(wrong.every((s) => s.status === 200 && /^index:(A|B) lib:\1$/.test(s.body)), JSON.stringify(wrong.slice(0, 3)));
});

void test(`nginx static as documented: ${DEPLOYS} deploys under wrk, 0 non-2xx, only whole builds`, async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  const builds = { A: writeTree(path.join(dir, 'A'), { 'index.html': 'build A\n' }), B: writeTree(path.join(dir, 'B'), { 'index.html': 'build B\n' }) };
  assert.equal((await runCli(['deploy', builds.A, root, '--no-fsync', '--quiet'])).code, 0);
  const server = substitute(docsConfig('nginx-static'), [
    ['listen 80;', 'listen 127.0.0.1:PORT;'],
    ['/srv/www/shop', root],
  ]);
  const nginx = await startNginx({ docroot: root, server: (port) => server.replace('PORT', String(port)) });
  t.after(() => nginx.stop());
  const stop = new AbortController();
  const load = runWrk({ url: `${nginx.url}/`, durationSec: 110, threads: 1, connections: 8, expectBodies: ['build A', 'build B'], signal: stop.signal });
  try {
    for (let i = 0; i < DEPLOYS; i++) {
      const r = await runCli(['deploy', i % 2 === 0 ? builds.B : builds.A, root, '--no-fsync', '--quiet']);
      assert.equal(r.code, 0, r.stderr);
    }
  } finally {
    stop.abort();
  }
  const wrk = await load;
  assert.ok(wrk.requests > 1000, wrk.raw);
  assert.equal(wrk.non2xx, 0, wrk.raw);
  assert.equal(wrk.socketErrors, 0, wrk.raw);
  assert.equal(wrk.foreignBodies, 0, wrk.raw);
});

/** A slow request in flight while a deploy reloads php-fpm: its answer, and whether it came before the deploy returned. */
async function slowRequestDuringReload(t: { after(fn: () => Promise<void> | void): void }) {
  const site = await phpSite(t, true);
  let answeredAt = Infinity;
  const slow = get(new Agent(), site.nginx.port, '/slow.php').finally(() => (answeredAt = performance.now()));
  await sleep(500);
  const deploy = await runCli(['deploy', site.builds.B, site.root, '--no-fsync', '--reload-php-fpm', site.fpm.pidFile]);
  const returnedAt = performance.now();
  return { answer: await slow.catch((error: unknown) => ({ status: 0, body: String(error) })), deploy, answeredBeforeReturn: answeredAt <= returnedAt };
}

void test('--reload-php-fpm lets a request in flight finish, and the reload waits for it', async (t) => {
  const { answer, deploy, answeredBeforeReturn } = await slowRequestDuringReload(t);
  assert.equal(deploy.code, 0, deploy.stderr);
  assert.match(deploy.stdout, /\[reload-php-fpm\] sent SIGUSR2 to php-fpm master \d+; 4 workers finish their requests/);
  assert.deepEqual(answer, { status: 200, body: 'slow A' });
  assert.ok(answeredBeforeReturn, 'the deploy returned while an old worker was still serving');
});
