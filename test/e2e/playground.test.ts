// The playground (GET /) in a real headless browser: Debian's Chromium driven by
// playwright-core, against `edgeinfer serve` (wrangler dev). The page loads and lists the
// models, a completion streams in (several updates, ending in exactly the API's own greedy
// text, with tokens/s and time to first token shown), errors are shown readably, a JSON schema
// goes out as response_format, and a customer's key pasted in the page is used.
// Screenshots go to test/.artifacts/screenshots; with EDGEINFER_WRITE_SCREENSHOTS=1 also to
// docs/ (the README shows those).
//
// Chromium: CHROMIUM_PATH, or Debian's /usr/bin/chromium or chromium-headless-shell (.ci/run
// installs it). Missing under CI, the test fails; missing elsewhere, it is skipped with a note.

import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { aidreams, edgeinfer } from "../setup/fixtures";
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

/** Waits until the generation is over: the stats line shows how it finished. */
const finished = () => page.locator("#stats", { hasText: "finish:" }).waitFor();

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
    // Every text the output shows on its way, as the page updates it. (This project's TypeScript
    // has no DOM types, hence `globalThis as any` in code that runs in the page; strings would be
    // eval'd, which the page's Content-Security-Policy forbids.)
    await page.evaluate(() => {
      const w = globalThis as any;
      w.seen = [];
      new w.MutationObserver(() => {
        const out = w.document.querySelector("#output span:not(.prompt)");
        if (out && out.textContent && w.seen[w.seen.length - 1] !== out.textContent) w.seen.push(out.textContent);
      }).observe(w.document.getElementById("output"), { subtree: true, childList: true, characterData: true });
    });
    // 100 tokens of this model take ~10 ms: on a loaded machine the browser may take every chunk
    // in one read, so a run showing one update is tried again (up to 3 runs; a page that does not
    // stream never shows more than one).
    let seen: string[] = [];
    for (let run = 0; run < 3 && seen.length <= 1; run++) {
      await page.evaluate(() => {
        const w = globalThis as any;
        w.seen = [];
        w.document.getElementById("stats").textContent = "";
      });
      await page.getByRole("button", { name: "Generate" }).click();
      await finished();
      expect(await page.locator("#output .prompt").textContent()).toBe(request.prompt);
      expect(await page.locator("#output span:not(.prompt)").textContent()).toBe(want.choices[0].text);
      seen = (await page.evaluate(() => (globalThis as any).seen)) as string[];
    }
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
    await page.locator("#error", { hasText: "The JSON schema is not valid JSON" }).waitFor();
    await page.getByLabel("JSON schema (optional)").fill("");

    // A request the server refuses: the whole message, with the field it names.
    await page.getByLabel("Max tokens").fill("100000");
    await page.getByRole("button", { name: "Generate" }).click();
    await page.locator("#error", { hasText: "context_length_exceeded" }).waitFor();
    expect(await error.textContent()).toMatch(/^HTTP 400 context_length_exceeded \(prompt\): this model's maximum context length is \d+ tokens, but \d+ were requested/);
  });

  it("sends a JSON schema as response_format, and shows the answer or the server's refusal", async () => {
    const schema = { title: "pet", type: "object", properties: { name: { type: "string" } }, required: ["name"] };
    await page.getByLabel("Max tokens").fill("20");
    await page.getByLabel("JSON schema (optional)").fill(JSON.stringify(schema, null, 1));
    const sent = page.waitForRequest((r) => r.url().endsWith("/v1/completions") && r.method() === "POST");
    await page.getByRole("button", { name: "Generate" }).click();
    const body = (await sent).postDataJSON() as Record<string, unknown>;
    expect(body.response_format).toEqual({ type: "json_schema", json_schema: { name: "pet", schema } });
    await page.locator("#stats:has-text('finish:'), #error:visible").first().waitFor();
    // Either it ran, or the server said why not, in full.
    if (await page.getByRole("alert").isVisible()) expect(await page.getByRole("alert").textContent()).toMatch(/^HTTP 400 \S+ \(response_format\): \S/);
    await page.getByLabel("JSON schema (optional)").fill("");
  });
});

describe.skipIf(skip)("the playground once customers exist", () => {
  let key = "";

  beforeAll(async () => {
    if (!executablePath) throw new Error("no Chromium: install Debian's package (apt-get install -y chromium) or set CHROMIUM_PATH; .ci/run installs it");
    server = await startServer((persistTo) => {
      key = edgeinfer(["deploy", "acme", "--model", aidreams.checkpoint, "--tokenizer", aidreams.tokenizer, "--id", "story", "--quant", "q8_0", "--persist-to", persistTo]).apiKey;
    });
    browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
    page = await browser.newPage({ viewport: { width: 960, height: 600 } });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("says a key is needed, then lists and runs the customer's model with the key pasted", async () => {
    await page.goto(`${server.url}/`);
    const error = page.getByRole("alert");
    await error.waitFor({ state: "visible" });
    expect(await error.textContent()).toBe("HTTP 401 invalid_api_key: This deployment needs an API key: send Authorization: Bearer <key>");

    await page.getByLabel("API key (when the deployment needs one)").fill(key);
    await page.getByLabel("API key (when the deployment needs one)").press("Tab");
    await page.waitForSelector("#model option", { state: "attached" });
    expect(await page.getByLabel("Model").locator("option").allTextContents()).toEqual(["story"]);
    expect(await error.isHidden()).toBe(true);

    await page.getByLabel("Complete", { exact: true }).check();
    await page.getByLabel("Max tokens").fill("10");
    await page.getByLabel("Prompt").fill("Once upon a time");
    await page.getByRole("button", { name: "Generate" }).click();
    await finished();
    expect(await page.textContent("#stats")).toMatch(/^10 tokens · first token \d+ ms · /);
  });
});

describe("the browser", () => {
  it("is there under CI", () => {
    if (process.env.CI) expect(executablePath, "no Chromium under CI: .ci/run should have installed Debian's package").not.toBeNull();
  });
});
