// The Worker's logs: one JSON object per line on console.log, which `wrangler tail` and
// Workers Logs show as they are. One `request` line per request, written when its answer is
// complete (a stream's when the stream ends or the client goes away), and one line per model
// or adapter load and eviction. Lines carry ids, counts and times only: never prompt or output
// text, never a header (so never a key).

import type { MiddlewareHandler } from "hono";
import type { AppContext } from "./app";

/** The `request` line. */
export interface RequestLine {
  event: "request";
  time: string;
  request_id: string;
  /** The customer the key named; null in open mode or before the key was checked. */
  customer: string | null;
  method: string;
  /** The URL path, without the query string. */
  route: string;
  status: number;
  /** The model id asked for; null for routes without one. */
  model: string | null;
  /** The manifest sha256 that served it (the model's version); null if it was never resolved. */
  model_version: string | null;
  stream: boolean;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  /** From the request's arrival to its first generated token. */
  ttft_ms: number | null;
  /** From the request's arrival to the last byte of its answer. */
  duration_ms: number;
  finish_reason: "stop" | "length" | null;
  /** The OpenAI-shape error code (or type) of a failed request, or of a stream that failed part way. */
  error_code: string | null;
  /** A stream whose client went away before its end. */
  disconnected: boolean;
}

export type ModelEvent = "model_load" | "model_evict" | "adapter_load" | "adapter_evict";

/** A load or eviction in this isolate: `model`, `version` (manifest sha256), and what else applies (bytes, ms, adapter). */
export function logModelEvent(event: ModelEvent, fields: { model: string; version: string; memory_bytes?: number; adapter?: string; load_ms?: number; reason?: string }): void {
  console.log(JSON.stringify({ event, time: new Date().toISOString(), ...fields }));
}

/** An unexpected failure (a 5xx that is not a model's load error), tied to its request; on console.error, so it shows as an error. */
export function logError(requestId: string | null, err: unknown): void {
  const e = err instanceof Error ? err : new Error(String(err));
  console.error(JSON.stringify({ event: "error", time: new Date().toISOString(), request_id: requestId, error: `${e.name}: ${e.message}`, stack: e.stack ?? null }));
}

/** Request ids a caller may choose: short, printable, no spaces or quotes. */
const CALLER_ID = /^[A-Za-z0-9._:\/+=-]{1,128}$/;

export function requestIdFrom(header: string | undefined): string {
  if (header && CALLER_ID.test(header)) return header;
  return `req_${crypto.randomUUID().replaceAll("-", "")}`;
}

/** What a request's handlers learn about it, written as one `request` line once it is over. */
export class RequestLog {
  private readonly startedAt = Date.now();
  private firstTokenAt: number | null = null;
  private written = false;
  customer: string | null = null;
  model: string | null = null;
  modelVersion: string | null = null;
  promptTokens: number | null = null;
  completionTokens: number | null = null;
  finishReason: "stop" | "length" | null = null;
  errorCode: string | null = null;
  /** Set once the answer is a stream: its line is written when the stream ends, not when the handler returns. */
  stream = false;

  constructor(
    readonly requestId: string,
    readonly method: string,
    readonly route: string,
  ) {}

  /** The request failed (or its stream did): the error's code, or its type when it has none. */
  fail(error: { code: string | null; type: string }): void {
    this.errorCode = error.code ?? error.type;
  }

  firstToken(): void {
    this.firstTokenAt ??= Date.now();
  }

  /** Writes the line (once; later calls do nothing). */
  write(status: number, disconnected = false): void {
    if (this.written) return;
    this.written = true;
    const now = Date.now();
    const line: RequestLine = {
      event: "request",
      time: new Date(now).toISOString(),
      request_id: this.requestId,
      customer: this.customer,
      method: this.method,
      route: this.route,
      status,
      model: this.model,
      model_version: this.modelVersion,
      stream: this.stream,
      prompt_tokens: this.promptTokens,
      completion_tokens: this.completionTokens,
      ttft_ms: this.firstTokenAt === null ? null : this.firstTokenAt - this.startedAt,
      duration_ms: now - this.startedAt,
      finish_reason: this.finishReason,
      error_code: this.errorCode,
      disconnected,
    };
    console.log(JSON.stringify(line));
  }
}

/**
 * The first middleware: gives the request its id (the caller's `x-request-id` when it is a
 * sensible one), puts it on the answer, and writes the request line when the handler is done,
 * unless the answer is a stream, which writes its own when it ends.
 */
export const requestLogging: MiddlewareHandler<AppContext> = async (c, next) => {
  const log = new RequestLog(requestIdFrom(c.req.header("x-request-id")), c.req.method, new URL(c.req.url).pathname.slice(0, 256));
  c.set("log", log);
  await next();
  try {
    c.res.headers.set("x-request-id", log.requestId);
  } catch {
    // A response with immutable headers (none of ours today): copy it.
    c.res = new Response(c.res.body, c.res);
    c.res.headers.set("x-request-id", log.requestId);
  }
  log.customer ??= c.get("customer") ?? null;
  if (!log.stream) log.write(c.res.status);
};
