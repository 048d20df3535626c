"""The import rules of DESIGN.md, enforced by import-linter with the contracts in pyproject.toml.

One test lints the real project. The others show that those same contracts do catch what
they are for: a copy of the configuration is run over a throwaway tree of stand-in packages
with deliberately bad imports, and every one of them must be reported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["ledger", "consensus", "contracts", "node", "sim", "client"]
PURE_PACKAGES = ["ledger", "consensus", "contracts"]
IMPURE_MODULES = ["asyncio", "aiohttp", "plyvel", "socket", "threading", "time", "random", "os",
                  "datetime", "secrets"]


def lint_imports_command() -> list[str]:
    script = Path(sys.executable).parent / "lint-imports"
    if script.exists():
        return [str(script)]
    found = shutil.which("lint-imports")
    assert found, "import-linter is not installed (pip install -e '.[test]')"
    return [found]


def run_lint_imports(cwd: Path, config: Path, extra_path: Path | None = None):
    env = dict(os.environ)
    if extra_path is not None:
        # Put the stand-in packages ahead of the installed huzhu packages of the same names.
        env["PYTHONPATH"] = str(extra_path)
    return subprocess.run(
        lint_imports_command() + ["--no-cache", "--config", str(config)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )


def importlinter_config() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)["tool"]["importlinter"]


def test_project_keeps_its_import_contracts():
    result = run_lint_imports(ROOT, ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_contracts_name_every_layer_and_every_impure_module():
    config = importlinter_config()
    assert sorted(config["root_packages"]) == sorted(PACKAGES)
    contracts = {contract["type"]: contract for contract in config["contracts"]}
    # client sits above sim: `huzhu simulate` is a client command that drives the simulator.
    assert contracts["layers"]["layers"] == ["client", "sim", "node", "consensus | contracts",
                                             "ledger"]
    forbidden = contracts["forbidden"]
    assert sorted(forbidden["source_modules"]) == sorted(PURE_PACKAGES)
    assert set(IMPURE_MODULES) <= set(forbidden["forbidden_modules"])
    # Without external packages in the graph, "import time" would be invisible to the linter.
    assert config.get("include_external_packages") is True


BAD_IMPORTS = {
    "ledger/uses_clock.py": "import time\n",
    "consensus/uses_random.py": "from random import Random\n",
    "contracts/uses_os.py": "def read():\n    import os\n    return os.environ\n",
    "ledger/reaches_up.py": "import node\n",
    "consensus/uses_contracts.py": "import contracts\n",
    "node/uses_sim.py": "from sim import scenario\n",
}


@pytest.fixture(scope="module")
def bad_tree(tmp_path_factory) -> Path:
    tree = tmp_path_factory.mktemp("bad_imports")
    for package in PACKAGES:
        (tree / package).mkdir()
        (tree / package / "__init__.py").write_text("")
    (tree / "sim" / "scenario.py").write_text("")
    for path, source in BAD_IMPORTS.items():
        (tree / path).write_text(source)
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


@pytest.fixture(scope="module")
def bad_tree_report(bad_tree) -> subprocess.CompletedProcess:
    return run_lint_imports(bad_tree, bad_tree / "pyproject.toml", extra_path=bad_tree)


def test_bad_imports_break_both_contracts(bad_tree_report):
    output = bad_tree_report.stdout + bad_tree_report.stderr
    assert bad_tree_report.returncode != 0, output
    assert "2 broken" in output, output


@pytest.mark.parametrize("importer, imported", [
    ("ledger.uses_clock", "time"),
    ("consensus.uses_random", "random"),
    ("contracts.uses_os", "os"),
    ("ledger.reaches_up", "node"),
    ("consensus.uses_contracts", "contracts"),
    ("node.uses_sim", "sim"),
])
def test_each_bad_import_is_reported(bad_tree_report, importer, imported):
    output = bad_tree_report.stdout
    assert f"{importer} -> {imported}" in output, output
