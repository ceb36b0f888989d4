/**
 * Downloads through a proxy, from the variables curl, wget and npm read: which variable names a
 * URL's proxy, what its value may be, the NO_PROXY entries curl honours beyond proxy-from-env's
 * rules, and what to say when a proxy fails. Pure: the environment is an argument. Loaded only
 * when a proxy variable is set (src/act/proxy.ts).
 */
import { BlockList, isIP } from 'node:net';
import { DeployError } from '../errors.ts';
import { urlProblem } from './archive.ts';

/** A proxy read from a variable, ready for the agents and for messages. */
export interface Proxy {
  /** The proxy's URL without user or password: the agents log what they are given when DEBUG asks them to. */
  url: string;
  /** How messages name it: `http://proxy.example:3128`, never with its user or password. */
  shown: string;
  /** The variable it came from. */
  variable: string;
  /** Proxy-Authorization (Basic), when the URL carries a user or password. */
  authorization: string | undefined;
}

/**
 * The variable an http(s) URL's proxy comes from, and its value, in the order proxy-from-env reads
 * them: the scheme's own in lower case, then in upper case, then ALL_PROXY likewise. An empty
 * variable is an unset one.
 */
export function proxyVariable(protocol: string, env: NodeJS.ProcessEnv): { name: string; value: string } | undefined {
  const scheme = protocol.replace(/:$/, '').toLowerCase();
  for (const name of [`${scheme}_proxy`, `${scheme.toUpperCase()}_PROXY`, 'all_proxy', 'ALL_PROXY']) {
    const value = env[name];
    if (value !== undefined && value !== '') return { name, value };
  }
  return undefined;
}

/**
 * A proxy variable's value read as curl reads it: `host:port` without a scheme is an http proxy
 * (proxy-from-env would give it the URL's scheme, and https:// to a plain proxy fails in its TLS
 * handshake); only http:// and https:// proxies are spoken to. A value that is no such URL is
 * invalid input (exit 2), named without its user, password, path or query.
 */
export function parseProxy(variable: string, value: string): Proxy {
  const given = value.trim();
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(given) ? given : `http://${given}`;
  const usage = (what: string, hint: string): DeployError => new DeployError('USAGE', `the proxy in ${variable} ${what}; nothing was downloaded`, { hint });
  const fix = `set ${variable} to http://host:port (http://user:password@host:port when the proxy asks for a login), or unset it`;
  const invalid = urlProblem(text);
  if (invalid) throw usage(`(${invalid.shown}) is not a valid URL: ${invalid.problem}`, fix);
  const url = new URL(text);
  const shownUrl = `${url.protocol}//${url.host}`;
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    const scheme = url.protocol.slice(0, -1);
    throw usage(`(${shownUrl}) is a ${scheme} proxy, which is not spoken to: only http:// and https:// proxies are`, `${variable.toLowerCase() === 'all_proxy' ? 'set HTTPS_PROXY and HTTP_PROXY' : `set ${variable}`} to an http:// proxy, or list the artifact's host in NO_PROXY to connect directly`);
  }
  if (url.hostname === '') throw usage(`(${shownUrl}) names no host`, fix);
  let authorization: string | undefined;
  if (url.username !== '' || url.password !== '') {
    let login: string;
    try {
      login = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
    } catch {
      throw usage(`(${shownUrl}) has a user or password with a malformed %-escape`, 'write a character that is not allowed in a URL\'s user or password as % and its two hex digits (@ is %40, : is %3A, % is %25)');
    }
    authorization = `Basic ${Buffer.from(login, 'utf8').toString('base64')}`;
  }
  return { url: `${shownUrl}/`, shown: shownUrl, variable, authorization };
}

/** NO_PROXY's value, lower case first as proxy-from-env reads it. */
export function noProxyValue(env: NodeJS.ProcessEnv): string {
  return env.no_proxy || env.NO_PROXY || '';
}

/**
 * Whether NO_PROXY covers a host by a rule curl has and proxy-from-env lacks (which matches a bare
 * name exactly, `.example.com` and `*.example.com` as suffixes): a bare name covers its
 * subdomains too (`example.com` covers `cdn.example.com`), an address range covers the addresses
 * in it (`10.0.0.0/8`, `fd00::/8`), and an IPv6 address may be written with or without brackets.
 * An entry's `:port` must be the URL's port. `host` is the URL's (an IPv6 address in brackets).
 */
export function noProxyCovers(host: string, port: number, noProxy: string): boolean {
  const name = host.toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
  const family = isIP(name);
  for (const entry of noProxy.toLowerCase().split(/[\s,]+/)) {
    if (entry === '') continue;
    if (entry === '*') return true;
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
    const withPort = bracketed || isIP(entry) === 6 || entry.includes('/') ? undefined : /^(.+):(\d+)$/.exec(entry);
    const only = bracketed?.[1] ?? withPort?.[1] ?? entry;
    const entryPort = bracketed?.[2] ?? withPort?.[2];
    if (entryPort !== undefined && Number(entryPort) !== port) continue;
    if (family !== 0) {
      if (addressCovers(only, name, family)) return true;
      continue;
    }
    const domain = only.replace(/^\*/, '').replace(/^\./, '').replace(/\.$/, '');
    if (domain !== '' && (name === domain || name.endsWith(`.${domain}`))) return true;
  }
  return false;
}

/** Whether an entry, an address or a range (`a/n`), holds `address` (of IP version `family`). */
function addressCovers(entry: string, address: string, family: number): boolean {
  const type = family === 6 ? 'ipv6' : 'ipv4';
  const [net, bits, extra] = entry.split('/');
  if (net === undefined || extra !== undefined || isIP(net) !== family) return false;
  if (bits !== undefined && !/^\d+$/.test(bits)) return false;
  const prefix = bits === undefined ? (family === 6 ? 128 : 32) : Number(bits);
  if (prefix > (family === 6 ? 128 : 32)) return false;
  const list = new BlockList();
  list.addSubnet(net, prefix, type);
  return list.check(address, type);
}

/** The hint of a proxy that could not be reached, or did not answer. */
export function unreachableHint(proxy: Proxy): string {
  const hint = `check that the proxy runs and that ${proxy.variable} names its host and port, or list the artifact's host in NO_PROXY to connect directly`;
  // Most proxies speak plain HTTP, and an https:// written for one (for HTTPS_PROXY, say) fails its TLS handshake or never answers it.
  return proxy.url.startsWith('https:') ? `${hint}; a proxy that speaks plain HTTP (most do) is named http://, not https://, in ${proxy.variable}` : hint;
}

/** The hint of a proxy that answered `status` instead of connecting or forwarding. */
export function refusedHint(proxy: Proxy, status: number): string {
  // Some proxies (tinyproxy) answer a CONNECT with a wrong login 401, not 407.
  if (status === 407 || status === 401) {
    return proxy.authorization === undefined
      ? `the proxy asks for a login: give it in ${proxy.variable} as http://user:password@host:port (with @, : and % in them written %40, %3A and %25)`
      : `the proxy refused the user and password in ${proxy.variable}: check them (with @, : and % in them written %40, %3A and %25)`;
  }
  if (status === 403) return "the proxy does not allow this host or port: ask for it to be allowed, or list the artifact's host in NO_PROXY if it can be reached directly";
  if (status >= 500) return "the proxy could not reach the artifact's server (or is overloaded): check the URL's host and port, then deploy again";
  return `check the proxy that ${proxy.variable} names, or list the artifact's host in NO_PROXY to connect directly`;
}
