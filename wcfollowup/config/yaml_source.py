"""Read a YAML config into plain data plus the line/column of every key and value.

The file is composed into ruamel.yaml's node graph (which carries marks) and turned into Python
data here rather than by ruamel's constructor, for three reasons:

* alias bombs: the expanded size of the graph is measured, with memoization, *before* any Python
  object is built, so "billion laughs" costs microseconds instead of all the memory;
* every duplicate key is reported (the constructor stops at the first);
* ``${VAR}`` expansion happens per scalar, so an unset variable is reported at the exact place it
  is used, and values that came from the environment are remembered and never echoed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    MappingEndEvent,
    MappingStartEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from wcfollowup.config.errors import (
    ConfigError,
    ConfigProblem,
    Loc,
    file_problem,
    format_location,
)

MAX_BYTES: Final = 256_000
"""A real config is a few KB; anything near this is a wrong file, not a config."""

MAX_EVENTS: Final = 10_000
"""Values as written (before aliases); bounds parse time, since ruamel is pure Python."""

MAX_NODES: Final = 100_000
"""Upper bound on the document's size with every alias expanded."""

MAX_DEPTH: Final = 64

EMPTY_MESSAGE: Final = "the file is empty; start from config.example.yaml"

_STR_TAG: Final = "tag:yaml.org,2002:str"
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)(\}?)")
_VARIABLE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


class WrittenFloat(float):
    """A YAML float that remembers how it was written.

    To a shop owner in Indonesia ``150.000`` is a hundred and fifty thousand; YAML reads 150.0.
    Validators that care (amounts) look at ``written`` and refuse the ambiguity.
    """

    written: str

    def __new__(cls, value: float, written: str) -> WrittenFloat:
        made = super().__new__(cls, value)
        made.written = written
        return made


