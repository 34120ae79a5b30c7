// CustomerMeter: one Durable Object per customer, the one place its limits and usage live.
// Every method is synchronous SQL on the object's own storage, so calls run one at a time and
// each is atomic: no two requests can both take the last slot, and a request's usage is added
// exactly once (its ticket is deleted in the same step; a second finish finds no ticket).
// Storage outlives the object: a restart (deploy, eviction, crash) loses nothing written.

import { DurableObject } from "cloudflare:workers";
import { NO_LIMITS, utcDay, type Admission, type Limits, type RateState, type RequestUsage, type UsageRow } from "./limits";

const WINDOW_MS = 60_000;
/** A ticket whose finish never came (its isolate died) stops counting toward concurrency after this. */
export const STALE_TICKET_MS = 15 * 60_000;
const DAY_MS = 86_400_000;

export class CustomerMeter extends DurableObject<Record<string, unknown>> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Record<string, unknown>) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`
      CREATE TABLE IF NOT EXISTS limits (id INTEGER PRIMARY KEY CHECK (id = 1), rpm INTEGER, concurrency INTEGER, tokens_per_day INTEGER);
      CREATE TABLE IF NOT EXISTS admitted (at INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS admitted_at ON admitted (at);
      CREATE TABLE IF NOT EXISTS tickets (ticket TEXT PRIMARY KEY, started INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS usage (
        day TEXT NOT NULL, model TEXT NOT NULL,
        requests INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, embedding_inputs INTEGER NOT NULL,
        PRIMARY KEY (day, model));
    `);
  }

  limits(): Limits {
    const row = this.sql.exec<{ rpm: number | null; concurrency: number | null; tokens_per_day: number | null }>("SELECT rpm, concurrency, tokens_per_day FROM limits WHERE id = 1").toArray()[0];
    return row ? { rpm: row.rpm, concurrency: row.concurrency, tokensPerDay: row.tokens_per_day } : { ...NO_LIMITS };
  }

  setLimits(limits: Limits): Limits {
    this.sql.exec("INSERT OR REPLACE INTO limits (id, rpm, concurrency, tokens_per_day) VALUES (1, ?, ?, ?)", limits.rpm, limits.concurrency, limits.tokensPerDay);
    return this.limits();
  }

  /** Admits a request under `ticket` (it counts toward concurrency until `finish`), or says which limit refuses it. */
  begin(ticket: string): Admission {
    const now = Date.now();
    this.sql.exec("DELETE FROM admitted WHERE at <= ?", now - WINDOW_MS);
    this.sql.exec("DELETE FROM tickets WHERE started <= ?", now - DAY_MS);
    const limits = this.limits();
    const refuse = (refused: "requests" | "concurrency" | "tokens", retryAfterMs: number, message: string): Admission => ({
      admitted: false,
      refused,
      retryAfterSeconds: Math.max(1, Math.ceil(retryAfterMs / 1000)),
      message,
      state: this.state(limits, now),
    });
    if (limits.concurrency !== null) {
      const running = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM tickets WHERE started > ?", now - STALE_TICKET_MS).one().n;
      if (running >= limits.concurrency) return refuse("concurrency", 1000, `Rate limit reached: ${limits.concurrency} concurrent requests; wait for one to finish`);
    }
    if (limits.tokensPerDay !== null && this.tokensToday(now) >= limits.tokensPerDay) {
      return refuse("tokens", msToMidnight(now), `Rate limit reached for tokens per day: limit ${limits.tokensPerDay}, used ${this.tokensToday(now)}`);
    }
    if (limits.rpm !== null) {
      const { n, oldest } = this.sql.exec<{ n: number; oldest: number | null }>("SELECT COUNT(*) AS n, MIN(at) AS oldest FROM admitted").one();
      if (n >= limits.rpm) return refuse("requests", (oldest ?? now) + WINDOW_MS - now, `Rate limit reached for requests per minute: limit ${limits.rpm}`);
      this.sql.exec("INSERT INTO admitted (at) VALUES (?)", now);
    }
    this.sql.exec("INSERT INTO tickets (ticket, started) VALUES (?, ?)", ticket, now);
    return { admitted: true, state: this.state(limits, now) };
  }

  /**
   * Ends the request `ticket` and adds what it used. Once only: the ticket goes in the same
   * step, so a repeated finish adds nothing (returns recorded: false).
   */
  finish(ticket: string, usage: RequestUsage | null): { recorded: boolean; state: RateState } {
    const now = Date.now();
    const found = this.sql.exec("DELETE FROM tickets WHERE ticket = ?", ticket).rowsWritten > 0;
    if (found && usage) {
      this.sql.exec(
        `INSERT INTO usage (day, model, requests, prompt_tokens, completion_tokens, embedding_inputs) VALUES (?, ?, 1, ?, ?, ?)
         ON CONFLICT (day, model) DO UPDATE SET requests = requests + 1, prompt_tokens = prompt_tokens + excluded.prompt_tokens,
           completion_tokens = completion_tokens + excluded.completion_tokens, embedding_inputs = embedding_inputs + excluded.embedding_inputs`,
        utcDay(now), usage.model, usage.promptTokens, usage.completionTokens, usage.embeddingInputs,
      );
    }
    return { recorded: found && usage !== null, state: this.state(this.limits(), now) };
  }

  /** Usage per UTC day and model, from `since` (YYYY-MM-DD) on. */
  usage(since = "0000-00-00"): UsageRow[] {
    return this.sql
      .exec<{ day: string; model: string; requests: number; prompt_tokens: number; completion_tokens: number; embedding_inputs: number }>(
        "SELECT day, model, requests, prompt_tokens, completion_tokens, embedding_inputs FROM usage WHERE day >= ? ORDER BY day, model",
        since,
      )
      .toArray()
      .map((r) => ({ day: r.day, model: r.model, requests: r.requests, promptTokens: r.prompt_tokens, completionTokens: r.completion_tokens, embeddingInputs: r.embedding_inputs }));
  }

  private tokensToday(now: number): number {
    return this.sql.exec<{ n: number }>("SELECT COALESCE(SUM(prompt_tokens + completion_tokens + embedding_inputs), 0) AS n FROM usage WHERE day = ?", utcDay(now)).one().n;
  }

  private state(limits: Limits, now: number): RateState {
    const { n, oldest } = this.sql.exec<{ n: number; oldest: number | null }>("SELECT COUNT(*) AS n, MIN(at) AS oldest FROM admitted WHERE at > ?", now - WINDOW_MS).one();
    return {
      limits,
      remainingRequests: limits.rpm === null ? null : Math.max(0, limits.rpm - n),
      resetRequestsMs: oldest === null ? 0 : oldest + WINDOW_MS - now,
      remainingTokens: limits.tokensPerDay === null ? null : Math.max(0, limits.tokensPerDay - this.tokensToday(now)),
      resetTokensMs: msToMidnight(now),
    };
  }
}

function msToMidnight(now: number): number {
  return DAY_MS - (now % DAY_MS);
}
