/**
 * Streams an http(s) artifact: one GET, resumed after a dropped connection (see `resume`), an idle
 * timeout on every read. node:http rather than fetch: fetch refuses the Fetch standard's
 * "bad ports" (6000, 10080, ...), which an artifact server may well listen on.
 */
import http from 'node:http';
import https from 'node:https';
import { createHash, type Hash } from 'node:crypto';
import { DeployError } from '../errors.ts';
import { redactUrl, retryDelayMs, urlProblem } from '../plan/archive.ts';
import { plural } from '../plan/units.ts';

export interface DownloadOptions {
  /** Give up on a connection that sends nothing for this long, then retry. */
  timeoutMs: number;
  /** Further attempts after a dropped or stalled connection (not after a 4xx). */
  retries: number;
  signal?: AbortSignal;
  onRetry?: (message: string) => void;
}

export interface Download {
  /** From Content-Length, when the server sent one. */
  totalBytes: number | undefined;
  /** The body, first byte to last, across reconnections. */
  chunks: AsyncGenerator<Buffer>;
}

function request(url: string, headers: Record<string, string>, options: DownloadOptions): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const get = url.startsWith('https:') ? https.get : http.get;
    // The artifact's own bytes: they are what --sha256 and the signature are of, and what is sniffed and extracted.
    const req = get(url, { headers: { ...headers, 'accept-encoding': 'identity' }, signal: options.signal }, resolve);
    req.setTimeout(options.timeoutMs, () => req.destroy(new Error(`no answer within ${options.timeoutMs / 1000} s`)));
    req.on('error', reject);
  });
}

/** Reads a response's body, failing when it sends nothing for `timeoutMs`. */
async function* body(res: http.IncomingMessage, timeoutMs: number): AsyncGenerator<Buffer> {
  res.socket.setTimeout(timeoutMs, () => res.destroy(new Error(`the server sent nothing for ${timeoutMs / 1000} s`)));
  for await (const chunk of res) yield chunk as Buffer;
}

const MAX_REDIRECTS = 5;

