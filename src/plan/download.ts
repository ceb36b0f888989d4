/** What a download does after an answer or a failed attempt: retry or not, and how long to wait first. */

/** The longest Retry-After waited for: past it the request is made anyway, a retry spent on it. */
export const MAX_RETRY_AFTER_MS = 60_000;

/** How long to wait before download attempt `attempt` (1-based retries): 0.5 s, 1 s, 2 s, ... capped at 8 s. */
export function retryDelayMs(attempt: number): number {
  return Math.min(8000, 500 * 2 ** Math.max(0, attempt - 1));
}

/**
 * An answer that says "later", not "never": any 5xx, 408 Request Timeout and 429 Too Many
 * Requests. Any other 4xx says the URL is wrong or no longer valid.
 */
export function isTransientStatus(code: number): boolean {
  return code === 408 || code === 429 || code >= 500;
}

/**
 * Retry-After, delay-seconds or an HTTP-date, in ms from `now`; a date past gives 0. Undefined when
 * absent or unreadable (then the usual back-off applies).
 */
export function retryAfterMs(value: string | undefined, now: number): number | undefined {
  const text = value?.trim() ?? '';
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // A date names its month: a bare or signed number is not one, although Date.parse may read it as a year.
  if (!/[a-z]/i.test(text)) return undefined;
  // HTTP dates are GMT; the obsolete asctime form does not say so, and Date.parse would take it as local time.
  const at = Date.parse(/\b(GMT|UTC)\b/i.test(text) ? text : `${text} GMT`);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The wait before retry `attempt`: Retry-After when the answer had a readable one (at most MAX_RETRY_AFTER_MS), else the back-off; and how a warning says it. */
export function retryWait(attempt: number, retryAfter: string | undefined, now: number): { ms: number; said: string } {
  const asked = retryAfterMs(retryAfter, now);
  if (asked === undefined) return { ms: retryDelayMs(attempt), said: '' };
  const ms = Math.min(asked, MAX_RETRY_AFTER_MS);
  const seconds = (n: number): string => `${Math.ceil(n / 1000)} s`;
  if (asked > MAX_RETRY_AFTER_MS) return { ms, said: ` in ${seconds(ms)}, the longest waited (its Retry-After asks for ${seconds(asked)})` };
  return { ms, said: ` in ${seconds(ms)}, as its Retry-After asks` };
}

/** The hint of a download given up on after an answer: a rate limit is no broken server. */
export function answerHint(code: number | undefined): string {
  if (code === 429) return 'the server limits how often it may be asked (a rate limit, 429): deploy again later, or allow more --download-retries';
  if (code === 408) return 'the server gave up waiting for the request (408): check the network between here and the server, then deploy again';
  return 'check the URL and the server, then deploy again';
}
