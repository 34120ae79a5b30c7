import { LIMITS } from "./completion-request";
import { ApiError, invalidRequest } from "./errors";

/**
 * Reads a JSON body with a size limit, so a huge body is refused before it is parsed. The
 * bytes are counted as they arrive (a chunked body has no Content-Length to trust), and reading
 * stops at the limit.
 */
export async function readJsonBody(request: Request): Promise<unknown> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > LIMITS.bodyBytes) throw tooLarge();
  const bytes = await readLimited(request.body, LIMITS.bodyBytes);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw invalidRequest("The request body is not valid UTF-8");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw invalidRequest(`The request body is not valid JSON: ${(e as Error).message}`);
  }
  if (nestingDepth(value, LIMITS.jsonDepth) > LIMITS.jsonDepth) throw invalidRequest(`The request body nests arrays and objects more than ${LIMITS.jsonDepth} levels deep`);
  return value;
}

async function readLimited(body: ReadableStream<Uint8Array> | null, limit: number): Promise<Uint8Array> {
  if (!body) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/** How deeply `value` nests arrays and objects, counted without recursion and only up to `cap` + 1. */
function nestingDepth(value: unknown, cap: number): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== "object" || v === null) continue;
    const d = depth + 1;
    if (d > deepest) deepest = d;
    if (deepest > cap) return deepest;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, d]);
  }
  return deepest;
}

function tooLarge(): ApiError {
  return new ApiError(413, `The request body is larger than ${LIMITS.bodyBytes} bytes`, "invalid_request_error", null, "body_too_large");
}
