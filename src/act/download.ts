/**
 * Streams an http(s) artifact: one GET, resumed after a dropped connection (see `resume`), an idle
 * timeout on every read. node:http rather than fetch: fetch refuses the Fetch standard's
 * "bad ports" (6000, 10080, ...), which an artifact server may well listen on. Through the proxy
 * the environment names (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY), as curl goes: see ./proxy.ts.
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { createHash, type Hash } from 'node:crypto';
import { DeployError } from '../errors.ts';
import { redactUrl, urlProblem } from '../plan/archive.ts';
import { answerHint, certificateHint, certificateProblem, isTransientStatus, retryDelayMs, retryWait } from '../plan/download.ts';
import { formatBytes, plural } from '../plan/units.ts';
import type { Proxy } from './proxy.ts';

export interface DownloadOptions {
  /** Give up on a connection that sends nothing for this long, then retry. */
  timeoutMs: number;
  /** Further attempts after a dropped or stalled connection, a 5xx, 408 or 429 (not after another 4xx), on opening and again on reading. */
  retries: number;
  /**
   * Give up when the whole transfer (every attempt, wait and reconnection, from the first request
   * to the last byte) takes longer: a server trickling bytes inside `timeoutMs` would otherwise
   * hold the deploy, and the root's lock, as long as it likes.
   */
  maxTimeMs?: number;
  signal?: AbortSignal;
  onRetry?: (message: string) => void;
}

export interface Download {
  /** From Content-Length, when the server sent one. */
  totalBytes: number | undefined;
  /** The body, first byte to last, across reconnections. */
  chunks: AsyncGenerator<Buffer>;
}

/** Set, one of these may send a URL through a proxy: only then is the proxy code (./proxy.ts and its libraries) loaded. */
const PROXY_VARIABLES = ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY'];

/** How a request reaches its URL: through a proxy, with a fresh agent for each request, or directly (undefined). */
interface Route {
  proxy: Proxy;
  options: (signal: AbortSignal) => https.RequestOptions;
  /** The hints of a proxy not reached, and of one that answered this status itself. */
  unreachable: string;
  refused: (status: number) => string;
}

/** The route to `url`, asked for every request: a redirect to a host NO_PROXY lists goes there directly. */
async function routeTo(url: string): Promise<Route | undefined> {
  if (!PROXY_VARIABLES.some((name) => (process.env[name] ?? '') !== '')) return undefined;
  const { proxyFor, proxyRequestOptions, refusedHint, unreachableHint } = await import('./proxy.ts');
  const target = new URL(url);
  const proxy = proxyFor(target);
  return proxy && { proxy, options: (signal) => proxyRequestOptions(proxy, target, signal), unreachable: unreachableHint(proxy), refused: (status) => refusedHint(proxy, status) };
}

/** A failure of the proxy itself (not reached, silent, or answering for itself), retried as a failed connection is; the message names the proxy. */
class ProxyTrouble extends Error {
  constructor(message: string, readonly hint: string) {
    super(message);
  }
}

/**
 * A TLS certificate refused, the proxy's (`proxy` given: TLS to an https:// proxy) or the server's,
 * as an error not retried: asking again gets the same certificate. Undefined for any other error.
 */
function certificateRefused(url: string, error: Error, proxy: Proxy | undefined): DeployError | undefined {
  const problem = certificateProblem((error as NodeJS.ErrnoException).code);
  if (problem === undefined) return undefined;
  const refused = proxy ? `the proxy ${proxy.shown} (${proxy.variable}) presented a certificate that is not accepted` : `the certificate of ${new URL(url).host} is not accepted`;
  return new DeployError('DOWNLOAD_FAILED', `downloading ${redactUrl(url)} failed: ${refused}: ${error.message}`, {
    cause: error,
    hint: certificateHint(problem, proxy ? { proxyVariable: proxy.variable } : 'server'),
  });
}

/** The proxy a response came through, for the messages that quote it. */
const throughProxy = new WeakMap<http.IncomingMessage, Proxy>();

