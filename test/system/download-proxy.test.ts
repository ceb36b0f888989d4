// A URL artifact through the proxy the environment names, as curl goes: HTTP_PROXY for an http://
// URL (absolute-URI requests), HTTPS_PROXY for an https:// one (a CONNECT tunnel), NO_PROXY's hosts
// directly, the proxy's login from its URL. The proxy is Debian's tinyproxy, started by the test on
// 127.0.0.1; its connections to servers leave from 127.0.0.2, and the artifact server answers that
// address alone: the proxy is the only way to the artifact, as on a CI runner behind one. A proxy
// that refuses (407, 403), is not there, or never answers fails the deploy with exit 1 naming it;
// a proxy variable that is no proxy URL exits 2. Every failure leaves the root as it was.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { serve } from '../harness/archives.ts';
import { cliEnv, runCli, tempDir, type CliResult } from '../harness/cli.ts';
import { makeSource, manifestDiff, manifestOf, sameManifest, treeSnapshot } from '../harness/invariants.ts';
import { freePort } from '../harness/nginx.ts';
import { requireTool } from '../harness/swappers.ts';
import { startTinyproxy } from '../harness/tinyproxy.ts';

interface Scene {
  dir: string;
  src: string;
  /** A root with one release deployed from `src` before the test. */
  root: string;
  /** What `root` holds before the test's deploys. */
  before: string[];
  /** A self-signed certificate for 127.0.0.1, trusted by the CLI runs through NODE_EXTRA_CA_CERTS. */
  tls: { key: string; cert: string; certFile: string };
}

