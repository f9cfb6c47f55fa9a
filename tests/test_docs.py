"""The README and docs/ say only what is true of the CLI.

Every fenced ``bash`` block in README.md and docs/*.md is read as shell: each `nsr-tune` and
`python tune.py` command in it (also after `ray submit CONFIG tune.py --`) must name a real
subcommand and real flags, with a valid choice where a flag has choices; a command without
placeholders must parse as a whole; every repository file a command names must exist. Words in
capitals (DIR, RUN_ID, NAME) are placeholders. Each subcommand's own help examples are held to
the same rules, and the docs' links must land on a page and a heading that exist.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from nsr_tune.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.M | re.S)
_PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*[A-Z0-9]|\.\.\.")
_REPO_FILE = re.compile(
    r"^(?:\./)?((?:benchmarks|cluster|docs|search_spaces|tests)/[\w./-]+\.(?:py|yaml)|tune\.py)$"
)
_SEPARATORS = {"&&", "||", "|", ";", "&"}


def _strip_comment(line: str) -> str:
    """The line without a shell comment: a # at the start of a word, outside quotes."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def commands(text: str) -> list[list[str]]:
    """The simple commands of a bash snippet, as token lists: continuation lines joined, comments
    dropped, split at && || | ; &."""
    logical = re.sub(r"\\\n", " ", text)
    out: list[list[str]] = []
    for line in logical.splitlines():
        lexer = shlex.shlex(_strip_comment(line), posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        current: list[str] = []
        for token in lexer:
            if token in _SEPARATORS:
                out.append(current)
                current = []
            else:
                current.append(token)
        out.append(current)
    return [c for c in out if c]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(found[0].choices) if found else {}


def _placeholder(token: str) -> bool:
    return bool(_PLACEHOLDER.search(token))


def check_nsr_tune(argv: list[str]) -> list[str]:
    """What is wrong with `nsr-tune ARGV`: an unknown subcommand or flag, a value outside a flag's
    choices, or (without placeholders) a command the parser refuses. Empty when all is well."""
    parser = build_parser()
    shown = "nsr-tune " + " ".join(argv)
    here, rest = parser, list(argv)
    while _subparsers(here):
        while rest and rest[0].startswith("-"):
            if rest[0].split("=")[0] not in here._option_string_actions:
                return [f"{shown}: {rest[0]} is not an option of {here.prog}"]
            rest.pop(0)
        if not rest:
            return []  # `nsr-tune --version`, `nsr-tune --help`
        subs = _subparsers(here)
        if rest[0] not in subs:
            return [f"{shown}: {rest[0]!r} is not a command of {here.prog} ({', '.join(subs)})"]
        here = subs[rest.pop(0)]
    problems = []
    for i, token in enumerate(rest):
        if not token.startswith("-") or token == "-" or re.fullmatch(r"-\d.*", token):
            continue
        flag, _, inline = token.partition("=")
        action = here._option_string_actions.get(flag)
        if action is None:
            problems.append(f"{shown}: {flag} is not an option of {here.prog}")
            continue
        value = inline or (rest[i + 1] if i + 1 < len(rest) else "")
        if action.choices is not None and value and not _placeholder(value):
            if value not in action.choices:
                problems.append(f"{shown}: {flag} {value}: not one of {', '.join(map(str, action.choices))}")
    if not problems and not any(_placeholder(t) for t in argv):
        try:
            parser.parse_args(argv)
        except SystemExit as e:
            if e.code not in (0, None):
                problems.append(f"{shown}: the parser refuses it")
    return problems


def check_command(tokens: list[str]) -> tuple[list[str], bool]:
    """Problems with one documented command, and whether it was an nsr-tune command."""
    while tokens and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", tokens[0]):
        tokens = tokens[1:]  # VAR=value prefixes
    if not tokens:
        return [], False
    problems = [
        f"{' '.join(tokens)}: {m.group(1)} does not exist"
        for t in tokens
        if (m := _REPO_FILE.match(t)) and not _placeholder(t) and not (REPO / m.group(1)).exists()
    ]
    if tokens[0] == "nsr-tune":
        return problems + check_nsr_tune(tokens[1:]), True
    if tokens[0] in ("python", "python3") and len(tokens) > 1 and tokens[1] in ("tune.py", "./tune.py"):
        return problems + check_nsr_tune(["tune", *tokens[2:]]), True
    if tokens[:2] == ["ray", "submit"] and "tune.py" in tokens:
        after = tokens[tokens.index("tune.py") + 1 :]
        args = after[1:] if after[:1] == ["--"] else after
        return problems + check_nsr_tune(["tune", *args]), True
    if tokens[0] == "pip" and "-c" in tokens:
        constraints = tokens[tokens.index("-c") + 1]
        if not (REPO / constraints).is_file():
            problems.append(f"{' '.join(tokens)}: {constraints} does not exist")
    return problems, False


def _blocks(page: Path) -> list[str]:
    return _BLOCK.findall(page.read_text())


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(REPO).as_posix() for p in PAGES])
def test_every_documented_command_exists(page):
    problems: list[str] = []
    for block in _blocks(page):
        for tokens in commands(block):
            problems += check_command(tokens)[0]
    assert problems == []


