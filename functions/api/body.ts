import { LIMITS } from "./completion-request";
import { ApiError, invalidRequest } from "./errors";

/** Reads a JSON body with a size limit, so a huge body is refused before it is parsed. */
export async function readJsonBody(request: Request): Promise<unknown> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > LIMITS.bodyBytes) throw tooLarge();
  const bytes = new Uint8Array(await request.arrayBuffer());
  if (bytes.byteLength > LIMITS.bodyBytes) throw tooLarge();
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw invalidRequest("The request body is not valid UTF-8");
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw invalidRequest(`The request body is not valid JSON: ${(e as Error).message}`);
  }
}

function tooLarge(): ApiError {
  return new ApiError(413, `The request body is larger than ${LIMITS.bodyBytes} bytes`, "invalid_request_error", null, "body_too_large");
}
