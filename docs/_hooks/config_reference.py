"""MkDocs hook: the proxy's config reference, generated at build time from the pydantic models.

``proxy-config.md`` is never written to ``docs/``: every build renders it from
``modelyard.proxy.config`` (field names, types, defaults, bounds, secrets, and the attribute
docstrings under each field), so the page cannot drift from what ``modelyard serve`` accepts.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import re
import textwrap
import types
import typing
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

PAGE = "proxy-config.md"

INTRO = """\
# Config reference

Every key `modelyard serve --config config.yaml` reads, section by section. This page is
generated from the pydantic models of `modelyard.proxy.config` each time the site is built, so it
is always the code's own list. The format is LiteLLM's proxy `config.yaml`; what each setting does
is explained in [the proxy](proxy.md), [the Router](router.md) and [authentication](auth.md).

Rules that hold for every section:

- A string `os.environ/NAME` anywhere is replaced by that environment variable when the config
  is loaded; a missing variable is an error naming it and the key that used it.
- An invalid value is an error naming its path (`model_list[2].litellm_params.api_version`).
- An unknown key is accepted, with a logged warning naming its path (LiteLLM configs carry
  keys modelyard does not use).
- A *secret* field never shows in a repr, a log line or an error; give it as `os.environ/NAME`.
"""


def _sections() -> list[tuple[str, type[BaseModel], str]]:
    from modelyard.proxy import config

    return [
        ("Top level", config.ProxyConfig, ""),
        ("model_list[]", config.ModelEntry, "model_list[]."),
        ("model_list[].litellm_params", config.LiteLLMParams, "litellm_params."),
        ("model_list[].model_info", config.ModelInfo, "model_info."),
        ("litellm_settings", config.LiteLLMSettings, "litellm_settings."),
        ("router_settings", config.RouterSettings, "router_settings."),
        ("general_settings", config.GeneralSettings, "general_settings."),
        ("modelyard_settings", config.ModelyardSettings, "modelyard_settings."),
    ]


def _attribute_docs(model: type[BaseModel]) -> dict[str, str]:
    """The docstrings written under fields (``x: int = 1`` then ``\"\"\"...\"\"\"``), bases included."""
    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, following in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[node.target.id] = _markdown(following.value.value)
    return docs


def _markdown(rst: str) -> str:
    """A docstring's reStructuredText roles and literals, as Markdown, on one line."""
    text = " ".join(inspect.cleandoc(rst).split())
    text = re.sub(r":(?:class|mod|func|meth|attr):`~?(?:[\w.]*\.)?(\w+)`", r"`\1`", text)
    return text.replace("``", "`")


def _type_name(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    if annotation is SecretStr:
        return "string (secret)"
    names = {str: "string", int: "integer", float: "number", bool: "boolean", typing.Any: "any"}
    if annotation in names:
        return names[annotation]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        parts = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(dict.fromkeys(parts))
    if origin is list:
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"map of {_type_name(args[0])} to {_type_name(args[1])}" if args else "map"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        return "empty"
    if field.default is None or field.default is PydanticUndefined:
        return "unset"
    return f"`{str(field.default).lower() if isinstance(field.default, bool) else field.default}`"


def _bounds(field: FieldInfo) -> str:
    words = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "length >=", "pattern": "matches"}
    found = []
    for item in field.metadata:
        for attr, word in words.items():
            value = getattr(item, attr, None)
            if value is not None:
                found.append(f"{word} `{value}`")
    return ", ".join(found)


def render() -> str:
    """The page's Markdown."""
    out = [INTRO]
    for title, model, prefix in _sections():
        docs = _attribute_docs(model)
        out.append(f"## {title if not prefix else f'`{title}`'}\n")
        out.append(_markdown(model.__doc__ or "") + "\n")
        out.append("| key | type | default | bounds | notes |\n|---|---|---|---|---|")
        for name, field in model.model_fields.items():
            key = field.alias or name
            note = docs.get(name, "").replace("|", "\\|")
            out.append(
                f"| `{prefix}{key}` | {_type_name(field.annotation)} | {_default(field)} | {_bounds(field)} | {note} |"
            )
        out.append("")
    return "\n".join(out)


def on_files(files: Any, config: Any) -> Any:
    """Add the generated page to the build (MkDocs >= 1.6: ``File.generated``)."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=render()))
    return files


def on_config(config: Any) -> Any:
    """Work around CPython gh-77057 in MkDocs 1.6's anchor scan (Python < 3.13).

    MkDocs feeds each page's raw Markdown to ``html.parser`` to find ``<a id>`` anchors; on a
    page holding ``<![`` outside a CDATA section (families.md's regex ``(?<![a-z0-9])``) the
    standard library raises ``AssertionError``. Python-Markdown patches its own parser the same
    way; MkDocs's scanner does not, so this hook does: ``<![`` there is plain text.
    """
    from mkdocs.structure import pages

    handler = pages._HTMLHandler
    if not getattr(handler, "_modelyard_patched", False):
        original = handler.parse_html_declaration

        def parse_html_declaration(self: Any, i: int) -> int:
            if self.rawdata[i : i + 3] == "<![" and self.rawdata[i : i + 9] != "<![CDATA[":
                self.handle_data("<![")
                return i + 3
            return int(original(self, i))

        handler.parse_html_declaration = parse_html_declaration
        handler._modelyard_patched = True
    return config
