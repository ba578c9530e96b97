"""The documentation stays true to the code: the site builds with no warning, its runnable commands run, every
``focalbench`` command in the docs and the README names real subcommands and options, and the README stays a
short entry point.

Runnable blocks (the convention, also described in docs/extending.md): a fenced block opened with
```` ```bash title="runnable" ```` runs as one bash script (``set -euo pipefail``) in an empty temporary folder
holding a link to ``examples/``, with ``focalbench`` the checkout's CLI and ``FOCALBENCH_RESULTS`` unset, so
that every record and report goes to ``results/`` in that folder.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = REPO / "README.md"
README_MAX_LINES = 150
RUNNABLE = 'title="runnable"'
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
INLINE_COMMAND = re.compile(r"`(focalbench(?: [^`]*)?)`")
LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    info: str
    text: str

    @property
    def runnable(self) -> bool:
        return self.info.split()[:1] == ["bash"] and RUNNABLE in self.info

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def doc_files() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.relative_to(DOCS).parts)


def split_markdown(path: Path) -> tuple[list[Block], list[str]]:
    """The fenced code blocks of a Markdown file, and its lines outside them."""
    blocks, prose = [], []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opened = FENCE.match(lines[i])
        if not opened:
            prose.append(lines[i])
            i += 1
            continue
        fence, indent = opened["fence"], len(opened["indent"])
        body, j = [], i + 1
        while j < len(lines) and not (
            lines[j].strip().startswith(fence) and set(lines[j].strip()) == {fence[0]}
        ):
            body.append(lines[j][indent:] if lines[j][:indent].isspace() else lines[j])
            j += 1
        blocks.append(Block(path, i + 1, opened["info"].strip(), "\n".join(body) + "\n"))
        i = j + 1
    return blocks, prose


def runnable_blocks() -> list[Block]:
    return [b for path in doc_files() for b in split_markdown(path)[0] if b.runnable]


# ----------------------------------------------------------------------------------------------------------
# The site builds: no dead link, missing anchor, missing page or snippet, or docstring the API pages choke on
# ----------------------------------------------------------------------------------------------------------


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.fail("mkdocs is not installed: pip install -e '.[dev]' (make test does)")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,  # mkdocs.yml's snippet base path is the repository root
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    for page in ("index.html", "losses/index.html", "api/losses/index.html", "changelog/index.html"):
        assert (site / page).is_file(), page
    api = (site / "api" / "losses" / "index.html").read_text(encoding="utf-8")
    assert 'id="focalbench.losses.focal_loss"' in api  # mkdocstrings rendered the docstrings
    changelog = (site / "changelog" / "index.html").read_text(encoding="utf-8")
    assert "Unreleased" in changelog  # CHANGELOG.md was included, not the snippet line
    assert (site / "results" / "ci" / "sweeps" / "ci" / "metric_vs_gamma.png").is_file()  # the figures hook


# ----------------------------------------------------------------------------------------------------------
# The runnable commands run
# ----------------------------------------------------------------------------------------------------------


def test_there_are_runnable_blocks() -> None:
    blocks = runnable_blocks()
    assert len(blocks) >= 4, [b.where for b in blocks]
    for block in blocks:
        commands = [line for line in block.text.splitlines() if line.startswith("focalbench")]
        assert commands, f"{block.where}: a runnable block without a focalbench command"


@pytest.mark.slow
@pytest.mark.parametrize("block", runnable_blocks(), ids=lambda b: b.where)
def test_runnable_block(block: Block, tmp_path: Path) -> None:
    work, bin_dir = tmp_path / "work", tmp_path / "bin"
    work.mkdir()
    bin_dir.mkdir()
    (work / "examples").symlink_to(REPO / "examples", target_is_directory=True)
    shim = bin_dir / "focalbench"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m focalbench "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    script = tmp_path / "block.sh"
    script.write_text(block.text)
    env = {k: v for k, v in os.environ.items() if k != "FOCALBENCH_RESULTS"}
    env |= {
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        "COLUMNS": "200",
    }
    done = subprocess.run(
        ["bash", "-euo", "pipefail", str(script)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (
        f"{block.where}: the runnable block failed (exit {done.returncode}):\n{block.text}\n"
        f"--- stdout ---\n{done.stdout[-4000:]}\n--- stderr ---\n{done.stderr[-4000:]}"
    )


# ----------------------------------------------------------------------------------------------------------
# Every focalbench command in the docs and the README uses real subcommands and options
# ----------------------------------------------------------------------------------------------------------


def commands_in(path: Path) -> list[tuple[str, list[str]]]:
    """(where, tokens after ``focalbench``) for every command line in the file's code blocks (an env-var
    prefix and continuation lines allowed) and every inline code span that starts with ``focalbench``."""
    found = []
    blocks, prose = split_markdown(path)
    for block in blocks:
        text = block.text.replace("\\\n", " ")
        for n, line in enumerate(text.splitlines()):
            try:
                tokens = shlex.split(line, comments=True)
            except ValueError:  # an unbalanced quote: prose in a comment, or a heredoc body
                continue
            while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", tokens[0]):
                tokens = tokens[1:]
            if tokens[:1] == ["focalbench"]:
                found.append((f"{block.where} (+{n + 1})", tokens[1:]))
    for line in prose:
        for span in INLINE_COMMAND.findall(line):
            found.append((f"{path.relative_to(REPO)}: `{span}`", span.split()[1:]))
    return found


def cli_options() -> tuple[set[str], dict[str, set[str]]]:
    """The root's options, and each (sub)command's: ``{"run": {...}, "data info": {...}}``."""
    import typer.main

    from focalbench.cli import app

    def options(command) -> set[str]:
        return {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}

    root = typer.main.get_command(app)
    commands = {}
    for name, command in root.commands.items():
        for sub_name, sub in (getattr(command, "commands", None) or {}).items():
            commands[f"{name} {sub_name}"] = options(sub) | {"--help"}
        commands[name] = options(command) | {"--help"}
    return options(root) | {"--help"}, commands


DOCUMENTED = [(where, tokens) for path in [README, *doc_files()] for where, tokens in commands_in(path)]


def test_documented_commands_exist() -> None:
    assert len(DOCUMENTED) > 30  # the extraction found the commands
    root_options, commands = cli_options()
    suites = {p.stem for p in (REPO / "configs" / "experiment").glob("*.yaml") if "suite:" in p.read_text()}
    problems = []
    for where, tokens in DOCUMENTED:
        words = [t.strip("[]") for t in tokens]
        if not words or words[0].startswith("-"):
            problems += [
                f"{where}: {w} is not an option of focalbench" for w in words if w not in root_options
            ]
            continue
        name = " ".join(words[:2]) if " ".join(words[:2]) in commands else words[0]
        if name not in commands or name == "data":
            problems.append(f"{where}: no command 'focalbench {words[0]}'")
            continue
        for word in words[len(name.split()) :]:
            option = word.split("=", 1)[0]
            if option.startswith("-") and option not in commands[name]:
                problems.append(f"{where}: focalbench {name} has no option {option}")
        if name == "reproduce":
            suite = next((w for w in words[1:] if not w.startswith("-") and "=" not in w), None)
            if suite and suite.islower() and suite not in suites:
                problems.append(f"{where}: no suite '{suite}' in configs/experiment/")
    assert not problems, "\n".join(problems)


# ----------------------------------------------------------------------------------------------------------
# The README: a short entry point that starts with make run / make test and links to pages that exist
# ----------------------------------------------------------------------------------------------------------


def test_readme_is_short_and_starts_with_make_run_and_make_test() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES})"
    blocks, _ = split_markdown(README)
    commands = [
        line.split("#", 1)[0].strip()
        for block in blocks
        for line in block.text.splitlines()
        if line.split("#", 1)[0].strip()
    ]
    assert commands[:2] == ["make run", "make test"], commands[:3]
    text = "\n".join(lines)
    start, end = text.find("<!-- article:start -->"), text.find("<!-- article:end -->")
    assert -1 < start < end, "the article study's markers (article:start, article:end) are missing"


def heading_slugs(path: Path) -> set[str]:
    from markdown.extensions.toc import slugify

    _, prose = split_markdown(path)
    return {
        slugify(re.sub(r"[`*]", "", m[1]).strip(), "-")
        for m in (re.match(r"#+\s+(.*)", x) for x in prose)
        if m
    }


def test_readme_links_resolve() -> None:
    _, prose = split_markdown(README)
    problems = []
    for target in (m["target"] for line in prose for m in LINK.finditer(line)):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = (REPO / file).resolve()
        if not path.exists():
            problems.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in heading_slugs(path):
            problems.append(f"{target}: no heading with that anchor")
    assert not problems, "\n".join(problems)
