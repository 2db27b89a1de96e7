"""MkDocs hook: the reference pages that the code already knows, generated at
build time from the code itself so that they cannot drift from it (none of
them is committed).

reference/cli.md            the `python -m spacy bertprod` commands (typer/click objects)
reference/config.md         each component's config keys and defaults, the registered architectures
reference/errors.md         the error and warning catalogue (spacy_bertprod/errors.py)
reference/serve-settings.md ServeSettings' fields, defaults and CLI options
reference/http-api.md       the service's routes and models (FastAPI's OpenAPI schema, no model loaded)
reference/modules.md        the package's folders and modules (their docstrings, read without importing)

The factories and architectures are found through the package's entry points,
and the modules by walking the package's folders, so module moves need no
change here.
"""

import ast
import dataclasses
import inspect
import json
import pkgutil
import re
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the checkout's package, not another installed copy
    sys.path.insert(0, str(ROOT))

PACKAGE = "spacy_bertprod"


def cell(text: Any) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped, and
    `<` outside code spans escaped (messages say `<task>`, not HTML)."""
    parts = " ".join(str(text).split()).replace("|", "\\|").split("`")
    return "`".join(part if i % 2 else part.replace("<", "&lt;") for i, part in enumerate(parts))


def code(value: Any) -> str:
    return "`" + str(value).replace("`", "'") + "`"


def paragraphs(doc: str) -> str:
    """A docstring as Markdown: its paragraphs, lines joined; indented or
    `name: text` lines kept as their own lines."""
    return inspect.cleandoc(doc or "")


# --- CLI ---------------------------------------------------------------------


def cli_group() -> Any:
    """The `bertprod` typer app as its click group (typer may vendor click:
    its objects are used by what they do, not by class)."""
    import typer

    from spacy_bertprod.cli import bertprod_cli

    return typer.main.get_command(bertprod_cli)


def cli_page() -> str:
    group = cli_group()
    out = [
        "# Command line",
        "",
        "`python -m spacy bertprod COMMAND`: a spaCy CLI plugin (the `spacy_cli` entry point). This page is generated from the commands themselves; `--help` on each command prints the same.",
        "",
        paragraphs(group.help or ""),
        "",
    ]
    ctx = group.context_class(group, info_name="python -m spacy bertprod")
    for name in sorted(group.list_commands(ctx)):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        sub = command.context_class(command, info_name=name, parent=ctx)
        args = [p for p in command.params if p.param_type_name == "argument"]
        opts = [p for p in command.params if p.param_type_name == "option" and not p.hidden and p.name != "help"]
        usage = " ".join([name, *(p.name.upper() for p in args), "[OPTIONS]" if opts else ""]).strip()
        out += [f"## {name}", "", "```text", f"python -m spacy bertprod {usage}", "```", "", paragraphs(command.help or ""), ""]
        if args:
            out += ["| argument | help |", "| --- | --- |"]
            out += [f"| {code(p.name.upper())} | {cell(p.get_help_record(sub)[1])} |" for p in args]
            out.append("")
        if opts:
            out += ["| option | default | help |", "| --- | --- | --- |"]
            for p in opts:
                names, text = p.get_help_record(sub)
                text = re.sub(r"\s*\[default: [^\]]*\]", "", text)
                default = "" if p.default is None or p.required else code(p.default)
                out.append(f"| {code(names)} | {default} | {cell(text)} |")
            out.append("")
        if command.context_settings.get("allow_extra_args"):
            out += ["Extra `--section.key value` arguments are config overrides.", ""]
    return "\n".join(out)


# --- config and architectures -------------------------------------------------


def plugin_entry_points(group: str) -> Iterator[Tuple[str, Callable]]:
    """This package's registrations in an entry point group, by name."""
    for ep in sorted(entry_points(group=group), key=lambda ep: ep.name):
        if ep.value.split(":")[0].split(".")[0] == PACKAGE:
            yield ep.name, ep.load()


