/**
 * OpenSSH signatures of an artifact (`ssh-keygen -Y sign -n atomic-deploy`), checked with the
 * system ssh-keygen: the signer is looked up first (an unknown key fails before anything is
 * written), then the artifact's bytes are fed to `ssh-keygen -Y verify` as they stream in.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { makeScratchDir } from './scratch.ts';
import { DeployError, errnoOf } from '../errors.ts';
import { isUrlSource, redactUrl } from '../plan/archive.ts';
import { openDownload, type DownloadOptions } from './download.ts';
import { fileKindOf } from './read.ts';

export const SIGNATURE_NAMESPACE = 'atomic-deploy';

export interface SignatureCheck {
  principal: string;
  /** Feeds the artifact's bytes in order; resolves when ssh-keygen took them. */
  write(chunk: Buffer): Promise<void>;
  /** After the last byte: throws SIGNATURE_INVALID unless ssh-keygen verified it. */
  finish(): Promise<void>;
  /** Stops the check and removes its temp files (always call). */
  dispose(): void;
}

function invalid(message: string, hint?: string): DeployError {
  return new DeployError('SIGNATURE_INVALID', message, { hint: hint ?? 'sign the artifact with: ssh-keygen -Y sign -f <key> -n atomic-deploy <artifact>' });
}

/**
 * ssh-keygen's most telling line (its stderr names the cause; stdout only says "Could not verify
 * signature."), without carriage returns, and the hint that fits it.
 */
export function sshKeygenReason(stderr: string, stdout: string): { reason: string; hint: string | undefined } {
  const lines = `${stderr}\n${stdout}`.split(/\r?\n|\r/).map((l) => l.trim()).filter((l) => l !== '' && !/^(Could not verify signature\.?|No principal matched\.?)$/.test(l));
  const reason = lines[0] ?? '';
  if (/namespace/i.test(reason)) return { reason, hint: `sign with -n ${SIGNATURE_NAMESPACE}, and allow the key for it in the allowed signers file: namespaces="${SIGNATURE_NAMESPACE}"` };
  if (/expired|not yet valid/i.test(reason)) return { reason, hint: 'the valid-before/valid-after of that key in the allowed signers file excludes now: renew the entry or sign with a current key' };
  return { reason, hint: undefined };
}

/** An SSH signature is a few hundred bytes; anything past this is not one (and is not read whole). */
export const MAX_SIGNATURE_BYTES = 64 * 1024;

function tooLarge(source: string): DeployError {
  return invalid(`${redactUrl(source)} is too large to be an SSH signature (over ${MAX_SIGNATURE_BYTES / 1024} KiB)`, 'give the .sig file that ssh-keygen -Y sign wrote next to the artifact');
}

async function readSignature(source: string, download: DownloadOptions): Promise<Buffer> {
  if (isUrlSource(source)) {
    const dl = await openDownload(source, download);
    const parts: Buffer[] = [];
    let size = 0;
    for await (const chunk of dl.chunks) {
      size += chunk.length;
      if (size > MAX_SIGNATURE_BYTES) throw tooLarge(source);
      parts.push(chunk);
    }
    return Buffer.concat(parts);
  }
  return readSignatureFile(source, download);
}

/**
 * A signature file, or a pipe (`/dev/stdin`, a shell's `<(...)`, a named FIFO). Opened without
 * blocking: a FIFO that no one writes would otherwise hold the main thread for good, deaf to
 * SIGTERM. A pipe is read as a socket is, and given up when it stays silent for the download
 * timeout; a device, a directory or a socket is refused; at most MAX_SIGNATURE_BYTES are read.
 */
