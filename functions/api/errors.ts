// Errors as the OpenAI API shapes them: {"error": {message, type, param, code}} with the
// status that says whose fault it was.

import type { ContentfulStatusCode } from "hono/utils/http-status";
import { RETRY_AFTER_SECONDS } from "../runtime/engine";
import { ContextLengthError, ModelError } from "../runtime/errors";

export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    message: string,
    readonly type: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** Response headers that go with it (Retry-After on 503 model_busy). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  get body() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const invalidRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new ApiError(400, message, "invalid_request_error", param, code);

/** Turns whatever a handler threw into the error the client should see. */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof ContextLengthError) return invalidRequest(e.message, "prompt", "context_length_exceeded");
  if (e instanceof ModelError) {
    switch (e.kind) {
      case "unknown_model":
        return new ApiError(404, e.message, "invalid_request_error", "model", "model_not_found");
      case "too_large":
        return new ApiError(503, e.message, "server_error", "model", "model_too_large");
      case "busy":
        return new ApiError(503, e.message, "server_error", "model", "model_busy", { "retry-after": `${RETRY_AFTER_SECONDS}` });
      case "load_failed":
        return new ApiError(503, e.message, "server_error", "model", "model_load_failed");
    }
  }
  return new ApiError(500, "internal error", "server_error", null, "internal_error");
}
