"""The synthetic corpus: determinism, exact replay, agreement items, and its dependencies."""

from __future__ import annotations

import hashlib
import io
import itertools
import math
import statistics
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnngen.errors import RnngenError
from rnngen.synth import generator as synth
from rnngen.synth import lexicon as synth_lexicon
from rnngen.synth import tables as synth_tables

NOUN_IS_SINGULAR = {noun.word: noun.singular for pair in synth_tables.NOUNS for noun in pair}
SINGULAR_VERB_FORMS = {
    synth_lexicon.verb_pair(entry)[0]
    for text in (
        synth_lexicon.TRANSITIVE_VERBS,
        synth_lexicon.INTRANSITIVE_VERBS,
        synth_lexicon.COPULAS,
        synth_lexicon.LINKING_VERBS,
        synth_lexicon.HAVE,
        synth_lexicon.BELONG,
    )
    for entry in synth_lexicon.words(text)
}


def sampled(seed: int, n: int):
    """The first n (line, sampler) pairs of a seed: what generation knew about each line."""
    return list(itertools.islice(synth._samples(seed), n))


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return list(synth.generate_lines(3000, seed=7))


@pytest.fixture(scope="module")
def analyses(corpus):
    return [synth.analyse_line(line) for line in corpus]


# --- determinism and format ----------------------------------------------------------------


def test_a_seed_always_gives_the_same_lines_and_seeds_differ():
    assert list(synth.generate_lines(50, seed=3)) == list(synth.generate_lines(50, seed=3))
    assert list(synth.generate_lines(50, seed=3)) != list(synth.generate_lines(50, seed=4))


def test_the_default_instance_does_not_drift():
    """corpora/README.md promises that `rnngen synth` regenerates the shipped description.

    If you changed the grammar on purpose, update this digest and corpora/README.md.
    """
    text = "".join(synth.generate_lines(200, seed=synth.DEFAULT_SEED))
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert digest == "7015f9e53d1b5038cb6f1242642fd3f298011784befad337f1ca4493a30de240"


def test_lines_are_lowercase_ascii_words_ending_with_one_newline(corpus):
    for line in corpus:
        assert line.endswith("\n") and line.count("\n") == 1
        line.encode("ascii")  # so also valid UTF-8, one byte per character
        body = line[:-1]
        assert body == body.strip() and "  " not in body and body == body.lower()
        assert body.endswith(".")


# --- exact probabilities -------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**63))
def test_replay_retraces_every_decision_of_generation(seed):
    for line, sampler in sampled(seed, 15):
        replay = synth._replay(line)
        assert replay is not None, line
        assert replay.trace == sampler.trace
        assert replay.nats == pytest.approx(sampler.nats, rel=1e-12, abs=1e-9)
        assert replay.agreements == sampler.agreements


def test_line_nats_add_up_to_the_total_of_generation():
    out = io.StringIO()
    summary = synth.generate_corpus(out, n_lines=400, seed=11)
    lines = out.getvalue().splitlines(keepends=True)
    result = synth.oracle(lines)
    assert (result.lines, result.skipped_lines) == (400, 0) == (summary.lines, 0)
    assert result.chars == result.bytes == summary.chars == len(out.getvalue())
    assert result.nats == pytest.approx(summary.nats, rel=1e-12)
    assert result.bits_per_char == pytest.approx(summary.bits_per_char, rel=1e-12)


def test_mean_nats_per_line_matches_the_entropy_of_the_decisions():
    """Each decision's -ln p has, given the past, the decision's entropy as its mean.

    So per line, nats - expected_nats has mean 0; a sampler that did not follow the
    probabilities it reports (or tables that do not sum to 1) would shift it.
    """
    differences = [s.nats - s.expected_nats for _, s in sampled(5, 4000)]
    standard_error = statistics.stdev(differences) / math.sqrt(len(differences))
    assert abs(statistics.fmean(differences)) < 4 * standard_error


def test_entropy_is_moderate(analyses, corpus):
    bits = sum(a.nats for a in analyses) / math.log(2) / sum(map(len, corpus))
    assert 0.6 < bits < 1.6