async function readSignatureFile(source: string, download: DownloadOptions): Promise<Buffer> {
  let fd: number;
  try {
    fd = fs.openSync(source, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (error) {
    throw new DeployError('INVALID_SOURCE', `cannot read the signature ${source}: ${errnoOf(error) ?? String(error)}`, { cause: error, hint: 'give the .sig file that ssh-keygen -Y sign wrote next to the artifact' });
  }
  let stat: fs.Stats;
  try {
    stat = fs.fstatSync(fd);
    if (stat.isFile()) {
      const buffer = Buffer.alloc(MAX_SIGNATURE_BYTES + 1);
      let size = 0;
      for (let n = -1; n !== 0 && size < buffer.length; size += n) n = fs.readSync(fd, buffer, size, buffer.length - size, null);
      if (size > MAX_SIGNATURE_BYTES) throw tooLarge(source);
      fs.closeSync(fd);
      return buffer.subarray(0, size);
    }
  } catch (error) {
    fs.closeSync(fd);
    if (error instanceof DeployError) throw error;
    throw new DeployError('INVALID_SOURCE', `cannot read the signature ${source}: ${errnoOf(error) ?? String(error)}`, { cause: error });
  }
  if (!stat.isFIFO()) {
    fs.closeSync(fd);
    throw invalid(`the signature ${source} is ${fileKindOf(stat)}, not a signature file`, 'give the .sig file that ssh-keygen -Y sign wrote next to the artifact');
  }
  return readPipe(source, fd, download);
}

function readPipe(source: string, fd: number, download: DownloadOptions): Promise<Buffer> {
  const pipe = new net.Socket({ fd, readable: true, writable: false });
  return new Promise<Buffer>((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const stop = (error: Error | undefined): void => {
      download.signal?.removeEventListener('abort', onAbort);
      pipe.destroy();
      if (error) reject(error);
      else resolve(Buffer.concat(parts));
    };
    const onAbort = (): void => stop(download.signal?.reason instanceof Error ? download.signal.reason : new Error('interrupted'));
    if (download.signal?.aborted) return onAbort();
    download.signal?.addEventListener('abort', onAbort, { once: true });
    pipe.setTimeout(download.timeoutMs, () =>
      stop(invalid(`the signature pipe ${source} sent nothing for ${download.timeoutMs / 1000} s`, 'write the signature into the pipe and close it, or give the .sig file itself (--download-timeout sets the wait)')),
    );
    pipe.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_SIGNATURE_BYTES) return stop(tooLarge(source));
      parts.push(chunk);
    });
    pipe.on('end', () => stop(undefined));
    pipe.on('error', (error) => stop(new DeployError('INVALID_SOURCE', `cannot read the signature ${source}: ${errnoOf(error) ?? error.message}`, { cause: error })));
  });
}

/**
 * The armored signature with LF line ends and no byte order mark: a .sig file that went through a
 * Windows checkout (git's autocrlf) or editor has CRLF ends or a BOM, which ssh-keygen reads as no
 * signature ("missing header"), and the signer then looked unknown. The armor is text around the
 * base64 of the signature: its line ends carry nothing that is checked.
 */
export function armorOnly(sig: Buffer): Buffer {
  const bom = sig.length >= 3 && sig[0] === 0xef && sig[1] === 0xbb && sig[2] === 0xbf ? 3 : 0;
  const body = sig.subarray(bom);
  if (bom === 0 && !body.includes(0x0d)) return sig;
  return Buffer.from(body.toString('latin1').replace(/\r\n?/g, '\n'), 'latin1');
}

/** At most this many principals of one key are tried (one ssh-keygen each, reading every byte). */
const MAX_PRINCIPALS = 8;

/** The public key blob (base64) an SSH signature carries: "SSHSIG", a uint32 version, then the key as an SSH string. */
export function signingKeyOf(sig: Buffer): string | undefined {
  const armored = /-----BEGIN SSH SIGNATURE-----([\s\S]*?)-----END SSH SIGNATURE-----/.exec(sig.toString('latin1'));
  if (!armored) return undefined;
  const blob = Buffer.from((armored[1] ?? '').replace(/\s+/g, ''), 'base64');
  if (blob.length < 14 || blob.toString('latin1', 0, 6) !== 'SSHSIG') return undefined;
  const length = blob.readUInt32BE(10);
  if (length === 0 || 14 + length > blob.length) return undefined;
  return blob.subarray(14, 14 + length).toString('base64');
}

