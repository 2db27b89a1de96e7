"""The quick start (docs/usage/quickstart.md) as a pip user walks it: in a
fresh virtualenv with spacy-bertprod installed from the checkout's wheel, in
an empty folder, with no repository: init-config, convert the shipped
sample, `spacy train`, `spacy package`, install the package, `spacy.load`,
`bertprod serve` and one request to /v1/process."""

import json
import os
import site
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
from test_lean import checkout_wheel

from spacy_bertprod.cli.demo import SAMPLE_DIR
from spacy_bertprod.cli.init_config import CONFIGS_DIR

TEXT = "Angela Merkel visited the Siemens plant in Munich."
#: seconds for each step (a `spacy train` of a few steps on 2 cores included)
STEP_TIMEOUT = 300
#: the server's start: loading the pipeline and the warm-up
READY_TIMEOUT = 120

#: the pipeline's annotations of TEXT, as the server writes them
ANNOTATE = f"""
import json, spacy
from spacy_bertprod.pipeline.annotations import doc_annotations
nlp = spacy.load("en_quickstart_test")
print(json.dumps({{"file": spacy.util.get_package_path("en_quickstart_test").as_posix(), "pipes": nlp.pipe_names, "result": doc_annotations(nlp, nlp({TEXT!r}))}}))
"""


def test_the_wheel_ships_the_configs_and_the_sample(tmp_path):
    """What `init-config`, `convert-all sample` and `demo` read after a pip
    install is package data in the wheel."""
    with zipfile.ZipFile(checkout_wheel(tmp_path)) as wheel:
        names = set(wheel.namelist())
    package = CONFIGS_DIR.parent
    shipped = sorted(CONFIGS_DIR.glob("*.cfg")) + sorted(SAMPLE_DIR.glob("*.txt"))
    assert len(shipped) == 8
    assert {f"spacy_bertprod/{p.relative_to(package).as_posix()}" for p in shipped} <= names


#: distributions of this environment the virtualenv does not see: the
#: package under test, and `build`, which a fresh virtualenv lacks and
#: `spacy package --build wheel` asks for (the quick start installs it)
LEFT_OUT = ("spacy_bertprod", "build", "pyproject_hooks")


def venv_with_this_stack(path: Path) -> Path:
    """A fresh virtualenv that sees this environment's packages except
    LEFT_OUT, as `--system-site-packages` does for a virtualenv of the base
    interpreter: a .pth file puts a folder of links to this environment's
    site-packages entries on its path (the .pth files left out), so pip
    installs the wheel's dependencies without asking a package registry.
    Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    (own_site,) = path.glob("lib/python*/site-packages")
    stack = path / "stack"
    stack.mkdir()
    for parent in site.getsitepackages():
        for entry in Path(parent).iterdir():
            if entry.name.split("-")[0] in LEFT_OUT or entry.name.startswith("__editable__") or entry.suffix == ".pth" or (stack / entry.name).exists():
                continue
            (stack / entry.name).symlink_to(entry)
    (own_site / "this_stack.pth").write_text(f"{stack}\n", encoding="utf8")
    return path / "bin" / "python"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, body: "dict | None" = None) -> "tuple[int, dict]":
    data = None if body is None else json.dumps(body).encode("utf8")
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


@pytest.mark.venv
def test_the_pip_users_path(tiny_bert, tmp_path):
    python = venv_with_this_stack(tmp_path / "env")
    work = tmp_path / "work"
    work.mkdir()
    # no checkout on the path: the walk sees only what pip installed
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}

    def run(*args: str) -> str:
        out = subprocess.run([str(python), *args], cwd=work, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT)
        assert out.returncode == 0, f"{args}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        return out.stdout

    wheel = checkout_wheel(tmp_path)
    run("-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index", f"{wheel}[train,serve]")
    where = run("-c", "import spacy_bertprod; print(spacy_bertprod.__file__)").strip()
    assert where.startswith(str(tmp_path / "env")), where
    run("-m", "spacy", "bertprod", "init-config", "config.cfg", "--task", "ner", "--encoder", tiny_bert)
    run("-m", "spacy", "bertprod", "convert-all", "sample", "corpus", "--task", "ner")
    paths = ("--paths.train", "corpus/ner/train.spacy", "--paths.dev", "corpus/ner/dev.spacy")
    run("-m", "spacy", "train", "config.cfg", "--output", "training", *paths, "--training.max_steps", "2", "--training.max_epochs", "0", "--training.eval_frequency", "1")
    (work / "packages").mkdir()
    installed = {line.split("==")[0].lower() for line in run("-m", "pip", "list", "--disable-pip-version-check", "--format=freeze").splitlines()}
    assert "build" not in installed and "spacy-bertprod" in installed
    run("-m", "pip", "install", "--quiet", "--disable-pip-version-check", "build")  # from the package registry
    run("-m", "spacy", "package", "training/model-best", "packages", "--name", "quickstart_test", "--version", "0.0.1", "--build", "wheel")
    (package,) = (work / "packages").glob("*/dist/en_quickstart_test-*.whl")
    run("-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index", str(package))
    loaded = json.loads(run("-c", ANNOTATE).splitlines()[-1])
    assert loaded["file"].startswith(str(tmp_path / "env")) and loaded["pipes"] == ["bertprod_ner"]
    assert "entities" in loaded["result"]
    port = free_port()
    server = subprocess.Popen(
        [str(python), "-m", "spacy", "bertprod", "serve", "en_quickstart_test", "--host", "127.0.0.1", "--port", str(port)],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            try:
                if get(f"http://127.0.0.1:{port}/ready")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server was not ready in time"
            time.sleep(0.5)
        status, body = get(f"http://127.0.0.1:{port}/v1/process", {"texts": [TEXT]})
        assert status == 200, body
        (result,) = body["results"]
        want = loaded["result"]
        assert result.keys() == want.keys()
        strip = [[{k: v for k, v in e.items() if k != "score"} for e in r["entities"]] for r in (result, want)]
        assert strip[0] == strip[1]
        assert [e["score"] for e in result["entities"]] == pytest.approx([e["score"] for e in want["entities"]], abs=1e-4)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
