// Chat templates: the real Llama 3 and Qwen3 templates rendered with @huggingface/jinja, then
// tokenized as the runtime does it (special tokens written by the template become their ids).
import { beforeAll, describe, expect, it } from "vitest";
import { ChatMessageError, ChatTemplateError, renderChat } from "../../functions/runtime/chat-template";
import { hfTokenizerFromBytes, type HfTokenizer } from "../../functions/runtime/tokenizer/hf";
import { packHfTokenizerFromObjects } from "../../scripts/sources/hf-tokenizer";
import { familyTokenizerObjects, lenmlTokenizerFiles, readJson } from "../support/hf-fixtures";

const llama3Config = readJson(lenmlTokenizerFiles("llama3").tokenizerConfig);
const qwenConfig = readJson(lenmlTokenizerFiles("qwen").tokenizerConfig);
const llama3Template = llama3Config.chat_template as string;
const qwenTemplate = qwenConfig.chat_template as string;

const conversation = [
  { role: "system", content: "You are terse." },
  { role: "user", content: "hi" },
];

describe("renderChat with Llama 3's template", () => {
  const opts = { bosToken: llama3Config.bos_token as string, eosToken: llama3Config.eos_token as string, addGenerationPrompt: true };

  it("writes BOS, one header per message, and the assistant header", () => {
    const text = renderChat(llama3Template, conversation, opts);
    expect(text).toBe(
      "<|begin_of_text|>" +
        "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>" +
        "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>" +
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    );
    expect(text).toContain("<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>");
    expect(text.endsWith("<|start_header_id|>assistant<|end_header_id|>\n\n")).toBe(true);
  });

  it("trims message content, as the template says", () => {
    const text = renderChat(llama3Template, [{ role: "user", content: "  hi \n" }], opts);
    expect(text).toContain("<|end_header_id|>\n\nhi<|eot_id|>");
  });

  it("joins text parts and renders an assistant turn", () => {
    const text = renderChat(
      llama3Template,
      [
        { role: "user", content: [{ type: "text", text: "one" }, { type: "text", text: "two" }] },
        { role: "assistant", content: "ok" },
        { role: "user", content: "three" },
      ],
      opts,
    );
    expect(text).toContain("<|start_header_id|>user<|end_header_id|>\n\none\ntwo<|eot_id|>");
    expect(text).toContain("<|start_header_id|>assistant<|end_header_id|>\n\nok<|eot_id|>");
  });

  it("takes bos_token as an AddedToken object too", () => {
    const text = renderChat(llama3Template, conversation, { ...opts, bosToken: { content: "<|begin_of_text|>" } });
    expect(text.startsWith("<|begin_of_text|><|start_header_id|>system")).toBe(true);
  });
});

