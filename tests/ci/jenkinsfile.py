"""A small reader for the declarative Jenkinsfile subset this project uses.

Jenkins has no schema to validate against offline, so this reads the file's block
structure (``name(args) { ... }``, statements, strings, comments) strictly: an
unbalanced brace or an unknown directive is reported with the stage it is in.
``load_jenkinsfile`` turns the stages into ``tests.ci.parity.Job`` records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tests.ci.parity import SETUP_LINES, Job, Platform

_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r]+)
  | (?P<newline>\n)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<string>'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")
  | (?P<punct>[{}()=,:\[\]])
  | (?P<word>[^\s{}()=,:\[\]'"]+)
    """,
    re.VERBOSE | re.DOTALL,
)

PIPELINE_DIRECTIVES = frozenset(
    {"agent", "options", "environment", "stages", "post", "parameters", "triggers", "tools"}
)
STAGE_DIRECTIVES = frozenset({"steps", "when", "environment", "options", "agent", "post"})


class JenkinsfileError(ValueError):
    """The Jenkinsfile's block structure is broken (unbalanced braces or parentheses)."""


@dataclass(frozen=True)
class Token:
    """One lexical token: its kind (string, punct, word), text and 1-based line."""

    kind: str
    text: str
    line: int

    @property
    def value(self) -> str:
        """The token's text, unquoted when it is a string literal."""
        if self.kind != "string":
            return self.text
        quote = 3 if self.text[:3] in ("'''", '"""') else 1
        return self.text[quote:-quote].replace("\\'", "'").replace('\\"', '"')


@dataclass
class Node:
    """A statement (``children is None``) or a block ``head { children }``."""

    head: list[Token]
    children: list[Node] | None = None
    line: int = 0

    @property
    def keyword(self) -> str:
        """The statement's first word (``stage``, ``sh``, ``CI``...)."""
        return self.head[0].text if self.head else ""

    @property
    def strings(self) -> list[str]:
        """The string literals of the head, unquoted, in order."""
        return [token.value for token in self.head if token.kind == "string"]

    def blocks(self) -> list[Node]:
        """The child nodes (empty for a statement)."""
        return self.children or []


@dataclass
class _Parser:
    tokens: list[Token]
    position: int = 0

    def block(self, closing: bool) -> list[Node]:
        nodes: list[Node] = []
        head: list[Token] = []
        depth = 0
        while self.position < len(self.tokens):
            token = self.tokens[self.position]
            self.position += 1
            if token.text in ("(", "["):
                depth += 1
            elif token.text in (")", "]"):
                depth -= 1
                if depth < 0:
                    raise JenkinsfileError(f"line {token.line}: unbalanced {token.text!r}")
            if depth == 0 and token.kind == "punct" and token.text == "{":
                nodes.append(Node(head, self.block(closing=True), head[0].line if head else 0))
                head = []
            elif depth == 0 and token.kind == "punct" and token.text == "}":
                if not closing:
                    raise JenkinsfileError(f"line {token.line}: '}}' without a matching '{{'")
                if head:
                    nodes.append(Node(head, None, head[0].line))
                return nodes
            elif depth == 0 and token.kind == "newline":
                if head:
                    nodes.append(Node(head, None, head[0].line))
                head = []
            else:
                head.append(token)
        if closing or depth:
            raise JenkinsfileError("the file ends inside a block: a '}' or ')' is missing")
        if head:
            nodes.append(Node(head, None, head[0].line))
        return nodes


def parse(text: str) -> list[Node]:
    """Parse ``text`` into its top-level nodes; raise ``JenkinsfileError`` when unbalanced."""
    tokens: list[Token] = []
    line = 1
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or ""
        if kind in ("string", "punct", "word"):
            tokens.append(Token(kind, match.group(), line))
        elif kind == "newline":
            tokens.append(Token("newline", "\n", line))
        line += match.group().count("\n")
    return _Parser(tokens).block(closing=False)


def _unknown(where: str, nodes: list[Node], allowed: frozenset[str], problems: list[str]) -> None:
    for node in nodes:
        if node.keyword not in allowed:
            problems.append(
                f"{where}: unknown directive {node.keyword!r} (line {node.line}); "
                f"expected one of {', '.join(sorted(allowed))}"
            )


def _stage(file: str, node: Node, problems: list[str]) -> Job | None:
    """Read one ``stage('name') { steps { sh '...' } }`` into a Job (None: setup only)."""
    if node.keyword != "stage" or node.children is None or len(node.strings) != 1:
        problems.append(f"{file}: line {node.line}: expected `stage('NAME') {{ ... }}`")
        return None
    name = node.strings[0]
    where = f"{file}: job {name!r}"
    _unknown(where, node.blocks(), STAGE_DIRECTIVES, problems)
    commands: list[str] = []
    setup = False
    for steps in (child for child in node.blocks() if child.keyword == "steps"):
        for step in steps.blocks():
            if step.keyword == "sh" and len(step.strings) == 1 and step.children is None:
                lines = [line.strip() for line in step.strings[0].splitlines() if line.strip()]
                setup = setup or any(line in SETUP_LINES for line in lines)
                commands += [line for line in lines if line not in SETUP_LINES]
            else:
                commands.append(" ".join(token.text for token in step.head) or "{...}")
    if setup and not commands:
        return None  # a stage that only installs tools (nox) is not a job
    return Job(file=file, name=name, commands=tuple(commands))


def load_jenkinsfile(path: Path, file: str) -> Platform:
    """Read the declarative pipeline at ``path`` (called ``file`` in problems)."""
    platform = Platform(name=file, needs_release=False)
    try:
        top = parse(path.read_text(encoding="utf-8"))
    except JenkinsfileError as error:
        platform.problems.append(f"{file}: {error}")
        return platform
    pipelines = [node for node in top if node.keyword == "pipeline" and node.children is not None]
    if len(top) != 1 or len(pipelines) != 1:
        platform.problems.append(f"{file}: expected exactly one `pipeline {{ ... }}` block")
        return platform
    sections = pipelines[0].blocks()
    _unknown(f"{file}: pipeline", sections, PIPELINE_DIRECTIVES, platform.problems)
    environment = {
        node.head[0].text: node.strings[0]
        for section in sections
        if section.keyword == "environment"
        for node in section.blocks()
        if len(node.head) == 3 and node.head[1].text == "=" and node.strings
    }
    if environment.get("CI") != "true":
        platform.problems.append(
            f"{file}: pipeline environment does not set CI = 'true' (Jenkins does not set "
            "it, and without it a missing interpreter or browser is skipped, not failed)"
        )
    for section in (node for node in sections if node.keyword == "stages"):
        for stage in section.blocks():
            job = _stage(file, stage, platform.problems)
            if job is not None:
                platform.jobs.append(job)
    if not platform.jobs:
        platform.problems.append(f"{file}: the pipeline has no stages")
    return platform
