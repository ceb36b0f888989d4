// The config file: every key validated, one error line naming key, value and expectation.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { DeployError } from '../../src/errors.ts';
import { parseConfig, parseHostSpec, configSchema, WHOLE_NUMBER_KEYS } from '../../src/plan/config.ts';
import { artifactOptionsFrom } from '../../src/cli/deploy-flags.ts';
import { parseByteCount } from '../../src/plan/archive.ts';
import { configFileMayExist, deployOptionsFrom, EXAMPLE_CONFIG, findConfigFiles, loadConfig, loadConfigParsers, pathFrom, type DeployFlags } from '../../src/cli/config.ts';

before(loadConfigParsers);

function configError(data: unknown): DeployError {
  try {
    parseConfig(data, 'c.yaml');
  } catch (error) {
    assert.ok(error instanceof DeployError);
    return error;
  }
  assert.fail(`expected ${JSON.stringify(data)} to be refused`);
}

const FULL = {
  root: '/srv/www/app',
  source: './build',
  keep: 5,
  releaseId: 'v1.4.2',
  fsync: true,
  wait: 30,
  shared: ['.env', 'storage/logs'],
  sharedCreate: true,
  sharedReplace: false,
  strategy: 'hardlink',
  checksum: true,
  hooks: { beforeSwitch: 'npm ci', afterSwitch: ['a', 'b'], timeout: 60 },
  healthCheck: { command: './smoke', url: 'https://example.com/healthz', timeout: 10 },
  artifact: { stripComponents: 1, maxFiles: 5000, maxBytes: '512M', allowedSigners: 'keys/allowed_signers', keepSetuid: false, downloadTimeout: 10, downloadRetries: 0, downloadMaxTime: 600 },
  hosts: [{ host: 'deploy@web1.example.com:2222', root: '/srv/app' }, { host: 'web2' }],
};

void test('a config with every key is accepted as is', () => {
  assert.deepEqual(parseConfig(FULL, 'c.yaml'), FULL);
  assert.deepEqual(parseConfig(null, 'c.yaml'), {}, 'an empty YAML file');
});

void test('errors name the key path, the value and what was expected, on one line, exit 2', () => {
  const cases: [unknown, RegExp][] = [
    [{ keep: -1 }, /^c\.yaml: keep: got -1, expected an integer >= 0$/],
    [{ keep: 'five' }, /keep: got "five", expected an integer >= 0/],
    [{ keep: 1.5 }, /keep: got 1\.5, expected an integer >= 0/],
    [{ strategy: 'rsync' }, /strategy: got "rsync", expected one of copy, reflink, hardlink, auto/],
    [{ shared: ['../etc'] }, /shared\[0\]: got "\.\.\/etc", expected a relative, normalised path without "\.\."/],
    [{ shared: ['/etc'] }, /shared\[0\]: got "\/etc"/],
    [{ shared: 'x/' }, /shared: got "x\/", expected a relative, normalised path without "\.\." \(it is not normalised \(empty or "\." segment\)\): write "x"$/],
    [{ shared: 3 }, /shared: got 3, expected a relative path or a list of them/],
    [{ fsync: 'yes' }, /fsync: got "yes", expected true or false/],
    [{ wait: -3 }, /wait: got -3, expected a number of seconds >= 0/],
    [{ hooks: { beforeSwitch: 3 } }, /hooks\.beforeSwitch: got 3, expected a command or a list of commands/],
    [{ hooks: { beforeSwitch: [] } }, /hooks\.beforeSwitch: got \[\], expected a command or a list of commands/],
    [{ hooks: { timeout: 0 } }, /hooks\.timeout: got 0, expected a number of seconds > 0/],
    [{ healthCheck: { url: 'ftp://x' } }, /healthCheck\.url: got "ftp:\/\/x", expected an http:\/\/ or https:\/\/ URL/],
    [{ healthCheck: { timeout: 5 } }, /healthCheck: got \{"timeout":5\}, expected a command or a url/],
    [{ hosts: [{ host: '-oProxyCommand=x' }] }, /hosts\[0\]\.host: got "-oProxyCommand=x", expected \[user@\]host\[:port\]/],
    [{ hosts: [{ host: 'web1', root: 'srv/app' }] }, /hosts\[0\]\.root: got "srv\/app", expected an absolute path/],
    [{ hosts: [{ root: '/srv' }] }, /hosts\[0\]\.host: got nothing, expected \[user@\]host\[:port\]/],
    [{ releaseId: '../x' }, /releaseId: got "\.\.\/x", expected a release id/],
    [['root'], /^c\.yaml: got \["root"\], expected a mapping of settings$/],
    [{ artifact: { maxBytes: 'lots' } }, /artifact\.maxBytes: got "lots", expected a size of at least 1 byte, such as 500000000, 512M or 4G/],
    [{ artifact: { maxBytes: -1 } }, /artifact\.maxBytes: got -1, expected a size/],
    [{ artifact: { maxBytes: 0 } }, /artifact\.maxBytes: got 0, expected a size of at least 1 byte/],
    [{ artifact: { maxFiles: 0 } }, /artifact\.maxFiles: got 0, expected an integer >= 1/],
    [{ artifact: { stripComponents: 1.5 } }, /artifact\.stripComponents: got 1\.5, expected an integer >= 0/],
    [{ artifact: { allowedSigners: '' } }, /artifact\.allowedSigners: got "", expected an OpenSSH allowed_signers file path/],
    [{ artifact: { downloadTimeout: 0 } }, /artifact\.downloadTimeout: got 0, expected a number of seconds > 0/],
    [{ artifact: { keepSetuid: 'no' } }, /artifact\.keepSetuid: got "no", expected true or false/],
    [{ artifact: '.tgz' }, /artifact: got "\.tgz", expected a mapping with stripComponents, maxFiles/],
  ];
  for (const [data, pattern] of cases) {
    const error = configError(data);
    assert.equal(error.code, 'INVALID_CONFIG');
    assert.equal(error.exitCode, 2);
    assert.match(error.message, pattern, JSON.stringify(data));
    assert.ok(!error.message.includes('\n'), 'one line');
  }
});