async function scene(t: { after(fn: () => void): void }): Promise<Scene> {
  const dir = tempDir(t);
  const src = makeSource(path.join(dir, 'src'), 'v1', { files: 40 });
  execFileSync('tar', ['-czf', path.join(dir, 'site.tgz'), '-C', src, '.']);
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  execFileSync(requireTool('openssl', 'openssl'), ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const root = path.join(dir, 'root');
  const first = await runCli(['deploy', src, root, '--no-fsync']);
  assert.equal(first.code, 0, first.stderr);
  return { dir, src, root, before: treeSnapshot(root), tls: { key: fs.readFileSync(keyFile, 'utf8'), cert: fs.readFileSync(certFile, 'utf8'), certFile } };
}

/** Deploys `url` into `root` with `env` (NODE_EXTRA_CA_CERTS added, for the https server). */
function deployUrl(s: Scene, url: string, root: string, env: NodeJS.ProcessEnv, extra: string[] = []): Promise<CliResult> {
  return runCli(['deploy', url, root, '--no-fsync', '--download-timeout', '5', ...extra], { env: { NODE_EXTRA_CA_CERTS: s.tls.certFile, ...env } });
}

function assertDeployed(s: Scene, root: string, what: string): void {
  const got = manifestOf(path.join(root, 'current'));
  assert.ok(sameManifest(got, manifestOf(s.src)), `${what}: ${manifestDiff(got, manifestOf(s.src))}`);
}

/** A failed deploy: the exit code, one error line and its hint, the root as it was. */
function assertRefused(s: Scene, r: CliResult, code: number, message: RegExp, hint: RegExp, what: string): void {
  assert.equal(r.code, code, `${what}: ${r.stderr}`);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
  assert.equal(errors.length, 1, `${what}: ${r.stderr}`);
  assert.match(errors[0] ?? '', message, what);
  assert.match(r.stderr, hint, what);
  assert.deepEqual(treeSnapshot(s.root), s.before, `${what}: the root changed`);
  assert.deepEqual(fs.readdirSync(path.join(s.root, '.tmp')), [], `${what}: .tmp/ not empty`);
}

/** The requests the proxy's log names (`GET http://…`, `CONNECT 127.0.0.1:…`). */
function proxied(log: string): string[] {
  return [...log.matchAll(/Request \(file descriptor \d+\): (\S+ \S+)/g)].map((m) => m[1] ?? '');
}

void test('an http:// URL goes through HTTP_PROXY (or http_proxy), its redirect too, when the proxy is the only way to the server', async (t) => {
  const s = await scene(t);
  const proxy = await startTinyproxy(t);
  const server = await serve(t, s.dir, 'ok', { onlyFrom: '127.0.0.2' });
  for (const variable of ['HTTP_PROXY', 'http_proxy']) {
    const root = path.join(s.dir, `root-${variable}`);
    const asked = proxied(proxy.log()).length;
    // HTTPS_PROXY names no proxy: it is not the one for an http:// URL.
    const r = await deployUrl(s, server.url('redirect/site.tgz'), root, { [variable]: proxy.url, HTTPS_PROXY: 'http://127.0.0.1:9' }, ['--download-retries', '0']);
    assert.equal(r.code, 0, `${variable}: ${r.stderr}`);
    assertDeployed(s, root, variable);
    // The redirect and its target, each asked of the proxy by its absolute URI.
    assert.deepEqual(proxied(proxy.log()).slice(asked), [`GET ${server.url('redirect/site.tgz')}`, `GET ${server.url('site.tgz')}`], proxy.log());
  }
  assert.deepEqual(server.refused, [], 'nothing reached the server but through the proxy');
  assert.equal(server.requests.length, 4);
  for (const req of server.requests) assert.match(req.via ?? '', /tinyproxy/, 'forwarded by the proxy');
});

void test('an https:// URL goes through HTTPS_PROXY by a CONNECT tunnel; a connection dropped mid-way is resumed through it', async (t) => {
  const s = await scene(t);
  const proxy = await startTinyproxy(t);
  const server = await serve(t, s.dir, 'drop-once', { onlyFrom: '127.0.0.2', tls: s.tls });
  // HTTP_PROXY names no proxy: it is not the one for an https:// URL.
  const r = await deployUrl(s, server.url('site.tgz'), s.root, { HTTPS_PROXY: proxy.url, HTTP_PROXY: 'http://127.0.0.1:9' });
  assert.equal(r.code, 0, r.stderr);
  assertDeployed(s, s.root, 'https');
  assert.match(r.stderr, /warning: .*; resuming at byte \d+$/m);
  const port = new URL(server.url('site.tgz')).port;
  assert.deepEqual(proxied(proxy.log()), [`CONNECT 127.0.0.1:${port}`, `CONNECT 127.0.0.1:${port}`], proxy.log());
  assert.deepEqual(server.refused, []);
  assert.equal(server.requests.length, 2);
  assert.match(server.requests[1]?.range ?? '', /^bytes=\d+-$/);
  // Inside the tunnel the request is the client's own: the proxy adds nothing to it.
  assert.equal(server.requests[0]?.via, undefined);
});

void test("NO_PROXY's hosts are reached directly: by name, port and address range; another port goes through the proxy", async (t) => {
  const s = await scene(t);
  const proxy = await startTinyproxy(t);
  // Direct connections only: the proxy's (from 127.0.0.2) are closed.
  const server = await serve(t, s.dir, 'ok', { onlyFrom: '127.0.0.1', tls: s.tls });
  const port = new URL(server.url('site.tgz')).port;
  const proxies = { HTTPS_PROXY: proxy.url, HTTP_PROXY: proxy.url };
  for (const [i, noProxy] of ['127.0.0.1', `example.com, 127.0.0.1:${port}`, '10.0.0.0/8,127.0.0.0/8'].entries()) {
    const root = path.join(s.dir, `root-${i}`);
    const r = await deployUrl(s, server.url('site.tgz'), root, { ...proxies, [i === 1 ? 'no_proxy' : 'NO_PROXY']: noProxy });
    assert.equal(r.code, 0, `NO_PROXY=${noProxy}: ${r.stderr}`);
    assertDeployed(s, root, noProxy);
  }
  assert.deepEqual(proxied(proxy.log()), [], proxy.log());
  assert.deepEqual(server.refused, []);
  // Control: an entry for another port leaves this URL to the proxy, whose connection the server closes.
  const r = await deployUrl(s, server.url('site.tgz'), s.root, { ...proxies, NO_PROXY: '127.0.0.1:1' }, ['--download-retries', '0']);
  assert.equal(r.code, 1, r.stderr);
  assert.deepEqual(proxied(proxy.log()), [`CONNECT 127.0.0.1:${port}`]);
  assert.deepEqual(server.refused, ['127.0.0.2']);
  assert.deepEqual(treeSnapshot(s.root), s.before);
});

void test('a proxy asking for a login gets it from the proxy URL (%-encoded) as Proxy-Authorization; a missing or wrong one exits 1, the password never shown', async (t) => {
  const s = await scene(t);
  // tinyproxy takes letters, digits, '.', '-' and '_' in a login; the URL escapes one all the same, as one escapes '@' or ':'.
  const password = 's3cr3t.pw';
  const proxy = await startTinyproxy(t, { login: { user: 'deployer', password } });
  const withLogin = (pw: string): string => proxy.url.replace('http://', `http://deployer:${pw.replace(/[.@:]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}@`);
  const plain = await serve(t, s.dir, 'ok', { onlyFrom: '127.0.0.2' });
  const secure = await serve(t, s.dir, 'ok', { onlyFrom: '127.0.0.2', tls: s.tls });
  for (const [name, server, variable] of [['http', plain, 'HTTP_PROXY'], ['https', secure, 'HTTPS_PROXY']] as const) {
    const root = path.join(s.dir, `root-${name}`);
    const r = await deployUrl(s, server.url('site.tgz'), root, { [variable]: withLogin(password) }, ['--json']);
    assert.equal(r.code, 0, `${name}: ${r.stderr}`);
    assertDeployed(s, root, name);
    for (const secret of [password, 's3cr3t%2Epw', Buffer.from(`deployer:${password}`).toString('base64')]) {
      assert.ok(!`${r.stdout}${r.stderr}`.includes(secret), `${name}: the login was printed`);
    }
  }
  const shown = proxy.url.replace(/[.]/g, '\\.');
  const cases = [
    ['https, no login', secure, 'HTTPS_PROXY', proxy.url, new RegExp(`^error: downloading https://127\\.0\\.0\\.1:\\d+/site\\.tgz failed: the proxy ${shown} \\(HTTPS_PROXY\\) answered 407 Proxy Authentication Required to CONNECT 127\\.0\\.0\\.1:\\d+$`), /hint: the proxy asks for a login: give it in HTTPS_PROXY as http:\/\/user:password@host:port/],
    // tinyproxy answers a CONNECT with a wrong login 401 (most proxies, 407).
    ['https, wrong password', secure, 'HTTPS_PROXY', withLogin('guess@1'), /answered 40[17] [A-Za-z ]+ to CONNECT 127\.0\.0\.1:\d+$/, /hint: the proxy refused the user and password in HTTPS_PROXY: check them/],
    ['http, no login', plain, 'http_proxy', proxy.url, new RegExp(`^error: downloading http://127\\.0\\.0\\.1:\\d+/site\\.tgz failed: the proxy ${shown} \\(http_proxy\\) answered 407 Proxy Authentication Required$`), /hint: the proxy asks for a login: give it in http_proxy/],
  ] as const;
  for (const [what, server, variable, value, message, hint] of cases) {
    const asked = proxied(proxy.log()).length;
    const r = await deployUrl(s, server.url('site.tgz'), s.root, { [variable]: value });
    assertRefused(s, r, 1, message, hint, what);
    assert.ok(!r.stderr.includes('guess'), `${what}: the password was printed`);
    assert.equal(proxied(proxy.log()).length - asked, 1, `${what}: a refusal is not retried`);
  }
  // tinyproxy answers a forwarded request with a wrong login 401, which a server may answer too: an
  // http:// URL's answer through a proxy cannot be told from the server's, so it is taken as the
  // server's (exit 2), and the message and hint name the proxy.
  const r = await deployUrl(s, plain.url('site.tgz'), s.root, { HTTP_PROXY: withLogin('guess@1') });
  assertRefused(s, r, 2, new RegExp(`^error: http://127\\.0\\.0\\.1:\\d+/site\\.tgz answered 401 Unauthorized through the proxy ${shown}$`), /hint: .*whether the proxy \(HTTP_PROXY\) allows it: an http:\/\/ URL's answer through a proxy may be the proxy's own/, 'http, wrong password');
  assert.ok(!r.stderr.includes('guess'), 'the password was printed');
});

void test('a proxy that refuses the port, is not there, or never answers fails the deploy (exit 1) naming it; a proxy variable that is no proxy URL exits 2', async (t) => {
  const s = await scene(t);
  // Like most proxies' defaults: CONNECT to port 443 only.
  const proxy = await startTinyproxy(t, { connectPorts: [443] });
  const server = await serve(t, s.dir, 'ok', { onlyFrom: '127.0.0.2', tls: s.tls });
  const url = server.url('site.tgz');
  const shown = (u: string): string => u.replace(/[.]/g, '\\.');
  const refused = await deployUrl(s, url, s.root, { https_proxy: proxy.url });
  assertRefused(s, refused, 1, new RegExp(`failed: the proxy ${shown(proxy.url)} \\(https_proxy\\) answered 403 [A-Za-z ]+ to CONNECT 127\\.0\\.0\\.1:\\d+$`), /hint: the proxy does not allow this host or port/, '403');
  assert.equal(proxied(proxy.log()).length, 1, 'a 403 is not retried');

  const gone = `http://127.0.0.1:${await freePort()}`;
  const notThere = await deployUrl(s, url, s.root, { HTTPS_PROXY: gone }, ['--download-retries', '1']);
  assertRefused(s, notThere, 1, new RegExp(`failed: cannot reach the proxy ${shown(gone)} \\(HTTPS_PROXY\\): connect ECONNREFUSED 127\\.0\\.0\\.1:\\d+$`), /hint: check that the proxy runs and that HTTPS_PROXY names its host and port, or list the artifact's host in NO_PROXY/, 'connection refused');
  assert.match(notThere.stderr, new RegExp(`warning: .*cannot reach the proxy ${shown(gone)} .*; retrying$`, 'm'));

  // A proxy that takes the connection and says nothing: given up on after --download-timeout, not waited for.
  const sockets = new Set<Socket>();
  const silent = createServer((socket) => sockets.add(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });
  const mute = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const started = Date.now();
  const quiet = await runCli(['deploy', url, s.root, '--no-fsync', '--download-timeout', '1', '--download-retries', '0'], { env: { HTTPS_PROXY: mute, NODE_EXTRA_CA_CERTS: s.tls.certFile }, timeoutMs: 20_000 });
  assertRefused(s, quiet, 1, new RegExp(`failed: no answer from the proxy ${shown(mute)} \\(HTTPS_PROXY\\) within 1 s`), /hint: check that the proxy runs/, 'silent proxy');
  assert.ok(Date.now() - started < 10_000, 'the timeout, not a hang');

  const malformed = [
    ['HTTPS_PROXY', 'http://deployer:hunter2@127.0.0.1:99999', /^error: the proxy in HTTPS_PROXY \(http:\/\/127\.0\.0\.1:99999\) is not a valid URL: its port 99999 is out of range \(0 to 65535\); nothing was downloaded$/, /hint: set HTTPS_PROXY to http:\/\/host:port/],
    ['ALL_PROXY', 'socks5://deployer:hunter2@127.0.0.1:1080', /^error: the proxy in ALL_PROXY \(socks5:\/\/127\.0\.0\.1:1080\) is a socks5 proxy, which is not spoken to: only http:\/\/ and https:\/\/ proxies are; nothing was downloaded$/, /hint: set HTTPS_PROXY and HTTP_PROXY to an http:\/\/ proxy/],
    ['HTTPS_PROXY', 'http://deployer:hunter2%zz@127.0.0.1:3128', /^error: the proxy in HTTPS_PROXY \(http:\/\/127\.0\.0\.1:3128\) has a user or password with a malformed %-escape; nothing was downloaded$/, /hint: write a character/],
  ] as const;
  for (const [variable, value, message, hint] of malformed) {
    const r = await deployUrl(s, url, s.root, { [variable]: value });
    assertRefused(s, r, 2, message, hint, value);
    assert.ok(!r.stderr.includes('hunter2'), `${value}: the password was printed`);
  }
  assert.equal(server.requests.length, 0);
});

void test("the library (dist/index.js) run with DEBUG=* logs nothing of the proxy agents, the proxy's login least of all; the app's own debug still logs", async (t) => {
  const s = await scene(t);
  const password = 's3cr3t.pw';
  const proxy = await startTinyproxy(t, { login: { user: 'deployer', password } });
  const withLogin = proxy.url.replace('http://', `http://deployer:${password}@`);
  const plain = await serve(t, s.dir, 'ok', { onlyFrom: '127.0.0.2' });
  const secure = await serve(t, s.dir, 'ok', { onlyFrom: '127.0.0.2', tls: s.tls });
  const repo = fileURLToPath(new URL('../..', import.meta.url));
  // An application of the user's that logs through debug itself, as a server's code often does.
  const app = path.join(s.dir, 'app.mjs');
  fs.writeFileSync(app, [
    `import createDebug from ${JSON.stringify(path.join(repo, 'node_modules/debug/src/index.js'))};`,
    `import { deploy } from ${JSON.stringify(path.join(repo, 'dist/index.js'))};`,
    "createDebug('app')('deploying');",
    'const { release } = await deploy(process.argv[2], process.argv[3], { fsync: false });',
    "createDebug('app')('deployed %s', release);",
  ].join('\n'));
  for (const [name, server, variable] of [['http', plain, 'HTTP_PROXY'], ['https', secure, 'HTTPS_PROXY']] as const) {
    const root = path.join(s.dir, `root-${name}`);
    const env = cliEnv(undefined, { DEBUG: '*', DEBUG_COLORS: 'no', [variable]: withLogin, NODE_EXTRA_CA_CERTS: s.tls.certFile });
    const stderr = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [app, server.url('site.tgz'), root], { env, encoding: 'utf8' }, (error, _stdout, err) => (error ? reject(new Error(`${name}: ${error.message}\n${err}`)) : resolve(err)));
    });
    assertDeployed(s, root, name);
    assert.match(stderr, /app deploying/, `${name}: the app's own debug logs`);
    assert.match(stderr, /app deployed /, `${name}: the app's own debug logs after the deploy`);
    assert.doesNotMatch(stderr, /proxy-agent|agent-base/, `${name}: the proxy agents logged`);
    for (const secret of [password, Buffer.from(`deployer:${password}`).toString('base64')]) {
      assert.ok(!stderr.includes(secret), `${name}: the login was printed: ${stderr}`);
    }
  }
  assert.equal(plain.requests.length + secure.requests.length, 2);
});
