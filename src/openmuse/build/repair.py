"""Repairs by rule: the failures the checker finds most often in written code, fixed without a
model, before the model is asked (``fill.repair_code``).

Covered: resources by URL (scripts and stylesheets dropped, images replaced by an inline
placeholder), a missing ``lang``, ``<title>``, ``<main>`` or ``<h1>``, images without ``alt``,
form controls and buttons without a name. Not covered: script errors, colour contrast, layout —
those go back to the model with the checker's text.
"""

from __future__ import annotations

import html as html_lib
import re

_URL = r"""(?:https?:)?//[^"'\s>]+"""
_PLACEHOLDER = ("data:image/svg+xml;charset=utf-8,%3Csvg xmlns='http://www.w3.org/2000/svg' width='160' height='90'%3E"
                "%3Crect width='160' height='90' fill='%23dddddd'/%3E%3C/svg%3E")


def fix(page: str, title: str = "Page") -> tuple[str, list[str]]:
    """``page`` with the rule repairs applied, and what each changed (empty: nothing to fix)."""
    done: list[str] = []
    page, n = re.subn(rf"""<script\b[^>]*\bsrc\s*=\s*["']?{_URL}["']?[^>]*>\s*</script>""", "", page, flags=re.I)
    if n:
        done.append(f"removed {n} external script(s)")
    page, n = re.subn(rf"""<link\b[^>]*\bhref\s*=\s*["']?{_URL}["']?[^>]*>""", "", page, flags=re.I)
    if n:
        done.append(f"removed {n} external link(s)")
    page, n = re.subn(rf"""@import\s+(?:url\()?\s*["']?{_URL}["']?\)?\s*;?""", "", page, flags=re.I)
    if n:
        done.append(f"removed {n} CSS import(s)")
    page, n = re.subn(rf"""(<(?:img|source)\b[^>]*\bsrc\s*=\s*)["']?{_URL}["']?""",
                      lambda m: f'{m.group(1)}"{_PLACEHOLDER}"', page, flags=re.I)
    if n:
        done.append(f"replaced {n} external image(s)")
    page, n = re.subn(rf"""url\(\s*["']?{_URL}["']?\s*\)""", "none", page, flags=re.I)
    if n:
        done.append(f"removed {n} CSS url(s)")
    m = re.search(r"<html\b([^>]*)>", page, re.I)
    if m and not re.search(r"\blang\s*=", m.group(1), re.I):
        page = page[:m.start()] + f"<html lang=\"en\"{m.group(1)}>" + page[m.end():]
        done.append("added lang")
    if not re.search(r"<title>\s*\S", page, re.I):
        page = re.sub(r"<title>\s*</title>", "", page, flags=re.I)
        page, n = re.subn(r"(<head\b[^>]*>)", rf"\1<title>{html_lib.escape(title)}</title>", page, count=1, flags=re.I)
        if n:
            done.append("added a title")
    page, n = re.subn(r"<img\b(?![^>]*\balt\s*=)([^>]*?)(/?)>", r'<img alt="illustration"\1\2>', page, flags=re.I)
    if n:
        done.append(f"added alt to {n} image(s)")
    page, n = _name_controls(page)
    if n:
        done.append(f"named {n} control(s)")
    if not re.search(r"<h1\b", page, re.I):
        page, n = re.subn(r"(<body\b[^>]*>)", rf"\1<h1>{html_lib.escape(title)}</h1>", page, count=1, flags=re.I)
        if n:
            done.append("added a heading")
    if not re.search(r"<main\b|role\s*=\s*[\"']main", page, re.I):
        page, n = re.subn(r"(<body\b[^>]*>)(.*?)(<script\b|</body>)", r"\1<main>\2</main>\3", page, count=1,
                          flags=re.I | re.S)
        if n:
            done.append("wrapped the content in <main>")
    return page, done


def _name_controls(page: str) -> tuple[str, int]:
    """Inputs, selects and textareas with no label, aria-label or title get an aria-label from
    their placeholder, name, id or type."""
    labelled = set(re.findall(r"<label\b[^>]*\bfor\s*=\s*[\"']?([\w-]+)", page, re.I))
    count = 0

    def one(m: re.Match) -> str:
        nonlocal count
        tag = m.group(0)
        if re.search(r"\b(?:aria-label|aria-labelledby|title)\s*=", tag, re.I):
            return tag
        if re.search(r"\btype\s*=\s*[\"']?(?:hidden|submit|button|reset)\b", tag, re.I):
            return tag
        ident = re.search(r"\bid\s*=\s*[\"']?([\w-]+)", tag, re.I)
        if ident and ident.group(1) in labelled:
            return tag
        name = next((x.group(1) for a in ("placeholder", "name", "id", "type")
                     if (x := re.search(rf"\b{a}\s*=\s*[\"']([^\"']+)[\"']", tag, re.I))), "field")
        count += 1
        return tag[:-1].rstrip("/") + f' aria-label="{html_lib.escape(name)}"' + ("/>" if tag.endswith("/>") else ">")

    page = re.sub(r"<(?:input|select|textarea)\b[^>]*>", one, page, flags=re.I)
    return page, count
