// The sampling controls both completion routes take beyond temperature and top_p, checked field
// by field: presence_penalty, frequency_penalty, logit_bias, top_k, min_p, repetition_penalty.
// Token ids in logit_bias are checked against the model's vocabulary once it is loaded
// (checkLogitBias), since the request alone does not say how large it is.

import type { SamplingControls } from "../runtime/sampler";
import { optionalInteger, optionalNumber } from "./completion-request";
import { invalidRequest } from "./errors";

export const SAMPLING_FIELDS = ["presence_penalty", "frequency_penalty", "logit_bias", "top_k", "min_p", "repetition_penalty"] as const;

export const SAMPLING_LIMITS = {
  penalty: 2,
  logitBias: 100,
  logitBiasEntries: 300,
  repetitionPenalty: 2,
} as const;

type Body = Record<string, unknown>;

/** Only the controls the request set (the rest stay neutral). */
export function parseSamplingControls(body: Body): Partial<SamplingControls> {
  const controls: Partial<SamplingControls> = {};
  const presence = optionalNumber(body, "presence_penalty", -SAMPLING_LIMITS.penalty, SAMPLING_LIMITS.penalty);
  if (presence !== null) controls.presencePenalty = presence;
  const frequency = optionalNumber(body, "frequency_penalty", -SAMPLING_LIMITS.penalty, SAMPLING_LIMITS.penalty);
  if (frequency !== null) controls.frequencyPenalty = frequency;
  const topK = optionalInteger(body, "top_k", -1, 1 << 30);
  if (topK !== null && topK > 0) controls.topK = topK; // 0 and -1 (vLLM's spelling) keep every token
  const minP = optionalNumber(body, "min_p", 0, 1);
  if (minP !== null) controls.minP = minP;
  const repetition = optionalNumber(body, "repetition_penalty", 0, SAMPLING_LIMITS.repetitionPenalty, true);
  if (repetition !== null) controls.repetitionPenalty = repetition;
  const bias = parseLogitBias(body.logit_bias);
  if (bias) controls.logitBias = bias;
  return controls;
}

function parseLogitBias(value: unknown): Map<number, number> | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== "object" || Array.isArray(value)) throw invalidRequest("'logit_bias' must be an object mapping token ids to numbers", "logit_bias");
  const entries = Object.entries(value as Body);
  if (entries.length > SAMPLING_LIMITS.logitBiasEntries) {
    throw invalidRequest(`'logit_bias' has ${entries.length} entries; the limit is ${SAMPLING_LIMITS.logitBiasEntries}`, "logit_bias");
  }
  const bias = new Map<number, number>();
  for (const [key, v] of entries) {
    if (!/^(0|[1-9][0-9]{0,9})$/.test(key)) throw invalidRequest(`'logit_bias' keys must be token ids (non-negative integers), got ${JSON.stringify(key)}`, "logit_bias");
    if (typeof v !== "number" || !Number.isFinite(v) || v < -SAMPLING_LIMITS.logitBias || v > SAMPLING_LIMITS.logitBias) {
      throw invalidRequest(`'logit_bias' values must be numbers from -${SAMPLING_LIMITS.logitBias} to ${SAMPLING_LIMITS.logitBias}, got ${JSON.stringify(v)} for token ${key}`, "logit_bias");
    }
    bias.set(Number(key), v);
  }
  return bias.size > 0 ? bias : null;
}

/** logit_bias token ids must lie in the model's vocabulary. */
export function checkLogitBias(controls: Partial<SamplingControls> | undefined, vocabSize: number): void {
  if (!controls?.logitBias) return;
  for (const id of controls.logitBias.keys()) {
    if (id >= vocabSize) throw invalidRequest(`'logit_bias' names token ${id}, outside the vocabulary (0..${vocabSize - 1})`, "logit_bias", "invalid_token_id");
  }
}
