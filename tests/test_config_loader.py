"""load_config: every problem at once, at the right line and column, never a traceback."""

from __future__ import annotations

import socket
import time
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wcfollowup.cli import app
from wcfollowup.config import Config, ConfigError, ConfigProblem, load_config

REPO = Path(__file__).resolve().parent.parent
CONFIGS = Path(__file__).resolve().parent / "configs"
ENV = {
    "WC_CONSUMER_KEY": "ck_live_key_1234",
    "WC_CONSUMER_SECRET": "cs_live_secret_5678",
    "SENDGRID_API_KEY": "SG.live_api_key_9012",
}

VALID = """\
store:
  name: Toko Batik Sari
  url: https://batiksari.co.id
  consumer_key: ${WC_CONSUMER_KEY}
  consumer_secret: ${WC_CONSUMER_SECRET}
  timezone: Asia/Jakarta
sendgrid:
  api_key: ${SENDGRID_API_KEY}
  from_email: halo@batiksari.co.id
database:
  path: state.db
sequences:
  - name: thank-you
    steps:
      - name: thank-you
        after: 30m
        template: thank-you
"""
# Last, so tests that append sequences or sections keep their line numbers.
HTTP_BLOCK = "http:\n  public_url: https://batiksari.co.id/wcf\n"
VALID = VALID + HTTP_BLOCK


def before_http(extra: str) -> str:
    """VALID with ``extra`` appended to its sequences, before the trailing ``http`` block."""
    return VALID.removesuffix(HTTP_BLOCK) + extra + HTTP_BLOCK


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


def problems_in(path: Path, env: dict[str, str] | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=ENV if env is None else env)
    assert caught.value.problems, "a ConfigError must carry at least one problem"
    return caught.value.problems


def one_problem(path: Path, env: dict[str, str] | None = None) -> ConfigProblem:
    found = problems_in(path, env)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


def broken(old: str, new: str) -> str:
    assert old in VALID
    return VALID.replace(old, new, 1)


# --- the happy paths ------------------------------------------------------------------------------


def test_example_config_validates() -> None:
    cfg = load_config(REPO / "config.example.yaml", env=ENV)
    assert cfg.store.name == "Toko Batik Sari"
    assert cfg.store.language == "id"
    assert cfg.store.timezone == "Asia/Jakarta"
    assert cfg.store.consumer_secret.get_secret_value() == ENV["WC_CONSUMER_SECRET"]
    assert cfg.sendgrid.api_key.get_secret_value() == ENV["SENDGRID_API_KEY"]
    assert cfg.database.sqlalchemy_url == "sqlite:////var/lib/wcfollowup/state.db"
    assert [s.name for s in cfg.sequences] == ["thank-you", "review-request", "win-back"]
    step = cfg.sequences[0].steps[0]
    assert (step.name, step.kind, step.after, step.template) == (
        "thank-you",
        "email",
        timedelta(minutes=30),
        "thank-you",
    )
    assert cfg.source_path == (REPO / "config.example.yaml").absolute()


def test_example_config_names_each_missing_variable_where_it_is_used() -> None:
    found = problems_in(REPO / "config.example.yaml", env={})
    lines = (REPO / "config.example.yaml").read_text(encoding="utf-8").splitlines()
    assert [p.message.split()[2] for p in found] == [
        "WC_CONSUMER_KEY",
        "WC_CONSUMER_SECRET",
        "SENDGRID_API_KEY",
    ]
    for problem in found:
        assert lines[problem.line - 1][problem.column - 1 :].startswith("${")
        assert problem.message.endswith("is not set; export it or put it in the EnvironmentFile")


def test_the_commented_sharing_example_in_config_example_works(
    write: Callable[[str], Path],
) -> None:
    example = (REPO / "config.example.yaml").read_text(encoding="utf-8")
    head, tail = example.split("# Sharing settings between steps (optional):")
    uncommented = "\n".join(line.removeprefix("# ") for line in tail.splitlines()[2:])
    text = head.split("\nsequences:")[0] + "\n" + uncommented + "\n"
    cfg = load_config(write(text), env=ENV)
    step = cfg.sequences[0].steps[0]
    assert (step.name, step.kind, step.template, step.after) == (
        "thank-you",
        "email",
        "thank-you",
        timedelta(minutes=30),
    )


