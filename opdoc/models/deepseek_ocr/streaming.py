"""Reference text streamer of DeepSeek-OCR's infer(): prints generated text as it comes, end marker shown as a line break."""

from __future__ import annotations

from transformers import TextStreamer


class NoEOSTextStreamer(TextStreamer):
    """transformers' TextStreamer, except that the end-of-sequence token's text becomes a newline.

    infer() decodes with skip_special_tokens=False (the grounding tags are special tokens it wants to
    see), which would also print the end marker; this streamer swaps that marker for a line break
    before printing. String work on the host only: no tensor is touched here.
    """

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        marker = self.tokenizer.decode([self.tokenizer.eos_token_id], skip_special_tokens=False)
        print(text.replace(marker, "\n"), end="", flush=True)
