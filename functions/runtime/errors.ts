// What can go wrong between a model id and its first token. The HTTP layer maps each kind to
// a status; the runtime never speaks HTTP.

export type ModelErrorKind =
  /** No such model (or not visible to the caller). */
  | "unknown_model"
  /** The model's data in KV is missing, corrupt or unreadable. */
  | "load_failed"
  /** The model needs more memory than an isolate may give it. */
  | "too_large"
  /** The model would fit, but other models in use hold the memory right now. */
  | "busy";

export class ModelError extends Error {
  constructor(
    readonly kind: ModelErrorKind,
    readonly modelId: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A key the model needs was not in KV. Right after a deploy that can be propagation (the
 * location sees the pointer before the data); the registry decides when it is a fault.
 */
export class MissingDataError extends ModelError {
  constructor(
    modelId: string,
    readonly key: string,
    message: string,
  ) {
    super("load_failed", modelId, message);
  }
}

/** The prompt and the completion asked for do not fit the model's context. */
export class ContextLengthError extends Error {
  constructor(
    readonly contextLength: number,
    readonly promptTokens: number,
    readonly requestedTokens: number,
  ) {
    super(
      requestedTokens > 0
        ? `this model's maximum context length is ${contextLength} tokens, but ${promptTokens + requestedTokens} were requested (${promptTokens} in the prompt, ${requestedTokens} for the completion)`
        : `this model's maximum context length is ${contextLength} tokens, but the prompt has ${promptTokens}`,
    );
  }
}