@dataclass(frozen=True, slots=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass(frozen=True, slots=True)
class Mark:
    """Where one value sits in the file, and where the key that names it sits."""

    value: Position
    key: Position | None
    scalar: bool
    env_vars: tuple[str, ...] = ()


@dataclass(slots=True)
class Document:
    """Plain data ready for validation, its marks, and problems that did not stop parsing."""

    data: dict[str, Any]
    marks: dict[Loc, Mark]
    problems: list[ConfigProblem] = field(default_factory=list)
    unresolved: set[Loc] = field(default_factory=set)

    def mark_for(self, loc: Loc) -> Mark:
        """The mark of ``loc`` or of its nearest ancestor that is in the file."""
        for end in range(len(loc), -1, -1):
            found = self.marks.get(loc[:end])
            if found is not None:
                return found
        return Mark(Position(1, 1), None, scalar=False)


def read_document(path: Path, env: Mapping[str, str]) -> Document:
    """Parse ``path``; raise :class:`ConfigError` if nothing useful can be validated."""
    file = str(path)
    text = _read_text(path, file)
    root = _compose(text, file)
    if root is None or (isinstance(root, ScalarNode) and str(root.tag).endswith(":null")):
        raise ConfigError([file_problem(file, EMPTY_MESSAGE)])
    if not isinstance(root, MappingNode):
        what = "a list" if isinstance(root, SequenceNode) else "a single value"
        position = _position(root)
        raise ConfigError(
            [
                file_problem(
                    file,
                    "the top level must be a mapping of sections (store:, sendgrid:, database:, "
                    f"sequences:), but the file holds {what}",
                    position.line,
                    position.column,
                )
            ]
        )
    _refuse_alias_bombs(root, file)
    builder = _Builder(file, env)
    data = builder.build(root, (), None, 0)
    assert isinstance(data, dict)
    return Document(data, builder.marks, builder.problems, builder.unresolved)


def _read_text(path: Path, file: str) -> str:
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError([file_problem(file, "file not found")]) from None
    except IsADirectoryError:
        raise ConfigError([file_problem(file, "this is a directory, not a file")]) from None
    except PermissionError:
        raise ConfigError(
            [
                file_problem(
                    file,
                    "permission denied; the user running wcfollowup must be able to read this file",
                )
            ]
        ) from None
    except OSError as error:
        raise ConfigError([file_problem(file, f"cannot read the file: {error.strerror}")]) from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(
            [file_problem(file, f"the file is larger than {MAX_BYTES:,} bytes; is it the config?")]
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        before = raw[: error.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        raise ConfigError(
            [
                file_problem(
                    file,
                    f"not UTF-8 text (bad byte at offset {error.start}); save it as UTF-8",
                    line,
                    column,
                )
            ]
        ) from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise ConfigError([file_problem(file, EMPTY_MESSAGE)])
    return text


def _compose(text: str, file: str) -> Node | None:
    try:
        _refuse_oversized(text, file)
        node: Node | None = YAML(typ="safe", pure=True).compose(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        position = Position(mark.line + 1, mark.column + 1) if mark else Position(1, 1)
        raise ConfigError([_syntax_problem(file, error, position)]) from None
    except ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
        code = error.character if isinstance(error.character, int) else ord(error.character)
        message = f"the control character U+{code:04X} is not allowed in YAML; remove it"
        raise ConfigError([file_problem(file, message, line, column)]) from None
    except YAMLError as error:
        raise ConfigError([file_problem(file, f"YAML error: {error}")]) from None
    except RecursionError:
        raise ConfigError([file_problem(file, "the YAML is nested too deeply")]) from None
    return node


def _refuse_oversized(text: str, file: str) -> None:
    """Stop at the first event deeper than MAX_DEPTH or past MAX_EVENTS.

    Parsing costs tens of microseconds per value and ruamel's scanner slows down quadratically
    with flow nesting (``[[[[...]]]]``), so both are bounded on the event stream, before the
    composer builds anything.
    """
    depth = 0
    for count, event in enumerate(YAML(typ="safe", pure=True).parse(text)):
        if count > MAX_EVENTS:
            position = Position(event.start_mark.line + 1, event.start_mark.column + 1)
            message = (
                f"the file holds more than {MAX_EVENTS:,} values; a config never needs that "
                "many; is this the right file?"
            )
            raise ConfigError([file_problem(file, message, position.line, position.column)])
        if isinstance(event, MappingStartEvent | SequenceStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                position = Position(event.start_mark.line + 1, event.start_mark.column + 1)
                message = f"the YAML is nested more than {MAX_DEPTH} levels deep"
                raise ConfigError([file_problem(file, message, position.line, position.column)])
        elif isinstance(event, MappingEndEvent | SequenceEndEvent):
            depth -= 1


def _syntax_problem(file: str, error: MarkedYAMLError, position: Position) -> ConfigProblem:
    problem = str(error.problem or error.context or "invalid YAML")
    message = f"YAML syntax error: {problem}"
    if error.context and error.problem and error.context_mark is not None:
        message += f" ({error.context}, line {error.context_mark.line + 1})"
    if "'\\t'" in problem:
        message += "; indent with spaces, not tabs"
    elif "mapping values are not allowed" in problem:
        message += "; put a space after each ':' and quote values that contain ': '"
    elif "found undefined alias" in problem:
        message += "; define the &anchor before using it"
    return ConfigProblem(file, position.line, position.column, "(file)", message)


def _position(node: Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def _refuse_alias_bombs(root: Node, file: str) -> None:
    """Measure the fully expanded size of the node graph without expanding it."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            position = _position(node)
            raise ConfigError(
                [
                    file_problem(
                        file,
                        "an alias refers to its own anchor, which would repeat "
                        "forever; remove the *alias",
                        position.line,
                        position.column,
                    )
                ]
            )
        active.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        active.discard(key)
        sizes[key] = min(total, MAX_NODES + 1)
        return sizes[key]

    try:
        total = size(root)
    except RecursionError:
        raise ConfigError([file_problem(file, "the YAML is nested too deeply")]) from None
    if total > MAX_NODES:
        raise ConfigError(
            [
                file_problem(
                    file,
                    f"the anchors and aliases (&name / *name) in this file expand to more than "
                    f"{MAX_NODES:,} values; a config never needs that many, so it was refused",
                )
            ]
        )


class _Builder:
    """Turns the node graph into dicts/lists/scalars, collecting marks and soft problems."""

    def __init__(self, file: str, env: Mapping[str, str]) -> None:
        self.file = file
        self.env = env
        self.marks: dict[Loc, Mark] = {}
        self.problems: list[ConfigProblem] = []
        self.unresolved: set[Loc] = set()
        self._yaml = YAML(typ="safe", pure=True)
        self._expanded: dict[int, tuple[str, tuple[str, ...], bool]] = {}

    def problem(self, node: Node, loc: Loc, message: str) -> None:
        position = _position(node)
        self.problems.append(
            ConfigProblem(self.file, position.line, position.column, format_location(loc), message)
        )

    def build(self, node: Node, loc: Loc, key: Position | None, depth: int) -> Any:
        if depth > MAX_DEPTH:
            position = _position(node)
            message = f"the YAML is nested more than {MAX_DEPTH} levels deep"
            raise ConfigError([file_problem(self.file, message, position.line, position.column)])
        if isinstance(node, MappingNode):
            self.marks[loc] = Mark(_position(node), key, scalar=False)
            return self._mapping(node, loc, depth)
        if isinstance(node, SequenceNode):
            self.marks[loc] = Mark(_position(node), key, scalar=False)
            return [
                self.build(child, (*loc, index), None, depth + 1)
                for index, child in enumerate(node.value)
            ]
        assert isinstance(node, ScalarNode)
        value, env_vars = self._scalar(node, loc)
        # An empty value ("store:" and nothing below) has its mark on the *next* token; point
        # problems about it at the key instead.
        written = node.value != "" or node.style is not None
        self.marks[loc] = Mark(_position(node), key, scalar=written, env_vars=env_vars)
        return value

    def _mapping(self, node: MappingNode, loc: Loc, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        explicit: list[tuple[ScalarNode, Node]] = []
        first_seen: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                self._merge(value_node, result, loc, depth)
            elif not isinstance(key_node, ScalarNode):
                self.problem(key_node, loc, "a key must be a plain name, not a list or mapping")
            elif str(key_node.value) in first_seen:
                earlier = _position(first_seen[str(key_node.value)])
                self.problem(
                    key_node,
                    loc,
                    f"duplicate key '{key_node.value}' (already set on line {earlier.line}); "
                    "keep only one",
                )
            else:
                first_seen[str(key_node.value)] = key_node
                explicit.append((key_node, value_node))
        # Keys written in this mapping win over merged ones, for the data and for the marks.
        for key_node, value_node in explicit:
            name = str(key_node.value)
            result[name] = self.build(value_node, (*loc, name), _position(key_node), depth + 1)
        return result

    def _merge(self, merge: Node, into: dict[str, Any], loc: Loc, depth: int) -> None:
        """``<<: *defaults`` (or a list of them, earlier ones winning)."""
        sources = merge.value if isinstance(merge, SequenceNode) else [merge]
        for source in reversed(sources):
            if not isinstance(source, MappingNode):
                self.problem(source, loc, "'<<' must be followed by an alias of a mapping")
                continue
            into.update(self._mapping(source, loc, depth + 1))

    def _scalar(self, node: ScalarNode, loc: Loc) -> tuple[Any, tuple[str, ...]]:
        if node.tag != _STR_TAG:
            try:
                value = self._yaml.constructor.construct_object(node)
                if isinstance(value, float):
                    return WrittenFloat(value, str(node.value)), ()
                return value, ()
            except YAMLError:
                tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
                self.problem(node, loc, f"unsupported YAML tag '{tag}'; remove it")
                self.unresolved.add(loc)
                return None, ()
        key = id(node)
        if key not in self._expanded:
            self._expanded[key] = self._expand(node, loc)
        text, env_vars, ok = self._expanded[key]
        if not ok:
            self.unresolved.add(loc)
        return text, env_vars

    def _expand(self, node: ScalarNode, loc: Loc) -> tuple[str, tuple[str, ...], bool]:
        """Replace ``${VAR}`` / ``${VAR:-default}``; ``$${`` stays a literal ``${``."""
        text = str(node.value)
        if "$" not in text:
            return text, (), True
        used: list[str] = []
        ok = True

        def substitute(match: re.Match[str]) -> str:
            nonlocal ok
            if match.group(0) == "$${":
                return "${"
            inner, closed = match.group(1), match.group(2)
            variable = _VARIABLE.fullmatch(inner)
            if not closed or variable is None:
                self.problem(
                    node,
                    loc,
                    "a '${' is not a valid variable reference; write ${NAME} or "
                    "${NAME:-default} (or $${ for a literal '${')",
                )
                ok = False
                return ""
            name, default = variable.group(1), variable.group(2)
            used.append(name)
            value = self.env.get(name)
            if value is None or (value == "" and default is not None):
                if default is not None:
                    return default
                self.problem(
                    node,
                    loc,
                    f"environment variable {name} is not set; "
                    "export it or put it in the EnvironmentFile",
                )
                ok = False
                return ""
            return value

        expanded = _REFERENCE.sub(substitute, text)
        return expanded, tuple(used), ok
