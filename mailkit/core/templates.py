"""Rendering config from the Jinja2 templates in ``templates/`` (laid out like the target host).

Undefined names are errors, and every template error names the template file and line.

>>> Templates().render_string("myhostname = {{ host }}", {"host": "mail.example.org"})
'myhostname = mail.example.org'
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from mailkit.core.errors import MailkitError

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "templates"


class TemplateError(MailkitError):
    """A template could not be rendered; ``where`` is ``file:line``."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        super().__init__(f"{where}: {message}")


class Templates:
    """The template set. ``render("postfix/virtual_alias", ctx)`` reads ``templates/postfix/virtual_alias.j2``."""

    def __init__(self, directory: Path = TEMPLATE_DIR) -> None:
        self.directory = directory
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(directory)),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,
        )

    def render(self, name: str, context: Mapping[str, Any]) -> str:
        filename = name if name.endswith(".j2") else name + ".j2"
        try:
            return self.env.get_template(filename).render(**context)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{exc.filename or filename}:{exc.lineno}", exc.message or str(exc)) from None
        except jinja2.TemplateNotFound:
            raise TemplateError(str(self.directory / filename), "no such template") from None
        except Exception as exc:
            raise TemplateError(_where(exc, self.directory, filename), f"{type(exc).__name__}: {exc}") from None

    def render_string(self, source: str, context: Mapping[str, Any], name: str = "<string>") -> str:
        try:
            return self.env.from_string(source).render(**context)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{name}:{exc.lineno}", exc.message or str(exc)) from None
        except Exception as exc:
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<template>"]
            line = frames[-1].lineno if frames else "?"
            raise TemplateError(f"{name}:{line}", f"{type(exc).__name__}: {exc}") from None


def _where(exc: BaseException, directory: Path, filename: str) -> str:
    """Jinja rewrites tracebacks so template frames carry the template's path and line: find the last."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(".j2")]
    if frames:
        return f"{frames[-1].filename}:{frames[-1].lineno}"
    return str(directory / filename)
