// src/plan/proxy.ts: which variable names a URL's proxy, what its value may be, the NO_PROXY rules
// curl has beyond proxy-from-env's, and the hints of a proxy that fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DeployError } from '../../src/errors.ts';
import { noProxyCovers, noProxyValue, parseProxy, proxyVariable, refusedHint, unreachableHint } from '../../src/plan/proxy.ts';

test("a URL's proxy variable: its scheme's, lower case before upper, then ALL_PROXY; an empty one is unset", () => {
  assert.deepEqual(proxyVariable('https:', { https_proxy: 'a', HTTPS_PROXY: 'b', ALL_PROXY: 'c' }), { name: 'https_proxy', value: 'a' });
  assert.deepEqual(proxyVariable('https:', { https_proxy: '', HTTPS_PROXY: 'b' }), { name: 'HTTPS_PROXY', value: 'b' });
  assert.deepEqual(proxyVariable('https:', { HTTP_PROXY: 'h', all_proxy: 'c' }), { name: 'all_proxy', value: 'c' }, 'HTTP_PROXY is not for https:// URLs');
  assert.deepEqual(proxyVariable('http:', { HTTPS_PROXY: 's', HTTP_PROXY: 'h' }), { name: 'HTTP_PROXY', value: 'h' });
  assert.equal(proxyVariable('http:', { HTTPS_PROXY: 's', no_proxy: '*' }), undefined);
  assert.equal(noProxyValue({ no_proxy: 'a', NO_PROXY: 'b' }), 'a');
  assert.equal(noProxyValue({ NO_PROXY: 'b' }), 'b');
});

test('a proxy URL: host:port alone is an http proxy; the login becomes Proxy-Authorization and leaves the URL and the name shown', () => {
  assert.deepEqual(parseProxy('HTTPS_PROXY', 'proxy.corp:3128'), { url: 'http://proxy.corp:3128/', shown: 'http://proxy.corp:3128', variable: 'HTTPS_PROXY', authorization: undefined });
  assert.deepEqual(parseProxy('HTTP_PROXY', ' https://proxy.corp/ignored/path?q=1 '), { url: 'https://proxy.corp/', shown: 'https://proxy.corp', variable: 'HTTP_PROXY', authorization: undefined });
  const p = parseProxy('https_proxy', 'http://dep%40loyer:p%3Ass%25w@[::1]:8080');
  assert.equal(p.url, 'http://[::1]:8080/');
  assert.equal(p.shown, 'http://[::1]:8080');
  assert.equal(p.authorization, `Basic ${Buffer.from('dep@loyer:p:ss%w').toString('base64')}`);
  assert.equal(parseProxy('HTTP_PROXY', 'http://only-user@proxy:1').authorization, `Basic ${Buffer.from('only-user:').toString('base64')}`);
});

test('a proxy value that is no http(s) proxy URL is USAGE (exit 2), shown without its login', () => {
  const cases: [string, RegExp][] = [
    ['http://u:secret@proxy:99999', /^the proxy in X \(http:\/\/proxy:99999\) is not a valid URL: its port 99999 is out of range/],
    ['http://u:secret@', /names no host/],
    ['http:///', /names no host/],
    ['socks5://u:secret@proxy:1080', /^the proxy in X \(socks5:\/\/proxy:1080\) is a socks5 proxy, which is not spoken to/],
    ['ftp://proxy', /is a ftp proxy/],
    ['http://u:secret%zz@proxy:3128', /^the proxy in X \(http:\/\/proxy:3128\) has a user or password with a malformed %-escape/],
  ];
  for (const [value, message] of cases) {
    assert.throws(() => parseProxy('X', value), (e: unknown) => {
      assert.ok(e instanceof DeployError, value);
      assert.equal(e.code, 'USAGE', value);
      assert.equal(e.exitCode, 2, value);
      assert.match(e.message, message, value);
      assert.ok(!`${e.message} ${e.hint ?? ''}`.includes('secret'), `${value}: ${e.message}`);
      return true;
    });
  }
  fc.assert(fc.property(fc.webUrl({ withQueryParameters: true, withFragments: true }), fc.string({ minLength: 1 }), (url, password) => {
    const withLogin = url.replace('://', `://user:${encodeURIComponent(`pw${password}`)}@`);
    try {
      const p = parseProxy('HTTPS_PROXY', withLogin);
      assert.ok(!p.url.includes('@') && !p.shown.includes('@'));
    } catch (e) {
      assert.ok(e instanceof DeployError && !e.message.includes(encodeURIComponent(`pw${password}`)));
    }
  }));
});

test('NO_PROXY as curl reads it, beyond exact names: subdomains of a bare name, address ranges, IPv6 with or without brackets, ports', () => {
  const covered: [string, number, string][] = [
    ['cdn.example.com', 443, 'example.com'],
    ['example.com', 443, '.example.com'],
    ['a.b.example.com', 443, '*.example.com'],
    ['Example.COM.', 80, 'example.com'],
    ['10.1.2.3', 80, 'localhost, 10.0.0.0/8'],
    ['127.0.0.1', 8080, '127.0.0.1:8080'],
    ['[::1]', 443, '::1'],
    ['[::1]', 443, '[::1]:443'],
    ['[fd00::5]', 443, 'fd00::/8'],
    ['[0:0::1]', 443, '::1'],
    ['anything', 1, 'a,*,b'],
  ];
  for (const [host, port, list] of covered) assert.equal(noProxyCovers(host, port, list), true, `${host}:${port} by ${list}`);
  const not: [string, number, string][] = [
    ['notexample.com', 443, 'example.com'],
    ['example.com.evil', 443, 'example.com'],
    ['cdn.example.com', 443, 'example.com:80'],
    ['11.1.2.3', 80, '10.0.0.0/8'],
    ['10.1.2.3', 80, '10.0.0.0/33,10.0.0.0/x,10.0.0.0/8/1'],
    ['127.0.0.1', 443, '127.0.0.1:8080'],
    ['[::2]', 443, '::1,[::1]'],
    ['[::1]', 443, '127.0.0.1, 0.0.0.0/0'],
    ['host', 80, ''],
  ];
  for (const [host, port, list] of not) assert.equal(noProxyCovers(host, port, list), false, `${host}:${port} by ${list}`);
});

test('hints: a login asked for, a login refused, a host not allowed, a server the proxy cannot reach', () => {
  const bare = parseProxy('HTTPS_PROXY', 'http://proxy:3128');
  const login = parseProxy('HTTPS_PROXY', 'http://u:p@proxy:3128');
  assert.match(refusedHint(bare, 407), /asks for a login: give it in HTTPS_PROXY/);
  assert.match(refusedHint(login, 407), /refused the user and password in HTTPS_PROXY/);
  assert.match(refusedHint(login, 401), /refused the user and password/);
  assert.match(refusedHint(bare, 403), /does not allow this host or port/);
  assert.match(refusedHint(bare, 502), /could not reach the artifact's server/);
  // An https:// proxy not reached may be a plain one named so.
  assert.doesNotMatch(unreachableHint(bare), /plain HTTP/);
  assert.match(unreachableHint(parseProxy('HTTPS_PROXY', 'https://proxy:3128')), /a proxy that speaks plain HTTP \(most do\) is named http:\/\/, not https:\/\/, in HTTPS_PROXY$/);
});
