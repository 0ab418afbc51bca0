"""The decisions of the synthetic corpus's grammar: their options and probabilities.

Built once, at import, from the word lists in rnngen/synth/lexicon.py; the order in which
they are taken is in rnngen/synth/grammar.py. A `Table` chooses words, a `Branch` chooses
structure (see rnngen/synth/choice.py); values tell the rules what was chosen (a `Noun` and
its number, a `Verb` and what must follow it, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from rnngen.synth import lexicon as lex
from rnngen.synth.choice import Branch, Table

ZIPF_EXPONENT = 0.5  # within a word class, frequency falls off like 1 / sqrt(rank)
ATTRACTOR_OPPOSITE = 0.8  # chance that a noun inside the subject has the head's other number


class Noun(NamedTuple):
    word: str
    singular: bool
    person: bool  # people and animals hold, see and want things; things do not


class Verb(NamedTuple):
    form: str
    wrong: str  # the form for the other number ("" for a past tense, which has none)
    frame: str  # what follows it: copula, linking, have, transitive, intransitive, belong...


class NounPhrase(NamedTuple):
    determiners: Table
    nouns: dict[str, Table]  # by determiner: after "these" only plural nouns


class Character(NamedTuple):
    names: tuple[str, ...]  # ("anna",) or ("anna", "and", "tom")
    pronoun: str
    possessive: str
    singular: bool


class Errand(NamedTuple):
    verb: str
    past: str
    things: Table


# --- building the tables -------------------------------------------------------------------


def zipf(n: int) -> list[float]:
    """Weights of n options ranked by frequency, summing to 1."""
    weights = [1.0 / (rank + 1) ** ZIPF_EXPONENT for rank in range(n)]
    return [w / sum(weights) for w in weights]


def ranked(text: str, share: float = 1.0, value: Callable[[tuple], Any] = lambda w: None):
    """Options (words, value, weight) for a ranked lexicon list sharing `share` of the mass."""
    entries = lex.words(text)
    return [
        (lex.phrase(entry), value(lex.phrase(entry)), share * weight)
        for entry, weight in zip(entries, zipf(len(entries)), strict=True)
    ]


def optional(text: str, p_absent: float) -> Table:
    """A choice of one entry of a ranked list, or (with probability p_absent) of nothing."""
    return Table([((), None, p_absent), *ranked(text, 1 - p_absent)])


FEMALE_NAMES = lex.words(lex.FEMALE_NAMES)
MALE_NAMES = lex.words(lex.MALE_NAMES)
POSSESSIVE_NAMES = [name + "'s" for name in FEMALE_NAMES + MALE_NAMES]
NOUNS = [
    (Noun(sg, True, person), Noun(pl, False, person))
    for text, person in ((lex.PERSON_NOUNS, True), (lex.THING_NOUNS, False))
    for sg, pl in map(lex.noun_pair, lex.words(text))
]


def noun_phrase_tables(p_singular: float, person: bool | None) -> NounPhrase:
    """Tables for a noun phrase that is singular with probability p_singular.

    The number is drawn first in the story, but the text shows it only at the determiner
    ("these") or the noun, so the tables hold its text-order factorisation: P(determiner), then
    P(noun | determiner). `person` None mixes people and things half and half.
    """
    classes = [cls for cls in (True, False) if person in (None, cls)]
    noun_weights = {}
    for cls in classes:
        pairs = [pair for pair in NOUNS if pair[0].person == cls]
        for (singular, plural), weight in zip(pairs, zipf(len(pairs)), strict=True):
            noun_weights[singular] = noun_weights[plural] = weight / len(classes)
    determiners, nouns = [], {}
    for det in dict.fromkeys([*lex.DETERMINERS_SINGULAR, *lex.DETERMINERS_PLURAL]):
        joint = {
            True: p_singular * lex.DETERMINERS_SINGULAR.get(det, 0.0),
            False: (1 - p_singular) * lex.DETERMINERS_PLURAL.get(det, 0.0),
        }
        nouns[det] = Table(
            ((noun.word,), noun, joint[noun.singular] * weight)
            for noun, weight in noun_weights.items()
            if joint[noun.singular] > 0
        )
        spellings = POSSESSIVE_NAMES if det == "NAME's" else [det]
        for spelling in spellings:
            determiners.append(((spelling,), det, (joint[True] + joint[False]) / len(spellings)))
    return NounPhrase(Table(determiners), nouns)


def verb_tables(frames: list[tuple[str, str, float]]) -> dict[bool, Table]:
    """Present-tense verbs by the subject's number (True: singular) for (list, frame, share)."""
    rows = {True: [], False: []}
    for text, frame, share in frames:
        for (singular, plural), weight in zip(
            map(lex.verb_pair, lex.words(text)), zipf(len(lex.words(text))), strict=True
        ):
            rows[True].append(((singular,), Verb(singular, plural, frame), share * weight))
            rows[False].append(((plural,), Verb(plural, singular, frame), share * weight))
    return {singular: Table(options) for singular, options in rows.items()}


def character_verbs(singular: bool) -> Table:
    """Past-tense verbs for the passage's character ("was" or "were" agrees with it)."""
    was, were = ("was", "were") if singular else ("were", "was")
    return Table(
        [
            ((was,), Verb(was, were, "copula"), 0.20),
            (("thought", "about"), Verb("thought", "", "thought"), 0.15),
            *ranked(lex.CHARACTER_INTRANSITIVE, 0.30, lambda w: Verb(w[0], "", "intransitive")),
            *ranked(lex.CHARACTER_TRANSITIVE, 0.35, lambda w: Verb(w[0], "", "transitive")),
        ]
    )


