"""The lit suite (lit-tests/) under pytest: one pytest test per lit test file.

The selected lit files run in one parallel lit invocation (per pytest session); each pytest test then
reports its file's result and, on failure, lit's output for it. Plus coverage checks: every op of
the dialect has a round-trip test and every lean pass is exercised by some lit test.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from support import ROOT

from lean_mlir.irutils.context import lean_op_names
from lean_mlir.tools.passes import PASSES

LIT_DIR = ROOT / "lit-tests"
SUFFIXES = (".mlir", ".py")
LIT_FILES = sorted(p for p in LIT_DIR.rglob("*") if p.suffix in SUFFIXES and p.name != "lit.cfg.py"
                   and "Output" not in p.parts and "Inputs" not in p.parts)


def _id(p: pathlib.Path) -> str:
    return p.relative_to(LIT_DIR).as_posix()


@pytest.fixture(scope="module")
def lit_results(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    """Run lit once on the lit files this session selected: {relative path: None if passed, else output}."""
    selected = sorted({item.callspec.params["lit_file"] for item in request.session.items
                       if getattr(item, "callspec", None) and "lit_file" in item.callspec.params})
    xml = tmp_path_factory.mktemp("lit") / "results.xml"
    cmd = [sys.executable, "-c", "import sys, lit.main; sys.exit(lit.main.main())", "-v", "--no-progress-bar",
           f"--xunit-xml-output={xml}", *map(str, selected)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL)
    if not xml.exists():
        pytest.fail(f"lit did not run (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    results: dict[str, str | None] = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        # classname "lean-mlir.autodiff", name "matmul.mlir" -> "autodiff/matmul.mlir"
        suite_dir = case.get("classname", "").split(".", 1)[1:]
        rel = "/".join([*(d.replace(".", "/") for d in suite_dir), case.get("name", "")])
        failure = case.find("failure")
        results[rel] = None if failure is None else (failure.text or failure.get("message") or "failed")
    results["<log>"] = proc.stdout + proc.stderr
    return results


@pytest.mark.parametrize("lit_file", LIT_FILES, ids=_id)
def test_lit(lit_file: pathlib.Path, lit_results: dict[str, str | None]) -> None:
    rel = _id(lit_file)
    if rel not in lit_results:
        pytest.fail(f"lit reported no result for {rel}:\n{lit_results['<log>']}")
    if lit_results[rel] is not None:
        pytest.fail(f"lit test {rel} failed:\n{lit_results[rel]}", pytrace=False)


def test_lit_suite_found() -> None:
    dirs = {p.relative_to(LIT_DIR).parts[0] for p in LIT_FILES}
    assert {"dialect", "verify", "trace", "autodiff", "lower"} <= dirs


def test_every_op_has_a_round_trip() -> None:
    text = "".join(p.read_text() for p in (LIT_DIR / "dialect").glob("roundtrip_*.mlir"))
    missing = [op for op in lean_op_names() if f'"lean.{op}"(' not in text]
    assert not missing, f"ops without a round-trip lit test in lit-tests/dialect: {missing}"


def test_every_pass_is_exercised() -> None:
    text = "".join(p.read_text() for p in LIT_FILES)
    missing = [name for name in PASSES if name not in text]
    assert not missing, f"lean passes no lit test runs: {missing}"
