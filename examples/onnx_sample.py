#!/usr/bin/env python3
"""Greedy text from an `rnngen export --format onnx` directory, without PyTorch.

    pip install numpy onnxruntime sentencepiece
    python examples/onnx_sample.py EXPORT_DIR --prompt "ROMEO:" --length 200

prints the continuation of the prompt (not the prompt itself) that
`rnngen sample CHECKPOINT --temp 0 --prompt "ROMEO:" --no-echo --length 200 --precision fp32`
prints, character for character. It does what rnngen's sampler does:

1. The prompt starts a line: the context is the line-start token (model.json's
   `line_start_token`), then the prompt's tokens. The tokenizer is SentencePiece plus two
   rules of rnngen's (a literal U+2581 is spelled in byte pieces; a word model encodes line
   by line and spells an unknown word's own space mark as a space), mirrored in `encode`.
2. The context goes through window.onnx at once from a zero state; its last position gives
   the first token's distribution (with only step.onnx, step through the context instead).
3. Greedy: the likeliest token, fed to step.onnx with the state, --length times.
4. Byte pieces are bytes: text is decoded as UTF-8 incrementally, so a character spelled in
   several byte pieces prints once whole; bytes that cannot form a character print as
   U+FFFD, and an unfinished character at the end is dropped. The text ends its line.
"""

from __future__ import annotations

import argparse
import codecs
import json
import re
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import sentencepiece

SPACE_MARK = "\u2581"  # SentencePiece's space
BYTE_PIECE = re.compile(r"^<0x([0-9A-F]{2})>$")


class Tokenizer:
    def __init__(self, path: Path, kind: str):
        self.sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
        self.kind = kind
        self.mark_ids = [self.sp.piece_to_id(f"<0x{b:02X}>") for b in SPACE_MARK.encode()]
        self.space_id = self.sp.piece_to_id("<0x20>")
        self.newline_id = self.sp.piece_to_id("\n")
        self.piece_bytes = [self._bytes_of(i) for i in range(self.sp.vocab_size())]

    def _bytes_of(self, token: int) -> bytes:
        piece = self.sp.id_to_piece(token)
        match = BYTE_PIECE.match(piece)
        if match:
            return bytes([int(match.group(1), 16)])
        if self.sp.is_unknown(token) or self.sp.is_control(token):
            return b""
        return piece.replace(SPACE_MARK, " ").encode()

    def encode(self, text: str) -> list[int]:
        if self.kind != "word" and SPACE_MARK not in text:
            return self.sp.encode(text)
        lines = text.split("\n") if self.kind == "word" else [text]
        ids: list[int] = []
        for number, line in enumerate(lines):
            if number:
                ids.append(self.newline_id)
            for part_number, part in enumerate(line.split(SPACE_MARK)):
                if part_number:
                    ids += self.mark_ids  # a literal U+2581: its UTF-8 bytes
                part_ids = self.sp.encode(part)
                ids += self._unmark(part_ids) if self.kind == "word" else part_ids
        return ids

    def _unmark(self, ids: list[int]) -> list[int]:
        """A word model spells an unknown word's space mark in bytes: that is a space."""
        out, i = [], 0
        while i < len(ids):
            if ids[i : i + 3] == self.mark_ids:
                out.append(self.space_id)
                i += 3
            else:
                out.append(ids[i])
                i += 1
        return out


def session(path: Path) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def greedy(directory: Path, prompt: str, length: int) -> str:
    info = json.loads((directory / "model.json").read_text())
    files = info["files"]
    tokenizer = Tokenizer(directory / files["tokenizer"], info["tokenizer"]["kind"])
    context = (
        [info["line_start_token"], *tokenizer.encode(prompt)]
        if prompt
        else [info["line_start_token"]]
    )
    layers, parts, _, hidden = info["state"]["shape"]
    state = np.zeros((layers, parts, 1, hidden), dtype=np.float32)  # batch of one
    step = session(directory / files["step"])
    if "window" in files:
        tokens = np.asarray([context], dtype=np.int64)  # (1, T)
        logprobs, state = session(directory / files["window"]).run(
            None, {"tokens": tokens, "state": state}
        )
        logprobs = logprobs[:, -1]  # (1, V)
    else:
        for token in context:
            tokens = np.asarray([token], dtype=np.int64)
            logprobs, state = step.run(None, {"tokens": tokens, "state": state})
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    parts_out = []
    for number in range(length):
        token = int(np.argmax(logprobs[0]))
        parts_out.append(decoder.decode(tokenizer.piece_bytes[token]))
        if number + 1 < length:
            tokens = np.asarray([token], dtype=np.int64)
            logprobs, state = step.run(None, {"tokens": tokens, "state": state})
    return "".join(parts_out)  # an unfinished last character is dropped, as rnngen does


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="the directory rnngen export wrote")
    parser.add_argument("--prompt", default="", help="text to continue, read as a line start")
    parser.add_argument("--length", type=int, default=500, help="tokens to generate")
    args = parser.parse_args()
    if args.length < 1:
        parser.error("--length must be at least 1")
    text = greedy(args.directory, args.prompt, args.length)
    if text and not text.endswith("\n"):
        text += "\n"  # rnngen sample ends the sample's last line
    sys.stdout.buffer.write(text.encode())
    sys.stdout.flush()


if __name__ == "__main__":
    main()
