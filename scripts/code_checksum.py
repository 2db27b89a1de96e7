"""Write the md5 of spacy_bertprod's source files to OUT, only when it changed.

spaCy projects rerun a command when one of its deps changed. A folder as a
dep is hashed with every file in it, __pycache__ included, which Python
rewrites on import: the package folder would count as changed after every
run. The project's commands depend on this file instead; its content moves
only with the package's .py sources and pyproject.toml.

    python scripts/code_checksum.py training/code.md5
"""

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def code_checksum() -> str:
    digest = hashlib.md5()
    for path in sorted([*(ROOT / "spacy_bertprod").rglob("*.py"), ROOT / "pyproject.toml"]):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def main(out: Path) -> None:
    value = code_checksum() + "\n"
    if not out.exists() or out.read_text() != value:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(value)
        print(f"spacy_bertprod sources changed: {out} updated")
    else:
        print(f"spacy_bertprod sources unchanged ({out})")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
