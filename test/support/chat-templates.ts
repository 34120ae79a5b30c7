// Chat templates written for the tests, for formats no template that installs from npm shows.

/**
 * A chat template in the manner of Llama 3.1's (written for this test): tools listed in the
 * first user turn with an instruction to answer with {"name", "parameters"}, results as the
 * ipython role, earlier calls written back as that JSON.
 */
export const LLAMA31_STYLE_TEMPLATE = [
  "{{- bos_token }}",
  "{%- for message in messages %}",
  "{%- if message.role == 'tool' %}{{- '<|start_header_id|>ipython<|end_header_id|>\\n\\n' + message.content + '<|eot_id|>' }}",
  "{%- elif message.tool_calls %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}",
  "{%- for call in message.tool_calls %}{{- '{\"name\": \"' + call.function.name + '\", \"parameters\": ' + (call.function.arguments | tojson) + '}' }}{%- endfor %}{{- '<|eot_id|>' }}",
  "{%- else %}{{- '<|start_header_id|>' + message.role + '<|end_header_id|>\\n\\n' }}",
  "{%- if loop.first and tools %}{{- 'Answer with a JSON object {\"name\": function name, \"parameters\": its arguments} to call one of:\\n' }}{%- for t in tools %}{{- t | tojson + '\\n' }}{%- endfor %}{%- endif %}",
  "{{- message.content + '<|eot_id|>' }}",
  "{%- endif %}",
  "{%- endfor %}",
  "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}",
].join("");