def test_env_defaults_to_os_environ(
    write: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert load_config(write(VALID)).store.consumer_key.get_secret_value() == ENV["WC_CONSUMER_KEY"]


def test_relative_paths_are_relative_to_the_config_file(
    write: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(VALID + "templates_dir: my-templates\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(path, env=ENV)
    assert cfg.database.path == tmp_path / "state.db"
    assert cfg.database.sqlalchemy_url == f"sqlite:///{tmp_path / 'state.db'}"
    assert cfg.templates_dir == tmp_path / "my-templates"


def test_the_loader_does_no_network_io(
    write: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("load_config opened a socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    assert isinstance(load_config(write(VALID), env=ENV), Config)


def test_env_expansion_defaults_escapes_and_partial_strings(write: Callable[[str], Path]) -> None:
    text = broken("name: Toko Batik Sari", "name: ${SHOP_NAME:-Toko} $${Batik} ${CITY}")
    cfg = load_config(write(text), env={**ENV, "CITY": "Solo"})
    assert cfg.store.name == "Toko ${Batik} Solo"


def test_aliases_and_merge_keys_work_within_limits(write: Callable[[str], Path]) -> None:
    text = (
        VALID.split("sequences:")[0]
        + """\
x-step: &step
  template: thank-you
  after: 1h
sequences:
  - name: first
    steps:
      - <<: *step
        name: a
      - <<: *step
        name: b
        after: 2h
"""
        + HTTP_BLOCK
    )
    cfg = load_config(write(text), env=ENV)
    steps = cfg.sequences[0].steps
    assert [(s.name, s.after, s.template) for s in steps] == [
        ("a", timedelta(hours=1), "thank-you"),
        ("b", timedelta(hours=2), "thank-you"),
    ]


def test_a_blank_optional_value_means_its_default(write: Callable[[str], Path]) -> None:
    text = VALID.replace("database:", "poll:\n  # interval: 30s\ndispatch:\ndatabase:", 1)
    text = text.replace("        after: 30m", "        after:")
    cfg = load_config(write(text), env=ENV)
    assert cfg.poll.interval == timedelta(seconds=60)
    assert cfg.dispatch.workers == 4
    assert cfg.sequences[0].steps[0].after == timedelta(0)


def test_a_blank_required_section_points_at_its_key(write: Callable[[str], Path]) -> None:
    text = VALID.split("sequences:")[0] + "sequences:\n"
    problem = one_problem(write(text))
    assert (problem.line, problem.column, problem.location) == (12, 1, "sequences")
    assert problem.message == "expected a list (lines starting with '- '), got an empty value"


# --- every problem at once, in order, at the right place ------------------------------------------


BROKEN = """\
store:
  name: Toko
  url: shop example
  consumer_key: ${WC_CONSUMER_KEY}
  consumer_secrt: abc
  timezone: Jakarta
sendgrid:
  from_email: not-an-email
database:
  path: state.db
poll:
  interval: 60
  page_size: ten
sequences:
  - name: Thank You
    steps:
      - name: a
        after: 3 days
        template: thank-you
      - name: a
        template: thank-you
  - name: Thank You
    steps:
      - name: x
        templ: y
"""


def test_all_problems_are_reported_at_once_sorted_by_line(write: Callable[[str], Path]) -> None:
    path = write(BROKEN)
    found = problems_in(path)
    # 'templ' on line 25 is reported as a misspelling of 'template', not also as a missing key.
    assert [str(p) for p in found] == [
        f"{path}:3:8: store.url: 'shop example' is not a URL; write it like https://shop.example.com",
        f"{path}:5:3: store: unknown key 'consumer_secrt'; did you mean 'consumer_secret'?",
        f"{path}:6:13: store.timezone: 'Jakarta' is not a known time zone; "
        "did you mean 'Asia/Jakarta'?",
        f"{path}:7:1: sendgrid: missing required key 'api_key'",
        f"{path}:8:15: sendgrid.from_email: 'not-an-email' is not a valid email address "
        "(an email address must have an @-sign)",
        f"{path}:12:13: poll.interval: the number 60 has no unit; write it like "
        "60s, 60m, 60h or 60d (s=seconds, m=minutes, h=hours, d=days, w=weeks)",
        f"{path}:13:14: poll.page_size: expected a whole number, got 'ten'",
        f"{path}:15:11: sequences[0].name: 'Thank You' is not a valid name; use lowercase "
        "letters, digits and dashes, like 'thank-you'",
        f"{path}:18:16: sequences[0].steps[0].after: '3 days' is not a duration "
        "(did you mean 3d?); write a whole number and a unit, like 30s, 30m, 2h, 3d or 1w "
        "(s=seconds, m=minutes, h=hours, d=days, w=weeks)",
        f"{path}:20:15: sequences[0].steps[1].name: step name 'a' is already used by "
        "sequences[0].steps[0]; step names must be unique within a sequence",
        f"{path}:22:11: sequences[1].name: 'Thank You' is not a valid name; use lowercase "
        "letters, digits and dashes, like 'thank-you'",
        f"{path}:22:11: sequences[1].name: sequence name 'Thank You' is already used by "
        "sequences[0]; sequence names must be unique",
        f"{path}:25:9: sequences[1].steps[0]: unknown key 'templ'; did you mean 'template'?",
    ]


def test_problem_str_format() -> None:
    problem = ConfigProblem("c.yaml", 3, 7, "store.timezone", "bad")
    assert str(problem) == "c.yaml:3:7: store.timezone: bad"
    error = ConfigError([problem, ConfigProblem("c.yaml", 1, 2, "(file)", "first")])
    assert [p.line for p in error.problems] == [1, 3]
    assert str(error) == "c.yaml:1:2: (file): first\nc.yaml:3:7: store.timezone: bad"


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        (
            "  from_email: halo@batiksari.co.id\n",
            "",
            (7, 1, "sendgrid"),
            "missing required key 'from_email'",
        ),
        (
            "  timezone: Asia/Jakarta",
            "  timezone: Asia/Jakarta\n  langauge: id",
            (7, 3, "store"),
            "unknown key 'langauge'; did you mean 'language'?",
        ),
        (
            "  timezone: Asia/Jakarta",
            "  timezone: Asia/Jakarta\n  colour: red",
            (7, 3, "store"),
            "unknown key 'colour'; the keys allowed here are: name, url, consumer_key, "
            "consumer_secret, timezone, language, language_by_country, owner_email, "
            "returns_url, request_timeout, verify_tls",
        ),
        (
            "  name: Toko Batik Sari",
            "  name: 2024",
            (2, 9, "store.name"),
            "expected text, got the number 2024; put it in quotes",
        ),
        (
            "database:\n  path: state.db\n",
            "database:\n  path: state.db\npoll:\n  page_size: 2.5\n",
            (13, 14, "poll.page_size"),
            "expected a whole number, got the number 2.5",
        ),
        (
            "database:\n  path: state.db\n",
            "database:\n  path: state.db\ndispatch:\n  workers: 0\n",
            (13, 12, "dispatch.workers"),
            "must be at least 1, got the number 0",
        ),
        (
            "  timezone: Asia/Jakarta",
            "  timezone: Asia/Jakarta\n  language: fr",
            (7, 13, "store.language"),
            "expected 'en', 'id' or 'ms', got 'fr'",
        ),
        (
            "  timezone: Asia/Jakarta",
            "  timezone: Asia/Jakarta\n  verify_tls: ''",
            (7, 15, "store.verify_tls"),
            "expected true, false or the path of a CA bundle file, got an empty text ''",
        ),
        (
            "        after: 30m",
            "        after: 3x",
            (16, 16, "sequences[0].steps[0].after"),
            "'3x' is not a duration (unknown unit 'x'); write a whole number and a unit, "
            "like 30s, 30m, 2h, 3d or 1w (s=seconds, m=minutes, h=hours, d=days, w=weeks)",
        ),
        (
            "        template: thank-you",
            "        template: Thank_You",
            (17, 19, "sequences[0].steps[0].template"),
            "'Thank_You' is not a valid name; use lowercase letters, digits and dashes, "
            "like 'thank-you'",
        ),
        (
            "    steps:\n      - name: thank-you\n"
            "        after: 30m\n        template: thank-you\n",
            "    steps: []\n",
            (14, 5, "sequences[0].steps"),
            "needs at least one step; it is empty",
        ),
        (
            "sendgrid:\n",
            "sendgrid: SG.key\nx-old:\n",
            (7, 11, "sendgrid"),
            "expected a mapping (indented 'key: value' lines), got 'SG.key'",
        ),
        (
            "sequences:\n  - name",
            "sequences:\n  - name: other\n    steps: thank-you\n  - name",
            (14, 12, "sequences[0].steps"),
            "expected a list (lines starting with '- '), got 'thank-you'",
        ),
        (
            "database:\n  path: state.db\n",
            "database:\n  path: state.db\n  url: sqlite:///x.db\n",
            (10, 1, "database"),
            "set exactly one of 'path' (a SQLite file, e.g. /var/lib/wcfollowup/state.db) or "
            "'url' (e.g. postgresql+psycopg://USER:PASSWORD@HOST/DBNAME); both are set",
        ),
        (
            "database:\n  path: state.db\n",
            "",
            (1, 1, "(top level)"),
            "missing required key 'database'",
        ),
    ],
)
def test_each_kind_of_mistake_is_explained_at_its_place(
    write: Callable[[str], Path],
    old: str,
    new: str,
    where: tuple[int, int, str],
    message: str,
) -> None:
    problem = one_problem(write(broken(old, new)))
    assert (problem.line, problem.column, problem.location) == where
    assert problem.message == message


def test_a_misspelt_required_key_is_reported_once(write: Callable[[str], Path]) -> None:
    problem = one_problem(write(broken("  consumer_secret:", "  consumer_secrt:")))
    assert problem.message == "unknown key 'consumer_secrt'; did you mean 'consumer_secret'?"
    assert (problem.line, problem.column) == (5, 3)


def test_duplicate_keys_are_each_reported_and_validation_still_runs(
    write: Callable[[str], Path],
) -> None:
    text = broken("  timezone: Asia/Jakarta", "  timezone: Asia/Jakarta\n  name: Again\n  url: x")
    found = problems_in(write(text))
    assert [(p.line, p.column, p.message) for p in found] == [
        (7, 3, "duplicate key 'name' (already set on line 2); keep only one"),
        (8, 3, "duplicate key 'url' (already set on line 3); keep only one"),
    ]


def test_duplicate_names_are_reported_together_with_other_problems(
    write: Callable[[str], Path],
) -> None:
    text = before_http("  - name: thank-you\n    steps:\n      - name: x\n        template: y\n")
    text = text.replace("store:", "store:\n  colour: red", 1)
    found = problems_in(write(text))
    assert [(p.line, p.location) for p in found] == [
        (2, "store"),
        (19, "sequences[1].name"),
    ]


# --- secrets and values from the environment ------------------------------------------------------


def test_secrets_are_never_echoed(write: Callable[[str], Path]) -> None:
    text = broken("  consumer_secret: ${WC_CONSUMER_SECRET}", "  consumer_secret: 98765432101")
    text = text.replace("  from_email: halo@batiksari.co.id", "  from_email: ${FROM}")
    env = {**ENV, "FROM": "cs_live_secret_5678"}
    with pytest.raises(ConfigError) as caught:
        load_config(write(text), env=env)
    report = str(caught.value) + repr(caught.value.problems)
    assert "98765432101" not in report
    assert "cs_live_secret_5678" not in report
    messages = {p.location: p.message for p in caught.value.problems}
    assert messages == {
        "store.consumer_secret": "expected text, got a number; put it in quotes",
        "sendgrid.from_email": "the value is not a valid email address "
        "(the value comes from environment variable FROM)",
    }


def test_an_empty_secret_names_the_variable(write: Callable[[str], Path]) -> None:
    problem = one_problem(write(VALID), env={**ENV, "SENDGRID_API_KEY": " "})
    assert problem.location == "sendgrid.api_key"
    assert problem.message == (
        "must not be empty (the value comes from environment variable SENDGRID_API_KEY)"
    )


def test_database_url_password_is_not_echoed(write: Callable[[str], Path]) -> None:
    text = broken("  path: state.db", "  url: postgres:/me:hunter2@db/x")
    problem = one_problem(write(text))
    assert "hunter2" not in str(problem)
    assert problem.message.startswith("the value is not a database URL")
    cfg = load_config(
        write(broken("  path: state.db", "  url: ${DB}")),
        env={**ENV, "DB": "postgresql+psycopg://me:hunter2@db/x"},
    )
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg)


def test_malformed_variable_references(write: Callable[[str], Path]) -> None:
    text = broken("  name: Toko Batik Sari", "  name: ${SHOP")
    text = text.replace("  url: https://batiksari.co.id", "  url: ${1BAD}")
    found = problems_in(write(text))
    assert [(p.line, p.location) for p in found] == [(2, "store.name"), (3, "store.url")]
    assert all("is not a valid variable reference" in p.message for p in found)


def test_an_unset_variable_in_an_aliased_value_is_reported_once(
    write: Callable[[str], Path],
) -> None:
    text = broken("  consumer_key: ${WC_CONSUMER_KEY}", "  consumer_key: &k ${NOPE}")
    text = text.replace("  consumer_secret: ${WC_CONSUMER_SECRET}", "  consumer_secret: *k")
    problem = one_problem(write(text))
    assert problem.message.startswith("environment variable NOPE is not set")
    assert (problem.line, problem.column) == (4, 17)


# --- broken files ---------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    problem = one_problem(tmp_path / "nope.yaml")
    assert str(problem) == f"{tmp_path / 'nope.yaml'}:1:1: (file): file not found"


def test_directory(tmp_path: Path) -> None:
    assert one_problem(tmp_path).message == "this is a directory, not a file"


@pytest.mark.parametrize("text", ["", "\n\n", "# just\n   # comments\n", "---\n", "~\n"])
def test_empty_file(write: Callable[[str], Path], text: str) -> None:
    problem = one_problem(write(text))
    assert (problem.line, problem.column, problem.location) == (1, 1, "(file)")
    assert problem.message == "the file is empty; start from config.example.yaml"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("store:\n  name: Café\n".encode("latin-1"))
    problem = one_problem(path)
    assert problem.message == "not UTF-8 text (bad byte at offset 18); save it as UTF-8"
    assert (problem.line, problem.column) == (2, 12)


def test_utf8_bom_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + VALID.encode())
    assert load_config(path, env=ENV).store.name == "Toko Batik Sari"


def test_huge_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"# " + b"x" * 300_000 + b"\n")
    assert one_problem(path).message == "the file is larger than 256,000 bytes; is it the config?"