def test_the_docs_show_commands_of_every_kind():
    """The extraction finds the commands (a broken regex would pass every page vacuously)."""
    seen = [
        tokens
        for page in PAGES
        for block in _blocks(page)
        for tokens in commands(block)
        if check_command(tokens)[1]
    ]
    firsts = {" ".join(t[:2]) for t in seen}
    assert {"nsr-tune train", "nsr-tune evaluate", "python tune.py", "ray submit"} <= firsts
    assert len(seen) >= 40


def test_the_checker_refuses_what_does_not_exist():
    assert check_command(["nsr-tune", "train", "--no-such-flag", "1"])[0]
    assert check_command(["nsr-tune", "trian", "--epochs", "1"])[0]
    assert check_command(["nsr-tune", "evaluate", "m.pt", "--protocol", "thorough"])[0]
    assert check_command(["nsr-tune", "train", "--epochs", "many"])[0]  # no placeholder: parsed whole
    assert check_command(["python", "tune.py", "--spaces", "dry_run"])[0]
    assert check_command(["ray", "submit", "cluster/nope.yaml", "tune.py", "--", "--dry-run"])[0]
    assert check_command(["python", "benchmarks/nope.py"])[0]
    assert not check_command(["nsr-tune", "evaluate", "runs:/RUN_ID", "--protocol", "strong"])[0]
    assert commands("a --x 1 \\\n  --y 2  # note\nb && c | d") == [
        ["a", "--x", "1", "--y", "2"],
        ["b"],
        ["c"],
        ["d"],
    ]


def _every_parser(parser: argparse.ArgumentParser):
    yield parser
    for sub in _subparsers(parser).values():
        yield from _every_parser(sub)


def test_every_help_example_exists():
    examples = []
    for parser in _every_parser(build_parser()):
        text = parser.epilog or ""
        assert "examples:" in text, f"{parser.prog} --help ends without examples"
        examples += [line.strip() for line in text.split("examples:", 1)[1].splitlines() if line.strip()]
    assert len(examples) >= 10
    problems = [p for line in examples for tokens in commands(line) for p in check_command(tokens)[0]]
    assert problems == []


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def test_links_between_pages_land():
    problems = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                problems.append(f"{page.name}: {target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                problems.append(f"{page.name}: {target}: no such heading")
    assert problems == []


def test_the_readme_is_a_guide_that_indexes_every_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for page in (REPO / "docs").glob("*.md"):
        assert f"(docs/{page.name})" in readme, f"README's index lacks docs/{page.name}"
    # Two set-up commands: one runs the main job, one the tests.
    setup = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    blocks = _BLOCK.findall(setup)
    assert len(blocks) == 2
    assert blocks[0].strip().endswith("python tune.py --dry-run")
    assert "pytest" in blocks[1]


@pytest.mark.parametrize("page", sorted((REPO / "docs").glob("*.md")), ids=lambda p: p.name)
def test_each_page_opens_with_what_it_is_for(page):
    lines = page.read_text().splitlines()
    assert lines[0].startswith("# ")
    first = next(line for line in lines[1:] if line.strip())
    assert not first.startswith(("#", "```", "|", "-")), f"{page.name} opens with {first!r}"