describe("renderChat with Qwen3's template", () => {
  it("writes ChatML turns and opens the assistant turn with the generation prompt", () => {
    const text = renderChat(qwenTemplate, conversation, { addGenerationPrompt: true });
    expect(text).toBe("<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  });

  it("leaves the assistant turn closed without the generation prompt", () => {
    const text = renderChat(qwenTemplate, conversation, { addGenerationPrompt: false });
    expect(text).toBe("<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n");
  });

  it("passes template variables through (enable_thinking)", () => {
    const text = renderChat(qwenTemplate, conversation, { addGenerationPrompt: true, variables: { enable_thinking: false } });
    expect(text.endsWith("<|im_start|>assistant\n<think>\n\n</think>\n\n")).toBe(true);
  });

  it("moves an earlier assistant turn's reasoning out, as the template defines", () => {
    const text = renderChat(
      qwenTemplate,
      [
        { role: "user", content: "a" },
        { role: "assistant", content: "<think>\nhmm\n</think>\n\nanswer" },
        { role: "user", content: "b" },
      ],
      { addGenerationPrompt: true },
    );
    expect(text).toContain("<|im_start|>assistant\nanswer<|im_end|>\n");
    expect(text).not.toContain("hmm");
  });
});

describe("rendered chats tokenize with their special tokens", () => {
  let llama3: HfTokenizer;
  let qwen: HfTokenizer;
  beforeAll(() => {
    llama3 = hfTokenizerFromBytes(packHfTokenizerFromObjects(familyTokenizerObjects("llama3")).bytes);
    qwen = hfTokenizerFromBytes(packHfTokenizerFromObjects(familyTokenizerObjects("qwen")).bytes);
  }, 120_000);

  it("Llama 3: one BOS, headers and end-of-turn as single ids", () => {
    const text = renderChat(llama3.chatTemplate!, conversation, {
      bosToken: llama3.bosToken,
      eosToken: llama3.eosToken,
      addGenerationPrompt: true,
    });
    const ids = llama3.encode(text, { bos: false });
    expect(ids[0]).toBe(128000);
    expect(ids.filter((id) => id === 128000)).toHaveLength(1);
    expect(ids.filter((id) => id === 128009)).toHaveLength(2); // <|eot_id|>, also a stop token
    expect(ids.filter((id) => id === 128006)).toHaveLength(3); // <|start_header_id|>
    expect(ids.slice(-4)).toEqual([128006, llama3.idOf("assistant"), 128007, llama3.idOf("ĊĊ")]);
    expect(llama3.stopIds).toContain(128009);
  });

  it("Qwen3: <|im_start|> and <|im_end|> as single ids", () => {
    const text = renderChat(qwen.chatTemplate!, conversation, { addGenerationPrompt: true });
    const ids = qwen.encode(text, { bos: false });
    expect(ids.slice(0, 3)).toEqual([151644, qwen.idOf("system"), qwen.idOf("Ċ")]);
    expect(ids.filter((id) => id === 151645)).toHaveLength(2);
    expect(ids.slice(-3)).toEqual([151644, qwen.idOf("assistant"), qwen.idOf("Ċ")]);
    expect(qwen.stopIds).toContain(151645);
  });
});

describe("renderChat failures", () => {
  it("a template's raise_exception becomes a ChatTemplateError with its message", () => {
    const template =
      "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
      "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}" +
      "{% endif %}{{ m['content'] }}{% endfor %}";
    expect(renderChat(template, [{ role: "user", content: "a" }], { addGenerationPrompt: false })).toBe("a");
    let error: unknown;
    try {
      renderChat(template, [{ role: "user", content: "a" }, { role: "user", content: "b" }], { addGenerationPrompt: false });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ChatTemplateError);
    expect((error as ChatTemplateError).message).toBe("Conversation roles must alternate user/assistant/user/assistant/...");
    expect((error as ChatTemplateError).fromTemplate).toBe(true);
  });

  it("a template that cannot be parsed or evaluated is a ChatTemplateError not from the template", () => {
    for (const template of ["{% for %}", "{{ messages[0].content.nosuchmethod() }}"]) {
      let error: unknown;
      try {
        renderChat(template, conversation, { addGenerationPrompt: true });
      } catch (e) {
        error = e;
      }
      expect(error, template).toBeInstanceOf(ChatTemplateError);
      expect((error as ChatTemplateError).fromTemplate).toBe(false);
      expect((error as Error).message).toMatch(/chat template/);
    }
  });

  it.each([
    ["not a list", "hi", /non-empty array/],
    ["empty", [], /non-empty array/],
    ["a message that is not an object", ["hi"], /messages\[0\] must be an object/],
    ["an unknown role", [{ role: "bot", content: "hi" }], /messages\[0\]\.role must be one of/],
    ["no role", [{ content: "hi" }], /role must be one of/],
    ["content a number", [{ role: "user", content: 3 }], /content must be a string or a list of text parts/],
    ["no content", [{ role: "user" }], /content must be a string/],
    ["an image part", [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }], /content\[0\] must be a text part.*"image_url"/],
    ["a text part without text", [{ role: "user", content: [{ type: "text" }] }], /content\[0\] must be a text part/],
    ["a name that is not a string", [{ role: "user", content: "hi", name: 5 }], /name must be a string/],
  ])("rejects messages with %s", (_what, messages, message) => {
    expect(() => renderChat(qwenTemplate, messages, { addGenerationPrompt: true })).toThrow(ChatMessageError);
    expect(() => renderChat(qwenTemplate, messages, { addGenerationPrompt: true })).toThrow(message);
  });

  it("accepts an assistant message with tool calls and no content", () => {
    const text = renderChat(
      qwenTemplate,
      [
        { role: "user", content: "weather?" },
        { role: "assistant", content: null, tool_calls: [{ type: "function", function: { name: "get_weather", arguments: { city: "Paris" } } }] },
        { role: "tool", content: "sunny" },
      ],
      { addGenerationPrompt: true },
    );
    expect(text).toContain('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>');
    expect(text).toContain("<tool_response>\nsunny\n</tool_response>");
  });
});
