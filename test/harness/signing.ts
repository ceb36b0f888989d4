// A signed artifact as a CI job makes one: a tar.gz of a small build, an ed25519 key, and the
// artifact's OpenSSH signature (`ssh-keygen -Y sign -n atomic-deploy`) beside it.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from './cli.ts';
import { makeSource } from './invariants.ts';

export interface SignedArtifact {
  dir: string;
  artifact: string;
  /** `<artifact>.sig`. */
  signature: string;
  /** The key's public line (`ssh-ed25519 AAAA… ci`), for an allowed_signers file. */
  pub: string;
  /** An empty directory to deploy into. */
  root: string;
}

export function signedArtifact(t: { after(fn: () => void): void }): SignedArtifact {
  const dir = tempDir(t);
  const src = makeSource(path.join(dir, 'src'), 'v1');
  const artifact = path.join(dir, 'site.tgz');
  execFileSync('tar', ['-czf', artifact, '-C', src, '.']);
  const key = path.join(dir, 'ci');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ci', '-f', key]);
  execFileSync('ssh-keygen', ['-q', '-Y', 'sign', '-f', key, '-n', 'atomic-deploy', artifact]);
  const root = path.join(dir, 'root');
  fs.mkdirSync(root);
  return { dir, artifact, signature: `${artifact}.sig`, pub: fs.readFileSync(`${key}.pub`, 'utf8').trim(), root };
}