async function request(url: string, headers: Record<string, string>, options: DownloadOptions): Promise<http.IncomingMessage> {
  const route = await routeTo(url);
  return new Promise((resolve, reject) => {
    const get = url.startsWith('https:') ? https.get : http.get;
    const connecting = new AbortController();
    // Set once the proxy took the connection (forwarding) or answered the CONNECT (tunnel, its status): an error before it is the proxy's.
    let reached = false;
    let tunnel: number | undefined;
    // The artifact's own bytes: they are what --sha256 and the signature are of, and what is sniffed and extracted.
    const req = get(url, { headers: { ...headers, 'accept-encoding': 'identity' }, signal: options.signal, ...route?.options(connecting.signal) }, (res) => {
      // Bytes after the answer's Content-Length fail the parse of a next answer on the connection: the server sent more than it said.
      req.on('error', (error) => {
        if (isParseError(error)) excess.set(res, error);
      });
      if (!route) {
        resolve(res);
        return;
      }
      const code = res.statusCode ?? 0;
      // The proxy's own answer: to the CONNECT of a tunnel (which the agent hands on as the response), or 407 to a forwarded request.
      if ((tunnel !== undefined && tunnel !== 200) || (tunnel === undefined && code === 407)) {
        res.resume();
        const target = new URL(url);
        const message = `the proxy ${route.proxy.shown} (${route.proxy.variable}) answered ${`${code} ${res.statusMessage ?? ''}`.trim()}${tunnel === undefined ? '' : ` to CONNECT ${target.host}`}`;
        const hint = route.refused(code);
        // A refusal (407, 403) is not retried: the same request would be refused again.
        reject(isTransientStatus(code) ? new ProxyTrouble(message, hint) : new DeployError('DOWNLOAD_FAILED', `downloading ${redactUrl(url)} failed: ${message}`, { hint }));
        return;
      }
      throughProxy.set(res, route.proxy);
      resolve(res);
    });
    req.setTimeout(options.timeoutMs, () => req.destroy(new Error(`no answer within ${options.timeoutMs / 1000} s`)));
    if (!route) {
      req.on('error', (error) => reject(certificateRefused(url, error, undefined) ?? error));
      return;
    }
    const { proxy } = route;
    req.once('proxyConnect', (connect: { statusCode?: number; socket?: Socket | TLSSocket }) => {
      tunnel = connect.statusCode;
      // A forwarding agent reports an https:// proxy's connection before its TLS handshake: a plain
      // proxy named https:// takes the connection and never completes one, and is not reached.
      if (tunnel === undefined && connect.socket !== undefined && 'encrypted' in connect.socket) connect.socket.once('secureConnect', () => (reached = true));
      else reached = true;
    });
    // req.setTimeout starts only once the agent hands the request a socket, after the proxy answered: until then, this.
    let gaveUp: ProxyTrouble | undefined;
    const silent = setTimeout(() => {
      gaveUp = new ProxyTrouble(`no answer from the proxy ${proxy.shown} (${proxy.variable}) within ${options.timeoutMs / 1000} s`, route.unreachable);
      req.destroy(gaveUp);
      connecting.abort();
    }, options.timeoutMs);
    const abort = (): void => connecting.abort();
    options.signal?.addEventListener('abort', abort, { once: true });
    req.once('socket', () => clearTimeout(silent));
    req.once('close', () => {
      clearTimeout(silent);
      options.signal?.removeEventListener('abort', abort);
    });
    req.on('error', (error) => {
      // The agent's own error (the connection it waited on, destroyed) may come first.
      // TLS to an https:// proxy: all there is for an http:// URL, and all before the CONNECT's answer for an https:// one.
      const proxyTls = proxy.url.startsWith('https:') && (!url.startsWith('https:') || tunnel === undefined);
      const refused = gaveUp ? undefined : certificateRefused(url, error, proxyTls ? proxy : undefined);
      if (gaveUp) reject(gaveUp);
      else if (refused) reject(refused);
      else if (error instanceof ProxyTrouble || options.signal?.aborted) reject(error);
      else if (!reached) reject(new ProxyTrouble(`cannot reach the proxy ${proxy.shown} (${proxy.variable}): ${error.message}`, route.unreachable));
      else reject(new Error(`${error.message} (through the proxy ${proxy.shown})`, { cause: error }));
    });
  });
}

/** Node's HTTP parser's errors (HPE_*): an answer that is not valid HTTP. */
function isParseError(error: unknown): boolean {
  return typeof (error as NodeJS.ErrnoException | undefined)?.code === 'string' && (error as NodeJS.ErrnoException).code?.startsWith('HPE_') === true;
}

/** A failure's words: the HTTP parser's "Parse Error: …" said as what it is. */
function reasonOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return isParseError(error) ? `its answer is not valid HTTP (${message.replace(/^Parse Error: /, '')})` : message;
}