def test_a_hand_written_line_in_the_grammar_analyses():
    line = "anna tried to print her tickets. the man is tired. at last, anna printed her tickets.\n"
    analysis = synth.analyse_line(line)
    assert analysis is not None and 0 < analysis.nats < 60
    assert analysis.items == (synth.AgreementItem(line.index(" is ") + 1, "is", "are", 1),)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n",
        "hello world.\n",
        "Anna tried to print her tickets. at last, anna finally printed her tickets.\n",
        "anna tried to print her tickets. the man is tired. at last, anna printed her tickets\n",
    ],
)
def test_text_the_grammar_cannot_produce_has_no_analysis(text):
    assert synth.analyse_line(text) is None


def test_edited_lines_have_no_analysis(corpus):
    line = corpus[0]
    edits = [
        line[:-1],  # no newline
        line + line,  # two passages on one line
        line.replace(" ", "  ", 1),
        line.replace(".", " .", 1),
        line[1:],
        " " + line,
        line.replace("\n", " \n"),
    ]
    for edited in edits:
        assert synth.analyse_line(edited) is None, edited


def test_the_wrong_verb_form_makes_a_line_impossible(corpus, analyses):
    for line, analysis in list(zip(corpus, analyses, strict=True))[:200]:
        for item in analysis.items:
            swapped = line[: item.offset] + item.wrong + line[item.offset + len(item.correct) :]
            assert synth.analyse_line(swapped) is None, swapped


# --- agreement items -----------------------------------------------------------------------


def test_items_point_at_the_verb_and_offer_another_form(corpus, analyses):
    assert all(analysis is not None for analysis in analyses)
    for line, analysis in zip(corpus, analyses, strict=True):
        for item in analysis.items:
            after = line[item.offset + len(item.correct)]
            assert line[item.offset :].startswith(item.correct) and after in " .,"
            assert item.offset > 0 and line[item.offset - 1] == " "
            assert item.wrong != item.correct and item.distance >= 1


def test_distances_fill_every_bucket(analyses):
    counts = {label: 0 for label in synth.BUCKET_LABELS}
    for analysis in analyses:
        for item in analysis.items:
            counts[synth.bucket_of(item.distance)] += 1
    assert min(counts.values()) >= 300, counts


def test_bucket_of_labels_the_distance_buckets():
    labels = [synth.bucket_of(d) for d in (1, 2, 3, 5, 6, 10, 11, 40)]
    assert labels == ["1-2", "1-2", "3-5", "3-5", "6-10", "6-10", ">10", ">10"]
    with pytest.raises(ValueError):
        synth.bucket_of(0)


def test_the_last_words_before_a_distant_verb_mislead(corpus, analyses):
    """Beyond a 5-gram's reach the four words before the verb hold nouns of the wrong number
    at least as often as of the right one, so only a longer context predicts the verb."""
    right = wrong = 0
    for line, analysis in zip(corpus, analyses, strict=True):
        for item in analysis.items:
            if item.distance <= 6:
                continue
            correct_is_singular = item.correct in SINGULAR_VERB_FORMS
            for word in line[: item.offset].split()[-4:]:
                if word in NOUN_IS_SINGULAR:
                    if NOUN_IS_SINGULAR[word] == correct_is_singular:
                        right += 1
                    else:
                        wrong += 1
    assert wrong >= right > 0, (wrong, right)


def test_the_passage_ends_by_naming_its_first_sentence_again(corpus):
    names = set(synth_tables.FEMALE_NAMES + synth_tables.MALE_NAMES)
    for line in corpus[:300]:
        sentences = line[:-1].split(". ")
        first, last = sentences[0], sentences[-1]
        possessive, thing = last.rstrip(".").split()[-2:]  # "... printed her tickets."
        assert f" {possessive} {thing}" in first
        assert [w for w in first.replace(",", "").split() if w in names] == [
            w for w in last.replace(",", "").split() if w in names
        ]


# --- word classes that keep the replay unambiguous -----------------------------------------


