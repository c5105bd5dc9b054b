"""A seeded generator of problems with known answers, written in the project (synthetic data).

Families, chosen so that the embedded SmolLM2-135M is neither always right nor always wrong:

- ``sum``: single-digit sums ("What is 7 + 8?") — a number.
- ``compare``: the larger of two two-digit numbers — a number.
- ``capital``: capital cities as 4-way multiple choice (the other options are other
  countries' capitals) — an option letter.
- ``word``: one-step word problems (buy more, give away) — a number.

The same seed gives the same items, in the same order, on every machine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

FAMILIES = ("sum", "compare", "capital", "word")

# (country, capital, other cities of that country used as distractors)
CAPITALS = [
    ("France", "Paris", ["Lyon", "Marseille", "Nice"]),
    ("Japan", "Tokyo", ["Osaka", "Kyoto", "Nagoya"]),
    ("Italy", "Rome", ["Milan", "Naples", "Turin"]),
    ("Germany", "Berlin", ["Munich", "Hamburg", "Frankfurt"]),
    ("Spain", "Madrid", ["Barcelona", "Seville", "Valencia"]),
    ("Canada", "Ottawa", ["Toronto", "Vancouver", "Montreal"]),
    ("Australia", "Canberra", ["Sydney", "Melbourne", "Perth"]),
    ("Brazil", "Brasília", ["Rio de Janeiro", "São Paulo", "Salvador"]),
    ("Turkey", "Ankara", ["Istanbul", "Izmir", "Antalya"]),
    ("Switzerland", "Bern", ["Zurich", "Geneva", "Basel"]),
    ("India", "New Delhi", ["Mumbai", "Bangalore", "Kolkata"]),
    ("China", "Beijing", ["Shanghai", "Guangzhou", "Shenzhen"]),
    ("Russia", "Moscow", ["Saint Petersburg", "Novosibirsk", "Kazan"]),
    ("Egypt", "Cairo", ["Alexandria", "Giza", "Luxor"]),
    ("Kenya", "Nairobi", ["Mombasa", "Kisumu", "Nakuru"]),
    ("Nigeria", "Abuja", ["Lagos", "Kano", "Ibadan"]),
    ("Morocco", "Rabat", ["Casablanca", "Marrakesh", "Fez"]),
    ("Vietnam", "Hanoi", ["Ho Chi Minh City", "Da Nang", "Hue"]),
    ("South Korea", "Seoul", ["Busan", "Incheon", "Daegu"]),
    ("Argentina", "Buenos Aires", ["Córdoba", "Rosario", "Mendoza"]),
    ("Mexico", "Mexico City", ["Guadalajara", "Monterrey", "Cancún"]),
    ("Portugal", "Lisbon", ["Porto", "Braga", "Coimbra"]),
    ("Netherlands", "Amsterdam", ["Rotterdam", "Utrecht", "Eindhoven"]),
    ("Poland", "Warsaw", ["Kraków", "Gdańsk", "Wrocław"]),
    ("Sweden", "Stockholm", ["Gothenburg", "Malmö", "Uppsala"]),
    ("Norway", "Oslo", ["Bergen", "Trondheim", "Stavanger"]),
    ("Greece", "Athens", ["Thessaloniki", "Patras", "Heraklion"]),
    ("Ireland", "Dublin", ["Cork", "Galway", "Limerick"]),
    ("New Zealand", "Wellington", ["Auckland", "Christchurch", "Hamilton"]),
    ("Pakistan", "Islamabad", ["Karachi", "Lahore", "Peshawar"]),
    ("Peru", "Lima", ["Cusco", "Arequipa", "Trujillo"]),
    ("Chile", "Santiago", ["Valparaíso", "Concepción", "Antofagasta"]),
    ("Colombia", "Bogotá", ["Medellín", "Cali", "Cartagena"]),
    ("Thailand", "Bangkok", ["Chiang Mai", "Phuket", "Pattaya"]),
    ("Indonesia", "Jakarta", ["Surabaya", "Bandung", "Medan"]),
    ("Austria", "Vienna", ["Salzburg", "Graz", "Innsbruck"]),
]

NAMES = ["Tom", "Anna", "Sam", "Maria", "Leo", "Nina", "Omar", "Lucy"]
THINGS = ["apples", "books", "marbles", "pencils", "stickers", "cookies"]


@dataclass(frozen=True)
class Problem:
    family: str
    question: str
    answer: str  # normalised: a number ("15") or an option letter ("B")
    kind: str  # "number" or "choice"


def _sum(rng: random.Random) -> Problem:
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    return Problem("sum", f"What is {a} + {b}?", str(a + b), "number")


def _compare(rng: random.Random) -> Problem:
    a, b = rng.sample(range(11, 99), 2)
    return Problem("compare", f"Which number is larger, {a} or {b}?", str(max(a, b)), "number")


def _capital(rng: random.Random) -> Problem:
    country, capital, _ = rng.choice(CAPITALS)
    others = [c for _, c, _ in CAPITALS if c != capital]
    options = [capital, *rng.sample(others, 3)]
    rng.shuffle(options)
    letters = "ABCD"
    listed = " ".join(f"({letters[i]}) {o}" for i, o in enumerate(options))
    q = f"What is the capital of {country}? {listed}"
    return Problem("capital", q, letters[options.index(capital)], "choice")


def _word(rng: random.Random) -> Problem:
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    a, b = rng.randint(2, 9), rng.randint(1, 6)
    if rng.random() < 0.5:
        q = f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?"
        ans = a + b
    else:
        a = max(a, b + 1)
        q = f"{name} has {a} {thing} and gives {b} away. How many {thing} does {name} have left?"
        ans = a - b
    return Problem("word", q, str(ans), "number")


_MAKERS = {"sum": _sum, "compare": _compare, "capital": _capital, "word": _word}


def generate(n: int, seed: int = 0, families: tuple[str, ...] = FAMILIES) -> list[Problem]:
    """``n`` problems, the families taking turns, from a seeded generator."""
    rng = random.Random(seed)
    return [_MAKERS[families[i % len(families)]](rng) for i in range(n)]