/** Responses whose server sent bytes past their Content-Length: which bytes are the file's is a guess. */
const excess = new WeakMap<http.IncomingMessage, Error>();

/** Reads a response's body, failing when it sends nothing for `timeoutMs`, or sent more than its Content-Length. */
async function* body(url: string, res: http.IncomingMessage, timeoutMs: number): AsyncGenerator<Buffer> {
  res.socket.setTimeout(timeoutMs, () => res.destroy(new Error(`the server sent nothing for ${timeoutMs / 1000} s`)));
  for await (const chunk of res) yield chunk as Buffer;
  const more = excess.get(res);
  if (more !== undefined) {
    throw new DeployError('DOWNLOAD_FAILED', `downloading ${redactUrl(url)} failed: the server sent more than the ${res.headers['content-length'] ?? '?'} bytes its Content-Length announced, so which bytes are the artifact's is not known; nothing was deployed`, {
      cause: more,
      hint: 'the file may have been written to while it was served, or the server (or a proxy before it) announces a wrong length: compare curl -sI with the file\'s size, and deploy again once the artifact is final',
    });
  }
}

const MAX_REDIRECTS = 5;

/** GET with redirects followed (release assets and object stores answer 302), never from https down to http. */
async function follow(start: string, headers: Record<string, string>, options: DownloadOptions): Promise<{ res: http.IncomingMessage; url: string }> {
  let url = start;
  const visited = [start];
  for (let hops = 0; ; hops++) {
    const res = await request(url, headers, options);
    const code = res.statusCode ?? 0;
    if (code < 300 || code >= 400 || code === 304) return { res, url };
    res.resume();
    const location = res.headers.location;
    let next: URL | undefined;
    try {
      next = location ? new URL(location, url) : undefined;
    } catch {
      next = undefined;
    }
    const why = redirectRefusal(url, location, next, visited, hops);
    if (why !== undefined) {
      throw new DeployError('INVALID_SOURCE', `${redactUrl(start)} answered ${code}, a redirect that is not followed: ${why}`, { hint: why.startsWith('it redirects in a loop') ? 'the server (or its configuration) sends the request round in circles: give the final URL of the artifact, or fix the redirect' : 'give the final URL of the artifact' });
    }
    url = (next as URL).toString();
    visited.push(url);
  }
}

/** Why a redirect to `next` (from `url`, after `hops` others) is not followed, or undefined when it is. */
function redirectRefusal(url: string, location: string | undefined, next: URL | undefined, visited: string[], hops: number): string | undefined {
  if (location === undefined || location === '') return 'it names no Location';
  if (next === undefined) return `its Location ${JSON.stringify(location.slice(0, 200))} is not a URL`;
  const shown = redactUrl(next.toString());
  if (next.protocol !== 'http:' && next.protocol !== 'https:') return `${shown} is a ${next.protocol.slice(0, -1)}: URL, and only http:// and https:// are fetched`;
  if (url.startsWith('https:') && next.protocol === 'http:') return `${shown} would go from https down to http, where the artifact could be read or changed on the way`;
  const seen = visited.indexOf(next.toString());
  if (seen >= 0) return `it redirects in a loop (${[...visited.slice(seen), next.toString()].map((u) => redactUrl(u)).join(' -> ')})`;
  if (hops >= MAX_REDIRECTS) return `${shown}, after ${MAX_REDIRECTS} redirects`;
  return undefined;
}

/** "<url> answered 503 Service Unavailable", the URL without credentials or query. */
function answered(url: string, res: http.IncomingMessage): string {
  const proxy = throughProxy.get(res);
  return `${`${redactUrl(url)} answered ${res.statusCode ?? 0} ${res.statusMessage ?? ''}`.trim()}${proxy ? ` through the proxy ${proxy.shown}` : ''}`;
}

/** An answer that says "later" (5xx, 408, 429): retried, after its Retry-After when it has one. */
class LaterAnswer extends Error {
  constructor(message: string, readonly status: number, readonly retryAfter: string | undefined) {
    super(message);
  }
}

/**
 * Refuses a body sent encoded (Content-Encoding: gzip, br, ...) although identity was asked for:
 * read as they came, its bytes would be sniffed, hashed and checked as the artifact, which they are
 * not. Nothing decodes them: a server that encodes a .tar.gz again is misconfigured.
 */
