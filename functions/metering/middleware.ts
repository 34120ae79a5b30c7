// Limits and usage on the request path. For a customer's /v1 request the middleware asks the
// customer's meter (a Durable Object) to admit it: refused, it is a 429 rate_limit_exceeded in
// OpenAI's shape with Retry-After; admitted, it holds a ticket until it ends. A generation's
// route ends it with the tokens it used (before the answer's usage is sent, so what a client is
// told it used is already counted); anything else ends when the handler returns. Each answer
// carries OpenAI's x-ratelimit-* headers. Open mode (no customers) is not metered.

import type { MiddlewareHandler } from "hono";
import { ApiError } from "../api/errors";
import type { AppContext } from "../app";
import { rateLimitHeaders, type RateState, type RequestUsage } from "./limits";
import type { CustomerMeter } from "./meter";

export class MeteredRequest {
  private ending: Promise<void> | null = null;
  /** A generation holds the request: its end, not the handler's return, ends the ticket. */
  private claimed = false;

  constructor(
    private readonly meter: DurableObjectStub<CustomerMeter>,
    private readonly ticket: string,
    private state: RateState,
    private readonly waitUntil: ((p: Promise<unknown>) => void) | null,
  ) {}

  get owned(): boolean {
    return this.claimed;
  }

  claim(): void {
    this.claimed = true;
  }

  /** Ends the request with what it used; once (later calls wait for the first). */
  finish(usage: RequestUsage | null): Promise<void> {
    this.ending ??= this.meter.finish(this.ticket, usage).then((r) => {
      // Requests as they stood when this one was admitted (as OpenAI reports them); tokens as
      // they stand after it.
      this.state = { ...this.state, remainingTokens: r.state.remainingTokens, resetTokensMs: r.state.resetTokensMs };
    });
    return this.ending;
  }

  /** Ends it without waiting, for a client that went away (the runtime keeps it alive with waitUntil). */
  finishLater(usage: RequestUsage | null): void {
    const done = this.finish(usage).catch((e) => console.error(`edgeinfer: recording usage failed: ${(e as Error).message}`));
    this.waitUntil?.(done);
  }

  headers(): Record<string, string> {
    return rateLimitHeaders(this.state);
  }
}

export const meter: MiddlewareHandler<AppContext> = async (c, next) => {
  const customer = c.var.customer;
  const namespace = c.env.METER;
  if (!customer || !namespace) return next();
  const stub = namespace.get(namespace.idFromName(customer));
  const ticket = crypto.randomUUID();
  const admission = await stub.begin(ticket);
  if (!admission.admitted) {
    throw new ApiError(429, admission.message, admission.refused === "tokens" ? "tokens" : "requests", null, "rate_limit_exceeded", {
      ...rateLimitHeaders(admission.state),
      "retry-after": `${admission.retryAfterSeconds}`,
    });
  }
  let waitUntil: ((p: Promise<unknown>) => void) | null = null;
  try {
    const ctx = c.executionCtx;
    waitUntil = (p) => ctx.waitUntil(p);
  } catch {
    // no execution context (app.request in tests): a dropped stream's usage is recorded unawaited
  }
  const metered = new MeteredRequest(stub, ticket, admission.state, waitUntil);
  c.set("metering", metered);
  await next();
  if (!metered.owned) await metered.finish(null);
  for (const [name, value] of Object.entries(metered.headers())) c.res.headers.set(name, value);
};
