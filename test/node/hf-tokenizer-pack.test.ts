// packHfTokenizer: a Hugging Face model directory -> the bundle the Worker loads, with the stop
// tokens, BOS and template decided at build time.
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { hfTokenizerFromBytes, parseHfTokenizerBundle } from "../../functions/runtime/tokenizer/hf";
import { packHfTokenizer, packHfTokenizerFromObjects } from "../../scripts/sources/hf-tokenizer";
import { familyTokenizerObjects, writeHfTokenizerDir, type HfFamily, type HfTokenizerDirOptions } from "../support/hf-fixtures";

const dirs: string[] = [];
function dir(family: HfFamily, opts?: HfTokenizerDirOptions): string {
  const d = writeHfTokenizerDir(family, opts);
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("packHfTokenizer", () => {
  it("Llama 3: EOS and the template's end-of-turn token stop; BOS starts prompts", () => {
    const p = packHfTokenizer(dir("llama3"));
    expect(p.eosTokenIds).toEqual([128001, 128009]); // <|end_of_text|>, <|eot_id|>
    expect(p).toMatchObject({ bosId: 128000, eosId: 128001, addBosToken: true, vocabSize: 128256 });
    const b = parseHfTokenizerBundle(p.bytes);
    expect(b.format).toBe("edgeinfer/hf-tokenizer");
    expect(b.chatTemplate).toContain("<|eot_id|>");
    expect(b.config.bos_token).toBe("<|begin_of_text|>");
    expect((b.tokenizer as { model: { type: string } }).model.type).toBe("BPE");
    const tok = hfTokenizerFromBytes(p.bytes);
    expect(tok.stopIds).toEqual([128001, 128009]);
    expect(tok.encode("hi", { bos: true })[0]).toBe(128000);
  });

  it("Llama 3 with generation_config.json and config.json: the union, in their order", () => {
    const p = packHfTokenizer(
      dir("llama3", {
        generationConfig: { bos_token_id: 128000, eos_token_id: [128001, 128008, 128009] },
        config: { bos_token_id: 128000, eos_token_id: 128001, vocab_size: 128256 },
      }),
    );
    expect(p.eosTokenIds).toEqual([128001, 128008, 128009]);
    expect(p.vocabSize).toBe(128256);
  });

  it("Llama 3 base (no chat template): no end-of-turn stop and no template", () => {
    const p = packHfTokenizer(dir("llama3", { tokenizerConfig: { chat_template: undefined } }));
    expect(p.eosTokenIds).toEqual([128001]);
    expect(p.chatTemplate).toBeNull();
    // Without the template nothing says the model expects BOS: the tokenizer.json adds none.
    expect(p.addBosToken).toBe(false);
    expect(packHfTokenizer(dir("llama3", { tokenizerConfig: { chat_template: undefined, add_bos_token: true } })).addBosToken).toBe(true);
  });

  it("Qwen3: <|im_end|> and <|endoftext|> stop; no BOS is added; config.json's vocab size and BOS", () => {
    const bare = packHfTokenizer(dir("qwen"));
    expect(bare.eosTokenIds).toEqual([151645, 151643]);
    expect(bare).toMatchObject({ bosId: null, addBosToken: false, vocabSize: 151669 });
    const full = packHfTokenizer(
      dir("qwen", {
        config: { bos_token_id: 151643, eos_token_id: 151645, vocab_size: 151936 },
        generationConfig: { bos_token_id: 151643, eos_token_id: [151645, 151643], pad_token_id: 151643 },
      }),
    );
    expect(full.eosTokenIds).toEqual([151645, 151643]);
    expect(full).toMatchObject({ bosId: 151643, addBosToken: false, vocabSize: 151936 });
    const tok = hfTokenizerFromBytes(full.bytes);
    expect(tok.bosId).toBe(151643);
    expect(tok.encode("hi", { bos: true })).toEqual(tok.encode("hi", { bos: false }));
    // An id of the embedding's padding rows decodes to nothing.
    expect(tok.decode([151900])).toBe("");
  });

  it("Llama 2 family (SentencePiece BPE): </s> stops, <s> starts prompts, no template", () => {
    const p = packHfTokenizer(dir("llama2"));
    expect(p).toMatchObject({ eosTokenIds: [2], bosId: 1, eosId: 2, addBosToken: true, vocabSize: 32000, chatTemplate: null });
    // add_bos_token false in tokenizer_config.json wins over the post-processor.
    expect(packHfTokenizer(dir("llama2", { tokenizerConfig: { add_bos_token: false } })).addBosToken).toBe(false);
  });

  it("TinyLlama / Llama 2 (real vocabulary): the same decisions", () => {
    const p = packHfTokenizer(dir("tinyllama", { config: { bos_token_id: 1, eos_token_id: 2, vocab_size: 32000 } }));
    expect(p).toMatchObject({ eosTokenIds: [2], bosId: 1, eosId: 2, addBosToken: true, vocabSize: 32000, chatTemplate: null });
  });

  it("GPT-2: <|endoftext|> is BOS and EOS; prompts get no BOS", () => {
    const p = packHfTokenizer(dir("gpt2"));
    expect(p).toMatchObject({ eosTokenIds: [50256], bosId: 50256, eosId: 50256, addBosToken: false, vocabSize: 50257 });
  });

  it("takes the chat template from chat_template.jinja, or the 'default' of a template list", () => {
    const d = dir("qwen");
    writeFileSync(join(d, "chat_template.jinja"), "{% for m in messages %}<|im_start|>{{ m.content }}<|im_end|>{% endfor %}");
    expect(packHfTokenizer(d).chatTemplate).toBe("{% for m in messages %}<|im_start|>{{ m.content }}<|im_end|>{% endfor %}");

    const { tokenizer, tokenizerConfig } = familyTokenizerObjects("llama2");
    const list = [
      { name: "tool_use", template: "TOOLS" },
      { name: "default", template: "{{ bos_token }}<|im_end|>" },
    ];
    const p = packHfTokenizerFromObjects({ tokenizer, tokenizerConfig: { ...tokenizerConfig, chat_template: list } });
    expect(p.chatTemplate).toBe("{{ bos_token }}<|im_end|>");
    // <|im_end|> is not a token of this vocabulary, so it is no stop token here.
    expect(p.eosTokenIds).toEqual([2]);
  });

  it("reads eos_token / bos_token written as AddedToken objects", () => {
    const { tokenizer, tokenizerConfig } = familyTokenizerObjects("llama2");
    const p = packHfTokenizerFromObjects({
      tokenizer,
      tokenizerConfig: { ...tokenizerConfig, eos_token: { __type: "AddedToken", content: "</s>" }, bos_token: { content: "<s>" } },
    });
    expect(p).toMatchObject({ eosTokenIds: [2], bosId: 1 });
    expect(hfTokenizerFromBytes(p.bytes)).toMatchObject({ bosToken: "<s>", eosToken: "</s>" });
  });

  it("fails with a clear message for files that do not fit together", () => {
    expect(() => packHfTokenizer(join(dir("gpt2"), "nothing-here"))).toThrow(/has no tokenizer.json/);
    const d = dir("gpt2");
    writeFileSync(join(d, "config.json"), "{ not json");
    expect(() => packHfTokenizer(d)).toThrow(/config.json is not valid JSON/);
    const { tokenizer, tokenizerConfig } = familyTokenizerObjects("gpt2");
    const pack = (more: object) => () => packHfTokenizerFromObjects({ tokenizer, tokenizerConfig, ...more });
    expect(pack({ config: { eos_token_id: 60000 } })).toThrow(/config.json eos_token_id is 60000, which tokenizer.json does not have/);
    expect(pack({ generationConfig: { eos_token_id: "x" } })).toThrow(/not a token id/);
    expect(pack({ config: { vocab_size: 50000 } })).toThrow(/vocab_size 50000 is smaller than the tokenizer's 50257/);
    expect(pack({ tokenizerConfig: { eos_token: "<nope>" } })).toThrow(/eos_token "<nope>" is not a token/);
    // What the Worker could not load fails the build.
    const parts = { normalizer: null, pre_tokenizer: null, post_processor: null, added_tokens: [], model: { type: "BPE", vocab: { a: 0 }, merges: [] } };
    expect(() => packHfTokenizerFromObjects({ tokenizer: { ...parts, decoder: { type: "Nope" } } })).toThrow(/cannot be loaded.*Nope/);
    expect(() => packHfTokenizerFromObjects({ tokenizer: { model: { type: "BPE", vocab: {}, merges: [] }, added_tokens: [] } })).toThrow(
      /cannot be loaded.*"decoder"/,
    );
  });
});
