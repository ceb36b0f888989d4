// The ssh config file a fleet command would pass to `ssh -F`, judged before any connection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sshConfigProblem } from '../../src/remote/ssh.ts';

void test('an ssh config file is one ssh can open: /dev/null and a readable file pass; a missing path or a directory does not', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ssh-config-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'ssh_config');
  fs.writeFileSync(file, 'Host web1\n  HostName 10.0.0.1\n');
  const saved = process.env.ATOMIC_DEPLOY_SSH_CONFIG;
  t.after(() => (saved === undefined ? delete process.env.ATOMIC_DEPLOY_SSH_CONFIG : (process.env.ATOMIC_DEPLOY_SSH_CONFIG = saved)));
  delete process.env.ATOMIC_DEPLOY_SSH_CONFIG;
  assert.equal(sshConfigProblem({}), undefined, 'no file: ssh reads ~/.ssh/config as usual');
  assert.equal(sshConfigProblem({ configFile: '/dev/null' }), undefined);
  assert.equal(sshConfigProblem({ configFile: file }), undefined);
  assert.equal(sshConfigProblem({ configFile: path.join(dir, 'nope') })?.problem, `--ssh-config ${path.join(dir, 'nope')}: no such file`);
  assert.equal(sshConfigProblem({ configFile: dir })?.problem, `--ssh-config ${dir}: is a directory, not an ssh config file`);
  process.env.ATOMIC_DEPLOY_SSH_CONFIG = path.join(dir, 'gone');
  assert.equal(sshConfigProblem({})?.problem, `ATOMIC_DEPLOY_SSH_CONFIG=${path.join(dir, 'gone')}: no such file`);
  assert.equal(sshConfigProblem({ configFile: file }), undefined, 'the flag wins over the environment');
});
