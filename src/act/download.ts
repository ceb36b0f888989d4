/**
 * Streams an http(s) artifact: one GET, resumed with a Range request after a dropped connection,
 * an idle timeout on every read. node:http rather than fetch: fetch refuses the Fetch standard's
 * "bad ports" (6000, 10080, ...), which an artifact server may well listen on.
 */
import http from 'node:http';
import https from 'node:https';
import { DeployError } from '../errors.ts';
import { redactUrl, retryDelayMs } from '../plan/archive.ts';

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
    const req = get(url, { headers, signal: options.signal }, resolve);
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

function failed(url: string, reason: string, cause?: unknown): DeployError {
  return new DeployError('DOWNLOAD_FAILED', `downloading ${redactUrl(url)} failed: ${reason}`, { cause, hint: 'check the URL and the server, then deploy again' });
}

/** Opens the download: a 4xx answer is invalid input (exit 2), nothing having changed yet. */
export async function openDownload(given: string, options: DownloadOptions): Promise<Download> {
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
        options.onRetry?.(`${message}; retrying`);
        continue;
      }
      res = r;
    } catch (error) {
      if (error instanceof DeployError && error.code === 'INVALID_SOURCE') throw error;
      if (options.signal?.aborted) throw error;
      lastError = error;
      options.onRetry?.(`${error instanceof Error ? error.message : String(error)}; retrying`);
    }
  }
  if (!res) throw lastError instanceof DeployError ? lastError : failed(url, lastError instanceof Error ? lastError.message : String(lastError), lastError);
  const length = Number(res.headers['content-length']);
  const totalBytes = Number.isSafeInteger(length) && length >= 0 ? length : undefined;
  // A resumed part must be the same file: If-Range makes the server send all of it when it changed.
  const validator = res.headers.etag ?? res.headers['last-modified'];
  return { totalBytes, chunks: resume(url, res, totalBytes, validator, options) };
}

async function* resume(url: string, first: http.IncomingMessage, total: number | undefined, validator: string | undefined, options: DownloadOptions): AsyncGenerator<Buffer> {
  let received = 0;
  let res: http.IncomingMessage | undefined = first;
  let retriesLeft = options.retries;
  for (;;) {
    let skip = 0;
    try {
      if (!res) {
        const headers: Record<string, string> = { range: `bytes=${received}-` };
        if (validator) headers['if-range'] = validator;
        res = await request(url, headers, options);
        if (res.statusCode === 200) {
          if (validator) throw new DeployError('DOWNLOAD_FAILED', `${redactUrl(url)} changed while it was downloading`, { hint: 'deploy again once the artifact is final' });
          // No validator and no range support: read it again from the start, keeping only new bytes.
          skip = received;
        } else if (res.statusCode !== 206) {
          const code = res.statusCode;
          res.resume();
          throw failed(url, `resuming at byte ${received}: the server answered ${code}`);
        }
      }
      for await (const chunk of body(res, options.timeoutMs)) {
        if (skip >= chunk.length) {
          skip -= chunk.length;
          continue;
        }
        const part = skip > 0 ? chunk.subarray(skip) : chunk;
        skip = 0;
        received += part.length;
        yield part;
      }
      if (total === undefined || received === total) return;
      throw new Error(`the connection closed after ${received} of ${total} bytes`);
    } catch (error) {
      if (error instanceof DeployError || options.signal?.aborted) throw error;
      res?.destroy();
      res = undefined;
      const reason = error instanceof Error ? error.message : String(error);
      if (retriesLeft-- <= 0) throw failed(url, `${reason} (after ${options.retries} retries)`, error);
      options.onRetry?.(`download of ${redactUrl(url)}: ${reason}; resuming at byte ${received}`);
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
