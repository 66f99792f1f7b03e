"""The seeded task of the zoo's encoder-decoder: human-readable dates -> ISO 8601.

``the 3rd of March, 1987``, ``Mar 3 87``, ``3/3/1987``, ``Tuesday, March 3, 1987`` ...
all map to ``1987-03-03``. Conventions (so that every source has one answer):

- slashes are month/day/year (US): ``3/14/1987`` is 14 March; dots and dashes with a
  numeric month are day.month.year (European): ``14.3.1987``, ``14-03-1987``;
- a two-digit year ``yy`` means 19yy when yy >= 50 and 20yy otherwise, and is only
  generated for dates from 1950 to 2049;
- weekday names are always the true weekday of the date.

Dates run from 1900-01-01 to 2099-12-31. The validation set holds out WHOLE dates: a
seeded 5% of all calendar days never appear, in any format, in training.
"""
from __future__ import annotations

import datetime as dt
import random

START = dt.date(1900, 1, 1)
END = dt.date(2099, 12, 31)
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }"


def _y2(d: dt.date) -> str:
    return f"{d.year % 100:02d}"


def _mon(d):
    return MONTHS[d.month - 1]


def _mon3(d):
    return MONTHS[d.month - 1][:3]


def _wd(d):
    return DAYS[d.weekday()]


def _wd3(d):
    return DAYS[d.weekday()][:3]


# Each format: (name, needs two-digit-year range, function)
FORMATS = [
    ("the Nth of Month, YYYY", False, lambda d: f"the {ordinal(d.day)} of {_mon(d)}, {d.year}"),
    ("Nth Month YYYY", False, lambda d: f"{ordinal(d.day)} {_mon(d)} {d.year}"),
    ("D Month YYYY", False, lambda d: f"{d.day} {_mon(d)} {d.year}"),
    ("Month D, YYYY", False, lambda d: f"{_mon(d)} {d.day}, {d.year}"),
    ("Month Nth, YYYY", False, lambda d: f"{_mon(d)} {ordinal(d.day)}, {d.year}"),
    ("Mon D YYYY", False, lambda d: f"{_mon3(d)} {d.day} {d.year}"),
    ("Mon D YY", True, lambda d: f"{_mon3(d)} {d.day} {_y2(d)}"),
    ("D Mon YY", True, lambda d: f"{d.day} {_mon3(d)} {_y2(d)}"),
    ("D-Mon-YYYY", False, lambda d: f"{d.day:02d}-{_mon3(d)}-{d.year}"),
    ("M/D/YYYY", False, lambda d: f"{d.month}/{d.day}/{d.year}"),
    ("MM/DD/YYYY", False, lambda d: f"{d.month:02d}/{d.day:02d}/{d.year}"),
    ("M/D/YY", True, lambda d: f"{d.month}/{d.day}/{_y2(d)}"),
    ("D.M.YYYY", False, lambda d: f"{d.day}.{d.month}.{d.year}"),
    ("DD-MM-YYYY", False, lambda d: f"{d.day:02d}-{d.month:02d}-{d.year}"),
    ("Weekday, Month D, YYYY", False, lambda d: f"{_wd(d)}, {_mon(d)} {d.day}, {d.year}"),
    ("Weekday the Nth of Month YYYY", False,
     lambda d: f"{_wd(d)} the {ordinal(d.day)} of {_mon(d)} {d.year}"),
    ("Wkd, D Mon YYYY", False, lambda d: f"{_wd3(d)}, {d.day} {_mon3(d)} {d.year}"),
    ("Wkd Mon D YY", True, lambda d: f"{_wd3(d)} {_mon3(d)} {d.day} {_y2(d)}"),
    ("MONTH D YYYY", False, lambda d: f"{_mon(d).upper()} {d.day} {d.year}"),
    ("month d yyyy", False, lambda d: f"{_mon(d).lower()} {d.day} {d.year}"),
    ("YYYY Month D", False, lambda d: f"{d.year} {_mon(d)} {d.day}"),
]


def iso(d: dt.date) -> str:
    return d.isoformat()


def all_days() -> list[dt.date]:
    n = (END - START).days + 1
    return [START + dt.timedelta(days=i) for i in range(n)]


def split_days(seed: int = 0, val_fraction: float = 0.05) -> tuple[list[dt.date], list[dt.date]]:
    days = all_days()
    rng = random.Random(seed)
    val = set(rng.sample(range(len(days)), int(len(days) * val_fraction)))
    return ([d for i, d in enumerate(days) if i not in val],
            [d for i, d in enumerate(days) if i in val])


def render(d: dt.date, rng: random.Random) -> str:
    """One human-readable rendering of ``d``, format chosen by ``rng``."""
    while True:
        _name, short_year, fn = FORMATS[rng.randrange(len(FORMATS))]
        if short_year and not (1950 <= d.year <= 2049):
            continue
        return fn(d)


def make_pairs(days: list[dt.date], n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        d = days[rng.randrange(len(days))]
        out.append((render(d, rng), iso(d)))
    return out


def datasets(n_train: int, n_val: int, seed: int = 0):
    """(train pairs, validation pairs); validation dates never occur in training."""
    train_days, val_days = split_days(seed)
    return make_pairs(train_days, n_train, seed + 1), make_pairs(val_days, n_val, seed + 2)


def tokenizer_corpus(seed: int = 0, n: int = 20000) -> list[str]:
    """Text to train the Unigram tokenizer on: every format of many dates plus targets."""
    rng = random.Random(seed + 3)
    days = all_days()
    lines = []
    for _ in range(n):
        d = days[rng.randrange(len(days))]
        lines.append(render(d, rng))
        lines.append(iso(d))
    for _name, _short, fn in FORMATS:  # every month / weekday spelled at least once
        for m in range(1, 13):
            d = dt.date(1987, m, 3 + m)
            lines.append(fn(d))
    return lines


if __name__ == "__main__":
    for s, t in make_pairs(all_days(), 20, 1):
        print(f"{s!r:45} -> {t}")
