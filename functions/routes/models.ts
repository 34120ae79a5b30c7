// GET /v1/models: the models whose live pointer is in KV.

import type { Context } from "hono";
import { kvKeys } from "../model/manifest";
import type { AppContext } from "../app";

export async function listModels(c: Context<AppContext>): Promise<Response> {
  const prefix = c.var.modelPointerPrefix ?? kvKeys.modelPointerPrefix;
  const ids: string[] = [];
  let cursor: string | undefined;
  do {
    const page: KVNamespaceListResult<unknown> = await c.env.MODELS.list({ prefix, cursor });
    for (const key of page.keys) ids.push(key.name.slice(prefix.length));
    cursor = page.list_complete ? undefined : page.cursor;
  } while (cursor);
  return c.json({
    object: "list",
    data: ids.sort().map((id) => ({ id, object: "model", created: 0, owned_by: "edgeinfer" })),
  });
}
