"""The ``muse`` command. ``muse "question"`` asks (the default command); ``muse chat``,
``muse models``, ``muse doctor``, ``muse serve``, ``muse schema``, ``muse bench …`` and ``muse
eval …`` do the rest. Every option reads a ``MUSE_*`` variable. One module per command group:
``common`` (the root group, shared options and settings), ``mode_flags`` (the flags derived from
the modes' ``Options``), ``ask`` (ask, chat), ``serve`` (models, doctor, serve, schema),
``bench`` and ``evals``.

Errors a user can act on print one line (``error: …``) and exit non-zero; no traceback.
"""

from __future__ import annotations

import sys

import click

from ..errors import MuseError
from . import ask, bench, build, evals, safety, serve, train  # noqa: F401 - each registers its commands on ``cli``
from .common import cli, err

__all__ = ["cli", "main"]


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as e:
        err.print(f"[red]error:[/] {e.format_message()}", markup=True, soft_wrap=True)
        sys.exit(2)
    except MuseError as e:
        err.print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)  # one line, never wrapped
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
