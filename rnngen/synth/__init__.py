"""The built-in corpus: English-like text whose exact probability is known (stdlib only).

Self-contained: nothing here imports torch, sentencepiece or the rest of rnngen except
`rnngen.errors` and the stdlib-only writers (`rnngen.atomic`, `rnngen.corpus.textio`).

    generator.py  generate_lines / generate_corpus, analyse_line, oracle, looks_generated
    grammar.py    the rules of a passage, written once against a chooser
    choice.py     the choosers: a sampler, and a replayer that recovers a line's probability
    tables.py     the decisions the rules take, with their probabilities
    lexicon.py    the words, as plain data
    agreement.py  subject-verb agreement accuracy by distance (numpy; imported on first use)
"""

from rnngen.synth.generator import (
    BUCKET_LABELS,
    DEFAULT_CHARS,
    DEFAULT_SEED,
    AgreementItem,
    CorpusSummary,
    LineAnalysis,
    OracleResult,
    analyse_line,
    bucket_of,
    generate_corpus,
    generate_lines,
    looks_generated,
    oracle,
)

_AGREEMENT = ("AgreementResult", "agreement_accuracy", "agreement_probes")

__all__ = [
    "BUCKET_LABELS", "DEFAULT_CHARS", "DEFAULT_SEED", "AgreementItem", "CorpusSummary",
    "LineAnalysis", "OracleResult", "analyse_line", "bucket_of", "generate_corpus",
    "generate_lines", "looks_generated", "oracle", *_AGREEMENT,
]  # fmt: skip


def __getattr__(name: str):
    """Agreement needs numpy; the generator alone needs only the standard library."""
    if name in _AGREEMENT:
        from rnngen.synth import agreement

        return getattr(agreement, name)
    raise AttributeError(f"module 'rnngen.synth' has no attribute {name!r}")