def test_a_file_with_too_many_values_is_refused_quickly(write: Callable[[str], Path]) -> None:
    started = time.perf_counter()
    problem = one_problem(write("a: [" + ", ".join(["x"] * 50_000) + "]\n"))
    assert time.perf_counter() - started < 3.0
    assert problem.message.startswith("the file holds more than 10,000 values")


@pytest.mark.parametrize(
    ("text", "holds"),
    [("- store\n- sendgrid\n", "a list"), ("just some words\n", "a single value")],
)
def test_top_level_must_be_a_mapping(write: Callable[[str], Path], text: str, holds: str) -> None:
    problem = one_problem(write(text))
    assert problem.location == "(file)"
    assert problem.message.startswith("the top level must be a mapping of sections")
    assert problem.message.endswith(f"but the file holds {holds}")


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        (
            "store:\n  name: a: b\n",
            2,
            10,
            "YAML syntax error: mapping values are not allowed here; put a space after each ':' "
            "and quote values that contain ': '",
        ),
        (
            "store:\n\tname: x\n",
            2,
            1,
            "YAML syntax error: found character '\\t' that cannot start any token; "
            "indent with spaces, not tabs",
        ),
        (
            "store: [a, b\n",
            2,
            1,
            "YAML syntax error: expected ',' or ']', but got '<stream end>' "
            "(while parsing a flow sequence, line 1)",
        ),
        (
            "a: *nowhere\n",
            1,
            4,
            "YAML syntax error: found undefined alias 'nowhere'; "
            "define the &anchor before using it",
        ),
        (
            "a: 1\n---\nb: 2\n",
            2,
            1,
            "YAML syntax error: but found another document "
            "(expected a single document in the stream, line 1)",
        ),
        ("a: \x01\n", 1, 4, "the control character U+0001 is not allowed in YAML; remove it"),
    ],
)
def test_yaml_syntax_errors_point_at_the_problem(
    write: Callable[[str], Path], text: str, line: int, column: int, message: str
) -> None:
    problem = one_problem(write(text))
    assert (problem.line, problem.column, problem.location, problem.message) == (
        line,
        column,
        "(file)",
        message,
    )


