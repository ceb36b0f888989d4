// A proxy spoken to over TLS (`HTTPS_PROXY=https://proxy:port`): Debian's stunnel4 terminates TLS on
// 127.0.0.1 in front of tinyproxy, with a certificate signed by a certificate authority that openssl
// makes in the test and that the CLI trusts through NODE_EXTRA_CA_CERTS. The artifact servers
// answer tinyproxy's address (127.0.0.2) alone, so the proxy is the only way to them. A proxy whose
// certificate is not accepted (signed by an authority not trusted, or for another name) fails the
// deploy at once (exit 1, not retried), one error line naming the proxy and a hint, the root as it
// was; the artifact server's own certificate refused through a good proxy says it is the server's.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { serve } from '../harness/archives.ts';
import { runCli, tempDir, type CliResult } from '../harness/cli.ts';
import { makeSource, manifestDiff, manifestOf, sameManifest, treeSnapshot } from '../harness/invariants.ts';
import { startStunnel } from '../harness/stunnel.ts';
import { requireTool } from '../harness/swappers.ts';
import { startTinyproxy } from '../harness/tinyproxy.ts';

interface Authority {
  certFile: string;
  keyFile: string;
}

interface Issued {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
}

function openssl(args: readonly string[]): void {
  execFileSync(requireTool('openssl', 'openssl'), args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A certificate authority of the test's own. */
function authority(dir: string, name: string): Authority {
  const certFile = path.join(dir, `${name}.pem`);
  const keyFile = path.join(dir, `${name}.key`);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return { certFile, keyFile };
}

/** A server certificate for `altName` (`IP:127.0.0.1`, `DNS:proxy.example`), signed by `ca`. */
function issue(dir: string, ca: Authority, name: string, altName: string): Issued {
  const keyFile = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const certFile = path.join(dir, `${name}.pem`);
  const ext = path.join(dir, `${name}.ext`);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', csr, '-subj', `/CN=${name}`]);
  fs.writeFileSync(ext, `basicConstraints=CA:FALSE\nsubjectAltName=${altName}\nextendedKeyUsage=serverAuth\n`);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-out', certFile, '-days', '2', '-extfile', ext]);
  return { certFile, keyFile, cert: fs.readFileSync(certFile, 'utf8'), key: fs.readFileSync(keyFile, 'utf8') };
}

/** A PEM file holding the certificates of `authorities`: what NODE_EXTRA_CA_CERTS names. */
function trusting(dir: string, name: string, authorities: readonly Authority[]): string {
  const file = path.join(dir, `${name}.pem`);
  fs.writeFileSync(file, authorities.map((a) => fs.readFileSync(a.certFile, 'utf8')).join(''));
  return file;
}

async function scene(t: { after(fn: () => void): void }): Promise<{ dir: string; src: string; root: string; before: string[] }> {
  const dir = tempDir(t);
  const src = makeSource(path.join(dir, 'src'), 'v1', { files: 40 });
  execFileSync('tar', ['-czf', path.join(dir, 'site.tgz'), '-C', src, '.']);
  const root = path.join(dir, 'root');
  const first = await runCli(['deploy', src, root, '--no-fsync']);
  assert.equal(first.code, 0, first.stderr);
  return { dir, src, root, before: treeSnapshot(root) };
}

function deployUrl(url: string, root: string, env: NodeJS.ProcessEnv): Promise<CliResult> {
  return runCli(['deploy', url, root, '--no-fsync', '--download-timeout', '5'], { env });
}

/** The requests the proxy's log names (`GET http://…`, `CONNECT 127.0.0.1:…`). */
function proxied(log: string): string[] {
  return [...log.matchAll(/Request \(file descriptor \d+\): (\S+ \S+)/g)].map((m) => m[1] ?? '');
}

void test('an https:// proxy: TLS to the proxy, its authority trusted through NODE_EXTRA_CA_CERTS, carries an http:// URL forwarded and an https:// URL tunnelled', async (t) => {
  const s = await scene(t);
  const ca = authority(s.dir, 'test-ca');
  const proxyCert = issue(s.dir, ca, 'proxy', 'IP:127.0.0.1');
  const serverCert = issue(s.dir, ca, 'server', 'IP:127.0.0.1');
  const tinyproxy = await startTinyproxy(t);
  const proxy = await startStunnel(t, { connectPort: tinyproxy.port, certFile: proxyCert.certFile, keyFile: proxyCert.keyFile });
  const plain = await serve(t, s.dir, 'ok', { onlyFrom: '127.0.0.2' });
  const secure = await serve(t, s.dir, 'ok', { onlyFrom: '127.0.0.2', tls: serverCert });
  const trusted = trusting(s.dir, 'trusted', [ca]);
  for (const [name, server, variable] of [['http', plain, 'HTTP_PROXY'], ['https', secure, 'HTTPS_PROXY']] as const) {
    const root = path.join(s.dir, `root-${name}`);
    const r = await deployUrl(server.url('site.tgz'), root, { [variable]: proxy.url, NODE_EXTRA_CA_CERTS: trusted });
    assert.equal(r.code, 0, `${name}: ${r.stderr}`);
    const got = manifestOf(path.join(root, 'current'));
    assert.ok(sameManifest(got, manifestOf(s.src)), `${name}: ${manifestDiff(got, manifestOf(s.src))}`);
  }
  // Each deploy went to stunnel (TLS) and on through tinyproxy: nothing reached the servers another way.
  assert.equal(proxy.accepted(), 2, proxy.log());
  assert.deepEqual(proxied(tinyproxy.log()), [`GET ${plain.url('site.tgz')}`, `CONNECT 127.0.0.1:${new URL(secure.url('site.tgz')).port}`], tinyproxy.log());
  assert.deepEqual([...plain.refused, ...secure.refused], []);
  assert.equal(plain.requests.length + secure.requests.length, 2);
});

void test("an https:// proxy whose certificate is not accepted (an authority not trusted, another name) fails at once, exit 1, naming the proxy, with a hint; the server's own certificate refused says so; the root unchanged", async (t) => {
  const s = await scene(t);
  const proxyCa = authority(s.dir, 'proxy-ca');
  const serverCa = authority(s.dir, 'server-ca');
  const proxyCert = issue(s.dir, proxyCa, 'proxy', 'IP:127.0.0.1');
  const otherName = issue(s.dir, proxyCa, 'proxy-elsewhere', 'DNS:proxy.example');
  const serverCert = issue(s.dir, serverCa, 'server', 'IP:127.0.0.1');
  const tinyproxy = await startTinyproxy(t);
  const proxy = await startStunnel(t, { connectPort: tinyproxy.port, certFile: proxyCert.certFile, keyFile: proxyCert.keyFile });
  const misnamed = await startStunnel(t, { connectPort: tinyproxy.port, certFile: otherName.certFile, keyFile: otherName.keyFile });
  const plain = await serve(t, s.dir, 'ok', { onlyFrom: '127.0.0.2' });
  const secure = await serve(t, s.dir, 'ok', { onlyFrom: '127.0.0.2', tls: serverCert });
  const serverOnly = trusting(s.dir, 'server-only', [serverCa]);
  const proxyOnly = trusting(s.dir, 'proxy-only', [proxyCa]);
  const both = trusting(s.dir, 'both', [proxyCa, serverCa]);
  const shown = (url: string): string => url.replace(/[.]/g, '\\.');
  const cases = [
    ['http:// URL, proxy authority not trusted', plain.url('site.tgz'), 'HTTP_PROXY', proxy, serverOnly, new RegExp(`^error: downloading ${shown(plain.url('site.tgz'))} failed: the proxy ${shown(proxy.url)} \\(HTTP_PROXY\\) presented a certificate that is not accepted: unable to verify the first certificate$`), /^hint: if it is the right proxy, put the certificate of the authority that signed the proxy's certificate in a PEM file and set NODE_EXTRA_CA_CERTS to its path$/m],
    ['https:// URL, proxy authority not trusted', secure.url('site.tgz'), 'HTTPS_PROXY', proxy, serverOnly, new RegExp(`^error: downloading ${shown(secure.url('site.tgz'))} failed: the proxy ${shown(proxy.url)} \\(HTTPS_PROXY\\) presented a certificate that is not accepted: unable to verify the first certificate$`), /^hint: if it is the right proxy, .*NODE_EXTRA_CA_CERTS/m],
    ['https:// URL, proxy certificate for another name', secure.url('site.tgz'), 'HTTPS_PROXY', misnamed, both, new RegExp(`^error: downloading .* failed: the proxy ${shown(misnamed.url)} \\(HTTPS_PROXY\\) presented a certificate that is not accepted: Hostname/IP does not match certificate's altnames: .*$`), /^hint: name the proxy in HTTPS_PROXY by a host its certificate is for$/m],
    ["https:// URL, the server's authority not trusted", secure.url('site.tgz'), 'HTTPS_PROXY', proxy, proxyOnly, /^error: downloading .* failed: the certificate of 127\.0\.0\.1:\d+ is not accepted: unable to verify the first certificate$/, /^hint: if it is the right server, put the certificate of the authority that signed the server's certificate in a PEM file/m],
  ] as const;
  for (const [what, url, variable, via, trust, message, hint] of cases) {
    const accepted = via.accepted();
    const asked = proxied(tinyproxy.log()).length;
    // The default retries (3): a certificate refused is not asked again.
    const r = await deployUrl(url, s.root, { [variable]: via.url, NODE_EXTRA_CA_CERTS: trust });
    assert.equal(r.code, 1, `${what}: ${r.stderr}`);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
    assert.equal(errors.length, 1, `${what}: ${r.stderr}`);
    assert.match(errors[0] ?? '', message, `${what}: ${r.stderr}`);
    assert.match(r.stderr, hint, `${what}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /retrying/, `${what}: retried`);
    assert.equal(via.accepted() - accepted, 1, `${what}: one connection to the proxy`);
    // Through a proxy not accepted, nothing was asked of it; the server's refusal came through the tunnel the proxy opened.
    assert.equal(proxied(tinyproxy.log()).length - asked, what.includes("server's") ? 1 : 0, `${what}: ${tinyproxy.log()}`);
    assert.deepEqual(treeSnapshot(s.root), s.before, `${what}: the root changed`);
    assert.deepEqual(fs.readdirSync(path.join(s.root, '.tmp')), [], `${what}: .tmp/ not empty`);
  }
  assert.equal(plain.requests.length + secure.requests.length, 0, 'no request reached a server');
  // Without a proxy, the server's certificate refused is the same error, and not retried either.
  const direct = await serve(t, s.dir, 'ok', { tls: serverCert });
  const r = await deployUrl(direct.url('site.tgz'), s.root, { NODE_EXTRA_CA_CERTS: proxyOnly });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^error: downloading https:\/\/127\.0\.0\.1:\d+\/site\.tgz failed: the certificate of 127\.0\.0\.1:\d+ is not accepted: unable to verify the first certificate$/m);
  assert.match(r.stderr, /^hint: if it is the right server, /m);
  assert.doesNotMatch(r.stderr, /retrying/);
  assert.deepEqual(treeSnapshot(s.root), s.before);
});

void test('a plain proxy named https:// (a common slip: it speaks no TLS) fails naming the proxy, with a hint to name it http://, for http:// and https:// URLs alike', async (t) => {
  const s = await scene(t);
  const tinyproxy = await startTinyproxy(t);
  const plain = await serve(t, s.dir, 'ok', { onlyFrom: '127.0.0.2' });
  const wrong = `https://127.0.0.1:${tinyproxy.port}`;
  for (const [name, variable] of [['http', 'HTTP_PROXY'], ['https', 'HTTPS_PROXY']] as const) {
    const url = name === 'http' ? plain.url('site.tgz') : plain.url('site.tgz').replace('http:', 'https:');
    const started = Date.now();
    const r = await runCli(['deploy', url, s.root, '--no-fsync', '--download-timeout', '1', '--download-retries', '0'], { env: { [variable]: wrong }, timeoutMs: 20_000 });
    assert.equal(r.code, 1, `${name}: ${r.stderr}`);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
    assert.equal(errors.length, 1, `${name}: ${r.stderr}`);
    assert.match(errors[0] ?? '', new RegExp(`failed: (cannot reach|no answer from) the proxy ${wrong.replace(/[.]/g, '\\.')} \\(${variable}\\)`), `${name}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^hint: .*a proxy that speaks plain HTTP .*is named http://, not https://, in ${variable}`, 'm'), `${name}: ${r.stderr}`);
    assert.ok(Date.now() - started < 15_000, `${name}: the timeout, not a hang`);
    assert.deepEqual(treeSnapshot(s.root), s.before, `${name}: the root changed`);
  }
  assert.equal(plain.requests.length, 0);
});