/**
 * Every principal the signing key is listed under, in the file's order, at most MAX_PRINCIPALS.
 * `ssh-keygen -Y find-principals` stops at the first line that holds the key and ignores its
 * namespaces, so a key allowed for `git` on one line and for atomic-deploy on a later one would be
 * tried as the git principal only. Each later line holding the key (its base64, as a word) is
 * given to find-principals alone, which parses it; `-Y verify` then decides each principal.
 */
function principalsOf(firstFound: string, allowedSigners: string, sig: Buffer, dir: string): string[] {
  const lines = (text: string): string[] => text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  const principals = new Set(lines(firstFound));
  const key = signingKeyOf(sig);
  let text = '';
  try {
    text = fs.readFileSync(allowedSigners, 'utf8');
  } catch {
    // find-principals read it a moment ago; without it the first line's principals stand.
  }
  const holding = key === undefined ? [] : lines(text).filter((l) => !l.startsWith('#') && l.split(/\s+/).includes(key));
  if (holding.length > 1) {
    const sigFile = path.join(dir, 'artifact.sig');
    const one = path.join(dir, 'one_signer');
    for (const line of holding) {
      if (principals.size >= MAX_PRINCIPALS) break;
      fs.writeFileSync(one, `${line}\n`, { mode: 0o600 });
      const found = spawnSync('ssh-keygen', ['-Y', 'find-principals', '-s', sigFile, '-f', one, '-n', SIGNATURE_NAMESPACE], { encoding: 'utf8', timeout: 30_000 });
      if (found.status === 0) for (const p of lines(found.stdout)) principals.add(p);
    }
  }
  return [...principals].slice(0, MAX_PRINCIPALS);
}