function refuseEncoded(url: string, res: http.IncomingMessage): void {
  const encoding = (res.headers['content-encoding'] ?? '').trim();
  if (encoding === '' || encoding.toLowerCase() === 'identity') return;
  res.resume();
  throw new DeployError('INVALID_SOURCE', `${redactUrl(url)} was sent with Content-Encoding: ${encoding}, not as its own bytes`, {
    hint: 'serve the artifact as a plain file (no on-the-fly gzip or br for it): its bytes are what --sha256 and the signature check',
  });
}

function failed(url: string, reason: string, cause?: unknown): DeployError {
  return new DeployError('DOWNLOAD_FAILED', `downloading ${redactUrl(url)} failed: ${reason}`, { cause, hint: cause instanceof ProxyTrouble ? cause.hint : answerHint(undefined) });
}

/** How many retries a failure came after, for its message. */
function spent(retries: number): string {
  return retries === 0 ? ' (with no retries)' : ` (after ${plural(retries, 'retry', 'retries')})`;
}

/** The hint of a 4xx answer: through a proxy that forwards an http:// URL, the answer may be the proxy's own. */
function fourHundredHint(url: string, res: http.IncomingMessage): string {
  const proxy = throughProxy.get(res);
  if (proxy && url.startsWith('http:')) return `check the URL (a CI artifact may have expired), and whether the proxy (${proxy.variable}) allows it: an http:// URL's answer through a proxy may be the proxy's own`;
  return 'check the URL; a CI artifact may have expired';
}

/**
 * `maxTimeMs` for one download: its own signal, aborted when the time is up (or when the caller's
 * is), which every request, read and wait of the download already obeys. An error that the
 * deadline caused becomes the download's failure, named as such; a caller's abort stays as it was.
 */
class Deadline {
  readonly #controller = new AbortController();
  readonly #timer: NodeJS.Timeout;
  readonly #outer: AbortSignal | undefined;
  readonly #forward = (): void => this.#controller.abort(this.#outer?.reason);
  #reached = false;
  received = 0;

  constructor(
    private readonly url: string,
    private readonly ms: number,
    outer: AbortSignal | undefined,
  ) {
    this.#outer = outer;
    this.#timer = setTimeout(() => {
      this.#reached = true;
      this.#controller.abort(new Error(`the download did not finish within ${ms / 1000} s`));
    }, ms);
    // A download whose body is never read (its deploy failed first) must not keep the process alive.
    this.#timer.unref();
    if (outer?.aborted) this.#forward();
    else outer?.addEventListener('abort', this.#forward, { once: true });
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** The error to throw for `error`: the deadline's own when it was reached (and no signal came first). */
  errorFor(error: unknown): unknown {
    if (!this.#reached || this.#outer?.aborted === true) return error;
    return new DeployError('DOWNLOAD_FAILED', `downloading ${redactUrl(this.url)} did not finish within the ${this.ms / 1000} s of --download-max-time (${formatBytes(this.received)} received); nothing was deployed`, {
      cause: error,
      hint: 'raise --download-max-time (or artifact.downloadMaxTime) if the artifact is that large for this link, or find out why the server is slow',
    });
  }

  dispose(): void {
    clearTimeout(this.#timer);
    this.#outer?.removeEventListener('abort', this.#forward);
  }
}

/** The body, counted for the deadline's message, its errors named by it, its timer gone when the body is. */
async function* bounded(chunks: AsyncGenerator<Buffer>, deadline: Deadline): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of chunks) {
      deadline.received += chunk.length;
      yield chunk;
    }
  } catch (error) {
    throw deadline.errorFor(error);
  } finally {
    deadline.dispose();
  }
}

/**
 * Opens the download: a URL that does not parse, or a 4xx answer other than 408 and 429, is invalid
 * input (exit 2), nothing having changed yet. A 5xx, 408 or 429 and a failed connection are retried.
 * With `maxTimeMs`, the whole transfer is bounded (see Deadline).
 */
export async function openDownload(given: string, options: DownloadOptions): Promise<Download> {
  if (options.maxTimeMs === undefined) return openUnbounded(given, options);
  const deadline = new Deadline(given, options.maxTimeMs, options.signal);
  try {
    const opened = await openUnbounded(given, { ...options, signal: deadline.signal });
    return { totalBytes: opened.totalBytes, chunks: bounded(opened.chunks, deadline) };
  } catch (error) {
    deadline.dispose();
    throw deadline.errorFor(error);
  }
}