void test('unknown keys are errors that list the known ones', () => {
  const top = configError({ keeep: 3 });
  assert.match(top.message, /^c\.yaml: keeep: unknown key \(value 3\); did you mean 'keep'\? expected one of root, source, keep, /);
  // No guess when nothing is close.
  assert.match(configError({ zzzzzzzz: 1 }).message, /zzzzzzzz: unknown key \(value 1\); expected one of root,/);
  const nested = configError({ hooks: { before: 'x' } });
  assert.match(nested.message, /hooks\.before: unknown key \(value "x"\); expected one of beforeSwitch, afterSwitch, timeout/);
  const host = configError({ hosts: [{ host: 'a', port: 22 }] });
  assert.match(host.message, /hosts\[0\]\.port: unknown key \(value 22\); it belongs in the host string itself: host: user@web1:2222; expected one of host, root/);
  // A digest or signature names one build: no config key for them.
  const digest = configError({ artifact: { sha256: 'ab' } });
  assert.match(digest.message, /artifact\.sha256: unknown key \(value "ab"\); expected one of stripComponents, maxFiles, maxBytes, allowedSigners, keepSetuid, downloadTimeout, downloadRetries, downloadMaxTime$/);
});

void test('artifact options: the config file values, each flag given overriding; allowedSigners from the config file directory', () => {
  const loaded = { config: parseConfig(FULL, 'c.yaml'), file: '/x/c.yaml', dir: '/x' };
  assert.deepEqual(artifactOptionsFrom({}, loaded), {
    stripComponents: 1,
    sha256: undefined,
    signature: undefined,
    allowedSigners: '/x/keys/allowed_signers',
    maxFiles: 5000,
    maxBytes: 512 * 1024 * 1024,
    keepSetid: false,
    downloadTimeoutMs: 10_000,
    downloadRetries: 0,
    downloadMaxTimeMs: 600_000,
  });
  const flags = { stripComponents: 0, sha256: 'a'.repeat(64), signature: 's.sig', allowedSigners: 'mine', maxFiles: 7, maxBytes: 9, keepSetuid: true, downloadTimeout: 1.5, downloadRetries: 2, downloadMaxTime: 90 };
  assert.deepEqual(artifactOptionsFrom(flags, loaded), {
    stripComponents: 0,
    sha256: 'a'.repeat(64),
    signature: 's.sig',
    allowedSigners: 'mine',
    maxFiles: 7,
    maxBytes: 9,
    keepSetid: true,
    downloadTimeoutMs: 1500,
    downloadRetries: 2,
    downloadMaxTimeMs: 90_000,
  });
  assert.deepEqual(Object.values(artifactOptionsFrom({}, { config: {}, dir: '/x' })).filter((v) => v !== undefined), [], 'no config, no flags: library defaults');
});

