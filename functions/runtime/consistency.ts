// How the Worker reads a store that is eventually consistent, per key. Workers KV shows a write
// at once where it was made and up to about a minute later elsewhere, each key on its own, and a
// location that read a key (or its absence) keeps answering from its cache for the read's
// cacheTtl. So a location may see a new pointer before the shards it names. The numbers here
// decide what a customer sees during a deploy or a rollback (README "Deploys and rollbacks").

/** Pointers change: cached briefly (KV's minimum), so a new version is seen soon after it propagates. */
export const POINTER_CACHE_TTL_S = 30;

/**
 * Content-addressed keys (manifests, tokenizers, shards) never change once written: cached for
 * a day. Only a version whose pointer is settled is read so; a missing key is cached as missing
 * for the whole period, and a young version's data may not have arrived yet.
 */
export const SETTLED_CONTENT_CACHE_TTL_S = 86_400;

/** A young version's data is read with KV's minimum cacheTtl, so a miss sticks 30 s at most. */
export const YOUNG_CONTENT_CACHE_TTL_S = 30;

/**
 * A version is young for this long after its pointer was written: KV's propagation (about a
 * minute), a cached miss (30 s) and a stale pointer (30 s), with room to spare. Until then,
 * data it names that a location cannot read yet is not an error: the previous version serves.
 * Past it, data still missing is a real fault (503 model_load_failed).
 */
export const PROPAGATION_BOUND_MS = 5 * 60_000;

/** A version whose data was missing is tried again after 1 s, 2 s, 4 s ... at most 30 s apart. */
export const RETRY_FIRST_MS = 1_000;
export const RETRY_MAX_MS = 30_000;

export function retryDelayMs(attempts: number): number {
  return Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.max(0, attempts - 1));
}

/** The cacheTtl for a version's content-addressed keys, by the age of the pointer that names it. */
export function contentCacheTtl(pointerAt: number | null, now: number): number {
  return pointerAt !== null && now - pointerAt < PROPAGATION_BOUND_MS ? YOUNG_CONTENT_CACHE_TTL_S : SETTLED_CONTENT_CACHE_TTL_S;
}
