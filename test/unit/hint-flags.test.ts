import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runFlags, withRunFlags } from '../../src/cli/hint-flags.ts';

const SUBCOMMANDS = ['deploy', 'rollback', 'status', 'releases', 'prune', 'unlock', 'verify', 'init'];
const ssh = runFlags({ sshConfig: './ci ssh.conf' });

test('a command on hosts gets the --ssh-config the run was given; a local one does not', () => {
  const hint = 'find out and reconcile on every host of this deploy (recovery needs all of them): atomic-deploy status /srv/app --host web1 --host web2';
  assert.equal(withRunFlags(hint, ssh, SUBCOMMANDS), "find out and reconcile on every host of this deploy (recovery needs all of them): atomic-deploy status --ssh-config './ci ssh.conf' /srv/app --host web1 --host web2");
  const local = 'list releases with: atomic-deploy releases /srv/app; pick one with --to <id>';
  assert.equal(withRunFlags(local, ssh, SUBCOMMANDS), local);
});

test('each command of a hint is judged alone, up to ; ) or the next command', () => {
  const hint = 'deploy the build again (atomic-deploy deploy <source> /srv --host h): every new release gets a manifest; or atomic-deploy verify /srv';
  assert.equal(withRunFlags(hint, ssh, SUBCOMMANDS), "deploy the build again (atomic-deploy deploy --ssh-config './ci ssh.conf' <source> /srv --host h): every new release gets a manifest; or atomic-deploy verify /srv");
});

test('--config and --no-config go to every command, never twice, and not beside the other', () => {
  const conf = runFlags({ config: 'deploy/prod.yaml', sshConfig: 'ssh.conf' });
  assert.equal(withRunFlags('run: atomic-deploy rollback /srv --host a --to v1', conf, SUBCOMMANDS), 'run: atomic-deploy rollback --config deploy/prod.yaml --ssh-config ssh.conf /srv --host a --to v1');
  assert.equal(withRunFlags('then: atomic-deploy deploy --config staging.yaml', conf, SUBCOMMANDS), 'then: atomic-deploy deploy --config staging.yaml');
  assert.equal(withRunFlags('atomic-deploy prune /srv --no-config', conf, SUBCOMMANDS), 'atomic-deploy prune /srv --no-config');
  assert.equal(withRunFlags('atomic-deploy prune /srv', runFlags({ config: false }), SUBCOMMANDS), 'atomic-deploy prune --no-config /srv');
});

test('prose and paths that are no command stay as they are; a rewritten hint is rewritten no further', () => {
  const conf = runFlags({ config: 'c.yaml', sshConfig: 's' });
  for (const text of ['free space in .atomic-deploy/space-reserve', 'atomic-deploy keeps 5 releases', 'the atomic-deploy deployer', 'run atomic-deploy rollback with the same hosts and config as this deploy']) {
    assert.equal(withRunFlags(text, conf, SUBCOMMANDS), text);
  }
  const hint = 'atomic-deploy status /srv --host a; atomic-deploy unlock /srv --host a --force';
  const once = withRunFlags(hint, conf, SUBCOMMANDS);
  assert.equal(once, 'atomic-deploy status --config c.yaml --ssh-config s /srv --host a; atomic-deploy unlock --config c.yaml --ssh-config s /srv --host a --force');
  assert.equal(withRunFlags(once, conf, SUBCOMMANDS), once);
});

test('a run given neither flag changes no hint', () => {
  const hint = 'atomic-deploy status /srv --host a';
  assert.equal(withRunFlags(hint, runFlags({}), SUBCOMMANDS), hint);
});