void test('sizes: whole bytes, or K/M/G/T in powers of 1024', () => {
  assert.equal(parseByteCount('4G'), 4 * 1024 ** 3);
  assert.equal(parseByteCount('512M'), 512 * 1024 ** 2);
  assert.equal(parseByteCount('10KiB'), 10_240);
  assert.equal(parseByteCount(1000), 1000);
  assert.equal(parseByteCount('1000'), 1000);
  for (const bad of ['', 'G', '-1', '1.5G', '4X', -1, 1.5, '99999999999T']) assert.equal(parseByteCount(bad), undefined, String(bad));
});

void test('keys of verify, reloads, the stale check and waves: the same one-line errors and suggestions', () => {
  const cases: [unknown, RegExp][] = [
    [{ stale: 'sometimes' }, /^c\.yaml: stale: got "sometimes", expected one of warn, fail, off$/],
    [{ staleWait: -1 }, /staleWait: got -1, expected a number of seconds >= 0$/],
    [{ reload: { units: [] } }, /reload\.units: got \[\], expected a systemd unit name or a list of them$/],
    [{ reload: { timeout: 0 } }, /reload\.timeout: got 0, expected a number of seconds > 0$/],
    [{ waves: '0,50%' }, /waves: got "0,50%", expected wave sizes such as "1,10%,100%" \(hosts >= 1 or percentages\)$/],
    [{ maxFail: 'many' }, /maxFail: got "many", expected a number of hosts \(>= 0\) or a percentage such as 10%$/],
    [{ onFailure: 'panic' }, /onFailure: got "panic", expected rollback or keep$/],
    [{ hosts: [] }, /hosts: got \[\], expected a non-empty list of hosts$/],
    [{ hosts: 'web1' }, /hosts: got "web1", expected a list of hosts$/],
    // Infinity (YAML's .inf, 1e400) is named as it is, with the range it is outside of.
    [{ wait: Infinity }, /wait: got Infinity, expected a number of seconds from 0 to 2147483 \(the longest timer Node keeps\)$/],
    [{ wait: 2147484 }, /wait: got 2147484, expected a number of seconds from 0 to 2147483 \(the longest timer Node keeps\)$/],
    [{ hooks: { timeout: Infinity } }, /hooks\.timeout: got Infinity, expected a number of seconds greater than 0, at most 2147483 \(the longest timer Node keeps\)$/],
    [{ keep: Infinity }, /keep: got Infinity, expected an integer from 0 to 1000000$/],
    [{ keep: NaN }, /keep: got NaN, expected an integer from 0 to 1000000$/],
    [{ artifact: { stripComponents: 1025 } }, /artifact\.stripComponents: got 1025, expected an integer from 0 to 1024$/],
  ];
  for (const [data, pattern] of cases) assert.match(configError(data).message, pattern, JSON.stringify(data));
  assert.match(configError({ staleWiat: 5 }).message, /^c\.yaml: staleWiat: unknown key \(value 5\); did you mean 'staleWait'\?/);
  assert.match(configError({ wave: '1,100%' }).message, /did you mean 'waves'\?/);
  assert.match(configError({ reload: { unit: ['a'] } }).message, /^c\.yaml: reload\.unit: unknown key \(value \["a"\]\); did you mean 'units'\? expected one of units, phpFpm, timeout$/);
  assert.deepEqual(parseConfig({ stale: 'fail', staleWait: 0, reload: { units: ['app.service'], phpFpm: ['/run/php.pid'], timeout: 5 }, waves: '1,100%', maxFail: 0, onFailure: 'keep', wavePause: 0 }, 'c.yaml'), { stale: 'fail', staleWait: 0, reload: { units: ['app.service'], phpFpm: ['/run/php.pid'], timeout: 5 }, waves: '1,100%', maxFail: 0, onFailure: 'keep', wavePause: 0 });
});

