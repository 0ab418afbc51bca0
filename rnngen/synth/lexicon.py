"""The words of the synthetic corpus (see rnngen/synth/generator.py), as plain data.

Kept apart from the grammar so the grammar reads as rules, and so tests can check the word
classes whose disjointness keeps the replay unambiguous (a noun is never a verb, an adjective
never a noun, ...). Lists are ordered by frequency: the grammar gives them Zipf-like weights.
Words are lowercase ASCII letters. A noun "man/men" is singular/plural, a bare "teacher"
takes "-s"; a verb "carries/carry" is singular/plural, a bare "holds" drops the "-s". An
entry "in_the_end_," is several words.
"""

# Nouns that hold, see and want things: subjects of transitive verbs and relative clauses.
PERSON_NOUNS = """
man/men woman/women child/children teacher doctor writer girl boy friend neighbour farmer
student painter driver nurse baker pilot singer guard lawyer sailor uncle aunt actor soldier
dancer officer manager visitor worker guest dog cat horse bird cousin judge clerk tailor banker
poet artist engineer author owner editor hunter fisherman/fishermen postman/postmen waiter
chef coach/coaches captain mouse/mice wolf/wolves fox/foxes rabbit duck monkey tiger lion bear
goat donkey parrot
"""

THING_NOUNS = """
key book box/boxes table window door lamp chair bottle picture bag cup knife/knives
shelf/shelves glass/glasses coat plate map clock bell car boat bridge house garden tree road
wall basket candle drawer mirror desk piano cabinet bench/benches bowl jar pot pan spoon fork
pillow carpet rug stone rock ring coin hat scarf/scarves boot bucket ladder rope wagon barrel
envelope parcel package letter newspaper magazine lantern statue vase fountain gate tower
cottage castle church/churches school shop station train bus/buses truck ship kettle teapot
ribbon brush/brushes
"""

# Before a noun: "the old man". Any of them fits any noun, so it never reveals the class.
PRENOMINAL_ADJECTIVES = """
old new small big little strange other tall young famous dark quiet pretty lovely huge tiny
curious gentle clever silly brave funny shy lazy friendly noisy rich poor lucky fancy plain
simple modern ancient wooden golden red green blue yellow white black brown grey pale
"""

# After a copula or a linking verb: "the man is tired", "the boxes are heavy".
PERSON_ADJECTIVES = """
tired happy hungry late ready angry busy sad proud afraid sick asleep awake nervous calm glad
worried bored upset lonely sleepy thirsty cheerful jealous excited
"""
THING_ADJECTIVES = """
broken heavy empty full clean dirty open closed expensive cheap wet dry cold warm safe locked
shiny dusty sticky soft hard loose missing useful fragile
"""

# Determiners by the number they allow, with their weights; "NAME's" stands for the
# possessive of any character name ("anna's keys"), the weight shared among them.
DETERMINERS_SINGULAR = {
    "the": 0.30, "this": 0.07, "every": 0.04, "each": 0.03, "my": 0.05, "your": 0.05,
    "his": 0.05, "her": 0.05, "our": 0.04, "their": 0.04, "NAME's": 0.28,
}  # fmt: skip
DETERMINERS_PLURAL = {
    "the": 0.28, "these": 0.06, "some": 0.04, "many": 0.03, "my": 0.05, "your": 0.05,
    "his": 0.05, "her": 0.05, "our": 0.04, "their": 0.04, "NAME's": 0.25, "two": 0.02,
    "three": 0.015, "four": 0.01, "five": 0.01, "six": 0.005, "seven": 0.005, "ten": 0.005,
    "twelve": 0.005,
}  # fmt: skip

# Prepositions that attach a phrase to a noun: "the writer of the books".
ATTACHING_PREPOSITIONS = "of near behind beside with under above from without"
# Prepositions of place after a copula: "the keys are on the table".
PLACE_PREPOSITIONS = "on in near behind under beside inside"

# Present-tense verbs.
TRANSITIVE_VERBS = """
holds sees wants needs likes finds keeps carries/carry brings watches/watch follows paints
cleans buys sells opens moves helps visits loves hates remembers knows grabs drops hides lifts
pulls pushes/push touches/touch borrows chooses notices misses/miss owns praises protects
reaches/reach studies/study teaches/teach trusts admires meets chases catches/catch
"""
INTRANSITIVE_VERBS = """
sleeps waits works smiles laughs sings walks listens sits stands talks cries/cry jumps runs
swims dances shouts rests whistles snores travels wanders complains
"""
COPULAS = "is/are was/were"
LINKING_VERBS = "seems looks feels stays remains becomes"
HAVE = "has/have"
BELONG = "belongs"  # always followed by "to": "the keys belong to the teacher"

# At the end of a verb phrase: "the man sleeps at night".
ADVERBIALS = """
here there today again outside now sometimes often tonight upstairs downstairs quietly alone
slowly carefully at_night every_day in_the_morning in_the_evening on_sundays at_home
"""

# The passage's character(s), and the errand they set out on, and finally do.
FEMALE_NAMES = """
anna maria sarah emma julia laura lucy sophie clara nina olivia grace alice ella rosa helen
kate mia lily zoe
"""
MALE_NAMES = """
tom james peter paul david daniel mark john leo sam max ben jack oscar henry adam felix hugo
ivan luke
"""
TIMES = "yesterday_, on_monday_, on_friday_, this_morning_, last_week_, one_day_, at_noon_,"
ATTEMPTS = "tried_to wanted_to had_to needed_to forgot_to hoped_to planned_to promised_to"
ERRANDS = (  # (verb, past tense, the things it is done to)
    ("print", "printed", "tickets photos labels notes forms"),
    ("fix", "fixed", "bike radio heater fence roof"),
    ("wash", "washed", "shirts dishes socks blankets curtains"),
    ("pack", "packed", "suitcase clothes lunch tent tools"),
    ("write", "wrote", "essay report speech poem thesis"),
    ("clean", "cleaned", "room kitchen shoes oven garage"),
    ("sell", "sold", "bike guitar sofa camera computer"),
    ("call", "called", "mother father sister brother boss"),
    ("cook", "cooked", "dinner soup pasta rice breakfast"),
    ("find", "found", "passport wallet umbrella gloves phone"),
)
PURPOSES = "for_the_trip before_the_party for_school for_the_weekend before_dinner after_work"
# Sentences about the character between the errand's start and its end, in the past tense.
CHARACTER_INTRANSITIVE = "waited smiled laughed sighed slept listened nodded paused"
CHARACTER_TRANSITIVE = "saw found checked opened moved noticed touched watched looked_at"
RESOLUTION_OPENERS = "later_, in_the_end_, at_last_, that_evening_, after_lunch_, soon_,"
RESOLUTION_ADVERBS = {"finally": 0.5, "": 0.3, "eventually": 0.12, "happily": 0.08}


def words(text: str) -> list[str]:
    """The entries of a whitespace-separated list."""
    return text.split()


def phrase(entry: str) -> tuple[str, ...]:
    """An entry's words: "in_the_end_," -> ("in", "the", "end", ",")."""
    return tuple(entry.split("_"))


def noun_pair(entry: str) -> tuple[str, str]:
    """(singular, plural) of a noun entry: "man/men" or "teacher" (plural "teachers")."""
    singular, _, plural = entry.partition("/")
    return singular, plural or singular + "s"


def verb_pair(entry: str) -> tuple[str, str]:
    """(singular, plural) of a verb entry: "is/are" or "holds" (plural "hold")."""
    singular, _, plural = entry.partition("/")
    return singular, plural or singular[:-1]
