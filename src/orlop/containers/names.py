"""Random container names, adjective_noun, as Docker gives them when none is asked for."""

from __future__ import annotations

import random

ADJECTIVES = (
    "agile", "amber", "ancient", "brave", "bright", "calm", "clever", "cosmic", "crisp", "curious", "daring",
    "dazzling", "eager", "earnest", "electric", "elegant", "fearless", "fierce", "gentle", "gifted", "golden",
    "graceful", "happy", "hardy", "humble", "jolly", "keen", "kind", "lively", "loyal", "lucid", "merry",
    "mighty", "modest", "nimble", "noble", "patient", "placid", "polite", "proud", "quick", "quiet", "radiant",
    "rapid", "serene", "sharp", "shiny", "silent", "sleepy", "smooth", "snowy", "steady", "stoic", "sunny",
    "swift", "tender", "tidy", "tranquil", "vivid", "wise", "witty", "young", "zealous", "zen",
)
NOUNS = (  # people whose work made computing (and containers) possible
    "allen", "babbage", "backus", "bardeen", "berners", "boole", "borg", "cerf", "church", "codd", "conway",
    "corbato", "dijkstra", "engelbart", "euclid", "floyd", "gauss", "goldberg", "hamilton", "hamming",
    "hopper", "huffman", "kahn", "kay", "kernighan", "knuth", "lamport", "liskov", "lovelace", "mccarthy",
    "merkle", "milner", "minsky", "moore", "naur", "neumann", "noether", "nygaard", "pike", "postel",
    "ritchie", "rivest", "shamir", "shannon", "stallman", "sutherland", "tanenbaum", "thompson", "torvalds",
    "turing", "wilkes", "wirth", "wozniak", "zuse",
)


def random_name(taken) -> str:
    """A name not in `taken`; a digit is appended after a few collisions."""
    for attempt in range(20):
        name = f"{random.choice(ADJECTIVES)}_{random.choice(NOUNS)}"
        if attempt > 5:
            name += str(random.randint(0, 9))
        if name not in taken:
            return name
    raise RuntimeError("could not find a free container name")
