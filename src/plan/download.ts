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

/** The codes of a TLS certificate refused (OpenSSL's verify results, as Node names them): asking again gets the same certificate. */
const CERTIFICATE_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_CRL', 'UNABLE_TO_DECRYPT_CERT_SIGNATURE', 'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY', 'CERT_SIGNATURE_FAILURE', 'CRL_SIGNATURE_FAILURE', 'CERT_NOT_YET_VALID', 'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID', 'CRL_HAS_EXPIRED', 'ERROR_IN_CERT_NOT_BEFORE_FIELD', 'ERROR_IN_CERT_NOT_AFTER_FIELD', 'ERROR_IN_CRL_LAST_UPDATE_FIELD',
  'ERROR_IN_CRL_NEXT_UPDATE_FIELD', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'CERT_CHAIN_TOO_LONG', 'CERT_REVOKED', 'INVALID_CA', 'PATH_LENGTH_EXCEEDED', 'INVALID_PURPOSE',
  'CERT_UNTRUSTED', 'CERT_REJECTED', 'HOSTNAME_MISMATCH', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** What is wrong with a certificate refused with `code` (an error's code), or undefined when the error is no such refusal. */
export function certificateProblem(code: unknown): 'name' | 'dates' | 'authority' | undefined {
  if (typeof code !== 'string' || !CERTIFICATE_CODES.has(code)) return undefined;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'HOSTNAME_MISMATCH') return 'name';
  if (/NOT_YET_VALID|HAS_EXPIRED|_FIELD$/.test(code)) return 'dates';
  return 'authority';
}

/** The hint of a certificate refused: the proxy's (named in `variable`) or the artifact server's. */
export function certificateHint(problem: 'name' | 'dates' | 'authority', whose: { proxyVariable: string } | 'server'): string {
  const owner = whose === 'server' ? "the server's" : "the proxy's";
  if (problem === 'name') return whose === 'server' ? "give the URL with a host name the server's certificate is for" : `name the proxy in ${whose.proxyVariable} by a host its certificate is for`;
  if (problem === 'dates') return `${owner} certificate has expired or is not valid yet: renew it, or check this machine's clock`;
  return `if it is the right ${whose === 'server' ? 'server' : 'proxy'}, put the certificate of the authority that signed ${owner} certificate in a PEM file and set NODE_EXTRA_CA_CERTS to its path`;
}
