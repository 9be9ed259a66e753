/**
 * The tokenizer files of a generated LM: a byte-level BPE `tokenizer.json`
 * in Qwen2's form (Split by Qwen2's pattern, then ByteLevel; ByteLevel
 * decoder) and a `tokenizer_config.json` with a ChatML chat template.
 *
 * Unlike Qwen2 there is no NFC normaliser, so every UTF-8 text decodes back
 * to exactly itself (NFC would fold decomposed accents).
 */
import type { ByteLevelVocab } from './bpe.ts'
import { QWEN2_SPLIT_PATTERN } from './bpe.ts'
import { LM_SPECIAL_TOKENS, lmSpecialIds } from './config.ts'

/** ChatML, as Qwen2 writes it (without a default system message). */
export const CHAT_TEMPLATE =
  "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"

const BYTE_LEVEL = Object.freeze({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false })

/** `vocabSize` = BPE tokens + the three special tokens. */
export function lmTokenizerJson (vocab: ByteLevelVocab, vocabSize: number): Record<string, unknown> {
  if (vocab.tokens.length + LM_SPECIAL_TOKENS.length !== vocabSize) {
    throw new RangeError(`a vocabulary of ${vocabSize} needs ${vocabSize - LM_SPECIAL_TOKENS.length} BPE tokens, got ${vocab.tokens.length}`)
  }
  const ids: Record<string, number> = {}
  vocab.tokens.forEach((t, i) => { ids[t] = i })
  const first = lmSpecialIds(vocabSize).endOfText
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: LM_SPECIAL_TOKENS.map((content, i) => ({
      id: first + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true
    })),
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: QWEN2_SPLIT_PATTERN }, behavior: 'Isolated', invert: false },
        BYTE_LEVEL
      ]
    },
    post_processor: BYTE_LEVEL,
    decoder: BYTE_LEVEL,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: ids,
      merges: vocab.merges.map(([a, b]) => [a, b])
    }
  }
}

/** The Hugging Face `tokenizer_config.json` (Qwen2Tokenizer). */
export function lmTokenizerConfigJson (vocabSize: number, modelMaxLength: number): Record<string, unknown> {
  const first = lmSpecialIds(vocabSize).endOfText
  const decoder: Record<string, unknown> = {}
  LM_SPECIAL_TOKENS.forEach((content, i) => {
    decoder[String(first + i)] = { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true }
  })
  return {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: decoder,
    additional_special_tokens: ['<|im_start|>', '<|im_end|>'],
    bos_token: null,
    chat_template: CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: '<|im_end|>',
    errors: 'replace',
    model_max_length: modelMaxLength,
    pad_token: '<|endoftext|>',
    split_special_tokens: false,
    tokenizer_class: 'Qwen2Tokenizer',
    unk_token: null
  }
}

/** The Hugging Face `special_tokens_map.json`. */
export function lmSpecialTokensMapJson (): Record<string, unknown> {
  return { additional_special_tokens: ['<|im_start|>', '<|im_end|>'], eos_token: '<|im_end|>', pad_token: '<|endoftext|>' }
}