/** `ssh-keygen -Y verify` of the bytes written to it, as `principal`. */
function verifier(allowedSigners: string, principal: string, sigFile: string): { write(chunk: Buffer): Promise<void>; finish(): Promise<{ code: number | null; stdout: string; stderr: string }>; kill(): void } {
  const child = spawn('ssh-keygen', ['-Y', 'verify', '-f', allowedSigners, '-I', principal, '-n', SIGNATURE_NAMESPACE, '-s', sigFile], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  // ssh-keygen may exit early on a broken signature: its stdin then errors, and finish() reports the exit.
  child.stdin.on('error', () => undefined);
  const exited = new Promise<number | null>((resolve) => {
    child.on('error', () => resolve(null));
    child.on('close', (code) => resolve(code));
  });
  return {
    write: (chunk) =>
      new Promise<void>((resolve) => {
        if (child.stdin.destroyed || child.exitCode !== null) return resolve();
        if (child.stdin.write(chunk)) resolve();
        else child.stdin.once('drain', resolve).once('close', resolve);
      }),
    finish: async () => {
      child.stdin.end();
      return { code: await exited, stdout, stderr };
    },
    kill: () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

/** Reads the signature and finds its signer in `allowedSigners`; writes only in a private temp dir. */
export async function startSignatureCheck(signature: string, allowedSigners: string, download: DownloadOptions): Promise<SignatureCheck> {
  try {
    if (!fs.statSync(allowedSigners).isFile()) throw new Error('not a file');
  } catch (error) {
    throw new DeployError('USAGE', `--allowed-signers ${allowedSigners} is not a readable file`, { cause: error, hint: 'give an OpenSSH allowed_signers file: "<principal> namespaces=\\"atomic-deploy\\" <public key>"' });
  }
  const sig = armorOnly(await readSignature(signature, download));
  if (!sig.toString('latin1').startsWith('-----BEGIN SSH SIGNATURE-----')) throw invalid(sig.length === 0 ? `the signature ${redactUrl(signature)} is empty` : `${redactUrl(signature)} is not an SSH signature`);
  const dir = makeScratchDir('sig');
  const dispose = (): void => fs.rmSync(dir, { recursive: true, force: true });
  try {
    const sigFile = path.join(dir, 'artifact.sig');
    fs.writeFileSync(sigFile, sig, { mode: 0o600 });
    const found = spawnSync('ssh-keygen', ['-Y', 'find-principals', '-s', sigFile, '-f', allowedSigners, '-n', SIGNATURE_NAMESPACE], { encoding: 'utf8', timeout: 30_000 });
    if (found.error) throw new DeployError('UNSUPPORTED_PLATFORM', `cannot run ssh-keygen: ${errnoOf(found.error) ?? String(found.error)}`, { hint: 'install OpenSSH (openssh-client) 8.2 or later' });
    // An ssh-keygen without the operation answers with its usage, which is no verdict on the key.
    if (found.status !== 0 && /^unsupported operation for -Y|^usage: ssh-keygen/im.test(found.stderr)) {
      const said = found.stderr.split(/\r?\n/).map((l) => l.trim()).find((l) => l !== '') ?? '';
      throw new DeployError('UNSUPPORTED_PLATFORM', `this ssh-keygen cannot look up the signer (ssh-keygen -Y find-principals: ${said}); nothing was deployed`, { hint: 'install a newer OpenSSH (openssh-client) whose ssh-keygen has -Y find-principals and -Y verify' });
    }
    const principals = found.status === 0 ? principalsOf(found.stdout, allowedSigners, sig, dir) : [];
    if (principals.length === 0) {
      const { reason, hint } = sshKeygenReason(found.stderr, '');
      // A listed key can still be refused (expired, another namespace): say why rather than "not in".
      if (reason !== '' && hint !== undefined) throw invalid(`${redactUrl(signature)} was made by a key that ${allowedSigners} does not allow now: ${reason}`, hint);
      // Lines ssh-keygen could not read are skipped, and the signer's may be one of them: name them.
      const skipped = found.stderr.split(/\r?\n/).map((l) => l.trim()).filter((l) => /^.+:\d+: /.test(l));
      if (skipped.length > 0) {
        const shown = skipped.slice(0, 3).map((l) => `line ${/:(\d+): /.exec(l)?.[1] ?? '?'}: ${l.replace(/^.+?:\d+: /, '')}`).join('; ');
        throw invalid(`${redactUrl(signature)} was made by a key that is not in ${allowedSigners}, which has lines ssh-keygen could not read (${shown}${skipped.length > 3 ? `; ${skipped.length - 3} more` : ''})`, 'fix those lines: "<principal> namespaces=\\"atomic-deploy\\" <key type> <base64 key>", one a line (ssh-keygen -Y find-principals -f <file> -s <sig> -n atomic-deploy shows them)');
      }
      throw invalid(`${redactUrl(signature)} was made by a key that is not in ${allowedSigners}`, 'add the signer\'s public key to the allowed signers file, or sign with a key that is there');
    }
    // One `ssh-keygen -Y verify` per principal, all fed the same bytes as they stream in.
    const checks = principals.map((principal) => ({ principal, ...verifier(allowedSigners, principal, sigFile) }));
    let verified: string | undefined;
    return {
      get principal(): string {
        return verified ?? principals[0] ?? '';
      },
      write: async (chunk) => {
        await Promise.all(checks.map((c) => c.write(chunk)));
      },
      finish: async () => {
        const results = await Promise.all(checks.map(async (c) => ({ principal: c.principal, ...(await c.finish()) })));
        // The first principal, in the file's order, under which ssh-keygen verified the signature.
        verified = results.find((r) => r.code === 0)?.principal;
        if (verified !== undefined) return;
        // All refused: the cause a principal allowed for our namespace gives (a signature of other bytes)
        // says more than another's "not permitted for use in signature namespace".
        const failures = results.map((r) => ({ principal: r.principal, ...sshKeygenReason(r.stderr, r.stdout) }));
        const failure = failures.find((f) => !/not permitted for use in signature namespace/i.test(f.reason)) ?? failures[0];
        const signers = principals.length === 1 ? `signer ${principals[0] ?? ''}` : `signers tried: ${principals.join(', ')}`;
        throw invalid(`the signature ${redactUrl(signature)} does not match the artifact (${signers})${failure?.reason ? `: ${failure.reason}` : ''}`, failure?.hint ?? 'the artifact or its signature was changed after signing: deploy the signed artifact');
      },
      dispose: () => {
        for (const c of checks) c.kill();
        dispose();
      },
    };
  } catch (error) {
    dispose();
    throw error;
  }
}