void test('several problems: the first is named, the rest counted', () => {
  assert.match(configError({ keep: -1, strategy: 'x' }).message, /\(and 1 more problem\)$/);
});

void test('host specs: [user@]host[:port]', () => {
  assert.deepEqual(parseHostSpec('web1'), { host: 'web1' });
  assert.deepEqual(parseHostSpec('deploy@web1.example.com:2222'), { user: 'deploy', host: 'web1.example.com', port: 2222 });
  assert.deepEqual(parseHostSpec('[::1]:22'), { host: '[::1]', port: 22 });
  for (const bad of ['', '-x', 'a@', '@b', 'host:0', 'host:70000', 'a b', 'user@-host', 'host:', 'a;b']) assert.equal(parseHostSpec(bad), undefined, bad);
});

void test('the example init writes is valid, and every key appears in it when uncommented', () => {
  const plain = YAML.parse(EXAMPLE_CONFIG) as unknown;
  assert.deepEqual(parseConfig(plain, 'example'), { root: '/srv/www/app', source: './build', keep: 5 });
  // Commented-out settings start with "#" followed by a key or indentation; prose with "# ".
  const uncommented = EXAMPLE_CONFIG.split('\n').map((line) => (/^#(?=[a-z]| {2})/.test(line) ? line.slice(1) : line)).join('\n');
  const all = parseConfig(YAML.parse(uncommented), 'example');
  assert.deepEqual(Object.keys(all).sort(), Object.keys(configSchema.shape).sort());
});

function tmp(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'atomic-deploy-config-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

void test('loading: YAML, .yml and JSON; none at all; two at once is an error', (t) => {
  const dir = tmp(t);
  assert.deepEqual(loadConfig(undefined, dir).config, {});
  fs.writeFileSync(path.join(dir, 'atomic-deploy.config.yml'), 'keep: 2\nroot: ./root\n');
  const loaded = loadConfig(undefined, dir);
  assert.deepEqual(loaded.config, { keep: 2, root: './root' });
  assert.equal(pathFrom(undefined, loaded.config.root, loaded, 'root'), path.join(dir, 'root'), 'relative to the file');
  assert.equal(pathFrom('cli-root', loaded.config.root, loaded, 'root'), 'cli-root', 'the argument wins');
  fs.writeFileSync(path.join(dir, 'atomic-deploy.config.json'), '{"keep": 3}');
  assert.throws(() => loadConfig(undefined, dir), /found atomic-deploy\.config\.yml and atomic-deploy\.config\.json/);
  assert.deepEqual(loadConfig('atomic-deploy.config.json', dir).config, { keep: 3 });
});

void test('loading: syntax errors and duplicate keys name the file and line', (t) => {
  const dir = tmp(t);
  const file = path.join(dir, 'bad.yaml');
  fs.writeFileSync(file, 'keep: 2\nkeep: 3\n');
  assert.throws(() => loadConfig(file, dir), (e: unknown) => e instanceof DeployError && e.code === 'INVALID_CONFIG' && /bad\.yaml:2:\d+: not valid YAML/.test(e.message));
  fs.writeFileSync(file, 'hooks: [unclosed\n');
  assert.throws(() => loadConfig(file, dir), /not valid YAML/);
  // A second document: said in the tool's words, not the library's (it named YAML.parseAllDocuments()).
  fs.writeFileSync(file, 'keep: 3\n---\nkeep: 4\n');
  assert.throws(() => loadConfig(file, dir), (e: unknown) => e instanceof Error && /bad\.yaml:2:1: not valid YAML: it holds more than one YAML document/.test(e.message) && !/parseAllDocuments/.test(e.message));
  fs.writeFileSync(path.join(dir, 'c.json'), '{"keep": }');
  assert.throws(() => loadConfig('c.json', dir), /c\.json: not valid JSON/);
  assert.throws(() => loadConfig('missing.yaml', dir), (e: unknown) => e instanceof DeployError && e.code === 'INVALID_CONFIG' && /does not exist/.test(e.message));
});

void test('loading: a whole number written with a fraction (3.0) is refused, as on the command line, in YAML and JSON', (t) => {
  const dir = tmp(t);
  const cases: [string, string, string][] = [
    ['c.yaml', 'keep: 3.0\n', 'keep: got "3.0", expected a whole number in decimal digits (write 3, not 3.0), as on the command line'],
    ['c.yaml', 'waves: 2.0\n', 'waves: got "2.0"'],
    ['c.yaml', 'maxFail: 1.0\n', 'maxFail: got "1.0"'],
    ['c.yaml', 'artifact:\n  stripComponents: 1.00\n', 'artifact.stripComponents: got "1.00", expected a whole number in decimal digits (write 1, not 1.00)'],
    ['c.yaml', 'artifact:\n  maxFiles: 5000.0\n', 'artifact.maxFiles: got "5000.0"'],
    ['c.yaml', 'artifact:\n  maxBytes: 1024.0\n', 'artifact.maxBytes: got "1024.0"'],
    ['c.yaml', 'artifact:\n  downloadRetries: 0.0\n', 'artifact.downloadRetries: got "0.0"'],
    ['c.json', '{"keep": 3.0}', 'keep: got "3.0", expected a whole number in decimal digits (write 3, not 3.0)'],
    ['c.json', '{\n\t"artifact": {"maxFiles": 1e3}\n}', 'artifact.maxFiles: got "1e3", expected a number in decimal digits'],
    ['c.json', '{"wait": 1e3}', 'wait: got "1e3", expected a number in decimal digits'],
  ];
  for (const [name, text, said] of cases) {
    fs.writeFileSync(path.join(dir, name), text);
    assert.throws(
      () => loadConfig(name, dir),
      (e: unknown) => e instanceof DeployError && e.code === 'INVALID_CONFIG' && e.message.startsWith(`${path.join(dir, name)}: ${said}`) && !e.message.includes('\n') && e.hint !== undefined,
      `${name}: ${text}`,
    );
  }
  // Seconds take a fraction, on the command line and in the file; whole numbers in digits pass.
  fs.writeFileSync(path.join(dir, 'ok.yaml'), 'keep: 3\nwait: 2.5\nwaves: 2\nmaxFail: 1\nartifact:\n  maxFiles: 5000\n  maxBytes: 1024\n  downloadTimeout: 1.0\n');
  assert.deepEqual(loadConfig('ok.yaml', dir).config, { keep: 3, wait: 2.5, waves: 2, maxFail: 1, artifact: { maxFiles: 5000, maxBytes: 1024, downloadTimeout: 1 } });
  fs.writeFileSync(path.join(dir, 'ok.json'), '{"keep": 3, "wait": 2.5, "hooks": {"timeout": 1.0}}');
  assert.deepEqual(loadConfig('ok.json', dir).config, { keep: 3, wait: 2.5, hooks: { timeout: 1 } });
});

void test('the whole-number keys are exactly the keys whose schema takes 3 and refuses 3.5', () => {
  const found: string[] = [];
  for (const [parent, keys] of [['', Object.keys(configSchema.shape)], ...Object.entries({ hooks: ['timeout'], healthCheck: ['timeout'], reload: ['timeout'], artifact: Object.keys(FULL.artifact) })] as [string, string[]][]) {
    for (const key of keys) {
      const at = (value: number): unknown => (parent === '' ? { [key]: value } : { [parent]: { ...(parent === 'healthCheck' ? { command: 'x' } : {}), [key]: value } });
      if (configSchema.safeParse(at(3)).success && !configSchema.safeParse(at(3.5)).success) found.push(parent === '' ? key : `${parent}.${key}`);
    }
  }
  assert.deepEqual([...WHOLE_NUMBER_KEYS].sort(), found.sort());
  assert.ok(found.includes('keep') && found.includes('artifact.maxFiles'), found.join(', '));
});

void test('flags override the file key by key; lists are replaced; absent keys stay absent', () => {
  const loaded = { config: parseConfig(FULL, 'c.yaml'), file: '/x/c.yaml', dir: '/x' };
  const none = deployOptionsFrom(loaded, { fsync: true }, () => false);
  assert.deepEqual(none, {
    releaseId: 'v1.4.2',
    fsync: true,
    waitMs: 30_000,
    keep: 5,
    shared: ['.env', 'storage/logs'],
    sharedCreate: true,
    sharedReplace: false,
    strategy: 'hardlink',
    checksum: true,
    hooks: { beforeSwitch: ['npm ci'], afterSwitch: ['a', 'b'], timeoutMs: 60_000 },
    healthCheck: { command: './smoke', url: 'https://example.com/healthz', timeoutMs: 10_000 },
  });
  const flags: DeployFlags = { fsync: false, keep: 2, shared: ['uploads'], beforeSwitch: ['make'], healthTimeout: 3, wait: 0 };
  const given = new Set(['fsync', 'keep', 'shared', 'beforeSwitch', 'healthTimeout', 'wait']);
  const over = deployOptionsFrom(loaded, flags, (f) => given.has(f));
  assert.equal(over.fsync, false);
  assert.equal(over.keep, 2);
  assert.equal(over.waitMs, 0);
  assert.deepEqual(over.shared, ['uploads']);
  assert.deepEqual(over.hooks, { beforeSwitch: ['make'], afterSwitch: ['a', 'b'], timeoutMs: 60_000 });
  assert.deepEqual(over.healthCheck, { command: './smoke', url: 'https://example.com/healthz', timeoutMs: 3000 });
  const empty = deployOptionsFrom({ config: {}, dir: '/x' }, { fsync: true }, () => false);
  // keep defaults to 5; keep 0 (flag or file) turns pruning off.
  assert.deepEqual(empty, { waitMs: 0, keep: 5 });
  assert.equal(deployOptionsFrom({ config: { keep: 0 }, dir: '/x' }, {}, () => false).keep, undefined);
  assert.equal(deployOptionsFrom(loaded, { keep: 0 }, (f) => f === 'keep').keep, undefined);
});

void test('discovery: the working directory, then each parent, stopping at a git top level', (t) => {
  const dir = tmp(t);
  const deep = path.join(dir, 'project', 'app', 'sub');
  fs.mkdirSync(deep, { recursive: true });
  fs.writeFileSync(path.join(dir, 'project', 'atomic-deploy.config.yaml'), 'keep: 4\n');
  assert.deepEqual(findConfigFiles(deep), [path.join(dir, 'project', 'atomic-deploy.config.yaml')]);
  // A git work tree below the file: the search stops at its top, the parent project's file is not this one's.
  fs.mkdirSync(path.join(dir, 'project', 'app', '.git'));
  assert.deepEqual(findConfigFiles(deep), []);
  // A file at the git top itself is found.
  fs.writeFileSync(path.join(dir, 'project', 'app', 'atomic-deploy.config.json'), '{"keep": 2}');
  assert.deepEqual(findConfigFiles(deep), [path.join(dir, 'project', 'app', 'atomic-deploy.config.json')]);
  assert.equal(configFileMayExist(undefined, deep), true);
});

// Flags turned into a file: keys at the wrong level, and durations or quoted numbers, got only the
// list of known keys or "expected a number"; each now says where the key goes, or what to write.
void test('a flag-style key says where it belongs; a quoted number or a duration with a unit says what to write', () => {
  for (const [data, under] of [
    [{ beforeSwitch: 'npm ci' }, 'hooks.beforeSwitch'],
    [{ 'before-switch': 'npm ci' }, 'hooks.beforeSwitch'],
    [{ health_url: 'http://x/' }, 'healthCheck.url'],
    [{ healthUrl: 'http://x/' }, 'healthCheck.url'],
    [{ reloadUnit: 'app' }, 'reload.units'],
    [{ stripComponents: 1 }, 'artifact.stripComponents'],
    [{ keepSetuid: true }, 'artifact.keepSetuid'],
    [{ sharedFile: '.env' }, 'sharedFiles'],
    [{ timeout: 5 }, 'hooks.timeout, healthCheck.timeout or reload.timeout'],
  ] as const) {
    const e = configError(data);
    assert.ok(e.message.includes(`; it belongs in ${under};`), `${JSON.stringify(data)}: ${e.message}`);
    assert.doesNotMatch(e.message, /did you mean/);
  }
  // A case slip of a key that exists stays closest's: "did you mean".
  assert.match(configError({ Keep: 3 }).message, /did you mean 'keep'\?/);
  for (const [data, hint] of [
    [{ wait: '30s' }, 'seconds are a bare number: write wait: 30; '],
    [{ wait: '1m' }, 'seconds are a bare number: write wait: 60; '],
    [{ hooks: { timeout: '2 min' } }, 'seconds are a bare number: write timeout: 120; '],
    [{ wait: '30' }, 'a number in quotes is text: write wait: 30; '],
    [{ keep: '3' }, 'a number in quotes is text: write keep: 3; '],
  ] as const) {
    const e = configError(data);
    assert.ok(e.hint?.startsWith(hint), `${JSON.stringify(data)}: ${e.hint}`);
  }
  // keep takes no duration: no seconds hint for it, nor for a word.
  assert.doesNotMatch(configError({ keep: '3s' }).hint ?? '', /seconds/);
  assert.doesNotMatch(configError({ wait: 'soon' }).hint ?? '', /write/);
});

void test('shared paths and reloads take one item or a list, as hooks take one command or a list', () => {
  const c = parseConfig({ shared: '.env', sharedFiles: '.env.local', sharedDirs: ['storage'], reload: { units: 'app.service', phpFpm: '/run/php/fpm.pid' } }, 'c.yaml');
  assert.equal(c.shared, '.env');
  assert.deepEqual(c.sharedDirs, ['storage']);
  assert.equal(c.reload?.units, 'app.service');
});

void test('a YAML merge key is named as one, not as an unknown key "<<"', () => {
  assert.match(configError({ hooks: { '<<': { timeout: 5 } } }).message, /^c\.yaml: hooks\.<<: a YAML merge key \(<<: \*anchor\), which this file does not read; write the keys out/);
});

void test('config text: UTF-8, a BOM read past; another encoding is a problem at its first byte, never replaced', async () => {
  const { configText } = await import('../../src/plan/config-basics.ts');
  assert.deepEqual(configText(Buffer.from('keep: 3\n')), { text: 'keep: 3\n' });
  assert.deepEqual(configText(Buffer.from('\uFEFFkeep: 3\n')), { text: 'keep: 3\n' });
  assert.deepEqual(configText(Buffer.from('root: /srv/café\n')), { text: 'root: /srv/café\n' });
  const latin1 = configText(Buffer.from('keep: 3\nroot: /srv/caf\xe9\n', 'latin1'));
  assert.ok('problem' in latin1);
  assert.equal(latin1.line, 2);
  assert.equal(latin1.col, 15);
  assert.match(latin1.problem, /^not UTF-8 text \(the byte 0xe9\)/);
  // A character cut short at the end of the file, a lone continuation byte, an overlong form.
  for (const [bytes, col] of [[[0x61, 0xe2, 0x82], 2], [[0x80], 1], [[0x61, 0x61, 0xc0, 0xaf], 3]] as const) {
    const r = configText(Uint8Array.from(bytes));
    assert.ok('problem' in r, String(bytes));
    assert.equal(r.col, col, String(bytes));
  }
  const wide = configText(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('keep: 3\n', 'utf16le')]));
  assert.ok('problem' in wide);
  assert.match(wide.problem, /^UTF-16 text/);
});

// Node 20's JSON.parse names a character offset only ("at position 15"): a YAML file's errors
// have file:line:col, a JSON file's had neither, and a trailing comma on line 3 was hunted for.
void test('a JSON config that does not parse is named by file:line:col, as a YAML one is', (t) => {
  const dir = tmp(t);
  const file = path.join(dir, 'deploy.json');
  for (const [text, at] of [
    ['{\n  "keep": 3,\n}\n', '3:1'],
    ['{\n  "keep": 3\n  "root": "x"\n}\n', '3:3'],
    ['{\n  "keep": 3,\n', '3:1'],
  ] as const) {
    fs.writeFileSync(file, text);
    assert.throws(() => loadConfig(file, dir), (error: unknown) => {
      assert.ok(error instanceof DeployError);
      assert.equal(error.code, 'INVALID_CONFIG');
      assert.ok(error.message.startsWith(`${file}:${at}: not valid JSON: `), `${JSON.stringify(text)}: ${error.message}`);
      return true;
    });
  }
});
