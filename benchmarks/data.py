"""The photo-timeline data set of BENCHMARKS.md, generated from a seed and streamed.

U users, each a root entity ``User:<name>``; each user owns P photos, children
``User:<name>/Photo:<id>`` with the properties ``user`` (str), ``caption`` (~40 chars),
``date`` (timestamp), ``likes`` (int), ``tags`` (0-3 words of a 50-word vocabulary) and
``image`` (2 KiB of bytes, excluded from indexes).

Every user's photos come from a generator seeded by (run seed, user number), so any slice
of the data set can be produced on its own and in any order, and nothing holds more than
one batch in memory (the 1M-photo load of W10 must stay under 300 MB). Photo ids are the
photo's global number plus one, so a key is computed from a number without a look-up.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

__all__ = [
    "CAPTION_WORDS",
    "EXCLUDED",
    "INDEX_YAML",
    "PHOTO_PROPERTIES",
    "VOCABULARY",
    "DataSet",
    "PhotoRecord",
    "batched",
    "counter_name",
    "write_index_yaml",
]

T = TypeVar("T")


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# 50 tag words (BENCHMARKS.md: "a vocabulary of 50").
VOCABULARY = _words(
    """
    beach sunset mountain city night food coffee dog cat bird forest river lake snow rain
    bridge street market museum park garden flower tree sky cloud car train bike boat plane
    friends family party concert sport football hiking camping road desert island castle
    church tower harbor village festival portrait selfie wedding
    """
)
assert len(VOCABULARY) == 50

CAPTION_WORDS = VOCABULARY + _words(
    "a the with at in on my our best last first great lovely old new day trip view time walk"
)

# Property order matters: datastore_lite stores an Entity's properties in insertion order,
# and the raw baseline must produce byte-identical bodies.
PHOTO_PROPERTIES = ("user", "caption", "date", "likes", "tags", "image")
EXCLUDED = frozenset({"image"})
IMAGE_BYTES = 2048
LIKES_RANGE = 1000  # likes < 100 matches ~10% of photos (W9)

_EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
_SPAN_MICROS = 5 * 365 * 24 * 3600 * 1_000_000

INDEX_YAML = """\
# Composite indexes of the benchmark run (BENCHMARKS.md, "Data set").
indexes:
- kind: Photo
  ancestor: yes
  properties:
  - name: date
    direction: desc
- kind: Photo
  properties:
  - name: tags
  - name: date
    direction: desc
"""


@dataclass(frozen=True, slots=True)
class PhotoRecord:
    """One photo, independent of any client library."""

    user: str
    id: int
    caption: str
    date: dt.datetime
    likes: int
    tags: list[str]
    image: bytes

    def properties(self) -> dict[str, object]:
        """The entity's properties, in the order every implementation stores them."""
        return {
            "user": self.user,
            "caption": self.caption,
            "date": self.date,
            "likes": self.likes,
            "tags": list(self.tags),
            "image": self.image,
        }


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of ``size`` consecutive items (the last may be shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def counter_name(i: int) -> str:
    """The name of W7's i-th counter (``Counter:<name>``, a root entity: its own group)."""
    return f"c{i:07d}"


def _caption(rng: random.Random) -> str:
    words: list[str] = []
    length = -1
    while length < 36:
        word = rng.choice(CAPTION_WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:44]


def make_photo(rng: random.Random, user: str, photo_id: int) -> PhotoRecord:
    """One photo drawn from ``rng``."""
    caption = _caption(rng)
    date = _EPOCH + dt.timedelta(microseconds=rng.randrange(_SPAN_MICROS))
    likes = rng.randrange(LIKES_RANGE)
    tags = rng.sample(VOCABULARY, rng.randrange(4))
    image = rng.randbytes(IMAGE_BYTES)
    return PhotoRecord(user, photo_id, caption, date, likes, tags, image)


@dataclass(frozen=True)
class DataSet:
    """``photos`` photos, ``per_user`` per user (the last user may have fewer).

    Args:
        photos: Total number of photos.
        per_user: Photos per user (P).
        seed: The run's seed; the same seed gives the same bytes.
    """

    photos: int
    per_user: int = 100
    seed: int = 20261122

    @property
    def users(self) -> int:
        """U: the number of users owning the photos."""
        return -(-self.photos // self.per_user)

    @staticmethod
    def user_name(number: int) -> str:
        return f"user{number:07d}"

    def photo_path(self, index: int) -> tuple[str, str, str, int]:
        """The key path of photo number ``index`` (0-based)."""
        return ("User", self.user_name(index // self.per_user), "Photo", index + 1)

    def user_names(self, start: int = 0, stop: int | None = None) -> Iterator[str]:
        """Names of users ``start`` to ``stop`` (default: every user)."""
        for number in range(start, self.users if stop is None else stop):
            yield self.user_name(number)

    def photo_records(self, start: int = 0, stop: int | None = None) -> Iterator[PhotoRecord]:
        """Photos number ``start`` to ``stop`` (default: all), streamed user by user."""
        stop = self.photos if stop is None else stop
        per_user = self.per_user
        for number in range(start // per_user, -(-stop // per_user)):
            rng = random.Random((self.seed << 32) ^ number)
            name = self.user_name(number)
            first = number * per_user
            for index in range(first, min(first + per_user, self.photos)):
                photo = make_photo(rng, name, index + 1)
                if start <= index < stop:
                    yield photo

    def extra_photo(self, prefix: str, number: int) -> PhotoRecord:
        """A photo outside the data set, under its own new user ``<prefix><number>`` (W2)."""
        rng = random.Random(f"{self.seed}:{prefix}:{number}")
        return make_photo(rng, f"{prefix}{number:07d}", 1)


def write_index_yaml(directory: str) -> str:
    """Write the run's ``index.yaml`` into ``directory``; return its path."""
    path = os.path.join(directory, "index.yaml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(INDEX_YAML)
    return path
