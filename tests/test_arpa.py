"""rnngen.ngram.arpa: the vectorized ARPA writer is byte-identical to the per-line one it replaced.

`reference_arpa` below is that per-line writer, kept here only as the reference: every number
is Python's f"{x:.6f}", every line is formatted on its own.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rnngen.ngram import KneserNey, arpa
from rnngen.ngram.arpa import format_fixed6
from rnngen.ngram.kenlm import fit_sentences, write_arpa

TINYSHAKESPEARE = Path(__file__).resolve().parents[2] / "shared/corpora/tinyshakespeare/train.txt"
HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def reference_arpa(model: KneserNey, names: list[str], extra: list[str] = ()) -> str:
    """The ARPA text as rnngen wrote it before the vectorized writer, one line at a time."""
    tables = [model.ngram_table(k) for k in range(1, model.order + 1)]
    order = len(tables)
    out = ["\\data\\\n"]
    for k, (_, last, _, _) in enumerate(tables, start=1):
        out.append(f"ngram {k}={last.size + (len(extra) if k == 1 else 0)}\n")
    prefix_texts = names
    for k, (prefix, last, lnp, lnbo) in enumerate(tables, start=1):
        out.append(f"\n\\{k}-grams:\n")
        if k == 1:
            texts = list(names[: last.size])
        else:
            texts = [
                f"{prefix_texts[p]} {names[w]}"
                for p, w in zip(prefix.tolist(), last.tolist(), strict=True)
            ]
        log10p = np.where(np.isfinite(lnp), lnp / math.log(10), -99.0).tolist()
        if k < order:
            log10bo = (lnbo / math.log(10)).tolist()
            has_bo = (lnbo != 0).tolist()
            for p, t, bo, b in zip(log10p, texts, log10bo, has_bo, strict=True):
                out.append(f"{p:.6f}\t{t}\t{bo:.6f}\n" if b else f"{p:.6f}\t{t}\n")
        else:
            out.extend(f"{p:.6f}\t{t}\n" for p, t in zip(log10p, texts, strict=True))
        if k == 1:
            out.extend(f"-99\t{marker}\n" for marker in extra)
        prefix_texts = texts
    out.append("\n\\end\\\n")
    return "".join(out)


def written(model: KneserNey, names, tmp_path: Path | None = None) -> str:
    """write_arpa's text: through a path (bytes) when tmp_path is given, else a StringIO."""
    if tmp_path is None:
        out = io.StringIO()
        write_arpa(model, out, names)
        return out.getvalue()
    write_arpa(model, tmp_path / "m.arpa", names)
    return (tmp_path / "m.arpa").read_bytes().decode("utf-8")


# --- numbers ---------------------------------------------------------------------------------


def assert_formats(values):
    x = np.asarray(values, dtype=np.float64)
    chars, lengths = format_fixed6(x)
    assert chars.shape[0] == lengths.shape[0] == x.size
    for row, length, v in zip(chars, lengths.tolist(), x.tolist(), strict=True):
        assert length == len(f"{v:.6f}")
        assert row.tobytes() == f"{v:.6f}".encode().rjust(row.size, b"\xff"), v


@HYPOTHESIS
@given(st.lists(st.floats(), max_size=50))
@example([0.0, -0.0, 1e-7, -4e-7, 5e-7, -5e-7, 0.0078125, -0.0234375, 999.9999995, -1000.0])
@example([float("nan"), float("inf"), -float("inf"), 1e300, -5e-324, 99.9999995, -99.0])
def test_format_fixed6_is_pythons_format(values):
    assert_formats(values)


@HYPOTHESIS
@given(st.lists(st.floats(min_value=-1100, max_value=1100), min_size=1, max_size=200))
def test_format_fixed6_in_the_range_of_log_probabilities(values):
    assert_formats(values)


def test_format_fixed6_at_and_next_to_ties():
    """x * 1e6 exactly or nearly k + 1/2: where rint of the rounded product could go wrong."""
    rng = np.random.default_rng(0)
    ties = rng.integers(-(2**17), 2**17, size=20_000) / 128.0  # exact ties at the 7th decimal
    near = (rng.integers(-(10**9), 10**9, size=20_000) + 0.5) / 1e6  # nearest doubles to ties
    spread = np.concatenate([ties, near, rng.normal(0, 5, 20_000), -rng.exponential(3, 20_000)])
    neighbours = np.concatenate(
        [spread, np.nextafter(spread, np.inf), np.nextafter(spread, -np.inf)]
    )
    assert_formats(neighbours)


# --- whole files -----------------------------------------------------------------------------

WORDS = [
    "a",
    "b",
    "cat",
    "日本語",
    "🙂",
    "e\u0301",
    "x\x00y",
    "z\x00",
    "ÿ",
    "Ωmega",
    "<w>",
    "λ" * 30,
]


@HYPOTHESIS
@given(
    st.lists(st.lists(st.sampled_from(WORDS), max_size=12), min_size=1, max_size=40),
    st.integers(1, 5),
    st.sampled_from([1, 3, 100_000]),
    st.sampled_from([0, 2, 48]),
)
def test_sentence_models_are_written_as_before(setting, sentences, order, chunk, long_name):
    setting("CHUNK_LINES", chunk)  # tiny chunks put chunk boundaries inside every order
    setting("LONG_NAME", long_name)  # 0: every chunk by _gather_lines; 2: some, 48: none
    model, words = fit_sentences([" ".join(s) + "\n" for s in sentences], order)
    assert written(model, words) == reference_arpa(model, words)


@HYPOTHESIS
@given(
    st.lists(st.integers(0, 30), min_size=1, max_size=300),
    st.integers(1, 6),
    st.booleans(),
    st.sampled_from([2, 100_000]),
    st.sampled_from([0, 48]),
)
def test_stream_models_are_written_as_before(setting, ids, order, marked, chunk, long_name):
    setting("CHUNK_LINES", chunk)
    setting("LONG_NAME", long_name)
    model = KneserNey.fit(np.array(ids), order, 31)
    names = [f"▁p{i}" for i in range(31)]
    if marked:  # names that already hold the markers: no extra unigrams
        names[:3] = ["<s>", "</s>", "<unk>"]
    extra = [m for m in ("<s>", "</s>", "<unk>") if m not in names]
    assert written(model, lambda i: names[i]) == reference_arpa(model, names, extra)


def test_a_generated_corpus_is_written_as_before_through_a_path(tmp_path):
    rng = np.random.default_rng(3)
    lines = [
        " ".join(f"w{z % 4000}" for z in rng.zipf(1.3, rng.integers(0, 20))) + "\n"
        for _ in range(20_000)
    ]
    model, words = fit_sentences(lines, 5)
    assert written(model, words, tmp_path) == reference_arpa(model, words)


@pytest.mark.skipif(not TINYSHAKESPEARE.exists(), reason="shared/ corpora absent")
def test_tinyshakespeare_order_5_is_written_as_before(tmp_path):
    with open(TINYSHAKESPEARE, encoding="utf-8", newline="\n") as f:
        model, words = fit_sentences(f, 5)
    assert written(model, words, tmp_path) == reference_arpa(model, words)


@pytest.fixture
def setting():
    """Set a constant of rnngen.ngram.arpa for the examples of one test (hypothesis runs many
    in one call of a test, so monkeypatch, which restores only at its end, is not needed)."""
    saved = {name: getattr(arpa, name) for name in ("CHUNK_LINES", "LONG_NAME")}

    def set_value(name: str, value: int) -> None:
        setattr(arpa, name, value)

    yield set_value
    for name, value in saved.items():
        setattr(arpa, name, value)
