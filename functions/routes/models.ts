// GET /v1/models: the models whose live pointer is in the model store.

import type { Context } from "hono";
import { kvKeys } from "../model/manifest";
import type { AppContext } from "../app";
import { workerStore } from "../store/worker";

export async function listModels(c: Context<AppContext>): Promise<Response> {
  const prefix = c.var.modelPointerPrefix ?? kvKeys.modelPointerPrefix;
  const ids = (await workerStore(c.env).list(prefix)).map((key) => key.slice(prefix.length));
  return c.json({
    object: "list",
    data: ids.sort().map((id) => ({ id, object: "model", created: 0, owned_by: "edgeinfer" })),
  });
}
