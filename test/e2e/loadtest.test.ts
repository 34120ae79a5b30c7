// The load test in its short mode against wrangler dev: a mixed workload with zero errors and
// every output equal to the same request's output alone. Figures are printed, not asserted.

import { afterAll, beforeAll, expect, it } from "vitest";
import { runLoadtest } from "../../scripts/loadtest/run";
import { startServer, type RunningServer } from "./server";

let server: RunningServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server?.stop();
});

it("serves a mixed concurrent workload with no errors and no wrong outputs while clients hang up mid-stream, and leaks no KV cache", async () => {
  const report = await runLoadtest({ url: server.url, connections: 8, amount: 48, maxSeconds: 60, models: ["aidreams260K", "aidreams260K-q4_0"], disconnects: 40 });
  console.log(JSON.stringify(report));
  expect(report.requests).toBeGreaterThanOrEqual(48);
  expect(report.errors).toBe(0);
  expect(report.non2xx).toBe(0);
  expect(report.wrongOutputs).toBe(0);
  expect(report.completionTokens).toBeGreaterThan(0);
  expect(report.disconnects.clients).toBe(40);
  expect(report.disconnects.leakedSlots).toBe(0);
});