def test_words_that_may_follow_an_omission_never_begin_the_omitted_option():
    verbs = {f for table in synth_tables.VERBS.values() for f in table.first_words()}
    nouns = set(NOUN_IS_SINGULAR)
    adjectives = synth_tables.PRENOMINAL_ADJECTIVES.first_words()
    adverbials = synth_tables.ADVERBIALS[True].first_words()
    prepositions = synth_tables.PREPOSITIONS.first_words()
    assert not adjectives & nouns  # "the (old) man"
    assert not adverbials & verbs  # "the man who sleeps (here) is"
    assert not prepositions & verbs  # "the man (near the door) is"
    assert not {"that", "who"} & verbs
    assert not synth_tables.DETERMINERS & verbs


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, "from rnngen import synth" counted as "rnngen.synth"."""
    from test_architecture import imports_of

    return imports_of(path)


def test_the_generator_needs_only_the_standard_library():
    """`rnngen synth` and eval's floor rows must not pay for torch (nor need it installed)."""
    paths = [p for p in Path(synth.__file__).parent.glob("*.py") if p.name != "agreement.py"]
    assert len(paths) >= 5, paths  # the generator, grammar, choice, tables, lexicon
    for path in paths:
        for name in imported_modules(path):
            # errors, the stdlib-only writers every output goes through (atomic, textio), and
            # the figures every report shows (metrics)
            own = name in (
                "rnngen.errors",
                "rnngen.atomic",
                "rnngen.corpus.textio",
                "rnngen.metrics",
            )
            own = own or name.startswith("rnngen.synth")
            assert own or name.split(".")[0] in sys.stdlib_module_names, (path.name, name)


# --- corpus files and detection ------------------------------------------------------------


def test_generate_corpus_writes_whole_lines_atomically(tmp_path):
    path = tmp_path / "synth.txt"
    summary = synth.generate_corpus(path, n_chars=20_000, seed=2)
    text = path.read_text(encoding="utf-8")
    assert len(text) == summary.chars >= 20_000 and text.endswith("\n")
    assert summary.chars - 20_000 < max(map(len, text.splitlines(keepends=True)))
    assert text.splitlines(keepends=True) == list(synth.generate_lines(summary.lines, seed=2))
    assert [p.name for p in tmp_path.iterdir()] == ["synth.txt"]  # no temporary left


def test_a_smaller_corpus_is_a_prefix_of_a_larger_one():
    small, large = io.StringIO(), io.StringIO()
    synth.generate_corpus(small, n_chars=5_000, seed=9)
    synth.generate_corpus(large, n_chars=50_000, seed=9)
    assert large.getvalue().startswith(small.getvalue())


@pytest.mark.parametrize(
    "kwargs",
    [{"n_chars": 0}, {"n_lines": -1}, {"n_chars": 10, "n_lines": 10}, {"n_chars": 1.5}],
)
def test_generate_corpus_rejects_absurd_sizes(kwargs):
    with pytest.raises(RnngenError):
        synth.generate_corpus(io.StringIO(), **kwargs)


def test_bad_seeds_and_paths_are_user_errors(tmp_path):
    with pytest.raises(RnngenError):
        synth.generate_lines(3, seed=-1)
    with pytest.raises(RnngenError):
        synth.generate_corpus(tmp_path, n_lines=3)
    with pytest.raises(RnngenError):
        synth.generate_corpus(tmp_path / "missing" / "synth.txt", n_lines=3)


def test_looks_generated_tells_the_corpus_from_other_text(corpus):
    text = "".join(corpus[:120])
    assert synth.looks_generated(text)
    assert synth.looks_generated(text[37:-11])  # a slice starting and ending mid-line
    assert not synth.looks_generated("It was the best of times.\nIt was the worst.\n" * 50)
    assert not synth.looks_generated("")
    mixed = "".join(line if i % 10 else "other text\n" for i, line in enumerate(corpus[:100]))
    assert not synth.looks_generated(mixed)


def test_oracle_skips_and_counts_lines_it_cannot_analyse(corpus):
    result = synth.oracle([corpus[0][5:], *corpus[1:4]])
    assert (result.lines, result.skipped_lines) == (3, 1)
    assert result.skipped_chars == len(corpus[0]) - 5
    assert {index for index, _ in result.items} <= {1, 2, 3}
