// docs/ci.md's deploy steps, run verbatim: the GitHub Actions steps "Deploy to one host" and
// "Deploy to the fleet" and the GitLab jobs deploy-one-host and deploy-fleet are read from the
// markdown, and each runs under bash against sshd hosts in network namespaces, the artifact
// signed as the docs say and served by a loopback HTTP server. A doc that drifts from the CLI fails here.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { serve } from '../harness/archives.ts';
import { BIN, tempDir } from '../harness/cli.ts';
import { createFleet, type Fleet } from '../harness/fleet.ts';
import { makeSource, manifestDiff, manifestOf, sameManifest } from '../harness/invariants.ts';

const DOC = fileURLToPath(new URL('../../docs/ci.md', import.meta.url));

interface Steps {
  jobs: Record<string, { 'timeout-minutes'?: number; steps?: { name?: string; run?: string }[] }>;
}
type GitLab = Record<string, { script?: string[]; timeout?: string }>;

/** The deploy scripts of docs/ci.md, by name, exactly as written there. */
function deployScripts(): Record<string, string> {
  const blocks = [...fs.readFileSync(DOC, 'utf8').matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
  assert.equal(blocks.length, 2, 'docs/ci.md holds one GitHub and one GitLab YAML block');
  const gh = parse(blocks[0] ?? '') as Steps;
  const gl = parse(blocks[1] ?? '') as GitLab;
  // A download bounds a connection's silence, not the whole transfer: the job's timeout does
  // (docs/ci.md says why), so both deploy jobs set one shorter than the runners' defaults.
  const minutes = gh.jobs.deploy?.['timeout-minutes'];
  assert.ok(typeof minutes === 'number' && minutes > 0 && minutes < 360, `GitHub deploy job timeout-minutes: ${String(minutes)}`);
  assert.match(gl['.deploy']?.timeout ?? '', /^\d+m$/, 'GitLab .deploy timeout');
  const step = (name: string): string => {
    const found = gh.jobs.deploy?.steps?.find((s) => s.name === name)?.run;
    assert.ok(found, `GitHub step ${name}`);
    return found;
  };
  const job = (name: string): string => {
    const script = gl[name]?.script;
    assert.ok(script && script.length > 0, `GitLab job ${name}`);
    return script.join('\n');
  };
  return {
    'github one host': step('Deploy to one host'),
    'github fleet': step('Deploy to the fleet'),
    'gitlab one host': job('deploy-one-host'),
    'gitlab fleet': job('deploy-fleet'),
  };
}

/** Runs a script under `bash -e` without blocking this process: the artifact server lives here. */
function bash(script: string, cwd: string, env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-e', '-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

let fleet: Fleet;
before(async () => {
  fleet = await createFleet(3, { prefix: 'aci' });
});
after(async () => {
  await fleet?.destroy();
});

void test("docs/ci.md's deploy steps deploy the signed artifact to one host and to the fleet", async (t) => {
  const scripts = deployScripts();
  const dir = tempDir(t);
  const src = makeSource(path.join(dir, 'dist'), 'v1');
  const work = path.join(dir, 'work');
  fs.mkdirSync(path.join(work, 'deploy'), { recursive: true });
  // The build job, as docs/ci.md signs: a key, its allowed signer, the signature and the checksum.
  execFileSync('tar', ['-czf', path.join(work, 'dist.tar.gz'), '-C', src, '.']);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ci@example.com', '-f', path.join(dir, 'ci_signing_key')]);
  fs.writeFileSync(path.join(work, 'deploy', 'allowed_signers'), `ci@example.com namespaces="atomic-deploy" ${fs.readFileSync(path.join(dir, 'ci_signing_key.pub'), 'utf8')}`);
  execFileSync('ssh-keygen', ['-q', '-Y', 'sign', '-f', path.join(dir, 'ci_signing_key'), '-n', 'atomic-deploy', path.join(work, 'dist.tar.gz')]);
  fs.writeFileSync(path.join(work, 'dist.tar.gz.sha256'), execFileSync('sha256sum', ['dist.tar.gz'], { cwd: work }));
  const server = await serve(t, work, 'ok');
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, 'atomic-deploy'), `#!/bin/sh\nexec '${process.execPath}' '${BIN}' "$@"\n`, { mode: 0o755 });
  const [one, ...rest] = fleet.hosts;
  assert.ok(one && rest.length > 0);
  const env = {
    ...process.env,
    PATH: `${bin}:${process.env.PATH ?? ''}`,
    NO_COLOR: '1',
    ATOMIC_DEPLOY_SSH_CONFIG: fleet.sshConfigPath,
    ARTIFACT_URL: server.url('dist.tar.gz'),
    DEPLOY_HOST: one.alias,
    DEPLOY_FLEET: fleet.hosts.map((h) => h.alias).join(' '),
  };
  const want = manifestOf(src);
  const releasesOn = (h: Fleet['hosts'][number]): string[] => {
    try {
      return fs.readdirSync(path.join(h.srvDir, 'www', 'app', 'releases'));
    } catch {
      return [];
    }
  };
  for (const [name, script] of Object.entries(scripts)) {
    const counts = fleet.hosts.map((h) => releasesOn(h).length);
    const r = await bash(script, work, env);
    assert.equal(r.status, 0, `${name}:\n${script}\n${r.stdout}\n${r.stderr}`);
    const targets: Fleet['hosts'] = name.endsWith('one host') ? [one] : fleet.hosts;
    for (const [i, h] of fleet.hosts.entries()) {
      const expected = (counts[i] ?? 0) + (targets.includes(h) ? 1 : 0);
      assert.equal(releasesOn(h).length, expected, `${name}: releases on ${h.alias}`);
      if (!targets.includes(h)) continue;
      const got = manifestOf(path.join(h.srvDir, 'www', 'app', 'current'));
      assert.ok(sameManifest(got, want), `${name} on ${h.alias}: ${manifestDiff(got, want)}`);
    }
  }
  // Control: the same step with a checksum that does not match deploys nothing anywhere.
  fs.writeFileSync(path.join(work, 'dist.tar.gz.sha256'), `${'0'.repeat(64)}  dist.tar.gz\n`);
  const counts = fleet.hosts.map((h) => releasesOn(h).length);
  const bad = await bash(scripts['github fleet'] ?? '', work, env);
  assert.equal(bad.status, 2, bad.stderr);
  assert.deepEqual(fleet.hosts.map((h) => releasesOn(h).length), counts);
});
