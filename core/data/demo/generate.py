"""Writes the built-in demo files (reviews.csv, interactions.csv, items.csv) deterministically.

Run `python -m core.data.demo.generate` after editing the fragments; the CSVs are committed.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 7

PRODUCTS = ["headphones", "blender", "backpack", "phone case", "desk lamp", "running shoes", "coffee maker",
            "keyboard", "water bottle", "vacuum cleaner", "rain jacket", "yoga mat", "toaster", "smart watch",
            "air fryer", "office chair", "bluetooth speaker", "electric kettle", "camping tent", "hair dryer"]

FRAGMENTS = {
    "positive": {
        "open": ["Really happy with this {p}.", "Best {p} I have owned so far.", "Love this {p}!",
                 "This {p} exceeded my expectations.", "Great {p} for the price.", "Five stars for this {p}.",
                 "Bought the {p} for my sister and she adores it.", "So glad I picked this {p}."],
        "detail": ["It arrived a day early and works perfectly", "Build quality feels solid and premium",
                   "Setup took two minutes", "Battery lasts for days", "It is quiet and does the job well",
                   "The material feels sturdy", "Customer service answered within an hour",
                   "It looks even better than in the photos", "Still going strong after three months",
                   "Easy to clean and very comfortable to use"],
        "close": ["Would buy again.", "Highly recommend.", "Worth every penny.", "Totally recommend it.",
                  "My whole family loves it.", ""],
    },
    "negative": {
        "open": ["Very disappointed with this {p}.", "Do not buy this {p}.", "This {p} broke after a week.",
                 "Terrible {p}, avoid.", "Worst {p} I have ever bought.", "The {p} arrived damaged.",
                 "Sent the {p} back the same day.", "Regret buying this {p}."],
        "detail": ["It stopped working after two uses", "The seams came apart almost immediately",
                   "It smells of cheap plastic", "Support never replied to my emails",
                   "It is much smaller than advertised", "The battery dies within an hour",
                   "It makes an awful rattling noise", "Half the parts were missing from the box",
                   "The instructions were useless", "It overheats and feels unsafe"],
        "close": ["Waste of money.", "Returning it.", "Very poor quality.", "One star is too many.",
                  "Never again.", ""],
    },
    "neutral": {
        "open": ["The {p} is okay.", "Average {p}, nothing special.", "It is a {p}, it does what it says.",
                 "Decent {p} for everyday use.", "The {p} arrived as described.", "Mixed feelings about this {p}."],
        "detail": ["Delivery took about a week", "It comes in a plain box", "The colour is slightly different",
                   "It is neither great nor bad", "Works fine but feels a bit basic",
                   "Similar to the one I had before", "Some features are nice, others are missing",
                   "The size is as listed"],
        "close": ["Fine for the price.", "Might buy again, not sure.", "It will do for now.", "No complaints so far.",
                  ""],
    },
}
REVIEWS_PER_CLASS = {"positive": 140, "negative": 130, "neutral": 90}

GENRES = ["Comedy", "Drama", "Sci-Fi", "Thriller", "Animation", "Documentary"]
TITLE_WORDS = {
    "Comedy": ["The Wedding Mix-Up", "Office Pranksters", "My Neighbour the Mime", "Lunch Break Heist",
               "Uncle Bob Goes Camping", "The Accidental Mayor", "Karaoke Kings", "Pizza at Midnight",
               "Dog Days of Summer", "The Wrong Holiday"],
    "Drama": ["Letters from the Harbour", "The Long Winter", "A Quiet Inheritance", "The Last Train Home",
              "Salt and Stone", "Daughters of the Valley", "The Violin Teacher", "Borrowed Time",
              "Streets of Glass", "The Orchard"],
    "Sci-Fi": ["Orbit of Silence", "The Mars Gardener", "Signal from Vega", "Clockwork Ocean", "Neon Frontier",
               "The Quantum Diner", "Starship Nightshift", "Echoes of Europa", "The Last Android", "Gravity Well"],
    "Thriller": ["The Ninth Witness", "Cold Harbor", "No Exit on Route 9", "The Locked Study", "Blackout City",
                 "The Informant's Daughter", "Seven Hours in Prague", "Deep Cover", "The Silent Alarm",
                 "Midnight Ferry"],
    "Animation": ["Pip and the Paper Moon", "The Brave Little Kettle", "Dragons of Tea Hill", "Robo-Pup",
                  "The Cloud Painters", "Captain Whiskers", "Snowball Express", "The Lantern Fox",
                  "Tiny Giants", "Marbles in Space"],
    "Documentary": ["Secrets of the Reef", "Bread: A History", "The Chess Prodigies", "Life Above the Tree Line",
                    "Inside the Orchestra", "The Bicycle Revolution", "Coffee Roads", "Voices of the Desert",
                    "Building the Bridge", "The Honey Hunters"],
}
BLURBS = {"Comedy": "a light-hearted comedy full of mishaps and laughs",
          "Drama": "a moving family drama about loss and hope",
          "Sci-Fi": "a science fiction adventure among the stars",
          "Thriller": "a tense crime thriller with twists until the end",
          "Animation": "an animated family film with talking animals and friendship",
          "Documentary": "a documentary that explores the real world and its people"}
N_USERS = 150


def reviews(rng: random.Random) -> list[dict[str, str]]:
    rows, seen = [], set()
    for label, n in REVIEWS_PER_CLASS.items():
        parts = FRAGMENTS[label]
        while sum(1 for r in rows if r["sentiment"] == label) < n:
            product = rng.choice(PRODUCTS)
            text = " ".join(x for x in [rng.choice(parts["open"]).format(p=product) + "",
                                        rng.choice(parts["detail"]) + ".", rng.choice(parts["close"])] if x)
            if text not in seen:
                seen.add(text)
                rows.append({"review": text, "sentiment": label, "product": product})
    rng.shuffle(rows)
    return rows


def items() -> list[dict[str, str]]:
    rows = []
    for g, genre in enumerate(GENRES):
        for t, title in enumerate(TITLE_WORDS[genre]):
            second = GENRES[(g + 1 + t % 3) % len(GENRES)] if t % 4 == 0 else ""
            genres = "|".join(x for x in (genre, second) if x)
            rows.append({"movie_id": f"m{g * 10 + t + 1:03d}", "title": title, "genres": genres,
                         "description": f"{title}: {BLURBS[genre]}."})
    return rows


def interactions(rng: random.Random, catalogue: list[dict[str, str]]) -> list[dict[str, object]]:
    by_genre = {g: [r["movie_id"] for r in catalogue if r["genres"].split("|")[0] == g] for g in GENRES}
    rows = []
    for u in range(1, N_USERS + 1):
        likes = rng.sample(GENRES, 2)  # two favourite genres drive most of a user's history
        n = rng.randint(5, 25)
        clock = 1_704_067_200 + rng.randint(0, 90) * 86_400
        seen: set[str] = set()
        while len(seen) < n:
            genre = rng.choice(likes) if rng.random() < 0.8 else rng.choice(GENRES)
            pool = by_genre[genre]
            item = pool[min(int(rng.expovariate(0.35)), len(pool) - 1)]  # popular titles first in each genre
            if item in seen:
                continue
            seen.add(item)
            rating = rng.choice([4, 5, 5]) if genre in likes else rng.choice([1, 2, 3, 3])
            clock += rng.randint(3_600, 5 * 86_400)
            rows.append({"user_id": f"u{u:03d}", "movie_id": item, "rating": rating, "timestamp": clock})
    return rows


def write(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    rng = random.Random(SEED)
    write(HERE / "reviews.csv", reviews(rng))
    catalogue = items()
    write(HERE / "items.csv", catalogue)
    write(HERE / "interactions.csv", interactions(rng, catalogue))


if __name__ == "__main__":
    main()
