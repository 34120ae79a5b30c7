// Who is asking. While no customer exists (a local `npm start`), requests need no key (any
// key is ignored) and see the open models. Once one does, every /v1 request needs `Authorization: Bearer <key>`;
// the key's sha256 names the customer, and the customer's pointers are the only models it
// can see or run. Keys are stored only hashed and compared in constant time; errors never
// echo them.

import type { MiddlewareHandler } from "hono";
import { ApiError } from "./api/errors";
import { sha256Hex } from "./model/hash";
import { kvKeys, type CustomerRecord } from "./model/manifest";
import type { AppContext } from "./app";
import { POINTER_CACHE_TTL_S } from "./runtime/consistency";
import { getJson } from "./store/store";
import { workerStore } from "./store/worker";

// Keys, records and the auth switch change (rotation, new customers): cached as briefly as
// pointers, so a rotation reaches every location within KV's propagation + 30 s.
const cacheTtl = POINTER_CACHE_TTL_S;

const unauthorized = (message: string) => new ApiError(401, message, "authentication_error", null, "invalid_api_key");

export const authenticate: MiddlewareHandler<AppContext> = async (c, next) => {
  const store = workerStore(c.env);
  // Open mode: any key (the openai client always sends one) or none sees the open models.
  if ((await store.get(kvKeys.authRequired, { cacheTtl })) === null) return next();
  const header = c.req.header("authorization");
  if (!header) throw unauthorized("This deployment needs an API key: send Authorization: Bearer <key>");
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw unauthorized("The Authorization header must be 'Bearer <key>'");
  const keyHash = await sha256Hex(match[1]);
  const owner = await getJson<{ customer: string }>(store, kvKeys.apiKey(keyHash), { cacheTtl });
  const record = owner ? await getJson<CustomerRecord>(store, kvKeys.customerRecord(owner.customer), { cacheTtl }) : null;
  // The key index could lag a rotation: the customer record holds the one current hash.
  if (!owner || !record || !timingSafeEqualHex(record.keyHash, keyHash)) throw unauthorized("Incorrect API key provided");
  c.set("customer", record.name);
  c.set("modelPointerPrefix", kvKeys.customerModelPrefix(record.name));
  c.set("modelPointerKey", (id: string) => kvKeys.customerModelPointer(record.name, id));
  return next();
};

function timingSafeEqualHex(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  if (x.byteLength !== y.byteLength) return false;
  const subtle = crypto.subtle as SubtleCrypto & { timingSafeEqual?: (a: ArrayBufferView, b: ArrayBufferView) => boolean };
  if (subtle.timingSafeEqual) return subtle.timingSafeEqual(x, y);
  let diff = 0;
  for (let i = 0; i < x.byteLength; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}
