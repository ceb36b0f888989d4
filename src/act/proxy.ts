/**
 * The proxy a download goes through, from the environment, and the agent that speaks to it: an
 * absolute-URI request for an http:// URL (what curl sends; proxies often allow CONNECT to port 443
 * alone), a CONNECT tunnel for an https:// one, so the proxy never sees the artifact's bytes or
 * headers. Loaded by src/act/download.ts only when a proxy variable is set.
 */
import type http from 'node:http';
import { isIP } from 'node:net';
import { checkServerIdentity } from 'node:tls';
import { HttpProxyAgent } from 'http-proxy-agent';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { getProxyForUrl } from 'proxy-from-env';
import { noProxyCovers, noProxyValue, parseProxy, proxyVariable, type Proxy } from '../plan/proxy.ts';

export type { Proxy } from '../plan/proxy.ts';
export { refusedHint, unreachableHint } from '../plan/proxy.ts';

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443 };

/**
 * The proxy for `url`, or undefined to connect directly: proxy-from-env applies the variables'
 * precedence and NO_PROXY, then curl's further NO_PROXY rules apply (src/plan/proxy.ts). A proxy
 * variable that is no http(s) proxy URL throws USAGE.
 */
export function proxyFor(url: URL, env: NodeJS.ProcessEnv = process.env): Proxy | undefined {
  // proxy-from-env reads process.env itself.
  if (getProxyForUrl(url.href) === '') return undefined;
  if (noProxyCovers(url.host.replace(/:\d*$/, ''), Number(url.port) || (DEFAULT_PORTS[url.protocol] ?? 0), noProxyValue(env))) return undefined;
  const variable = proxyVariable(url.protocol, env);
  return variable === undefined ? undefined : parseProxy(variable.name, variable.value);
}

/**
 * The options of one request to `url` through `proxy`: a fresh agent, and for an https:// URL whose
 * host is an address, the address its certificate must name. https-proxy-agent gives the TLS
 * connection no servername for an address (SNI carries names only) and leaves its host out, so
 * Node would check the certificate against "localhost". `signal` destroys the connection to the
 * proxy while the agent still waits on it (a proxy that took the connection and never answers the
 * CONNECT): the request's own timeout starts only once the agent hands it a socket.
 */
export function proxyRequestOptions(proxy: Proxy, url: URL, signal: AbortSignal): { agent: http.Agent; checkServerIdentity?: typeof checkServerIdentity } {
  // The login travels as a header, not in the URL the agents are given (and would log under DEBUG).
  const headers = proxy.authorization === undefined ? {} : { 'Proxy-Authorization': proxy.authorization };
  if (url.protocol !== 'https:') return { agent: new HttpProxyAgent(proxy.url, { headers, signal }) };
  const agent = new HttpsProxyAgent(proxy.url, { headers, signal });
  const address = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return isIP(address) === 0 ? { agent } : { agent, checkServerIdentity: (_host, cert) => checkServerIdentity(address, cert) };
}
