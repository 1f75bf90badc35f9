"""What a newcomer meets first: the README's Quick start is what CI runs (``.ci/run`` copies its test command),
and it installs the CPU-only torch before the package and says what Debian's venv needs."""

from __future__ import annotations

import re

from tests.support.workflow import REPO


def quick_start_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Quick start"):text.index("\n## ", text.index("## Quick start") + 1)]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_ci_runs_the_readmes_test_command_exactly():
    install, test = quick_start_commands()
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line.startswith("python3 -m venv")]
    assert ci == [test]
    cpu_torch = "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
    for command in (install, test):
        assert command.index(cpu_torch) < command.index("pip install -e ")       # CPU torch before the package


def test_the_quick_start_says_what_debians_venv_needs_and_how_to_do_without_root():
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Quick start"):text.index("```bash", text.index("## Quick start"))]
    assert "python3-venv" in section and "root" in section and "virtualenv" in section