def test_unsupported_tags_are_refused_not_executed(write: Callable[[str], Path]) -> None:
    text = broken("  name: Toko Batik Sari", "  name: !!python/object/apply:os.system [echo]")
    text2 = broken("  name: Toko Batik Sari", "  name: !!python/name:os.system ''")
    problem = one_problem(write(text2, "two.yaml"))
    assert problem.message == "unsupported YAML tag '!!python/name:os.system'; remove it"
    assert (problem.line, problem.location) == (2, "store.name")
    assert problems_in(write(text))  # a tagged sequence: refused too


# --- hostile input --------------------------------------------------------------------------------


def test_billion_laughs_is_refused_fast_and_small() -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        problem = one_problem(CONFIGS / "billion_laughs.yaml")
    finally:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 20_000_000
    assert problem.location == "(file)"
    assert "expand to more than 100,000 values" in problem.message


def test_self_referencing_alias_is_refused(write: Callable[[str], Path]) -> None:
    problem = one_problem(write("a: &loop [1, *loop]\n"))
    assert "refers to its own anchor" in problem.message


@pytest.mark.parametrize("depth", [65, 5000, 80_000])
def test_deep_nesting_is_refused_quickly(write: Callable[[str], Path], depth: int) -> None:
    started = time.perf_counter()
    problem = one_problem(write("a: " + "[" * depth + "]" * depth + "\n"))
    assert time.perf_counter() - started < 3.0  # ruamel's scanner is quadratic in flow depth
    assert (problem.line, problem.column, problem.location) == (1, 67, "(file)")
    assert problem.message == "the YAML is nested more than 64 levels deep"


