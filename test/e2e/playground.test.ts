// The playground (GET /) in a real headless browser: Debian's Chromium driven by
// playwright-core, against `edgeinfer serve` (wrangler dev). The page loads and lists the
// models, a completion streams in (several updates, ending in exactly the API's own greedy
// text, with tokens/s and time to first token shown), and errors are shown readably.
// Screenshots go to test/.artifacts/screenshots; with EDGEINFER_WRITE_SCREENSHOTS=1 also to
// docs/ (the README shows those).
//
// Chromium: CHROMIUM_PATH, or Debian's /usr/bin/chromium or chromium-headless-shell (.ci/run
// installs it). Missing under CI, the test fails; missing elsewhere, it is skipped with a note.

import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "./server";

const root = join(import.meta.dirname, "..", "..");
const shots = join(root, "test", ".artifacts", "screenshots");

export function findChromium(): string | null {
  const candidates = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-headless-shell", "/usr/lib/chromium/chromium-headless-shell"];
  return candidates.find((p): p is string => !!p && existsSync(p)) ?? null;
}

const executablePath = findChromium();
const skip = !executablePath && !process.env.CI;
if (skip) console.warn("playground browser test skipped: no Chromium found (apt-get install chromium, or set CHROMIUM_PATH); under CI this is a failure");

let server: RunningServer;
let browser: Browser;
let page: Page;

async function screenshot(name: string): Promise<void> {
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, name) });
  if (process.env.EDGEINFER_WRITE_SCREENSHOTS === "1") copyFileSync(join(shots, name), join(root, "docs", name));
}

describe.skipIf(skip)("the playground in Chromium", () => {
  beforeAll(async () => {
    if (!executablePath) throw new Error("no Chromium: install Debian's package (apt-get install -y chromium) or set CHROMIUM_PATH; .ci/run installs it");
    server = await startServer();
    // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
    page = await browser.newPage({ viewport: { width: 960, height: 600 } });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("loads: a labelled form and the models from /v1/models", async () => {
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    const res = await page.goto(`${server.url}/`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()["x-request-id"]).toMatch(/^req_/);
    expect(await page.title()).toBe("edgeinfer playground");
    await page.waitForSelector("#model option", { state: "attached" });
    const models = await page.getByLabel("Model").locator("option").allTextContents();
    expect(models).toEqual(expect.arrayContaining(["aidreams260K", "aidreams260K-q8_0", "aidreams260K-q4_0"]));
    for (const label of ["API key (when the deployment needs one)", "Temperature", "Max tokens", "JSON schema (optional)", "Message", "Chat", "Complete"]) {
      expect(await page.getByLabel(label, { exact: true }).count(), label).toBe(1);
    }
    expect(pageErrors).toEqual([]);
  });

  it("streams a completion in: several updates, the API's own text, tokens/s and time to first token", async () => {
    const request = { model: "aidreams260K", prompt: "Once upon a time", max_tokens: 100, temperature: 0 };
    const want = (await (await fetch(`${server.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(request) })).json()) as { choices: Array<{ text: string }> };

    await page.getByLabel("Model").selectOption(request.model);
    await page.getByLabel("Complete", { exact: true }).check();
    await page.getByLabel("Temperature").fill("0");
    await page.getByLabel("Max tokens").fill(String(request.max_tokens));
    await page.getByLabel("Prompt").fill(request.prompt);
    // Every text the output shows on its way, as the page updates it.
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { seen: string[] }).seen = seen;
      new MutationObserver(() => {
        const out = document.querySelector("#output span:not(.prompt)");
        if (out && out.textContent && seen[seen.length - 1] !== out.textContent) seen.push(out.textContent);
      }).observe(document.getElementById("output")!, { subtree: true, childList: true, characterData: true });
    });
    await page.getByRole("button", { name: "Generate" }).click();
    await page.waitForFunction(() => document.getElementById("stats")!.textContent!.includes("finish:"));

    expect(await page.locator("#output .prompt").textContent()).toBe(request.prompt);
    expect(await page.locator("#output span:not(.prompt)").textContent()).toBe(want.choices[0].text);
    const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
    expect(seen.length).toBeGreaterThan(1);
    for (let i = 1; i < seen.length; i++) expect(seen[i].startsWith(seen[i - 1])).toBe(true);
    expect(await page.textContent("#stats")).toMatch(/^100 tokens · first token \d+ ms · \d+(\.\d)? tokens\/s · finish: length$/);
    expect(await page.locator("#error").isHidden()).toBe(true);
    await screenshot("playground.png");
  });

  it("shows errors readably: the server's status, code and message, or what is wrong with the schema", async () => {
    // Chat with a model that has no chat template: the server's 400.
    await page.getByLabel("Chat", { exact: true }).check();
    await page.getByLabel("Message").fill("Hello there");
    await page.getByRole("button", { name: "Generate" }).click();
    const error = page.getByRole("alert");
    await error.waitFor({ state: "visible" });
    expect(await error.textContent()).toBe("HTTP 400 no_chat_template (model): The model 'aidreams260K' has no chat template; use /v1/completions");
    // The turn is taken back, ready to send again.
    expect(await page.getByLabel("Message").inputValue()).toBe("Hello there");
    expect(await page.locator("#output .turn").count()).toBe(0);
    await screenshot("playground-error.png");

    // A schema that is not JSON never leaves the page.
    await page.getByLabel("Complete", { exact: true }).check();
    await page.getByLabel("JSON schema (optional)").fill("{type: object");
    await page.getByRole("button", { name: "Generate" }).click();
    await page.waitForFunction(() => document.getElementById("error")!.textContent!.startsWith("The JSON schema is not valid JSON"));
    await page.getByLabel("JSON schema (optional)").fill("");

    // A request the server refuses: the whole message, with the field it names.
    await page.getByLabel("Max tokens").fill("100000");
    await page.getByRole("button", { name: "Generate" }).click();
    await page.waitForFunction(() => document.getElementById("error")!.textContent!.includes("context_length_exceeded"));
    expect(await error.textContent()).toMatch(/^HTTP 400 context_length_exceeded \(prompt\): this model's maximum context length is \d+ tokens, but \d+ were requested/);
  });
});

describe("the browser", () => {
  it("is there under CI", () => {
    if (process.env.CI) expect(executablePath, "no Chromium under CI: .ci/run should have installed Debian's package").not.toBeNull();
  });
});
