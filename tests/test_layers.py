"""The import contracts say the picture, and break when a layer is skipped.

`lint-imports` runs on a copy of the project with one import planted where the picture
forbids it: it must fail and name that import. The contracts' lists of forbidden modules
must name every module of the project outside what each layer may import, so that a new
module at the top of `bot/` is not quietly allowed to anyone.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# `lint-imports`, run by this interpreter (whatever its scripts' folder is).
LINT_IMPORTS = [
    sys.executable,
    "-c",
    "import sys; from importlinter.cli import lint_imports_command;"
    " sys.exit(lint_imports_command())",
]


def contracts() -> dict[str, dict[str, object]]:
    """The import contracts of pyproject.toml, by name."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {c["name"]: c for c in config["tool"]["importlinter"]["contracts"]}


def project_modules() -> set[str]:
    """The project's top-level parts: each module and sub-package of `bot`, and the
    `handlers` and `storage` packages."""
    found = {"handlers", "storage"}
    for path in (ROOT / "bot").iterdir():
        if path.suffix == ".py" and path.stem != "__init__":
            found.add(f"bot.{path.stem}")
        elif path.is_dir() and (path / "__init__.py").exists():
            found.add(f"bot.{path.name}")
    return found


def lint_copy(tmp_path: Path, planted: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `lint-imports` on a copy of the project with `planted` lines appended to files."""
    for folder in ("bot", "handlers", "storage"):
        shutil.copytree(
            ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for name, line in planted.items():
        with (tmp_path / name).open("a") as module:
            module.write(f"\n{line}  # planted\n")
    return subprocess.run(
        [*LINT_IMPORTS, "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_project_as_it_is_keeps_every_contract(tmp_path: Path) -> None:
    result = lint_copy(tmp_path, {})
    assert result.returncode == 0, result.stdout
    assert "0 broken" in result.stdout


PLANTED = [
    (
        "handlers/home.py",
        "import storage.errors",
        "Handlers import only the domain and the Slack side (and their own package)",
        "handlers.home -> storage.errors",
    ),
    (
        "handlers/endings.py",
        "from bot import settings",
        "Handlers import only the domain and the Slack side (and their own package)",
        "handlers.endings -> bot.settings",
    ),
    (
        "bot/sharing/policy.py",
        "import bot.slack.texts",
        "The domain imports the cloud client and storage, never Slack, settings or metrics",
        "bot.sharing.policy -> bot.slack.texts",
    ),
    (
        "bot/slack/views.py",
        "import storage.grants",
        "The Slack side imports only the domain (and itself)",
        "bot.slack.views -> storage.grants",
    ),
    (
        "bot/slack/texts.py",
        "from bot import metrics",
        "The Slack side imports only the domain (and itself)",
        "bot.slack.texts -> bot.metrics",
    ),
    (
        "storage/grants.py",
        "import bot.sharing.policy",
        "Storage knows nothing above it but the domain's values, and nothing of Slack",
        "storage.grants -> bot.sharing.policy",
    ),
    (
        "bot/sharing/values.py",
        "import bot.scp.models",
        "The domain's values (values.py, request.py) are leaves: the standard library only",
        "bot.sharing.values -> bot.scp.models",
    ),
]


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """One run of `lint-imports` on a copy with every planted import at once."""
    return lint_copy(
        tmp_path_factory.mktemp("planted"), {module: line for module, line, _, _ in PLANTED}
    )


@pytest.mark.parametrize(("module", "line", "contract", "shown"), PLANTED)
def test_a_planted_import_that_skips_a_layer_fails_lint_imports(
    planted_run: subprocess.CompletedProcess[str], module: str, line: str, contract: str, shown: str
) -> None:
    assert planted_run.returncode != 0
    # The contract's own section of the report names the planted import.
    assert f"{shown} (l." in broken_sections(planted_run.stdout)[contract]


def broken_sections(report: str) -> dict[str, str]:
    """Each broken contract's section of a `lint-imports` report, by contract name (the
    report wraps long names over two lines)."""
    broken = report.split("Broken contracts", 1)[-1]
    starts = []
    for name in contracts():
        found = re.search(r"\s+".join(map(re.escape, name.split())), broken)
        if found:
            starts.append((found.start(), found.end(), name))
    starts.sort()
    ends = [start for start, _, _ in starts[1:]] + [len(broken)]
    return {name: broken[end:stop] for (_, end, name), stop in zip(starts, ends, strict=True)}


@pytest.mark.parametrize(
    ("contract", "allowed", "external"),
    [
        (
            "Handlers import only the domain and the Slack side (and their own package)",
            {"handlers", "bot.sharing", "bot.slack"},
            set(),
        ),
        (
            "The Slack side imports only the domain (and itself)",
            {"bot.slack", "bot.sharing"},
            set(),
        ),
        (
            "The domain imports the cloud client and storage, never Slack, settings or metrics",
            # bot.retry_after is the cloud client's (and the rota readers') own helper.
            {"bot.sharing", "bot.scp", "bot.rota", "bot.retry_after", "storage"},
            {"slack_bolt", "slack_sdk"},
        ),
        (
            "The domain's values (values.py, request.py) are leaves: the standard library only",
            # Of the domain, only bot.sharing.request (read from its source below).
            {"bot.sharing"},
            set(),
        ),
        (
            "The cloud client stands alone",
            {"bot.scp", "bot.retry_after"},
            {"slack_bolt", "slack_sdk"},
        ),
    ],
)
def test_each_layer_is_forbidden_every_module_it_may_not_import(
    contract: str, allowed: set[str], external: set[str]
) -> None:
    forbidden = set(contracts()[contract]["forbidden_modules"])  # type: ignore[call-overload]
    assert forbidden == (project_modules() - allowed) | external


def test_storage_may_import_only_the_two_value_modules_of_the_domain() -> None:
    for name in (
        "Layers: handlers over Slack output over the domain over storage",
        "Storage knows nothing above it but the domain's values, and nothing of Slack",
    ):
        assert contracts()[name]["ignore_imports"] == [
            "storage.** -> bot.sharing.values",
            "storage.** -> bot.sharing.request",
        ]


@pytest.mark.parametrize("module", ["values.py", "request.py"])
def test_the_value_modules_import_the_standard_library_only(module: str) -> None:
    tree = ast.parse((ROOT / "bot" / "sharing" / module).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    outside = {
        name
        for name in imported
        if name.split(".")[0] not in sys.stdlib_module_names
        and name not in {"__future__", "bot.sharing.request"}
    }
    assert outside == set()