async function openUnbounded(given: string, options: DownloadOptions): Promise<Download> {
  // Refused before the first request: retried, it failed three times over as a download that never began.
  const invalid = urlProblem(given);
  if (invalid) {
    throw new DeployError('INVALID_SOURCE', `${invalid.shown} is not a valid URL: ${invalid.problem}; nothing was deployed`, { hint: 'check the URL (a CI variable left empty gives "http://")' });
  }
  let lastError: unknown;
  let wait = 0;
  for (let attempt = 0; attempt <= options.retries; attempt++) {
    if (attempt > 0) await sleep(wait, options.signal);
    // The last attempt's failure is the error itself, not a retry.
    const retrying = attempt < options.retries;
    try {
      // Every attempt starts at the URL given: a signed redirect target may have expired since the last one.
      const { res, url } = await follow(given, {}, options);
      const code = res.statusCode ?? 0;
      if (code === 200) {
        refuseEncoded(url, res);
        const length = Number(res.headers['content-length']);
        const totalBytes = Number.isSafeInteger(length) && length >= 0 ? length : undefined;
        return { totalBytes, chunks: resume(given, url, res, totalBytes, validatorOf(res), options) };
      }
      res.resume();
      const message = answered(url, res);
      if (code >= 400 && code < 500 && !isTransientStatus(code)) throw new DeployError('INVALID_SOURCE', message, { hint: fourHundredHint(url, res) });
      lastError = new DeployError('DOWNLOAD_FAILED', `downloading ${redactUrl(given)} failed: ${message}${spent(options.retries)}`, { hint: answerHint(code) });
      const next = retryWait(attempt + 1, res.headers['retry-after'], Date.now());
      wait = next.ms;
      if (retrying) options.onRetry?.(`${message}; retrying${next.said}`);
    } catch (error) {
      // A URL or proxy refused, a proxy variable malformed: asking again changes nothing.
      if (error instanceof DeployError) throw error;
      if (options.signal?.aborted) throw error;
      lastError = error;
      wait = retryDelayMs(attempt + 1);
      // Named: a refused connection's message names an address, not which of the URLs it was.
      if (retrying) options.onRetry?.(`${redactUrl(given)}: ${reasonOf(error)}; retrying`);
    }
  }
  throw lastError instanceof DeployError ? lastError : failed(given, reasonOf(lastError), lastError);
}

/**
 * Asks again for the rest of the file: first where the last answer came from. When that is a
 * redirect target and it now answers a 4xx (a signed URL that has expired answers 403), the URL
 * given is asked again, at once: it redirects to a freshly signed one.
 */
async function reconnect(given: string, target: string, headers: Record<string, string>, options: DownloadOptions): Promise<{ res: http.IncomingMessage; url: string }> {
  if (target === given) return follow(given, headers, options);
  const asked = await follow(target, headers, options);
  const code = asked.res.statusCode ?? 0;
  if (code < 400 || code >= 500 || isTransientStatus(code)) return asked;
  asked.res.resume();
  options.onRetry?.(`${answered(asked.url, asked.res)} (a signed URL may have expired); asking ${redactUrl(given)} again`);
  return follow(given, headers, options);
}

/**
 * What identifies this version of the file, for If-Range: a strong ETag, else Last-Modified (a
 * weak ETag may not be used for ranges).
 */
function validatorOf(res: http.IncomingMessage): string | undefined {
  const etag = res.headers.etag;
  if (etag !== undefined && !etag.startsWith('W/')) return etag;
  return res.headers['last-modified'];
}

function changed(url: string, how: string): DeployError {
  return new DeployError('DOWNLOAD_FAILED', `${redactUrl(url)} changed while it was downloading (${how}); nothing was deployed`, { hint: 'deploy again once the artifact is final' });
}

/**
 * The body across reconnections, never stitched from two versions of the file. With a validator, a
 * dropped connection is resumed by a Range request guarded by If-Range, and the 206 must start at
 * the byte asked for and carry the same ETag. Without one, no Range is asked for (a server could
 * answer it from a newer file): the file is read again from the start, and the bytes already
 * received must hash the same before any new byte is used. These checks hold whichever URL
 * answers: the redirect target, or a fresh one the URL given redirects to (see `reconnect`).
 */
