"""Generate the example workspace: three projects of deliberately uneven size.

Uneven sizes (5, 20 and 60 package files, plus one test module each) are the point: they make
proportional progress aggregation visible in the WM. The output is deterministic (seeded), so
rerunning this script reproduces the committed files byte for byte.

Usage: python examples/make_workspace.py [TARGET_DIR]   (default: examples/workspace)
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

SEED = 20240610
LINE_LENGTH = 88

NOUNS: tuple[tuple[str, str], ...] = (
    ("order", "orders"),
    ("invoice", "invoices"),
    ("customer", "customers"),
    ("shipment", "shipments"),
    ("sensor", "sensors"),
    ("reading", "readings"),
    ("ticket", "tickets"),
    ("account", "accounts"),
    ("payment", "payments"),
    ("product", "products"),
    ("review", "reviews"),
    ("session", "sessions"),
    ("device", "devices"),
    ("job", "jobs"),
    ("message", "messages"),
    ("batch", "batches"),
    ("route", "routes"),
    ("booking", "bookings"),
    ("article", "articles"),
    ("comment", "comments"),
    ("alert", "alerts"),
    ("upload", "uploads"),
    ("playlist", "playlists"),
    ("recipe", "recipes"),
    ("lease", "leases"),
    ("claim", "claims"),
    ("vehicle", "vehicles"),
    ("driver", "drivers"),
    ("depot", "depots"),
    ("parcel", "parcels"),
)

MODEL_FIELDS: tuple[str, ...] = (
    'name: str = ""',
    "quantity: int = 0",
    "price: float = 0.0",
    'status: str = "new"',
    'notes: str = ""',
    "priority: int = 1",
    "archived: bool = False",
    'owner: str = "system"',
)

# Each template is one realistic module kind. ``$Noun``/``$noun``/``$nouns``/``$NOUN``
# name the domain object; the other placeholders vary numbers between modules.
TEMPLATES: dict[str, str] = {
    "model": '''"""$Noun record and its (de)serialisation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class $Noun:
    """A single $noun as stored and sent over the wire."""

    id: int
$fields
    tags: list[str] = field(default_factory=list)

    def validate(self) -> list[str]:
        """Return human-readable problems; an empty list means valid."""
        problems = []
        if self.id <= 0:
            problems.append("id must be positive")
        if len(self.tags) > $small:
            problems.append("too many tags")
        return problems

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> $Noun:
        known = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        return cls(**known)
''',
    "repository": '''"""In-memory storage for $noun records, used by tests and local runs."""

from __future__ import annotations

from collections.abc import Iterator


class ${Noun}NotFound(KeyError):
    """Raised when a $noun id is not in the repository."""


class ${Noun}Repository:
    """Keeps $nouns in insertion order and hands out ids."""

    def __init__(self) -> None:
        self._items: dict[int, dict[str, object]] = {}
        self._next_id = $large

    def add(self, item: dict[str, object]) -> int:
        item_id = self._next_id
        self._items[item_id] = dict(item, id=item_id)
        self._next_id += 1
        return item_id

    def get(self, item_id: int) -> dict[str, object]:
        try:
            return self._items[item_id]
        except KeyError:
            raise ${Noun}NotFound(item_id) from None

    def delete(self, item_id: int) -> None:
        self.get(item_id)
        del self._items[item_id]

    def __iter__(self) -> Iterator[dict[str, object]]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)