def flatten(config: Dict[str, Any], prefix: str = "") -> Iterator[Tuple[str, Any]]:
    for key, value in config.items():
        if isinstance(value, dict) and not any(k.startswith("@") for k in value):
            yield from flatten(value, f"{prefix}{key}.")
        elif isinstance(value, dict):
            ref = next(f"{k} = {json.dumps(v)}" for k, v in value.items() if k.startswith("@"))
            yield f"{prefix}{key}", ref
            yield from flatten({k: v for k, v in value.items() if not k.startswith("@")}, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", json.dumps(value)


def config_page() -> str:
    from spacy.language import Language

    out = [
        "# Config reference",
        "",
        "Generated from the registered factories and architectures. Every key can be set in a training config "
        "(`[components.NAME...]`), in `nlp.add_pipe(NAME, config={...})`, or at load time with "
        '`spacy.load(path, config={"components.NAME.KEY": value})`; see [the config is the truth](../usage/ner.md#the-config-is-the-truth).',
        "",
        "## Components",
        "",
    ]
    for name, _factory in plugin_entry_points("spacy_factories"):
        meta = Language.get_factory_meta(name)
        out += [f"### {name}", "", f"Assigns: {', '.join(code(a) for a in meta.assigns)}.", ""]
        out += ["| key | default |", "| --- | --- |"]
        out += [f"| {code(key)} | {code(value)} |" for key, value in flatten(dict(meta.default_config or {}))]
        out.append("")
    out += ["## Architectures", ""]
    for name, func in plugin_entry_points("spacy_architectures"):
        out += [f"### {name}", "", paragraphs(func.__doc__ or ""), "", "| argument | type | default |", "| --- | --- | --- |"]
        for param in inspect.signature(func).parameters.values():
            kind = inspect.formatannotation(param.annotation) if param.annotation is not param.empty else ""
            default = "required" if param.default is param.empty else code(json.dumps(param.default))
            out.append(f"| {code(param.name)} | {cell(kind)} | {default} |")
        out.append("")
    others = [("spacy_readers", "Readers"), ("spacy_scorers", "Scorers"), ("spacy_loggers", "Loggers"), ("thinc_optimizers", "Optimizers")]
    for group, title in others:
        out += [f"## {title}", ""]
        for name, func in plugin_entry_points(group):
            out += [f"### {name}", "", paragraphs(func.__doc__ or ""), ""]
    return "\n".join(out)


# --- errors -------------------------------------------------------------------


def errors_page() -> str:
    from spacy_bertprod import errors

    out = [
        "# Errors and warnings",
        "",
        "Every user-facing message, generated from `spacy_bertprod/errors.py`. A message names what happened and what to do; `{...}` is filled in when it is raised. Codes are never reused.",
        "",
    ]
    for title, cls in (("Errors", errors.Errors), ("Warnings", errors.Warnings)):
        out += [f"## {title}", "", "| code | message |", "| --- | --- |"]
        for key in vars(cls):
            if re.fullmatch(r"[EW]\d+", key):
                message = type.__getattribute__(cls, key)  # without the "[CODE] " prefix
                out.append(f'| <a id="{key}"></a>{key} | {cell(message)} |')
        out.append("")
    return "\n".join(out)


# --- service ------------------------------------------------------------------


def field_docs(doc: str) -> Dict[str, str]:
    """`name: text` entries of a docstring (continuation lines indented)."""
    found: Dict[str, List[str]] = {}
    current = None
    for line in inspect.cleandoc(doc).splitlines():
        match = re.match(r"^(\w+): (.*)", line)
        if match:
            current = match[1]
            found[current] = [match[2]]
        elif current and line.startswith(" "):
            found[current].append(line.strip())
        else:
            current = None
    return {k: " ".join(v) for k, v in found.items()}


def serve_settings_page() -> str:
    from spacy_bertprod.serve import ServeSettings

    group = cli_group()
    serve = group.get_command(group.context_class(group), "serve")
    options = {p.name: p for p in serve.params if p.param_type_name == "option"}
    docs = field_docs(ServeSettings.__doc__ or "")
    out = [
        "# Service settings",
        "",
        "`spacy_bertprod.serve.ServeSettings`, generated from the dataclass and the `serve` command. "
        "`create_app(nlp, ServeSettings(...))` takes them in Python, `python -m spacy bertprod serve` "
        "as options with the same defaults; a bad value is refused with [E120](errors.md#E120).",
        "",
        "| field | CLI option | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for field in dataclasses.fields(ServeSettings):
        option = options.get(field.name)
        flag = ", ".join(code(o) for o in option.opts) if option else ""
        out.append(f"| {code(field.name)} | {flag} | {code(field.default)} | {cell(docs.get(field.name, ''))} |")
    other = [p for name, p in options.items() if not any(f.name == name for f in dataclasses.fields(ServeSettings)) and name != "help"]
    out += ["", "Options of the `serve` command beyond the settings:", "", "| option | default | help |", "| --- | --- | --- |"]
    out += [f"| {', '.join(code(o) for o in p.opts)} | {code(p.default)} | {cell(p.help or '')} |" for p in other]
    return "\n".join(out) + "\n"


def schema_type(schema: Dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        return " or ".join(schema_type(s) for s in schema["anyOf"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {schema_type(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        return f"object of {schema_type(schema['additionalProperties'])}"
    return str(kind)


def http_api_page() -> str:
    import spacy

    from spacy_bertprod.serve import create_app

    # a blank pipeline: the routes and models do not depend on the components,
    # and the app does not run (no lifespan, no warm-up) to give its schema
    spec = create_app(spacy.blank("en")).openapi()
    out = [
        "# HTTP API",
        "",
        f"{spec['info'].get('summary', '')}. Generated from the app's OpenAPI schema "
        f"(OpenAPI {spec['openapi']}); a running server publishes the same at `/openapi.json`, with an interactive page at `/docs`. "
        "See [Serving](../usage/serving.md) for what the routes do and [Service settings](serve-settings.md) for the limits.",
        "",
    ]
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            out += [f"## `{method.upper()} {path}`", "", paragraphs(op.get("description") or op.get("summary", "")), ""]
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body:
                out += [f"Request body: {schema_type(body)}.", ""]
            out += ["| status | description | body |", "| --- | --- | --- |"]
            for status, response in op.get("responses", {}).items():
                content: Dict[str, Any] = response.get("content", {})
                schema = next(iter(content.values())).get("schema", {}) if content else {}
                shape = schema_type(schema) if schema else ""
                out.append(f"| {status} | {cell(response.get('description', ''))} | {shape} |")
            out.append("")
    out += ["## Models", ""]
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        out += [f"### {name}", "", cell(schema.get("description", "")), ""]
        props = schema.get("properties", {})
        if props:
            required = set(schema.get("required", []))
            out += ["| field | type | required | description |", "| --- | --- | --- | --- |"]
            for prop, sub in props.items():
                out.append(f"| {code(prop)} | {schema_type(sub)} | {'yes' if prop in required else 'no'} | {cell(sub.get('description', ''))} |")
            out.append("")
        if schema.get("examples"):
            out += ["Example:", "", "```json", json.dumps(schema["examples"][0], indent=2), "```", ""]
    return "\n".join(out)


# --- module map -----------------------------------------------------------------


def summary(path: Path) -> str:
    """A module's docstring up to its first blank line, read without importing it."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf8"))) or ""
    return doc.split("\n\n")[0]


def walk(folder: Path, dotted: str) -> Iterator[Tuple[str, Path, List[Tuple[str, Path]]]]:
    """(package, its __init__, [(module, file)]) for the package and every subpackage."""
    modules: List[Tuple[str, Path]] = []
    subpackages: List[Tuple[str, Path]] = []
    for info in pkgutil.iter_modules([str(folder)]):
        (subpackages if info.ispkg else modules).append((info.name, folder / info.name))
    yield dotted, folder / "__init__.py", [(name, Path(f"{path}.py")) for name, path in modules]
    for name, path in subpackages:
        yield from walk(path, f"{dotted}.{name}")


def modules_page() -> str:
    out = [
        "# Module map",
        "",
        "Each folder of the package and its modules, with the first paragraph of each docstring; generated by walking the package.",
        "",
    ]
    for dotted, init, modules in walk(ROOT / PACKAGE, PACKAGE):
        folder = dotted.replace(".", "/") + "/"
        out += [f"## `{folder}`", "", paragraphs(summary(init)) if init.exists() else "", ""]
        if modules:
            out += ["| module | what it holds |", "| --- | --- |"]
            out += [f"| {code(name + '.py')} | {cell(summary(path))} |" for name, path in modules]
            out.append("")
    return "\n".join(out)


#: generated page -> its renderer
PAGES: Dict[str, Callable[[], str]] = {
    "reference/cli.md": cli_page,
    "reference/config.md": config_page,
    "reference/errors.md": errors_page,
    "reference/serve-settings.md": serve_settings_page,
    "reference/http-api.md": http_api_page,
    "reference/modules.md": modules_page,
}


def on_files(files: Any, config: Any) -> Any:
    """Add the generated pages to the site's files (before the nav is read)."""
    from mkdocs.structure.files import File

    for uri, render in PAGES.items():
        files.append(File.generated(config, uri, content=render()))
    return files
