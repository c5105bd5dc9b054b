"""CLI flags derived from the modes' own ``Options`` (``modes/base.py``).

Every field of every registered mode's ``Options`` becomes one flag (``agent_tokens`` →
``--agent-tokens``, variable ``MUSE_AGENT_TOKENS``; a bool → ``--x/--no-x``; a ``Literal`` → a
choice), its help the field's description with each mode's default. Flags default to unset, so
a mode's own defaults apply. A flag typed on the command line that the chosen mode does not
take is an error naming it; one set in the environment is ignored for modes without it (so
``MUSE_AGENTS`` can stay set while you switch modes).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from ..errors import ConfigError, OptionError
from ..modes import mode_class, mode_classes


def _fields() -> dict[str, tuple[Any, list[tuple[str, Any]], str]]:
    """option name -> (annotation, [(mode, default)], description), over every registered mode."""
    out: dict[str, tuple[Any, list[tuple[str, Any]], str]] = {}
    for name, cls in mode_classes().items():
        for field, info in cls.Options.model_fields.items():
            ann, defaults, desc = out.get(field, (info.annotation, [], info.description or ""))
            defaults.append((name, info.default))
            out[field] = (ann, defaults, desc)
    return out


def _click_type(ann: Any) -> tuple[Any, bool]:
    """(click type, is_flag) for a field's annotation."""
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    if typing.get_origin(ann) in (typing.Union, types.UnionType) and len(args) == 1:
        ann = args[0]
    if ann is bool:
        return None, True
    if typing.get_origin(ann) is typing.Literal:
        return click.Choice([str(a) for a in typing.get_args(ann)]), False
    return {int: click.INT, float: click.FLOAT}.get(ann, click.STRING), False


def mode_flags() -> list[Callable]:
    opts = []
    for field, (ann, defaults, desc) in sorted(_fields().items()):
        ctype, flag = _click_type(ann)
        flag_name = field.replace("_", "-")
        shown = ", ".join(f"{m}: {d}" for m, d in defaults if d is not None)
        help_text = f"{desc} [{shown}]" if shown else desc
        decl = f"--{flag_name}/--no-{flag_name}" if flag else f"--{flag_name}"
        opts.append(click.option(decl, field, envvar=f"MUSE_{field.upper()}", type=ctype, default=None,
                                 help=help_text))
    return opts


def options_for(kw: dict, mode: str, ctx: click.Context | None) -> dict[str, Any]:
    """Pop every mode flag from ``kw``; return those given that ``mode`` takes."""
    takes = mode_class(mode).Options.model_fields
    given: dict[str, Any] = {}
    for field in list(_fields()):
        value = kw.pop(field, None)
        if value is None:
            continue
        if field in takes:
            given[field] = value
        elif ctx is not None and ctx.get_parameter_source(field) == ParameterSource.COMMANDLINE:
            raise ConfigError(f"--{field.replace('_', '-')} is not an option of mode {mode} "
                              f"(it takes {', '.join('--' + f.replace('_', '-') for f in takes)})")
    try:  # a bad value is an error naming its flag
        mode_class(mode).parse_options(given)
    except OptionError as e:
        raise ConfigError(f"invalid value for --{e.field.replace('_', '-')}: {str(e).rsplit(': ', 1)[-1]}") from None
    return given
