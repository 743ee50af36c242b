"""``preview``: the email a real order would get, written to a file; nothing sent or stored."""

from __future__ import annotations

from pathlib import Path

from support import sandbox_env
from tools_support import tools_config
from typer.testing import CliRunner

from wcfollowup.cli import app
from wcfollowup.sandbox import Sandbox


def test_preview_writes_the_html_and_prints_the_text(tmp_path: Path, sandbox: Sandbox) -> None:
    path, _config = tools_config(tmp_path, sandbox)
    order_id = sandbox.store.orders_ids(status="completed")[0]
    out = tmp_path / "thanks.html"
    env = {**sandbox_env(sandbox), "WCFOLLOWUP_CONFIG": str(path)}
    result = CliRunner().invoke(
        app, ["preview", str(order_id), "--step", "thank-you", "--html-out", str(out)], env=env
    )
    assert result.exit_code == 0, result.output
    number = sandbox.store.get(order_id)["number"]
    assert "<html" in out.read_text(encoding="utf-8").lower()
    assert f"HTML: {out}" in result.output
    assert number in result.output  # the text part names the order
    assert sandbox.sink.messages == []
    assert not (tmp_path / "state.db").exists()
    unknown = CliRunner().invoke(app, ["preview", str(order_id), "--step", "nope"], env=env)
    assert unknown.exit_code == 2
    assert "no step named 'nope'" in unknown.output