/** GET with redirects followed (release assets and object stores answer 302), never from https down to http. */
async function follow(start: string, options: DownloadOptions): Promise<{ res: http.IncomingMessage; url: string }> {
  let url = start;
  for (let hops = 0; ; hops++) {
    const res = await request(url, {}, options);
    const code = res.statusCode ?? 0;
    if (code < 300 || code >= 400 || code === 304) return { res, url };
    res.resume();
    const location = res.headers.location;
    const next = location ? new URL(location, url) : undefined;
    if (!next || hops >= MAX_REDIRECTS || (next.protocol !== 'http:' && next.protocol !== 'https:') || (url.startsWith('https:') && next.protocol === 'http:')) {
      throw new DeployError('INVALID_SOURCE', `${redactUrl(start)} answered ${code}, a redirect that is not followed (${next ? redactUrl(next.toString()) : 'no Location'}${hops >= MAX_REDIRECTS ? `, after ${MAX_REDIRECTS} redirects` : ''})`, { hint: 'give the final URL of the artifact' });
    }
    url = next.toString();
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
  return new DeployError('DOWNLOAD_FAILED', `downloading ${redactUrl(url)} failed: ${reason}`, { cause, hint: 'check the URL and the server, then deploy again' });
}

/** Opens the download: a URL that does not parse, or a 4xx answer, is invalid input (exit 2), nothing having changed yet. */
export async function openDownload(given: string, options: DownloadOptions): Promise<Download> {
  // Refused before the first request: retried, it failed three times over as a download that never began.
  const invalid = urlProblem(given);
  if (invalid) {
    throw new DeployError('INVALID_SOURCE', `${invalid.shown} is not a valid URL: ${invalid.problem}; nothing was deployed`, { hint: 'check the URL (a CI variable left empty gives "http://")' });
  }
  let url = given;
  let res: http.IncomingMessage | undefined;
  let lastError: unknown;
  for (let attempt = 0; attempt <= options.retries && !res; attempt++) {
    if (attempt > 0) await sleep(retryDelayMs(attempt), options.signal);
    try {
      const followed = await follow(url, options);
      url = followed.url;
      const r = followed.res;
      if (r.statusCode !== 200) {
        r.resume();
        const message = `${redactUrl(url)} answered ${r.statusCode} ${r.statusMessage ?? ''}`.trim();
        if (r.statusCode !== undefined && r.statusCode >= 400 && r.statusCode < 500) throw new DeployError('INVALID_SOURCE', message, { hint: 'check the URL; a CI artifact may have expired' });
        lastError = failed(url, message);
        // The last attempt's failure is the error itself, not a retry.
        if (attempt < options.retries) options.onRetry?.(`${message}; retrying`);
        continue;
      }
      refuseEncoded(url, r);
      res = r;
    } catch (error) {
      if (error instanceof DeployError && error.code === 'INVALID_SOURCE') throw error;
      if (options.signal?.aborted) throw error;
      lastError = error;
      // Named: a refused connection's message names an address, not which of the URLs it was.
      if (attempt < options.retries) options.onRetry?.(`${redactUrl(url)}: ${error instanceof Error ? error.message : String(error)}; retrying`);
    }
  }
  if (!res) throw lastError instanceof DeployError ? lastError : failed(url, lastError instanceof Error ? lastError.message : String(lastError), lastError);
  const length = Number(res.headers['content-length']);
  const totalBytes = Number.isSafeInteger(length) && length >= 0 ? length : undefined;
  return { totalBytes, chunks: resume(url, res, totalBytes, validatorOf(res), options) };
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
 * received must hash the same before any new byte is used.
 */
async function* resume(url: string, first: http.IncomingMessage, total: number | undefined, validator: string | undefined, options: DownloadOptions): AsyncGenerator<Buffer> {
  let received = 0;
  let res: http.IncomingMessage | undefined = first;
  let retriesLeft = options.retries;
  // Only without a validator: what was received so far, to compare a re-read against.
  const prefix = validator === undefined ? createHash('sha256') : undefined;
  const checkReread = (reread: { hash: Hash; expected: string }): void => {
    if (reread.hash.digest('hex') !== reread.expected) throw changed(url, `its first ${received} bytes differ when read again`);
  };
  for (;;) {
    let skip = 0;
    let reread: { hash: Hash; expected: string } | undefined;
    try {
      if (!res) {
        const headers: Record<string, string> = validator ? { range: `bytes=${received}-`, 'if-range': validator } : {};
        res = await request(url, headers, options);
        if (res.statusCode === 200 || res.statusCode === 206) refuseEncoded(url, res);
        if (res.statusCode === 200) {
          const now = validatorOf(res);
          if (validator !== undefined && now !== validator) throw changed(url, `${now ?? 'no validator'} in place of ${validator}`);
          // No range support (or no validator to ask for one): read again from the start, keeping only new bytes.
          skip = received;
          if (prefix) reread = { hash: createHash('sha256'), expected: prefix.copy().digest('hex') };
        } else if (res.statusCode === 206 && validator !== undefined) {
          const start = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(res.headers['content-range'] ?? '')?.[1];
          if (start === undefined || Number(start) !== received) throw changed(url, `the server resumed at ${res.headers['content-range'] ?? 'an unnamed range'}, not at byte ${received}`);
          const etag = res.headers.etag;
          if (etag !== undefined && etag !== validator && first.headers.etag === validator) throw changed(url, `ETag ${etag} in place of ${validator}`);
        } else {
          const code = res.statusCode;
          res.resume();
          throw failed(url, `reading again after byte ${received}: the server answered ${code}`);
        }
      }
      for await (const chunk of body(res, options.timeoutMs)) {
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
        if (skip > 0) throw changed(url, `it is ${received - skip} bytes long when read again, shorter than the ${received} received`);
        checkReread(reread);
      }
      if (total === undefined || received === total) return;
      throw new Error(`the connection closed after ${received} of ${total} bytes`);
    } catch (error) {
      if (error instanceof DeployError || options.signal?.aborted) throw error;
      res?.destroy();
      res = undefined;
      const reason = error instanceof Error ? error.message : String(error);
      if (retriesLeft-- <= 0) throw failed(url, options.retries === 0 ? `${reason} (with no retries)` : `${reason} (after ${plural(options.retries, 'retry', 'retries')})`, error);
      // Without a validator no Range is asked for: say what will happen, not "resuming".
      options.onRetry?.(`download of ${redactUrl(url)}: ${reason}; ${validator === undefined ? `reading it again from the start, as the server names no version to resume (${received} bytes received)` : `resuming at byte ${received}`}`);
      await sleep(retryDelayMs(options.retries - retriesLeft), options.signal);
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