async function* resume(given: string, answeredBy: string, first: http.IncomingMessage, total: number | undefined, validator: string | undefined, options: DownloadOptions): AsyncGenerator<Buffer> {
  let received = 0;
  let res: http.IncomingMessage | undefined = first;
  // Where the last answer came from (a redirect target), asked first on a reconnection.
  let target = answeredBy;
  let retriesLeft = options.retries;
  // Only without a validator: what was received so far, to compare a re-read against.
  const prefix = validator === undefined ? createHash('sha256') : undefined;
  const checkReread = (reread: { hash: Hash; expected: string }): void => {
    if (reread.hash.digest('hex') !== reread.expected) throw changed(target, `its first ${received} bytes differ when read again`);
  };
  for (;;) {
    let skip = 0;
    let reread: { hash: Hash; expected: string } | undefined;
    let reconnecting = false;
    try {
      if (!res) {
        reconnecting = true;
        const headers: Record<string, string> = validator ? { range: `bytes=${received}-`, 'if-range': validator } : {};
        ({ res, url: target } = await reconnect(given, target, headers, options));
        const code = res.statusCode ?? 0;
        if (code === 200 || code === 206) refuseEncoded(target, res);
        if (code === 200) {
          const now = validatorOf(res);
          if (validator !== undefined && now !== validator) throw changed(target, `${now ?? 'no validator'} in place of ${validator}`);
          // No range support (or no validator to ask for one): read again from the start, keeping only new bytes.
          skip = received;
          if (prefix) reread = { hash: createHash('sha256'), expected: prefix.copy().digest('hex') };
        } else if (code === 206 && validator !== undefined) {
          const range = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(res.headers['content-range'] ?? '');
          if (range === null || Number(range[1]) !== received) throw changed(target, `the server resumed at ${res.headers['content-range'] ?? 'an unnamed range'}, not at byte ${received}`);
          const etag = res.headers.etag;
          if (etag !== undefined && etag !== validator && first.headers.etag === validator) throw changed(target, `ETag ${etag} in place of ${validator}`);
          // The same validator but another length: a file rewritten within the second its Last-Modified names.
          if (total !== undefined && range[2] !== '*' && Number(range[2]) !== total) throw changed(target, `it is ${range[2]} bytes long in the answer resuming it, ${total} in the first`);
        } else {
          res.resume();
          const reason = `the server answered ${`${code} ${res.statusMessage ?? ''}`.trim()} when asked again after byte ${received}`;
          if (isTransientStatus(code)) throw new LaterAnswer(reason, code, res.headers['retry-after']);
          throw failed(target, reason);
        }
        reconnecting = false;
      }
      for await (const chunk of body(target, res, options.timeoutMs)) {
        if (skip >= chunk.length) {
          skip -= chunk.length;
          reread?.hash.update(chunk);
          continue;
        }
        if (reread) {
          reread.hash.update(chunk.subarray(0, skip));
          checkReread(reread);
          reread = undefined;
        }
        const part = skip > 0 ? chunk.subarray(skip) : chunk;
        skip = 0;
        received += part.length;
        prefix?.update(part);
        yield part;
      }
      if (reread) {
        if (skip > 0) throw changed(target, `it is ${received - skip} bytes long when read again, shorter than the ${received} received`);
        checkReread(reread);
      }
      if (total === undefined || received === total) return;
      throw new Error(`the connection closed after ${received} of ${total} bytes`);
    } catch (error) {
      if (error instanceof DeployError || options.signal?.aborted) throw error;
      res?.destroy();
      res = undefined;
      const shown = redactUrl(target);
      // A reconnection that failed (no answer, a 5xx): the next one goes through the URL given, which may redirect elsewhere.
      if (reconnecting) target = given;
      const reason = reasonOf(error);
      const later = error instanceof LaterAnswer ? error : undefined;
      if (retriesLeft-- <= 0) throw new DeployError('DOWNLOAD_FAILED', `downloading ${shown} failed: ${reason}${spent(options.retries)}`, { cause: error, hint: error instanceof ProxyTrouble ? error.hint : answerHint(later?.status) });
      const wait = retryWait(options.retries - retriesLeft, later?.retryAfter, Date.now());
      // Without a validator no Range is asked for: say what will happen, not "resuming".
      options.onRetry?.(`download of ${shown}: ${reason}; ${validator === undefined ? `reading it again from the start, as the server names no version to resume (${received} bytes received)` : `resuming at byte ${received}`}${wait.said}`);
      await sleep(wait.ms, options.signal);
    }
  }
}

/** Waits `ms`, or less: an abort (a signal) ends the wait at once. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    // Aborted already, 'abort' never fires again: without this the whole wait (up to a Retry-After's 60 s) would pass.
    if (signal?.aborted) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
