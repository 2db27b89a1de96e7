"""The message catalogue: spaCy's pattern, one code a message, each used."""

import re
from pathlib import Path

from spacy_bertprod.errors import Errors, Warnings

PACKAGE = Path(__file__).resolve().parent.parent / "spacy_bertprod"


def codes(cls: type, letter: str) -> list:
    return [name for name in vars(cls) if re.fullmatch(rf"{letter}\d{{3}}", name)]


def test_the_metaclass_puts_the_code_in_front():
    assert Errors.E001.startswith("[E001] Could not find the model path")
    assert Warnings.W001.startswith("[W001] ")
    assert Errors.__name__ == "Errors"  # the class's own attributes stay as they are


def test_codes_are_in_order_and_written_once():
    for cls, letter in [(Errors, "E"), (Warnings, "W")]:
        names = codes(cls, letter)
        assert names == sorted(names), f"{cls.__name__}: codes out of order"
        for name in names:
            raw = vars(cls)[name]
            assert not re.search(rf"\[{letter}\d{{3}}\]", raw), f"{name} types a code inside its message"


def test_every_message_is_used():
    source = "\n".join(p.read_text(encoding="utf8") for p in PACKAGE.rglob("*.py") if p.name != "errors.py")
    unused = [name for cls, letter in [(Errors, "E"), (Warnings, "W")] for name in codes(cls, letter) if f"{cls.__name__}.{name}" not in source]
    assert not unused, f"messages no code raises: {unused}"