''',
    "cache": '''"""A small TTL cache for $noun lookups that are expensive to repeat."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")

DEFAULT_TTL = $medium.0


class ${Noun}Cache(Generic[V]):
    """Maps keys to values that expire ``ttl`` seconds after being stored."""

    def __init__(
        self, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, V]] = {}

    def get(self, key: str) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if self._clock() >= expires_at:
            del self._entries[key]
            return None
        return value

    def put(self, key: str, value: V) -> None:
        self._entries[key] = (self._clock() + self._ttl, value)

    def get_or_load(self, key: str, load: Callable[[str], V]) -> V:
        value = self.get(key)
        if value is None:
            value = load(key)
            self.put(key, value)
        return value

    def purge(self) -> int:
        """Drop expired entries; return how many were removed."""
        now = self._clock()
        expired = [key for key, entry in self._entries.items() if entry[0] <= now]
        for key in expired:
            del self._entries[key]
        return len(expired)
''',
    "parser": '''"""Parse ``key = value`` $noun definitions from plain-text files."""

from __future__ import annotations

from pathlib import Path

COMMENT_PREFIXES = ("#", ";")


class ${Noun}ParseError(ValueError):
    def __init__(self, line_number: int, line: str) -> None:
        super().__init__(f"line {line_number}: cannot parse {line!r}")
        self.line_number = line_number


def parse_line(line: str) -> tuple[str, str] | None:
    stripped = line.strip()
    if not stripped or stripped.startswith(COMMENT_PREFIXES):
        return None
    key, sep, value = stripped.partition("=")
    if not sep or not key.strip():
        raise ValueError(line)
    return key.strip().lower(), value.strip()


def parse_text(text: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            pair = parse_line(line)
        except ValueError:
            raise ${Noun}ParseError(number, line) from None
        if pair is not None:
            key, value = pair
            result[key] = value
    return result


def load_${noun}_file(path: Path) -> dict[str, str]:
    return parse_text(path.read_text(encoding="utf-8"))
''',
    "retry": '''"""Retry helper for flaky $noun backend calls."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

MAX_ATTEMPTS = $small
BASE_DELAY = 0.$small


class ${Noun}Unavailable(RuntimeError):
    """The $noun backend kept failing after every retry."""


def backoff_delays(
    attempts: int = MAX_ATTEMPTS, base: float = BASE_DELAY
) -> list[float]:
    """Exponential delays with jitter, so that clients do not retry in lockstep."""
    return [base * 2**attempt + random.uniform(0, base) for attempt in range(attempts)]


async def call_with_retry(operation: Callable[[], Awaitable[T]]) -> T:
    last_error: Exception | None = None
    for delay in [*backoff_delays(), None]:
        try:
            return await operation()
        except (ConnectionError, TimeoutError) as error:
            last_error = error
            if delay is None:
                break
            await asyncio.sleep(delay)
    raise ${Noun}Unavailable(str(last_error)) from last_error
''',
    "text": '''"""Text helpers for $noun titles and descriptions."""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[^a-z0-9]+")
MAX_TITLE = $large


def slugify(text: str) -> str:
    normalized = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NON_WORD.sub("-", normalized.lower()).strip("-")


def truncate(text: str, limit: int = MAX_TITLE, suffix: str = "...") -> str:
    if len(text) <= limit:
        return text
    return text[: limit - len(suffix)].rstrip() + suffix


