// Log-probabilities of tokens under the model: the log-softmax of the raw logits (before
// temperature, penalties, bias or any constraint), in double precision, with the most likely
// alternatives. Worker-safe.

export interface LogprobsRequest {
  /** How many alternatives per position (0..20). */
  top: number;
  /** Also the prompt's own tokens (each given the ones before it; the first has none). */
  prompt: boolean;
}

export interface TokenLogprob {
  token: number;
  logprob: number;
  /** The `top` most likely tokens at this position, most likely first (ties: lower id first). */
  top: Array<{ token: number; logprob: number }>;
}

/** log(sum(exp(logits))) over logits[0..n), stable, in f64. */
export function logSumExp(logits: ArrayLike<number>, n: number): number {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(logits[i] - max);
  return max + Math.log(sum);
}

/** The log-probability of `token` and of the `top` most likely tokens, from logits[0..n). */
export function tokenLogprob(logits: ArrayLike<number>, n: number, token: number, top: number): TokenLogprob {
  const lse = logSumExp(logits, n);
  return { token, logprob: logits[token] - lse, top: topTokens(logits, n, top).map((id) => ({ token: id, logprob: logits[id] - lse })) };
}

/** Ids of the k largest logits, largest first (equal logits: lower id first). One pass, O(n k). */
export function topTokens(logits: ArrayLike<number>, n: number, k: number): number[] {
  const ids: number[] = [];
  if (k <= 0) return ids;
  for (let i = 0; i < n; i++) {
    const v = logits[i];
    if (ids.length === k && !(v > logits[ids[k - 1]])) continue;
    let at = ids.length === k ? k - 1 : ids.length;
    if (ids.length < k) ids.push(i);
    while (at > 0 && v > logits[ids[at - 1]]) {
      ids[at] = ids[at - 1];
      at--;
    }
    ids[at] = i;
  }
  return ids;
}