def test_deep_nesting_through_aliases_is_refused(write: Callable[[str], Path]) -> None:
    text = "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n"
    problem = one_problem(write(text))
    assert problem.message == "the YAML is nested more than 64 levels deep"


def test_a_value_with_a_line_break_is_shown_escaped_on_one_line(
    write: Callable[[str], Path],
) -> None:
    """Found by hypothesis: ``store: "\\n"`` printed a raw line break inside the message."""
    found = problems_in(write(broken("store:\n", 'store: "a\\nb"\nold_store:\n')))
    [text] = [str(p) for p in found if p.location == "store"]
    assert "\n" not in text
    assert text.endswith("store: expected a mapping (indented 'key: value' lines), got 'a\\nb'")


def test_a_missing_ca_bundle_is_reported_at_its_line_by_check_and_run(
    write: Callable[[str], Path],
) -> None:
    path = write(
        VALID.replace(
            "  timezone: Asia/Jakarta\n", "  timezone: Asia/Jakarta\n  verify_tls: ca.pem\n"
        )
    )
    problem = one_problem(path)
    assert (problem.line, problem.column, problem.location) == (7, 15, "store.verify_tls")
    assert problem.message.startswith(f"{path.parent / 'ca.pem'} does not exist;")
    for args in (["check"], ["run", "--once"]):
        result = CliRunner().invoke(app, [*args, "--config", str(path)], env=ENV)
        assert result.exit_code == 2, result.output
        assert "store.verify_tls" in result.output
        assert isinstance(result.exception, SystemExit)  # no traceback


@pytest.mark.parametrize("address", ["owner@batiksari.test", "pemilik@toko.co.id"])
def test_owner_email_accepts_what_a_customer_address_may_be(
    write: Callable[[str], Path], address: str
) -> None:
    """The same rule as customers' addresses (``core.emails``): ``.test`` included."""
    from wcfollowup.common.emails import normalize_email

    text = VALID.replace(
        "  timezone: Asia/Jakarta\n", f"  timezone: Asia/Jakarta\n  owner_email: {address}\n"
    )
    config = load_config(write(text), env=ENV)
    assert config.store.owner_email == normalize_email(address) == address
