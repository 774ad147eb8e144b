"""Generate a monorepo like the one issue #23 measured: 72 projects, ~10 `.py` files each.

Every project has a `pyproject.toml` with the example ruff `lint` (rules E and F) and `format`,
a package of 7 to 12 modules plus one test module (8 to 13 files), and a few planted findings
(unused imports and variables, comparisons to None, undefined names), so a run has real work
and real findings. Deterministic: the same arguments write the same bytes.

Usage: python benchmarks/monorepo.py TARGET_DIR [--projects N]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

SEED = 23
PROJECTS = 72

PYPROJECT = """[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.11"

[tool.finecode.actions.lint]
handlers = [{{ source = "finecode_examples.ruff:lint", config = {{ select = ["E", "F"] }} }}]

[tool.finecode.actions.format]
handlers = [{{ source = "finecode_examples.ruff:format" }}]
"""

MODULE = '''"""{title} helpers."""

from __future__ import annotations

import json
{extra_import}

def load_{name}(text: str) -> dict[str, object]:
    """Parse a {name} record."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("a {name} record is an object")
    return data


def total_{name}(values: list[float]) -> float:
    """Sum the values, skipping negatives."""
    total = 0.0
    for value in values:
        if value < 0:
            continue
        total += value
    return total


class {cls}:
    """A {name} with a size."""

    def __init__(self, size: int = {size}) -> None:
        self.size = size

    def grow(self, by: int = 1) -> int:
        self.size += by
        return self.size
{findings}'''

TEST_MODULE = '''from {package}.{first} import total_{first}


def test_total():
    assert total_{first}([1.0, -2.0, 3.0]) == 4.0
'''

# Planted findings (rule code, text appended to a module); ruff reports each once.
FINDINGS = [
    ("F841", "\n\ndef unused_{n}() -> int:\n    scratch = {n}\n    return 0\n"),
    ("E711", "\n\ndef is_missing_{n}(value: object) -> bool:\n    return value == None\n"),
    ("F821", "\n\ndef broken_{n}() -> object:\n    return undefined_name_{n}\n"),
]
NAMES = ["order", "invoice", "sensor", "ticket", "payment", "review", "session", "device",
         "route", "parcel", "driver", "recipe", "upload", "alert", "comment", "lease"]


def generate(target: Path, projects: int = PROJECTS, seed: int = SEED) -> dict[str, int]:
    """Write the workspace under `target`; `{projects, files, findings}` it holds."""
    rng = random.Random(seed)
    files = findings = 0
    for index in range(projects):
        project = target / f"p{index:03d}"
        package = project / f"pkg{index:03d}"
        (project / "tests").mkdir(parents=True, exist_ok=True)
        package.mkdir(exist_ok=True)
        (project / "pyproject.toml").write_text(PYPROJECT.format(name=f"p{index:03d}"))
        (package / "__init__.py").write_text(f'"""Package {index}."""\n')
        names = rng.sample(NAMES, rng.randint(6, 11))
        for number, name in enumerate(names):
            planted = []
            if rng.random() < 0.4:
                extra_import = "import os\n"  # F401
                findings += 1
            else:
                extra_import = ""
            if rng.random() < 0.3:
                planted.append(rng.choice(FINDINGS)[1].format(n=number))
                findings += 1
            (package / f"{name}.py").write_text(MODULE.format(
                title=name.capitalize(), name=name, cls=name.capitalize(),
                size=rng.randint(1, 99), extra_import=extra_import, findings="".join(planted)))
        (project / "tests" / "test_total.py").write_text(
            TEST_MODULE.format(package=package.name, first=names[0]))
        files += len(names) + 2
    return {"projects": projects, "files": files, "findings": findings}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", type=Path)
    parser.add_argument("--projects", type=int, default=PROJECTS)
    args = parser.parse_args(argv)
    made = generate(args.target, args.projects)
    print(f"{made['projects']} projects, {made['files']} .py files, "
          f"{made['findings']} planted findings in {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
