"""`rnngen ngram`: the Kneser-Ney baseline on its own (and KenLM's sentence mode)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer

from rnngen import metrics
from rnngen.cli import command
from rnngen.cli import corpus_args as args
from rnngen.cli.console import Reporter
from rnngen.errors import RnngenError


@command()
def ngram(
    train: Path = typer.Argument(..., help="Training text."),
    test: Path = typer.Option(..., "--test", help="Text to compute perplexity on."),
    order: int = typer.Option(5, "--order", help="n-gram order, 1 to 9."),
    words: bool = typer.Option(
        False, "--words", help="KenLM's sentence mode: whitespace words, <s> ... </s> per line."
    ),
    kind: str = args.Kind,
    vocab_size: int | None = args.VocabSize,
    arpa: Path = typer.Option(None, "--arpa", help="Also write the model in ARPA format."),
    ngram_memory: str = args.NgramMemory,
    quiet: bool = args.Quiet,
    json_output: bool = args.Json,
) -> None:
    """Build an interpolated modified Kneser-Ney n-gram on TRAIN and report perplexity on TEST.

    Without --words, the tokens are those of a tokenizer trained on TRAIN (--kind,
    --vocab-size, as in tokenize), the context crosses line ends, and there are no OOVs.
    With --words, it computes what KenLM's lmplz and query do, to their numbers.
    """
    from rnngen.ngram import MAX_ORDER
    from rnngen.ngram.budget import describe_memory, format_size
    from rnngen.textio import check_input, make_dir

    if not 1 <= order <= MAX_ORDER:
        raise RnngenError(f"--order must be between 1 and {MAX_ORDER}, got {order}")
    check_input(train, "training file")
    check_input(test, "test file")
    if arpa is not None:
        if os.path.isdir(arpa) or arpa.name in ("", ".", ".."):
            raise RnngenError(f"--arpa {str(arpa)!r} is a directory; give a file name")
        make_dir(arpa.parent, "--arpa directory")
    memory = args.ngram_memory(ngram_memory)
    reporter = Reporter(quiet)
    reporter.log(f"n-gram memory {describe_memory(memory)}")
    report = (_words if words else _tokens)(train, test, order, kind, vocab_size, arpa, memory)
    if report["spilled_bytes"]:
        reporter.log(f"the build spilled {format_size(report['spilled_bytes'])} to disk")
    for stats_order in report.pop("fallback_orders"):
        reporter.warn(
            f"order {stats_order}: too little data to estimate discounts; used (0.5, 1, 1.5)"
        )
    if arpa:
        reporter.log(f"wrote {arpa}")
    if json_output:
        from rnngen.cli.output import print_json

        print_json(report)
        return
    _print(report)


def _words(train: Path, test: Path, order: int, kind, vocab_size, arpa, memory) -> dict:
    from rnngen.checkpoint_data import ngram_work_dir
    from rnngen.ngram.kenlm import fit_sentences, score_sentences, write_arpa
    from rnngen.textio import open_lines

    started = time.perf_counter()
    model, words = fit_sentences(
        open_lines(train, "training file"), order, memory=memory, scratch_dir=ngram_work_dir()
    )
    build_seconds = time.perf_counter() - started
    result = score_sentences(model, words, open_lines(test, "test file"))
    if arpa:
        write_arpa(model, arpa, words)
    return {
        "mode": "words",
        **_stats(model, build_seconds),
        "tokens": result.tokens,
        "oovs": result.oovs,
        "ppl_including_oov": result.ppl_including_oov,
        "ppl_excluding_oov": result.ppl_excluding_oov,
        "logprob_nats": result.total_logprob_nats,
    }


def _tokens(train: Path, test: Path, order: int, kind, vocab_size, arpa, memory) -> dict:
    from rnngen.checkpoint_data import ngram_work_dir, with_context
    from rnngen.data import encode_to_file
    from rnngen.ngram import KneserNey
    from rnngen.ngram.budget import check_memory
    from rnngen.ngram.kenlm import write_arpa
    from rnngen.textio import Span, is_stream, iter_text, read_text, sample_chars, sample_text
    from rnngen.tokenizer import train_tokenizer

    config = args.tokenizer_config(kind, vocab_size)
    if is_stream(train):  # read once: a pipe's text is held, then encoded a piece at a time
        text = read_text(train, "training file")
        sample = sample_text(text, config.sample_bytes)
        pieces = _pieces(text)
    else:  # a file is read twice (sample, then encode), never held whole
        span = Span(train, 0, train.stat().st_size)
        sample = sample_chars(span, config.sample_bytes)
        pieces = (text for text, _ in iter_text(span))
    tokenizer = train_tokenizer(sample, config)
    del sample
    if memory is not None:
        check_memory(memory, tokenizer.vocab_size)
    work = ngram_work_dir()
    train_ids = encode_to_file(pieces, tokenizer, work, "rnngen-ngram-ids.bin")
    test_text = read_text(test, "test file")
    started = time.perf_counter()
    model = KneserNey.fit(train_ids, order, tokenizer.vocab_size, memory=memory, scratch_dir=work)
    build_seconds = time.perf_counter() - started
    del train_ids
    logp = model.logprobs(with_context(tokenizer, tokenizer.encode_array(test_text)))
    if arpa:
        write_arpa(
            model,
            arpa,
            [_arpa_name(tokenizer.sp.id_to_piece(i)) for i in range(tokenizer.vocab_size)],
        )
    ppl = metrics.perplexity(-logp.mean()) if len(logp) else float("nan")
    return {
        "mode": "tokens",
        "tokenizer": {"kind": tokenizer.kind, "vocab_size": tokenizer.vocab_size},
        **_stats(model, build_seconds),
        "tokens": len(logp),
        "oovs": 0,
        "ppl_including_oov": ppl,
        "ppl_excluding_oov": ppl,
        "logprob_nats": float(logp.sum()),
        "bits_per_char": float(metrics.bits(-logp.sum(), len(test_text))),
    }


def _pieces(text: str, size: int = 1 << 22):
    """A held text in pieces of about `size` characters, each ending at a line end."""
    start = 0
    while start < len(text):
        end = text.find("\n", start + size) + 1 or len(text)
        yield text[start:end]
        start = end


def _arpa_name(piece: str) -> str:
    """ARPA words cannot hold whitespace: write such characters as <U+XXXX>."""
    return "".join(f"<U+{ord(c):04X}>" if c.isspace() else c for c in piece)


def _stats(model, build_seconds: float) -> dict:
    stats = model.stats
    return {
        "order": stats.order,
        "vocab_size": stats.vocab_size,
        "train_tokens": stats.train_tokens,
        "ngram_counts": stats.ngram_counts,
        "discounts": {
            k: dict(zip(("D1", "D2", "D3+"), v, strict=True)) for k, v in stats.discounts.items()
        },
        "fallback_orders": stats.fallback_orders,
        "build_seconds": round(build_seconds, 3),
        "memory_budget": stats.memory_budget,
        "spilled_bytes": stats.spilled_bytes,
    }


def _print(report: dict) -> None:
    from rnngen.cli.output import print_table

    rows = [
        ["tokens", report["tokens"]],
        ["OOVs", report["oovs"]],
        ["perplexity (incl. OOVs)", report["ppl_including_oov"]],
        ["perplexity (excl. OOVs)", report["ppl_excluding_oov"]],
    ]
    if "bits_per_char" in report:
        rows.append(["bits per character", report["bits_per_char"]])
    rows += [["build seconds", report["build_seconds"]]]
    rows += [[f"{k}-grams", n] for k, n in report["ngram_counts"].items()]
    for k, d in report["discounts"].items():
        rows.append([f"discounts order {k}", ", ".join(f"{n} {v:.4f}" for n, v in d.items())])
    print_table(
        f"Kneser-Ney {report['order']}-gram ({report['mode']})", ["", "value"], rows, numeric={1}
    )