def word_counts(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for word in re.findall(r"[a-z']+", text.lower()):
        counts[word] = counts.get(word, 0) + 1
    return counts


def ${noun}_title(name: str, number: int) -> str:
    return truncate(f"$Noun #{number}: {name.strip()}")
''',
    "report": '''"""Export $nouns as CSV for spreadsheets."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping

COLUMNS = ("id", "name", "status", "total")


def to_csv(
    rows: Iterable[Mapping[str, object]], columns: tuple[str, ...] = COLUMNS
) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: row.get(column, "") for column in columns})
    return buffer.getvalue()


def totals(rows: Iterable[Mapping[str, object]], column: str = "total") -> float:
    total = 0.0
    for row in rows:
        value = row.get(column)
        if isinstance(value, (int, float)):
            total += value
    return total


class ${Noun}Report:
    def __init__(self, title: str) -> None:
        self.title = title
        self.rows: list[dict[str, object]] = []

    def add(self, **values: object) -> None:
        self.rows.append(values)

    def render(self) -> str:
        return f"# {self.title}\\n" + to_csv(self.rows)
''',
    "events": '''"""A synchronous event bus for $noun lifecycle notifications."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

Handler = Callable[["${Noun}Event"], None]


@dataclass(frozen=True)
class ${Noun}Event:
    name: str
    ${noun}_id: int
    payload: dict[str, object] = field(default_factory=dict)


class EventBus:
    def __init__(self) -> None:
        self._handlers: defaultdict[str, list[Handler]] = defaultdict(list)
        self.delivered = 0

    def subscribe(self, name: str, handler: Handler) -> Callable[[], None]:
        self._handlers[name].append(handler)
        return lambda: self._handlers[name].remove(handler)

    def publish(self, event: ${Noun}Event) -> int:
        handlers = [*self._handlers[event.name], *self._handlers["*"]]
        for handler in handlers:
            handler(event)
        self.delivered += len(handlers)
        return len(handlers)
''',
    "validators": '''"""Input validation for $noun forms."""

from __future__ import annotations

import re

EMAIL = re.compile(r"^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$$", re.IGNORECASE)
MAX_NAME = $large


def check_name(name: str) -> list[str]:
    errors = []
    if not name.strip():
        errors.append("name is required")
    elif len(name) > MAX_NAME:
        errors.append(f"name is longer than {MAX_NAME} characters")
    return errors


def check_email(email: str) -> list[str]:
    return [] if EMAIL.match(email) else [f"{email!r} is not an email address"]


def check_quantity(value: str) -> list[str]:
    try:
        quantity = int(value)
    except ValueError:
        return ["quantity must be a whole number"]
    return [] if 0 < quantity <= $medium else ["quantity is out of range"]


def validate_${noun}(form: dict[str, str]) -> dict[str, list[str]]:
    """Validate every field; only fields with problems appear in the result."""
    checks = {
        "name": check_name,
        "email": check_email,
        "quantity": check_quantity,
    }
    problems = {key: check(form.get(key, "")) for key, check in checks.items()}
    return {key: errors for key, errors in problems.items() if errors}
''',
    "lifecycle": '''"""Lifecycle of a $noun: which status changes are allowed."""

from __future__ import annotations

import enum


class ${Noun}Status(enum.Enum):
    DRAFT = "draft"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


_ALLOWED = {
    ("draft", "active"),
    ("draft", "closed"),
    ("active", "suspended"),
    ("active", "closed"),
    ("suspended", "active"),
    ("suspended", "closed"),
}


class InvalidTransition(ValueError):
    pass


class ${Noun}Lifecycle:
    def __init__(self, status: ${Noun}Status = ${Noun}Status.DRAFT) -> None:
        self.status = status
        self.history: list[${Noun}Status] = [status]

    def can_move_to(self, target: ${Noun}Status) -> bool:
        return (self.status.value, target.value) in _ALLOWED

    def move_to(self, target: ${Noun}Status) -> None:
        if not self.can_move_to(target):
            raise InvalidTransition(f"{self.status.value} -> {target.value}")
        self.status = target
        self.history.append(target)

    @property
    def is_final(self) -> bool:
        return self.status is ${Noun}Status.CLOSED
''',
    "settings": '''"""Load $noun service settings from JSON, with defaults and env overrides."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 8$large,
    "workers": $small,
    "debug": False,
}
ENV_PREFIX = "${NOUN}_"


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base``."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def from_env(environ: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, raw in environ.items():
        if name.startswith(ENV_PREFIX):
            key = name[len(ENV_PREFIX) :].lower()
            result[key] = int(raw) if raw.isdigit() else raw
    return result


def load_${noun}_settings(path: Path | None = None) -> dict[str, Any]:
    settings = dict(DEFAULTS)
    if path is not None and path.exists():
        settings = merge(settings, json.loads(path.read_text(encoding="utf-8")))
    return merge(settings, from_env(dict(os.environ)))
''',
    "metrics": '''"""Summary statistics over $noun measurements."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence


def mean(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("mean of an empty sequence")
    return sum(values) / len(values)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; ``fraction`` is between 0 and 1."""
    if not 0 <= fraction <= 1:
        raise ValueError("fraction must be within [0, 1]")
    ordered = sorted(values)
    rank = max(math.ceil(fraction * len(ordered)) - 1, 0)
    return ordered[rank]


def histogram(values: Sequence[float], bucket: float = $medium.0) -> dict[float, int]:
    counts = Counter(math.floor(value / bucket) * bucket for value in values)
    return dict(sorted(counts.items()))


def summarize_${nouns}(values: Sequence[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "mean": mean(values),
        "p50": percentile(values, 0.5),
        "p95": percentile(values, 0.95),
    }
''',
    "ratelimit": '''"""Token-bucket rate limiting for outgoing $noun requests."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """Allows ``rate`` operations per second with bursts up to ``capacity``."""

    def __init__(
        self,
        rate: float,
        capacity: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = float(capacity)
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._updated
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
        self._updated = now

    def try_acquire(self, tokens: int = 1) -> bool:
        self._refill()
        if self._tokens >= tokens:
            self._tokens -= tokens
            return True
        return False

    def wait_time(self, tokens: int = 1) -> float:
        self._refill()
        missing = tokens - self._tokens
        return max(missing / self.rate, 0.0)


${NOUN}_LIMIT = TokenBucket(rate=$medium.0, capacity=$large)
''',
    "cli": '''"""Command-line entry point for $noun maintenance tasks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_${noun}_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="$noun-admin")
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="write $nouns to a file")
    export.add_argument("target")
    export.add_argument("--limit", type=int, default=$large)
    purge = sub.add_parser("purge", help="delete $nouns older than N days")
    purge.add_argument("--days", type=int, default=$medium)
    purge.add_argument("--dry-run", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_${noun}_parser().parse_args(argv)
    if args.command == "export":
        print(f"exporting up to {args.limit} $nouns to {args.target}")
    elif args.dry_run:
        print(f"would purge $nouns older than {args.days} days")
    else:
        print(f"purging $nouns older than {args.days} days")
    return 0


if __name__ == "__main__":
    sys.exit(main())
''',
    "pages": '''"""Offset pagination over $noun listings."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

PAGE_SIZE = $medium


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    number: int
    total_pages: int

    @property
    def has_next(self) -> bool:
        return self.number < self.total_pages


def page_count(total: int, size: int = PAGE_SIZE) -> int:
    return max((total + size - 1) // size, 1)


def get_page(items: Sequence[T], number: int, size: int = PAGE_SIZE) -> Page[T]:
    if number < 1:
        raise ValueError("page numbers start at 1")
    start = (number - 1) * size
    return Page(items[start : start + size], number, page_count(len(items), size))


def iter_${noun}_pages(items: Sequence[T], size: int = PAGE_SIZE) -> Iterator[Page[T]]:
    for number in range(1, page_count(len(items), size) + 1):
        yield get_page(items, number, size)
''',
}

# The name each module kind re-exports from its package's ``__init__.py``.
EXPORTS: dict[str, str] = {
    "model": "$Noun",
    "repository": "${Noun}Repository",
    "cache": "${Noun}Cache",
    "parser": "load_${noun}_file",
    "retry": "${Noun}Unavailable",
    "text": "${noun}_title",
    "report": "${Noun}Report",
    "events": "${Noun}Event",
    "validators": "validate_${noun}",
    "lifecycle": "${Noun}Lifecycle",
    "settings": "load_${noun}_settings",
    "metrics": "summarize_${nouns}",
    "ratelimit": "${NOUN}_LIMIT",
    "cli": "build_${noun}_parser",
    "pages": "iter_${noun}_pages",
}

INIT_TEMPLATE = '''"""$doc"""

from __future__ import annotations

$imports

__all__ = [
$names
]
'''

# Deliberate findings, so that lint and format have something to report.
UNUSED_IMPORTS = ("import logging", "import itertools", "from functools import partial")
UNDEFINED_NAME = '''

def describe_$noun(${noun}_id: int) -> str:
    """One-line description used in log messages."""
    return f"$noun {${noun}_id} ({STATUS_LABELS[${noun}_id % 3]})"
'''
UNFORMATTED = "\n\n${NOUN}_RETRY_DELAYS = [ 1,2,  4 ]\n"

# One test per module of these kinds, calling it through its module (``$mod``). A planted
# failure swaps in a stale expectation (``FAILING``), or calls the function that has a planted
# undefined name (``CALLS_UNDEFINED``).
TESTS: dict[str, str] = {
    "model": '    assert $mod.$Noun(id=0).validate() == ["id must be positive"]\n',
    "repository": (
        "    repository = $mod.${Noun}Repository()\n"
        '    item_id = repository.add({"name": "first"})\n'
        '    assert repository.get(item_id)["name"] == "first"\n'
        "    assert len(repository) == 1\n"
    ),
    "cache": (
        "    cache = $mod.${Noun}Cache(ttl=10, clock=lambda: 0.0)\n"
        '    cache.put("key", 1)\n'
        '    assert cache.get("key") == 1\n'
    ),
    "parser": '    assert $mod.parse_text("a = 1\\n# note\\nB = 2") == {"a": "1", "b": "2"}\n',
    "text": '    assert $mod.slugify("Hello, World!") == "hello-world"\n',
    "metrics": "    assert $mod.percentile([1, 2, 3, 4], 0.5) == 2\n",
    "pages": "    assert $mod.page_count(25, size=10) == 3\n",
    "lifecycle": (
        "    lifecycle = $mod.${Noun}Lifecycle()\n"
        "    lifecycle.move_to($mod.${Noun}Status.ACTIVE)\n"
        "    assert lifecycle.history[-1] is $mod.${Noun}Status.ACTIVE\n"
    ),
}
FAILING: dict[str, str] = {
    "text": '    assert $mod.slugify("Hello, World!") == "hello_world"\n',
    "metrics": "    assert $mod.percentile([1, 2, 3, 4], 0.5) == 3\n",
    "pages": "    assert $mod.page_count(25, size=10) == 2\n",
    "parser": '    assert $mod.parse_text("a = 1") == {"A": "1"}\n',
}
CALLS_UNDEFINED = '    assert $mod.describe_$noun(1).startswith("$noun 1")\n'
TEST_HEADER = '''"""Tests of $package; some fail on purpose, like the planted lint findings."""

import $package
'''
EXPORTS_TEST = '''

def test_exports_are_importable():
    for name in $package.__all__:
        assert hasattr($package, name), name
'''


@dataclass(frozen=True)
class ProjectSpec:
    """One project of the workspace: its layout and how many findings to plant."""

    name: str
    package: str
    description: str
    # Subpackage name ("" for the top-level package) -> number of plain modules.
    layout: dict[str, int]
    unused_imports: int
    undefined_names: int
    unformatted: int
    # Failing tests: stale expectations, and tests that call a planted undefined name.
    stale_tests: int = 0
    undefined_tests: int = 0


PROJECTS = (
    ProjectSpec(
        name="small",
        package="tinytools",
        description="A handful of helpers.",
        layout={"": 4},
        unused_imports=1,
        undefined_names=1,
        unformatted=1,
    ),
    ProjectSpec(
        name="medium",
        package="orderdesk",
        description="An order desk service.",
        layout={"": 13, "storage": 5},
        unused_imports=2,
        undefined_names=1,
        unformatted=2,
        stale_tests=1,
    ),
    ProjectSpec(
        name="large",
        package="fleetops",
        description="Fleet operations platform.",
        layout={"": 4, "core": 10, "billing": 10, "routing": 10, "telemetry": 10, "api": 10},
        unused_imports=3,
        undefined_names=2,
        unformatted=3,
        stale_tests=1,
        undefined_tests=1,
    ),
)

PYPROJECT_TEMPLATE = """[project]
name = "$name"
version = "0.1.0"
description = "$description"
requires-python = ">=3.11"

[tool.finecode]

[tool.finecode.actions.lint]
handlers = [
  { source = "finecode_examples.ruff:lint", config = { select = ["E", "F"] } },
]

[tool.finecode.actions.format]
handlers = [{ source = "finecode_examples.ruff:format" }]

[tool.finecode.actions.check]
handlers = [{ source = "finecode_examples.check:check" }]

[tool.finecode.actions.stats]
handlers = [{ source = "finecode_examples.stats:stats" }]

# The tests need no pytest plugins: loading every plugin of the environment FineCode runs in
# (its own test extra, say) would cost more than the tests.
[[tool.finecode.actions.test.handlers]]
source = "finecode_examples.testing:test"
config = { env = { PYTEST_DISABLE_PLUGIN_AUTOLOAD = "1" } }

[[tool.finecode.actions.discover_tests.handlers]]
source = "finecode_examples.testing:discover_tests"
config = { env = { PYTEST_DISABLE_PLUGIN_AUTOLOAD = "1" } }

[tool.finecode.actions.prepare_env]
handlers = [{ source = "finecode_examples.envs:prepare_env" }]

[tool.pytest.ini_options]
testpaths = ["tests"]

# Pinned here so that results do not depend on a ruff config in a parent directory.
[tool.ruff]
line-length = $line_length
"""


@dataclass
class Module:
    """One generated module before it is written out."""

    path: str
    kind: str
    names: dict[str, str]
    source: str
    findings: list[str] = field(default_factory=list)


def noun_names(noun: str, plural: str) -> dict[str, str]:
    """Template substitutions naming the domain object."""
    return {"noun": noun, "nouns": plural, "Noun": noun.capitalize(), "NOUN": noun.upper()}


def plan_modules(spec: ProjectSpec, rng: random.Random) -> list[Module]:
    """Choose a distinct (noun, kind) pair for every plain module of the project."""
    pairs = [(noun, kind) for noun in NOUNS for kind in TEMPLATES]
    rng.shuffle(pairs)
    chosen = iter(pairs)
    modules: list[Module] = []
    for subpackage, count in spec.layout.items():
        folder = "/".join(part for part in (spec.package, subpackage) if part)
        for (noun, plural), kind in (next(chosen) for _ in range(count)):
            names = noun_names(noun, plural)
            values = {
                **names,
                "small": str(rng.randint(2, 9)),
                "medium": str(rng.randint(10, 99)),
                "large": str(rng.randint(100, 999)),
                "fields": "\n".join(
                    f"    {line}" for line in rng.sample(MODEL_FIELDS, rng.randint(2, 4))
                ),
            }
            source = Template(TEMPLATES[kind]).substitute(values)
            modules.append(Module(f"{folder}/{noun}_{kind}.py", kind, names, source))
    return modules


def plant_findings(spec: ProjectSpec, modules: list[Module], rng: random.Random) -> None:
    """Add the project's deliberate lint and format findings to randomly chosen modules."""
    plan = (
        ["F401"] * spec.unused_imports
        + ["F821"] * spec.undefined_names
        + ["format"] * spec.unformatted
    )
    for finding, module in zip(plan, rng.sample(modules, len(plan)), strict=True):
        module.findings.append(finding)
        if finding == "F401":
            head, sep, tail = module.source.partition("from __future__ import annotations\n\n")
            module.source = f"{head}{sep}{rng.choice(UNUSED_IMPORTS)}\n{tail}"
        elif finding == "F821":
            module.source += Template(UNDEFINED_NAME).substitute(module.names)
        else:
            module.source += Template(UNFORMATTED).substitute(module.names)


def init_modules(spec: ProjectSpec, modules: list[Module]) -> Iterator[tuple[str, str]]:
    """Yield ``(path, source)`` of each package's ``__init__.py``, re-exporting its modules."""
    for subpackage in spec.layout:
        folder = "/".join(part for part in (spec.package, subpackage) if part)
        imports: list[str] = []
        names: list[str] = []
        if not subpackage:
            children = sorted(name for name in spec.layout if name)
            if children:
                imports.append(f"from . import {', '.join(children)}")
                names.extend(children)
        for module in modules:
            if module.path.rpartition("/")[0] == folder:
                exported = Template(EXPORTS[module.kind]).substitute(module.names)
                stem = Path(module.path).stem
                imports.append(f"from .{stem} import {exported}")
                names.append(exported)
        doc = spec.description if not subpackage else f"{subpackage.capitalize()} components."
        source = Template(INIT_TEMPLATE).substitute(
            doc=doc,
            imports="\n".join(imports),
            names="\n".join(f'    "{name}",' for name in names),
        )
        yield f"{folder}/__init__.py", source


def test_module(spec: ProjectSpec, modules: list[Module]) -> tuple[str, list[dict[str, object]]]:
    """The project's test module and the failures planted in it (path, line, test).

    The failing tests are the first eligible modules in path order, so choosing them draws
    nothing from the generator's random sequence: the rest of the workspace stays the same.
    """
    ordered = sorted(modules, key=lambda m: m.path)
    undefined = [m for m in ordered if "F821" in m.findings][: spec.undefined_tests]
    stale = [m for m in ordered if m.kind in FAILING][: spec.stale_tests]
    tests: list[tuple[Module, str, str, bool]] = []  # (module, test name, body, planted failure)
    for module in ordered:
        if module.kind in TESTS:
            body = FAILING[module.kind] if module in stale else TESTS[module.kind]
            tests.append((module, f"test_{Path(module.path).stem}", body, module in stale))
    for module in undefined:
        name = f"test_{Path(module.path).stem}_description"
        tests.append((module, name, CALLS_UNDEFINED, True))
    imports = sorted(
        {f"from {_dotted(module.path.rpartition('/')[0])} import {Path(module.path).stem}"
         for module, *_ in tests}
    )
    source = Template(TEST_HEADER).substitute(package=spec.package)
    source += "".join(f"{line}\n" for line in imports)
    source += Template(EXPORTS_TEST).substitute(package=spec.package)
    failures: list[dict[str, object]] = []
    path = f"tests/test_{spec.package}.py"
    for module, name, body, failing in tests:
        names = {**module.names, "mod": Path(module.path).stem}
        source += f"\n\ndef {name}():\n{Template(body).substitute(names)}"
        if failing:
            # The failing assertion is the test's last line.
            failures.append({"path": path, "line": source.count("\n"), "test": name})
    return source, failures


def _dotted(folder: str) -> str:
    return folder.replace("/", ".")


def generate(target: Path) -> dict[str, object]:
    """Write every project under ``target``; return what was planted, per project."""
    rng = random.Random(SEED)
    expected: dict[str, object] = {}
    for spec in PROJECTS:
        project = target / spec.name
        if project.exists():
            shutil.rmtree(project)
        modules = plan_modules(spec, rng)
        plant_findings(spec, modules, rng)
        tests, failures = test_module(spec, modules)
        files = [*init_modules(spec, modules), *((m.path, m.source) for m in modules),
                 (f"tests/test_{spec.package}.py", tests)]
        for relative, source in files:
            path = project / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source, encoding="utf-8")
        pyproject = Template(PYPROJECT_TEMPLATE).substitute(
            name=spec.name, description=spec.description, line_length=LINE_LENGTH
        )
        (project / "pyproject.toml").write_text(pyproject, encoding="utf-8")
        expected[spec.name] = {
            "files": len(files),
            "lint": [
                {"path": m.path, "code": code}
                for m in sorted(modules, key=lambda m: m.path)
                for code in m.findings
                if code != "format"
            ],
            "would_change": sorted(m.path for m in modules if "format" in m.findings),
            "tests": {"collected": tests.count("\ndef test_"), "failed": failures},
        }
    return expected


def main(argv: list[str]) -> int:
    target = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent / "workspace"
    target.mkdir(parents=True, exist_ok=True)
    expected = generate(target)
    (target / "expected.json").write_text(json.dumps(expected, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {', '.join(spec.name for spec in PROJECTS)} to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
