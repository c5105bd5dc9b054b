"""Markdown of stored answers as HTML for the web app (markdown-it, CommonMark and tables).

Raw HTML in an answer is escaped, never passed through. An image (``![alt](url)``) becomes a
plain link showing its alt text (or its URL), so opening a conversation never loads anything: a
prompt-injected answer cannot send the conversation out through an image URL. The link still
leaves the machine when the user clicks it (with no referrer); that is the user's choice.
"""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml

_md = MarkdownIt("commonmark", {"html": False}).enable("table")


def _image_as_link(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children or [], options, env) or src
    return (f'<a class="image-link" href="{escapeHtml(src)}" rel="noopener noreferrer nofollow" '
            f'target="_blank">{escapeHtml(alt)}</a>')


_md.add_render_rule("image", _image_as_link)


def render(text: str) -> str:
    return _md.render(text)
