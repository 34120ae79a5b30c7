// Per-customer limits and usage, the parts the Worker, the meter and the CLI share: the limits'
// shape, the usage rows, and OpenAI's rate-limit headers.

export interface Limits {
  /** Requests admitted in any 60 s window. */
  rpm: number | null;
  /** Requests in progress at once (a stream counts until it ends). */
  concurrency: number | null;
  /** Prompt + completion tokens (and embedding inputs) per UTC day. */
  tokensPerDay: number | null;
}

export const NO_LIMITS: Limits = { rpm: null, concurrency: null, tokensPerDay: null };

/** What one request used, recorded once when it ends. */
export interface RequestUsage {
  model: string;
  promptTokens: number;
  completionTokens: number;
  embeddingInputs: number;
}

export interface UsageRow {
  /** UTC day, YYYY-MM-DD. */
  day: string;
  model: string;
  requests: number;
  promptTokens: number;
  completionTokens: number;
  embeddingInputs: number;
}

/** Where the customer stands against its limits, for the x-ratelimit-* headers. */
export interface RateState {
  limits: Limits;
  remainingRequests: number | null;
  /** ms until the request window has room for rpm requests again. */
  resetRequestsMs: number;
  remainingTokens: number | null;
  /** ms until the daily token count starts over (UTC midnight). */
  resetTokensMs: number;
}

export type Admission =
  | { admitted: true; state: RateState }
  | { admitted: false; refused: "requests" | "concurrency" | "tokens"; retryAfterSeconds: number; message: string; state: RateState };

export function parseLimits(value: unknown): Limits {
  const v = (value ?? {}) as Record<string, unknown>;
  const out: Limits = { ...NO_LIMITS };
  for (const key of Object.keys(v)) {
    if (!(key in NO_LIMITS)) throw new Error(`unknown limit '${key}' (rpm, concurrency, tokensPerDay)`);
    const n = v[key];
    if (n !== null && !(Number.isSafeInteger(n) && (n as number) >= 0)) throw new Error(`limit '${key}' must be a whole number >= 0 or null`);
    out[key as keyof Limits] = n as number | null;
  }
  return out;
}

/** OpenAI's duration format for the reset headers: 20ms, 1s, 6m0s, 1h2m3s. */
export function formatReset(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`;
  let s = Math.ceil(ms / 1000);
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return h > 0 ? `${h}h${m}m${s}s` : m > 0 ? `${m}m${s}s` : `${s}s`;
}

/** The x-ratelimit-* headers OpenAI sends, for the limits that are set. */
export function rateLimitHeaders(state: RateState): Record<string, string> {
  const h: Record<string, string> = {};
  if (state.limits.rpm !== null) {
    h["x-ratelimit-limit-requests"] = `${state.limits.rpm}`;
    h["x-ratelimit-remaining-requests"] = `${state.remainingRequests}`;
    h["x-ratelimit-reset-requests"] = formatReset(state.resetRequestsMs);
  }
  if (state.limits.tokensPerDay !== null) {
    h["x-ratelimit-limit-tokens"] = `${state.limits.tokensPerDay}`;
    h["x-ratelimit-remaining-tokens"] = `${state.remainingTokens}`;
    h["x-ratelimit-reset-tokens"] = formatReset(state.resetTokensMs);
  }
  return h;
}

export const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);
