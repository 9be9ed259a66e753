/**
 * A deterministic WordPiece vocabulary and the tokenizer files of a generated
 * model. Every ASCII letter, digit and punctuation mark is in the vocabulary
 * (as a word start and, for letters and digits, as a `##` continuation), so
 * any English text tokenizes without [UNK]; common words, suffixes and letter
 * n-grams (most frequent letters first) fill the rest.
 */

export const SPECIAL_TOKENS = Object.freeze({ pad: '[PAD]', unk: '[UNK]', cls: '[CLS]', sep: '[SEP]', mask: '[MASK]' })
/** Ids of the special tokens: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4. */
export const SPECIAL_IDS = Object.freeze({ pad: 0, unk: 1, cls: 2, sep: 3, mask: 4 })

const LETTERS = 'etaoinshrdlcumwfgypbvkjxqz' // by English frequency
const DIGITS = '0123456789'
const PUNCTUATION = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'

const SUFFIXES = [
  's', 'es', 'ed', 'ing', 'ly', 'er', 'ers', 'est', 'tion', 'tions', 'sion', 'ment', 'ments', 'ness', 'able', 'ible',
  'al', 'ial', 'ic', 'ical', 'ity', 'ive', 'ous', 'ful', 'less', 'ize', 'ized', 'ise', 'en', 'an', 'ian', 'ist', 'ism',
  'y', 'ies', 'ied', 'ship', 'hood', 'ward', 'wise', 'ery', 'ary', 'ory', 'ure', 'age', 'ance', 'ence', 'ant', 'ent'
]

const WORDS = (
  'the of and to in is was that for it with as on be at by this had not are but from or have an they which one you ' +
  'were her all she there would their we him been has when who will more no if out so said what up its about into ' +
  'than them can only other new some could time these two may then do first any my now such like our over man me even ' +
  'most made after also did many before must through back years where much your way well down should because each ' +
  'just those people how too little state good very make world still own see men work long get here between both life ' +
  'being under never day same another know while last might us great old year off come since against go came right ' +
  'used take three states himself few house use during without again place american around however home small found ' +
  'thought went say part once general high upon school every does got united left number course war until always away ' +
  'something fact though water less public put think almost hand enough far took head yet government system better set ' +
  'told nothing night end why called didn eyes find going look asked later knew point next program city business give ' +
  'group toward young days let room president side social present given several order national possible rather second ' +
  'face per among form important often things looked early white case john become large big need four within felt ' +
  'along children saw best church ever least power development light thing seemed family interest want members mind ' +
  'country area others done turned although open god service certain kind problem began different door thus help sense ' +
  'means whole matter perhaps itself york times law human line above name example action company hands local show ' +
  'whether five history gave today either act feet across taken past quite anything seen having death experience body ' +
  'word half really field am car words already themselves information tell together college shall money period held ' +
  'keep sure free seems real behind cannot miss political air question making office brought whose special heard major ' +
  'problems ago became federal moment study available known result street economic boy position reason change south ' +
  'board individual job society areas west close turn love community true court force full model data network node ' +
  'text embedding vector search query answer language computer learning neural inference peer content file'
).split(' ')

function ngrams (n: number): string[] {
  const rank = new Map<string, number>([...LETTERS].map((c, i) => [c, i]))
  let grams = ['']
  for (let k = 0; k < n; k++) grams = grams.flatMap((g) => [...LETTERS].map((c) => g + c))
  // Frequent letters first; n-grams without a vowel after all those with one.
  const score = (g: string): number => [...g].reduce((s, c) => s + (rank.get(c) ?? 0), /[aeiouy]/.test(g) ? 0 : 1000)
  return grams.sort((a, b) => score(a) - score(b) || (a < b ? -1 : a > b ? 1 : 0))
}

/** The vocabulary, id = index. Throws if `size` is too small for the base set. */
export function buildVocab (size: number): string[] {
  const base = Object.keys(SPECIAL_TOKENS).length + LETTERS.length * 2 + DIGITS.length * 2 + PUNCTUATION.length
  if (!Number.isSafeInteger(size) || size < base) throw new RangeError(`a vocabulary needs at least ${base} tokens, asked for ${size}`)
  const vocab: string[] = []
  const seen = new Set<string>()
  const add = (t: string): void => {
    if (vocab.length < size && !seen.has(t)) { seen.add(t); vocab.push(t) }
  }
  for (const t of Object.values(SPECIAL_TOKENS)) add(t)
  for (const c of LETTERS + DIGITS + PUNCTUATION) add(c)
  for (const c of LETTERS + DIGITS) add(`##${c}`)
  for (const s of SUFFIXES) add(`##${s}`)
  for (const w of WORDS) add(w)
  for (const n of [2, 3, 4]) {
    for (const g of ngrams(n)) {
      add(g)
      add(`##${g}`)
      if (vocab.length >= size) return vocab
    }
  }
  if (vocab.length < size) throw new RangeError(`cannot build a vocabulary of ${size} tokens`)
  return vocab
}

/** The Hugging Face `tokenizer.json` (WordPiece, lowercasing BERT normaliser). */
export function tokenizerJson (vocab: readonly string[]): Record<string, unknown> {
  const ids: Record<string, number> = {}
  vocab.forEach((t, i) => { ids[t] = i })
  const special = (name: keyof typeof SPECIAL_TOKENS): { id: number, content: string } => ({ id: SPECIAL_IDS[name], content: SPECIAL_TOKENS[name] })
  const added = (['pad', 'unk', 'cls', 'sep', 'mask'] as const).map((n) => ({
    ...special(n), single_word: false, lstrip: false, rstrip: false, normalized: false, special: true
  }))
  const tok = (t: string, typeId: number): Record<string, unknown> => ({ SpecialToken: { id: t, type_id: typeId } })
  const seq = (s: string, typeId: number): Record<string, unknown> => ({ Sequence: { id: s, type_id: typeId } })
  const { cls, sep } = SPECIAL_TOKENS
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [tok(cls, 0), seq('A', 0), tok(sep, 0)],
      pair: [tok(cls, 0), seq('A', 0), tok(sep, 0), seq('B', 1), tok(sep, 1)],
      special_tokens: {
        [cls]: { id: cls, ids: [SPECIAL_IDS.cls], tokens: [cls] },
        [sep]: { id: sep, ids: [SPECIAL_IDS.sep], tokens: [sep] }
      }
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: SPECIAL_TOKENS.unk, continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: ids }
  }
}

/** The Hugging Face `tokenizer_config.json`. */
export function tokenizerConfigJson (modelMaxLength: number): Record<string, unknown> {
  return {
    tokenizer_class: 'BertTokenizer',
    do_lower_case: true,
    strip_accents: null,
    tokenize_chinese_chars: true,
    clean_up_tokenization_spaces: true,
    model_max_length: modelMaxLength,
    pad_token: SPECIAL_TOKENS.pad,
    unk_token: SPECIAL_TOKENS.unk,
    cls_token: SPECIAL_TOKENS.cls,
    sep_token: SPECIAL_TOKENS.sep,
    mask_token: SPECIAL_TOKENS.mask
  }
}

/** The Hugging Face `special_tokens_map.json`. */
export function specialTokensMapJson (): Record<string, string> {
  return {
    pad_token: SPECIAL_TOKENS.pad,
    unk_token: SPECIAL_TOKENS.unk,
    cls_token: SPECIAL_TOKENS.cls,
    sep_token: SPECIAL_TOKENS.sep,
    mask_token: SPECIAL_TOKENS.mask
  }
}
