"""Text in, ids out: reading a corpus, its tokenizer, the tokenized store and where it came from.

No torch anywhere in here: `rnngen tokenize` never imports it.

    textio.py      reading text: checked files, byte spans and their chunks, sha256; and the
                   output-file helpers the engines share
    stdin.py       stdin and the other inputs read once (FIFOs, `<(...)`): lines as they come,
                   a corpus on stdin spooled to a file
    splits.py      where a corpus is cut: the held-out splits at line ends, spread samples
    alphabet.py    which characters a subword vocabulary keeps as pieces of their own
    tokenizer.py   Tokenizer: SentencePiece BPE/unigram or characters (the one sentencepiece user)
    store.py       TokenizedCorpus on disk (tokenize_corpus, load_tokenized), batchify
    workdir.py     a tokenized directory written whole or not at all; killed runs' work removed
    cache.py       the token cache: tokenized directories kept by corpus content and settings
    provenance.py  Provenance: the files, spans and tokenizer a checkpoint was trained on
"""

from rnngen.faces import lazy_names

# name -> the module of this package that defines it, imported on first use (rnngen.faces).
_FACE = {
    "Span": "textio",
    "iter_lines": "stdin",
    "read_text": "textio",
    "file_sha256": "textio",
    "split_tail": "splits",
    "resolve_spans": "splits",
    "Tokenizer": "tokenizer",
    "train_tokenizer": "tokenizer",
    "load_tokenizer": "tokenizer",
    "plan_alphabet": "alphabet",
    "TokenizedCorpus": "store",
    "tokenize_corpus": "store",
    "load_tokenized": "store",
    "cached_tokenize": "cache",
    "Provenance": "provenance",
    "checkpoint_provenance": "provenance",
}
__all__ = sorted(_FACE)

__getattr__ = lazy_names(__name__, _FACE)
