"""What importing the package costs, and which way its imports run: the
package root imports nothing heavy (Ray read workers, CLIs that only read
files), each folder imports only the folders below it, and no two modules
share a name."""

import ast
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "spacy_bertprod"
HEAVY = ("torch", "transformers", "onnxruntime")

#: folder -> the folders its modules may import ("" is the package root:
#: errors, extras, memory, threads). layers/ is what the lean runtime runs;
#: compression/ (export, quantization) and training/ are the training
#: stack, which the components, the service and batch annotation never import.
ALLOWED: Dict[str, Set[str]] = {
    "": {""},
    "layers": {"", "layers"},
    "compression": {"", "layers", "compression"},
    "pipeline": {"", "layers", "pipeline"},
    "training": {"", "layers", "pipeline", "compression", "training"},
    "serve": {"", "layers", "pipeline", "serve"},
    "annotate": {"", "layers", "pipeline", "annotate"},
    "cli": {"", "layers", "pipeline", "compression", "training", "serve", "annotate", "cli"},
}


def _modules_loaded_by(code: str) -> List[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"], capture_output=True, text=True, cwd=ROOT, check=True)
    return out.stdout.split()


@pytest.mark.parametrize("heavy", HEAVY + ("spacy",))
def test_import_spacy_bertprod_imports_no_heavy_dependency(heavy):
    loaded = _modules_loaded_by("import spacy_bertprod\nassert 'BertprodNER' in spacy_bertprod.__all__")
    assert "spacy_bertprod" in loaded and heavy not in loaded


def test_names_of_the_package_root_are_imported_on_first_use():
    loaded = _modules_loaded_by("import spacy_bertprod\nfrom spacy_bertprod import BertprodNER, DEFAULT_MODEL\nassert BertprodNER.__name__ == 'BertprodNER'")
    assert "spacy" in loaded
    with pytest.raises(AttributeError, match="no attribute 'BertprodNERR'"):
        import spacy_bertprod

        spacy_bertprod.BertprodNERR  # noqa: B018


@pytest.mark.parametrize("heavy", HEAVY + ("spacy",))
def test_ray_read_task_imports_no_heavy_dependency(heavy):
    """What a Ray read worker imports to run `inputs.read_rows` (the function
    is pickled by reference to its module)."""
    loaded = _modules_loaded_by("import spacy_bertprod.annotate\nfrom spacy_bertprod.annotate.inputs import read_rows\nfrom spacy_bertprod.annotate import Settings")
    assert heavy not in loaded


def _folder(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else ""


def _imported_folders(path: Path) -> Set[str]:
    """The package folders a module imports, at its top or in a function."""
    module = ".".join(("spacy_bertprod",) + path.relative_to(PACKAGE).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    package = package.replace(".__init__", "")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf8"))):
        names: List[str] = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names] if base in ("spacy_bertprod",) else [base]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] != "spacy_bertprod":
                continue
            target = PACKAGE.joinpath(*parts[1:2])
            found.add(parts[1] if len(parts) > 1 and target.is_dir() else "")
    return found


def test_imports_run_down_the_layers():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        folder = _folder(path)
        for imported in _imported_folders(path) - ALLOWED[folder]:
            wrong.append(f"{path.relative_to(PACKAGE)} imports {imported or 'the package root'}/")
    assert wrong == []


def test_every_module_and_folder_has_its_own_name():
    names: Dict[str, List[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.parent.name if path.name == "__init__.py" else path.stem
        if path.parent != PACKAGE or path.name != "__init__.py":
            names.setdefault(name, []).append(str(path.relative_to(PACKAGE)))
    assert {name: paths for name, paths in names.items() if len(paths) > 1} == {}
