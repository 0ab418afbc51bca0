"""The rules of the synthetic corpus's grammar: which decisions a passage takes, in order.

A line is a passage. A character sets out on an errand ("anna tried to print her tickets."),
one or more sentences follow, and the passage closes on the errand done, naming the character
and the thing again ("at last, anna finally printed her tickets."): dependencies that span the
passage. Most middle sentences are agreement sentences, whose subject may carry prepositional
phrases ("the writer of the books is ...") and a relative clause ("the keys that the man near
the cabinets holds are ..."). Each noun inside the subject usually takes the number opposite
to the head's, so the words just before the verb mislead a model that sees only a few of them.

The rules run against a chooser (rnngen/synth/choice.py), which either samples or replays
them; the decisions they take, with their probabilities, are in rnngen/synth/tables.py.
"""

from __future__ import annotations

from rnngen.synth.choice import Branch, Chooser
from rnngen.synth.tables import (
    ADVERBIALS,
    ANY_NP,
    ATTEMPTS,
    ATTRACTOR_NP,
    ATTRACTOR_PERSON_NP,
    CHARACTER_VERBS,
    COMPANION,
    COPULA_COMPLEMENTS,
    ERRANDS,
    FIRST_SENTENCE,
    NAMES,
    NEXT_SENTENCE,
    OPENERS,
    OTHER_NAMES,
    PERSON_NP,
    PLACE_NP,
    PREDICATE_ADJECTIVES,
    PRENOMINAL_ADJECTIVES,
    PREPOSITIONS,
    PURPOSES,
    RELATIVE_KIND,
    RELATIVE_SUBJECT_MODIFIERS,
    RELATIVIZERS,
    RESOLUTION_ADVERBS,
    SUBJECT_MODIFIERS,
    TIMES,
    TRANSITIVE_VERBS,
    VERBS,
    Character,
    Noun,
    NounPhrase,
)


def passage(c: Chooser) -> None:
    """One line: the errand begun, sentences in between, the errand done."""
    c.pick(TIMES)
    who = character(c)
    c.pick(ATTEMPTS)
    errand = c.pick(ERRANDS)
    c.emit(who.possessive)
    thing = c.pick(errand.things)
    c.pick(PURPOSES)
    c.emit(".")
    sentence = c.branch(FIRST_SENTENCE)
    while sentence != "end":
        if sentence == "agreement":
            agreement_sentence(c)
        else:
            character_sentence(c, who, thing)
        sentence = c.branch(NEXT_SENTENCE)
    c.pick(OPENERS)
    for word in who.names:
        c.emit(word)
    c.pick(RESOLUTION_ADVERBS)
    for word in (errand.past, who.possessive, thing, "."):
        c.emit(word)


def character(c: Chooser) -> Character:
    """Who the passage is about, "anna" or "anna and tom", and their pronouns."""
    first, female = c.pick(NAMES)
    if c.branch(COMPANION) == "alone":
        pronoun, possessive = ("she", "her") if female else ("he", "his")
        return Character((first,), pronoun, possessive, True)
    c.emit("and")
    return Character((first, "and", c.pick(OTHER_NAMES[first])), "they", "their", False)


def character_sentence(c: Chooser, who: Character, thing: str) -> None:
    """A sentence about the character: "she waited here.", "they were tired.", ..."""
    c.emit(who.pronoun)
    pronoun_position = c.position - 1
    verb = c.pick(CHARACTER_VERBS[who.singular])
    if verb.frame == "copula":
        c.agree(verb, pronoun_position)
        c.pick(PREDICATE_ADJECTIVES[True])
    elif verb.frame == "intransitive":
        c.pick(ADVERBIALS[True])
    elif verb.frame == "transitive":
        noun_phrase(c, ANY_NP)
    else:
        c.emit(who.possessive)
        c.emit(thing)
    c.emit(".")


def agreement_sentence(c: Chooser) -> None:
    """A subject, its modifiers, and a verb agreeing with the subject's head."""
    head_position, head = noun_phrase(c, ANY_NP)
    attractors = ATTRACTOR_NP[head.singular]
    modifier, position, noun = modifiers(c, SUBJECT_MODIFIERS, attractors, head_position, head)
    if modifier == "relative":  # it attaches to the last noun: "the writer of the books that"
        relative_clause(c, position, noun, head.singular)
    verb_phrase(c, head_position, head, ANY_NP, ends_sentence=True)
    c.emit(".")


def modifiers(
    c: Chooser, branches: tuple[Branch, ...], attractors: NounPhrase, position: int, noun: Noun
):
    """Prepositional phrases after a noun, one per branch while the branches say "pp".

    Returns the label that ended the chain ("none" when the branches ran out) and the
    position and the noun of the last noun phrase.
    """
    for branch in branches:
        label = c.branch(branch)
        if label != "pp":
            return label, position, noun
        c.pick(PREPOSITIONS)
        position, noun = noun_phrase(c, attractors)
    return "none", position, noun


def relative_clause(c: Chooser, position: int, noun: Noun, head_singular: bool) -> None:
    """After `noun`: "that the man near the cabinets holds" or "who holds the keys"."""
    c.pick(RELATIVIZERS[noun.person])
    if c.branch(RELATIVE_KIND[noun.singular, noun.person]) == "object":
        subject_position, subject = noun_phrase(c, ATTRACTOR_PERSON_NP[head_singular])
        attractors = ATTRACTOR_NP[head_singular]
        modifiers(c, RELATIVE_SUBJECT_MODIFIERS, attractors, subject_position, subject)
        c.agree(c.pick(TRANSITIVE_VERBS[subject.singular]), subject_position)
    else:
        verb_phrase(c, position, noun, ATTRACTOR_NP[head_singular], ends_sentence=False)


def verb_phrase(
    c: Chooser, subject_position: int, subject: Noun, objects: NounPhrase, ends_sentence: bool
) -> None:
    """A verb agreeing with `subject`, what its frame asks for, and maybe an adverbial.

    Only an intransitive verb takes an adverbial inside a relative clause: "the man who sleeps
    here is ..."; any verb may at the end of the sentence.
    """
    verb = c.pick(VERBS[subject.singular, subject.person])
    c.agree(verb, subject_position)
    if verb.frame == "copula":
        if c.pick(COPULA_COMPLEMENTS[subject.person]):
            noun_phrase(c, PLACE_NP)
    elif verb.frame == "linking":
        c.pick(PREDICATE_ADJECTIVES[subject.person])
    elif verb.frame == "belong":
        c.emit("to")
        noun_phrase(c, PERSON_NP)
    elif verb.frame != "intransitive":  # transitive, have
        noun_phrase(c, objects)
    if verb.frame == "intransitive" or ends_sentence:
        c.pick(ADVERBIALS[verb.frame == "intransitive"])


def noun_phrase(c: Chooser, tables: NounPhrase) -> tuple[int, Noun]:
    """Determiner, optional adjective, noun; returns the noun's position and the noun."""
    determiner = c.pick(tables.determiners)
    c.pick(PRENOMINAL_ADJECTIVES)
    noun = c.pick(tables.nouns[determiner])
    return c.position - 1, noun
