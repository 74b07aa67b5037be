"""Readable plain text from the HTML that Mastodon (and other fediverse servers) send as `content`.

Written on the stdlib html.parser, so it never executes or fetches anything and survives
broken markup: paragraphs become blank lines, <br> a line break, list items their own lines,
links their visible text (Mastodon splits long URLs into invisible/ellipsis spans; all of it
is kept, so the full URL survives), entities are decoded, mentions and hashtags stay as
"@user" and "#tag". Script, style and the inline quote fallback ("RE: <link>", stored as
quote_of instead) are dropped.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

_BLOCK = {"p", "div", "blockquote", "pre", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
          "section", "article", "header", "footer", "table", "tr", "figure"}
_DROP = {"script", "style", "template", "noscript", "head", "title", "iframe", "object", "svg", "math"}
_VOID = {"br", "img", "hr", "wbr", "input", "meta", "link", "source", "area", "base", "col", "embed", "param",
         "track"}
_SPACES = re.compile(r"[ \t\r\n\f\v]+")
_TAGS = re.compile(r"<[^>]*>")


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.drop_depth = 0  # inside <script>, <style> or a quote fallback
        self.drop_stack: list[str] = []
        self.pre_depth = 0

    def _newlines(self, n: int) -> None:
        """Ensure the output ends with at least n line breaks (never at the very start)."""
        if not self.out:
            return
        tail = "".join(self.out[-3:])
        have = len(tail) - len(tail.rstrip("\n"))
        if have < n:
            self.out.append("\n" * (n - have))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.drop_depth:
            if tag not in _VOID:
                self.drop_stack.append(tag)
                self.drop_depth += 1
            return
        classes = next((v or "" for k, v in attrs if k == "class"), "")
        if tag in _DROP or "quote-inline" in classes.split():
            if tag not in _VOID:
                self.drop_stack.append(tag)
                self.drop_depth = 1
            return
        if tag == "br":
            self.out.append("\n")
        elif tag == "li":
            self._newlines(1)
            self.out.append("- ")
        elif tag in _BLOCK:
            self._newlines(2 if tag in ("p", "blockquote", "pre", "ul", "ol") else 1)
            if tag == "pre":
                self.pre_depth += 1
        elif tag == "img":
            alt = next((v for k, v in attrs if k == "alt" and v), None)
            if alt:  # custom emoji and inline images: their alt text is the readable part
                self.out.append(alt)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.drop_depth:
            # Close up to the matching open tag; tolerate stray or missing end tags.
            if tag in self.drop_stack:
                while self.drop_stack:
                    self.drop_depth -= 1
                    if self.drop_stack.pop() == tag:
                        break
            return
        if tag in _BLOCK or tag == "li":
            if tag == "pre" and self.pre_depth:
                self.pre_depth -= 1
            self._newlines(2 if tag in ("p", "blockquote", "pre", "ul", "ol") else 1)

    def handle_data(self, data: str) -> None:
        if self.drop_depth or not data:
            return
        if not self.pre_depth:
            data = _SPACES.sub(" ", data)  # source line breaks are spaces in HTML
        self.out.append(data)


def html_to_text(content: str | None) -> str:
    """Convert status HTML to readable text; never raises."""
    if not content:
        return ""
    if "<" not in content and "&" not in content:
        return content.strip()
    parser = _TextParser()
    try:
        parser.feed(content)
        parser.close()
        text = "".join(parser.out)
    except Exception:  # noqa: BLE001 - a last resort for input the parser cannot take
        text = html.unescape(_TAGS.sub(" ", content))
    return _tidy(text)


def _tidy(text: str) -> str:
    lines = [line.strip(" \t") for line in text.replace("\r", "").split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    # Non-breaking spaces Mastodon puts in some markup read as ordinary spaces.
    return text.replace("\u00a0", " ").strip()
