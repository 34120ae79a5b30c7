// The Hono app: routes only. Each handler is a few lines that delegate to the runtime.

import { Hono } from "hono";
import { ApiError, toApiError } from "./api/errors";
import { authenticate } from "./auth";
import { admin } from "./admin";
import { meter, type MeteredRequest } from "./metering/middleware";
import { kvKeys } from "./model/manifest";
import type { Env } from "./env";
import { logError, requestLogging, type RequestLog } from "./log";
import { playground } from "./playground";
import { chatCompletions } from "./routes/chat";
import { completions } from "./routes/completions";
import { listModels } from "./routes/models";
import { ModelError } from "./runtime/errors";
import { ModelRegistry, type RegistryOptions } from "./runtime/registry";
import { workerStore } from "./store/worker";

export interface AppContext {
  Bindings: Env;
  Variables: {
    models: ModelRegistry;
    /** This request's log line (functions/log.ts), filled in by the handlers. */
    log: RequestLog;
    /** The customer the API key belongs to, when one was given. */
    customer?: string;
    /** Where model pointers live for this caller (per customer once keys exist). */
    modelPointerPrefix?: string;
    modelPointerKey?: (id: string) => string;
    /** The customer's admitted request, ended with its usage (absent in open mode). */
    metering?: MeteredRequest;
  };
}

export function createApp(
  kernelsModule: WebAssembly.Module,
  options: Omit<RegistryOptions, "kernelsModule"> = {},
): { app: Hono<AppContext>; models: ModelRegistry } {
  const models = new ModelRegistry({ kernelsModule, ...options });
  const app = new Hono<AppContext>();

  app.use("*", requestLogging);
  app.use("*", async (c, next) => {
    c.set("models", models);
    await next();
  });

  app.get("/", playground);
  app.get("/healthz", async (c) => {
    // Once customers share the deployment, an unauthenticated caller learns nothing but "ok".
    if ((await workerStore(c.env).get(kvKeys.authRequired)) !== null) return c.json({ status: "ok" });
    return c.json({ status: "ok", memory: { inUse: models.memoryInUse, loadedModels: models.loadedModels.length }, loaded: models.loadedModels });
  });
  app.use("/v1/*", authenticate);
  app.use("/v1/*", meter);
  app.route("/admin", admin);
  app.get("/v1/models", listModels);
  app.post("/v1/completions", completions);
  app.post("/v1/chat/completions", chatCompletions);

  app.notFound((c) => {
    const e = new ApiError(404, `No route for ${c.req.method} ${new URL(c.req.url).pathname}`, "invalid_request_error", null, "not_found");
    c.var.log?.fail(e);
    return c.json(e.body, e.status);
  });
  app.onError((err, c) => {
    const e = toApiError(err);
    c.var.log?.fail(e);
    // Model load failures were logged where they happened (once per load); anything else
    // unexpected is logged here. Clients get the message, never a stack.
    if (e.status >= 500 && !(err instanceof ModelError)) logError(c.var.log?.requestId ?? null, err);
    return c.json(e.body, e.status, e.headers);
  });
  return { app, models };
}
