// edgeinfer deploy <customer> --model <source> [--id <name>] [--quant ...]: build, upload
// what is new, register the model under the customer (created on first deploy, its API key
// printed once), and make the new version live only once all its data is in KV.

import { basename } from "node:path";
import { parseArgs } from "node:util";
import { kvKeys } from "../../functions/model/manifest";
import { formatBytes } from "../../functions/model/memory";
import { planPublish, publishArtifacts } from "../build/publish";
import { openKvTarget } from "../kv/targets";
import { checkCustomerName, ensureCustomer, readCustomer } from "../tenancy/store";
import { BUILD_QUANTS } from "../build/quantize";
import { buildArtifactsFor, parseQuant } from "./build";
import { CliError, endProgress, progress, targetOptions, type Command, type OptionSpecs } from "./command";

const deployOptions = {
  model: { type: "string", value: "SOURCE", help: "what to build: a llama2.c checkpoint, a Hugging Face folder, a .gguf file or hf:org/repo[@rev] (required)" },
  id: { type: "string", value: "NAME", help: "the model id the customer calls it by (default: from the source's name)" },
  tokenizer: { type: "string", value: "FILE", help: "llama2.c's tokenizer.bin (llama2.c checkpoints only)" },
  quant: { type: "string", value: "FORMAT", help: `weight format: ${BUILD_QUANTS.join(", ")} (default: keep for a GGUF file, q8_0 otherwise)` },
  context: { type: "string", value: "N", help: "shorten the context to N tokens" },
  "dry-run": { type: "boolean", default: false, help: "print the plan (keys, bytes, what is new, the pointer change) and write nothing" },
  ...targetOptions,
} as const satisfies OptionSpecs;

const DEPLOY_USAGE = "deploy <customer> --model <source> [options]";

export const deployCommand: Command = {
  summary: "build a model and deploy it for a customer (creates the customer and its API key the first time)",
  usage: DEPLOY_USAGE,
  options: deployOptions,
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: deployOptions, allowPositionals: true, strict: true });
    const [customer] = positionals;
    if (positionals.length !== 1 || !values.model) throw new CliError(`usage: edgeinfer ${DEPLOY_USAGE} (see edgeinfer deploy --help)`);
    checkCustomerName(customer);
    const id = values.id ?? defaultId(values.model);
    const json = values.json;
    const artifacts = await buildArtifactsFor({
      source: values.model,
      tokenizer: values.tokenizer,
      id,
      quant: parseQuant(values.quant),
      contextLength: values.context === undefined ? undefined : Number(values.context),
      remote: values.remote,
      json,
    });
    const kv = await openKvTarget({ remote: values.remote, persistTo: values["persist-to"], outDir: values.out });
    try {
      const pointerKey = kvKeys.customerModelPointer(customer, id);
      if (values["dry-run"]) {
        const plan = await planPublish(kv, artifacts, pointerKey);
        const exists = (await readCustomer(kv, customer)) !== null;
        const report = {
          ok: true,
          dryRun: true,
          customer,
          createsCustomer: !exists,
          id,
          manifest: artifacts.manifestSha256,
          target: kv.description,
          newKeys: plan.missing.map((e) => ({ key: e.key, bytes: e.value.byteLength })),
          alreadyPresent: plan.alreadyPresent,
          bytesToWrite: plan.bytesToWrite,
          pointer: { key: pointerKey, change: plan.pointer, from: plan.current?.manifest ?? null, to: artifacts.manifestSha256 },
        };
        if (json) console.log(JSON.stringify(report));
        else {
          console.log(`dry run: deploy ${id} for ${customer}${exists ? "" : " (new customer: a key would be created)"} to ${kv.description}`);
          for (const k of report.newKeys) console.log(`  new  ${k.key} (${formatBytes(k.bytes)})`);
          console.log(`  ${plan.alreadyPresent} key(s) already present; ${formatBytes(plan.bytesToWrite)} to write`);
          console.log(`  pointer ${pointerKey}: ${plan.pointer}${plan.current ? ` (from ${plan.current.manifest})` : ""}`);
        }
        return;
      }
      const { apiKey } = await ensureCustomer(kv, customer);
      const published = await publishArtifacts(kv, artifacts, pointerKey, (done, total, key) =>
        progress(json, total === 0 ? "KV: nothing new to upload" : `uploading to ${kv.description} [${done}/${total}] ${key}`),
      );
      endProgress(json);
      const result = {
        ok: true,
        customer,
        id,
        manifest: artifacts.manifestSha256,
        previousManifest: published.previousManifest,
        target: kv.description,
        uploaded: published.written,
        alreadyPresent: published.alreadyPresent,
        bytesUploaded: published.bytesWritten,
        pointer: published.pointer,
        ...(apiKey ? { apiKey } : {}),
      };
      if (json) {
        console.log(JSON.stringify(result));
        return;
      }
      console.log(`deployed ${id} for ${customer}: ${published.pointer === "unchanged" ? "already live" : `version ${artifacts.manifestSha256.slice(0, 12)} is live`}${published.previousManifest ? ` (previous ${published.previousManifest.slice(0, 12)} kept for rollback)` : ""}`);
      console.log(`uploaded ${published.written.length} key(s), ${formatBytes(published.bytesWritten)}; ${published.alreadyPresent} already present`);
      if (apiKey) console.log(`\nnew customer ${customer}; its API key (shown once, stored only as a hash):\n\n  ${apiKey}\n`);
    } finally {
      await kv.close();
    }
  },
};

/** A model id from the source's name: hf:org/repo -> repo, path/to/model.gguf -> model. */
function defaultId(source: string): string {
  const name = source.startsWith("hf:") ? source.slice(3).split("@")[0].split("/").pop()! : basename(source.replace(/\/+$/, ""));
  return name.replace(/\.(gguf|bin)$/, "").replace(/[^A-Za-z0-9._-]/g, "-");
}