# --- the tables ----------------------------------------------------------------------------

ANY_NP = noun_phrase_tables(0.5, None)
DETERMINERS = ANY_NP.determiners.first_words()
PLACE_NP = noun_phrase_tables(0.5, False)
PERSON_NP = noun_phrase_tables(0.5, True)
_P_SINGULAR_ATTRACTOR = {True: 1 - ATTRACTOR_OPPOSITE, False: ATTRACTOR_OPPOSITE}
ATTRACTOR_NP = {  # by the number of the subject's head (True: singular)
    singular: noun_phrase_tables(p, None) for singular, p in _P_SINGULAR_ATTRACTOR.items()
}
ATTRACTOR_PERSON_NP = {
    singular: noun_phrase_tables(p, True) for singular, p in _P_SINGULAR_ATTRACTOR.items()
}
PRENOMINAL_ADJECTIVES = optional(lex.PRENOMINAL_ADJECTIVES, 0.7)
PREDICATE_ADJECTIVES = {
    True: Table(ranked(lex.PERSON_ADJECTIVES)),
    False: Table(ranked(lex.THING_ADJECTIVES)),
}
COPULA_COMPLEMENTS = {  # value True: a place preposition, so a noun phrase follows
    person: Table(
        ranked(adjectives, 0.6, lambda w: False)
        + ranked(lex.PLACE_PREPOSITIONS, 0.4, lambda w: True)
    )
    for person, adjectives in ((True, lex.PERSON_ADJECTIVES), (False, lex.THING_ADJECTIVES))
}
PREPOSITIONS = Table(ranked(lex.ATTACHING_PREPOSITIONS))
ADVERBIALS = {  # by whether the verb is intransitive: then an adverbial is likely
    True: optional(lex.ADVERBIALS, 0.3),
    False: optional(lex.ADVERBIALS, 0.75),
}
PERSON_VERBS = verb_tables(
    [
        (lex.COPULAS, "copula", 0.28),
        (lex.HAVE, "have", 0.08),
        (lex.LINKING_VERBS, "linking", 0.05),
        (lex.TRANSITIVE_VERBS, "transitive", 0.39),
        (lex.INTRANSITIVE_VERBS, "intransitive", 0.20),
    ]
)
THING_VERBS = verb_tables(
    [
        (lex.COPULAS, "copula", 0.50),
        (lex.LINKING_VERBS, "linking", 0.22),
        (lex.HAVE, "have", 0.10),
        (lex.BELONG, "belong", 0.18),
    ]
)
VERBS = {(sg, True): PERSON_VERBS[sg] for sg in (True, False)}  # by (singular, person)
VERBS |= {(sg, False): THING_VERBS[sg] for sg in (True, False)}
TRANSITIVE_VERBS = verb_tables([(lex.TRANSITIVE_VERBS, "transitive", 1.0)])
RELATIVIZERS = {True: Table(ranked("who that")), False: Table(ranked("that"))}
RELATIVE_KIND = {  # an object relative begins with its subject, a subject relative with a verb
    key: Branch([("object", DETERMINERS, 0.6), ("subject", table.first_words(), 0.4)])
    for key, table in VERBS.items()
}
_PP = PREPOSITIONS.first_words()
_RELATIVE = ("that", "who")
SUBJECT_MODIFIERS = (  # after the head, after its first and after its second phrase
    Branch([("none", None, 0.30), ("pp", _PP, 0.35), ("relative", _RELATIVE, 0.35)]),
    Branch([("none", None, 0.45), ("pp", _PP, 0.25), ("relative", _RELATIVE, 0.30)]),
    Branch([("none", None, 0.60), ("relative", _RELATIVE, 0.40)]),
)
RELATIVE_SUBJECT_MODIFIERS = (
    Branch([("none", None, 0.5), ("pp", _PP, 0.5)]),
    Branch([("none", None, 0.7), ("pp", _PP, 0.3)]),
)

_NAMES = [(name, True) for name in FEMALE_NAMES] + [(name, False) for name in MALE_NAMES]
NAMES = Table(((name,), (name, female), 1.0) for name, female in _NAMES)
OTHER_NAMES = {  # the second of two characters, by the first
    first: Table(((name,), name, 1.0) for name, _ in _NAMES if name != first) for first, _ in _NAMES
}
COMPANION = Branch([("alone", None, 0.75), ("pair", ["and"], 0.25)])
PRONOUNS = ("she", "he", "they")
PURPOSES = optional(lex.PURPOSES, 0.5)
TIMES = optional(lex.TIMES, 0.5)
ATTEMPTS = Table(ranked(lex.ATTEMPTS))
ERRANDS = Table(
    ((verb,), Errand(verb, past, Table(ranked(things, value=lambda w: w[0]))), weight)
    for (verb, past, things), weight in zip(lex.ERRANDS, zipf(len(lex.ERRANDS)), strict=True)
)
CHARACTER_VERBS = {singular: character_verbs(singular) for singular in (True, False)}
OPENERS = Table(ranked(lex.RESOLUTION_OPENERS))
RESOLUTION_ADVERBS = Table(
    (lex.phrase(w) if w else (), None, p) for w, p in lex.RESOLUTION_ADVERBS.items()
)
_AGREEMENT = ("agreement", DETERMINERS)
_CHARACTER = ("character", PRONOUNS)
FIRST_SENTENCE = Branch([(*_AGREEMENT, 0.8), (*_CHARACTER, 0.2)])
NEXT_SENTENCE = Branch(
    [(*_AGREEMENT, 0.6), (*_CHARACTER, 0.15), ("end", OPENERS.first_words(), 0.25)]
)
