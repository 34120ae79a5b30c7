// A rendered chat as the tokenizer gets it: the text, and which parts of it came from the
// messages. Special tokens may come only from the rest, the chat template's own markup
// (chat-template.ts finds the parts, HfTokenizer.encodeChat honours them).

export interface ChatPrompt {
  /** The prompt text, exactly as the chat template writes it. */
  text: string;
  /**
   * [start, end) in `text` (UTF-16 offsets, ascending, disjoint) of every piece the template took
   * from the messages: content, names, tool call ids, names and arguments, and strings in the
   * extra variables. Empty when the output could not be lined up with the messages.
   */
  messageSpans: Array<[number, number]>;
  /**
   * Strings from the messages that `messageSpans` does not cover: all of them when the output
   * could not be lined up, otherwise only keys and values the template needed as they are
   * (identifiers). A tokenizer refuses the prompt if one of these spells a special token.
   */
  unplaced: Array<{ where: string; text: string }>;
}

/**
 * Message text that would become a special token and cannot be kept from it (see
 * ChatPrompt.unplaced). `where` names the field ("messages[1].content").
 */
export class ChatContentError extends Error {
  constructor(
    message: string,
    readonly where: string,
  ) {
    super(message);
  }
}
