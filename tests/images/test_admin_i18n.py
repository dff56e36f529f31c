"""The admin panel's message catalogue (images/psnapi/psnweb/admin/i18n.py) against its uses, read
from the files (nothing of the image's Python packages is imported): every msgid the templates
and the code use has its Russian text with the same placeholders, the catalogue holds nothing
unused, and the templates show no English text outside `_()`.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import string
from html.parser import HTMLParser
from pathlib import Path

ADMIN = Path(__file__).resolve().parents[2] / "images" / "psnapi" / "psnweb" / "admin"
TEMPLATES = sorted((ADMIN / "templates").glob("*.html"))
# Calls whose first string argument is a msgid (i18n.py's docstring names them).
MSGID_CALLS = {"tr", "translate", "N_", "ApiError"}
TEMPLATE_MSGID = re.compile(r"""\b_\(\s*(?:'([^']*)'|"([^"]*)")""")
JINJA = re.compile(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", re.DOTALL)
# Attributes a user reads; a `value` only where it is a visible label (not "on", "true").
TEXT_ATTRIBUTES = {"placeholder", "aria-label", "title", "alt"}
NOT_TEXT = {"example.com"}


def load_i18n():
    spec = importlib.util.spec_from_file_location("admin_i18n", ADMIN / "i18n.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def template_msgids() -> dict[str, str]:
    """msgid → the template using it."""
    found = {}
    for path in TEMPLATES:
        for match in TEMPLATE_MSGID.finditer(path.read_text(encoding="utf-8")):
            found.setdefault(match.group(1) or match.group(2), path.name)
    return found


def code_msgids() -> dict[str, str]:
    """msgid → the module using it: the first string argument of each MSGID_CALLS call."""
    found = {}
    for path in sorted(ADMIN.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name not in MSGID_CALLS:
                continue
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.setdefault(arg.value, path.name)
                    break
    return found


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_russian_covers_every_msgid_with_its_placeholders():
    i18n = load_i18n()
    russian = i18n.CATALOGUE["ru"]
    used = {**code_msgids(), **template_msgids()}
    assert len(used) > 100, f"the scan found only {len(used)} msgids: is it still reading them?"
    missing = sorted(f"{where}: {msgid!r}" for msgid, where in used.items() if msgid not in russian)
    assert not missing, "msgids without Russian text in i18n.py:\n" + "\n".join(missing)
    unused = sorted(set(russian) - set(used))
    assert not unused, f"translations nobody uses (remove them): {unused}"
    for msgid, text in russian.items():
        assert placeholders(text) == placeholders(msgid), (msgid, text)
        assert text.strip() and text != msgid, f"{msgid!r} is not translated"
    assert set(i18n.LANGUAGES) == {"en", *i18n.CATALOGUE}


class VisibleText(HTMLParser):
    """Text nodes and user-visible attribute values of a template without its Jinja parts."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        labelled = dict(attrs).get("type") in ("submit", "button", "reset")
        for name, value in attrs:
            visible = name in TEXT_ATTRIBUTES or (name == "value" and labelled)
            if visible and value and value not in NOT_TEXT:
                self.texts.append(f"{tag} {name}={value!r}")

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.texts.append(data.strip())


def test_templates_show_no_text_outside_the_catalogue():
    for path in TEMPLATES:
        parser = VisibleText()
        parser.feed(JINJA.sub("", path.read_text(encoding="utf-8")))
        words = [t for t in parser.texts if re.search(r"[^\W\d_]", t)]
        assert not words, f"{path.name}: text not written as _('...'): {words}"


def test_translate_fills_placeholders_and_keeps_unknown_messages():
    i18n = load_i18n()
    assert i18n.translate("ru", "User {address} saved.", address="a@b.c") == (
        "Пользователь a@b.c сохранён."
    )
    assert i18n.translate("en", "User {address} saved.", address="a@b.c") == "User a@b.c saved."
    # The API's own details are no msgids: shown as they are.
    assert i18n.translate("ru", "user x exists") == "user x exists"
    assert i18n.decimal("ru", "1.5") == "1,5" and i18n.decimal("en", "1.5") == "1.5"
