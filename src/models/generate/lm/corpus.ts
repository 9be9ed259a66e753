/**
 * The fixed text the generated LMs' byte-level BPE merges are learned from.
 * Changing one character here changes every generated LM's tokenizer, so
 * its bytes and CID: bump GENERATOR_VERSION and re-pin models.json.
 */
export const BPE_CORPUS = `
The quick brown fox jumps over the lazy dog. A worker node runs one model on each GPU it finds, and it
shares the weights of that model with its peers as content-addressed blocks. When a client asks for an
embedding or for the next words of a text, the job is offered to the workers that serve the model, and
the one that can finish it first takes it. If the worker leaves the swarm, the job is offered again.

Language models read a text as a sequence of tokens. The tokenizer turns the text into bytes, splits
the bytes into words and spaces, and then merges the most frequent pairs of symbols into new symbols,
again and again, until the vocabulary is as large as it should be. Every byte has its own token, so any
text can be written, whatever its language: English, French, German, Chinese, Japanese, or emoji.

In the beginning the model knows nothing. Its weights are random numbers drawn from a seeded generator,
so the same seed gives the same numbers on every machine, the same files, and the same content identifier.
The model still computes real attention over real keys and values: a position can only look at the
positions before it, and a padded position is never looked at. The cache of keys and values grows by one
position for every new token, so the next step does not recompute what the previous steps already did.

She said that they would come back in the evening, after the rain had stopped and the roads were dry.
He thought it was a good idea, but he wasn't sure the others would agree. "We'll see," she answered,
"it's not the first time we've changed our plans, and I'm sure it won't be the last." They laughed.
There were three of them at the table: the teacher, the student, and the old man who owned the house.
Nobody knew how long they had been talking, only that the candles were shorter than they had been.

The system was designed to be simple. Each part does one thing, and does it well; each part can be
tested alone, with the others replaced by small stand-ins. Errors carry a stable code and a message that
says what to do next. Nothing is retried silently, and nothing fails without saying why it failed.

function generate(model, prompt, maxTokens) {
  const ids = tokenizer.encode(prompt);
  for (let step = 0; step < maxTokens; step++) {
    const logits = model.forward(ids);
    const next = argmax(logits[logits.length - 1]);
    if (next === eosTokenId) break;
    ids.push(next);
  }
  return tokenizer.decode(ids);
}

def attention(query, key, value, mask):
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))
    scores = scores.masked_fill(mask == 0, float("-inf"))
    return torch.softmax(scores, dim=-1) @ value

Numbers: 0 1 2 3 4 5 6 7 8 9 10 12 16 32 64 128 256 512 1024 2048 4096 8192 16384 32768 65536.
Dates and times: 2024-01-01, 12:30, 3.14159, 2.71828, 1e-6, 100%, $42.00, #7, @home, a+b=c, x*y, (a, b).

Le renard brun saute par-dessus le chien paresseux. Où est la bibliothèque ? Ça va très bien, merci.
Der schnelle braune Fuchs springt über den faulen Hund. Grüße aus München, schöne Straße.
敏捷的棕色狐狸跳过了懒狗。你好，世界！今天天气很好。
素早い茶色の狐がのろまな犬を飛び越える。こんにちは、世界。
Быстрая коричневая лиса перепрыгивает через ленивую собаку. Привет, мир!
🙂 🚀 ✨ 👍 ❤️ 🎉

The more a pair of symbols appears, the sooner it is merged: first the common letters and the spaces in
front of words, then short words such as the, and, of, to, in, is, that, it, for, with, as, was, on,
then longer words, and at last whole phrases that appear many times. A small corpus gives few merges;
the rest of the vocabulary is filled by a fixed rule, so that the model and the tokenizer always have
the same number of tokens, and every token that the model may write can be decoded back into bytes.
`
