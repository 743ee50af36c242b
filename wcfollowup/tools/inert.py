"""Owner output that cannot act on the owner's terminal or spreadsheet.

Much of what the owner's commands print comes from strangers: survey comments, order numbers
and amounts from the store, error texts a provider echoed. A terminal obeys escape sequences in
that text (``ESC [`` moves the cursor or recolours, OSC 8 forges a link, OSC 52 writes the
clipboard, ``\\r`` overwrites a line, bidi overrides reorder what is read), and a spreadsheet
runs a CSV cell that starts with ``=``, ``+``, ``-``, ``@``, tab or CR as a formula (OWASP
"CSV injection"). So every owner command passes such text through here:

- :func:`for_terminal` shows each control character as a visible escape (``\\x1b``);
- :func:`csv_cell` does the same and prefixes a formula-like cell with ``'``;
- :func:`json_text` keeps JSON exact: the few characters JSON leaves raw (C1 controls, bidi
  controls, line separators) are written as ``\\uXXXX`` escapes, which parse back to the same
  string. ``--json`` is the lossless export.
"""

from __future__ import annotations

import json
import re

# C0 controls, DEL and C1 controls (U+0080-U+009F; U+009B is an 8-bit CSI), the Unicode line and
# paragraph separators, and the bidirectional marks, embeddings, overrides and isolates.
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# The same without newline and tab: for multi-line text (an email body in ``preview``).
UNSAFE_MULTILINE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(text: str, *, multiline: bool = False) -> str:
    """``text`` with every control character shown as an escape, so it prints inertly.

    ``multiline`` keeps newlines and tabs (an email's text); otherwise they are shown as
    ``\\n`` and ``\\t`` too, so one record stays one line.
    """
    return (UNSAFE_MULTILINE if multiline else UNSAFE).sub(_visible, text)


def csv_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: controls escaped, formulas prefixed with ``'``."""
    text = for_terminal("" if value is None else str(value))
    return "'" + text if text.startswith(FORMULA_START) else text


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def json_text(value: object) -> str:
    """``json.dumps`` (non-ASCII kept readable) with no raw control character in the output.

    ``json.dumps`` already escapes C0 controls; the characters left are escaped the same way.
    They can only occur inside JSON strings, so the document still parses to the same value.
    """
    return UNSAFE.sub(_json_escape, json.dumps(value, ensure_ascii=False))
