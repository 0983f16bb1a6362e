"""The report as a page: one list of ``Section``s, rendered as self-contained HTML (figures embedded
as PNG) and as Markdown (figures linked from ``figures/``).
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipeline.report.style import Plot


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)  # str (paragraph), list[str] (bullets),
    # pd.DataFrame (table), Plot (figure)
    level: int = 2  # 2: a section, 3: a subsection (of the section before it)

    @property
    def anchor(self) -> str:
        """The section's id in the page: its title, lower case, words joined by ``-``."""
        return slug(self.title)


def slug(title: str) -> str:
    """``Outcomes per distance (copy)`` -> ``outcomes-per-distance-copy``."""
    words = "".join(c if c.isalnum() else " " for c in title.lower()).split()
    return "-".join(words)


def contents(sections: list[Section]) -> list[tuple[int, str, str]]:
    """(level, title, anchor) of every section, in order: the table of contents."""
    return [(s.level, s.title, s.anchor) for s in sections]


@dataclass(frozen=True)
class Link:
    """A table cell that links to another page: ``href`` for HTML, ``markdown`` for Markdown
    (relative paths, so a folder of reports keeps working when moved whole).
    """

    text: str
    href: str
    markdown: str

    def __str__(self) -> str:  # what a Markdown table shows
        return f"[{self.text}]({self.markdown})"


def _html_table(table: pd.DataFrame) -> str:
    """A table as HTML, text escaped; ``Link`` cells as links."""
    if not table.map(lambda v: isinstance(v, Link)).to_numpy().any():
        return table.to_html(index=False, escape=True, border=0)

    def cell(v) -> str:
        if isinstance(v, Link):
            return f'<a href="{html.escape(v.href)}">{html.escape(v.text)}</a>'
        return html.escape(str(v))

    escaped = table.map(cell).rename(columns=lambda c: html.escape(str(c)))
    return escaped.to_html(index=False, escape=False, border=0)


def _png_base64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


CSS = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f2f2f2; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; }
figcaption { color: #444; font-size: 0.95em; }
nav#contents { background: #f7f7f7; padding: 0.3em 1em; border: 1px solid #ddd; }
nav#contents ul { margin: 0.2em 0; } nav#contents h2 { margin: 0.3em 0; font-size: 1.1em; }
"""


def _toc_html(sections: list[Section]) -> str:
    """A nested list of links to every section (subsections under their section): the table of
    contents.
    """

    def link(title: str, anchor: str) -> str:
        return f'<a href="#{anchor}">{html.escape(title)}</a>'

    items: list[list[str]] = []  # per section: its link, then its subsections' links
    for level, title, anchor in contents(sections):
        if level <= 2 or not items:
            items.append([link(title, anchor)])
        else:
            items[-1].append(link(title, anchor))
    rows = "".join(
        f"<li>{head}"
        + (f"<ul>{''.join(f'<li>{a}</li>' for a in subs)}</ul>" if subs else "")
        + "</li>"
        for head, *subs in items
    )
    return f'<nav id="contents"><h2>Contents</h2><ul>{rows}</ul></nav>'


def render_html(sections: list[Section], title: str, folder: Path) -> str:
    """The page; figures are embedded (base64 PNG) so the file alone shows everything."""
    body, number = [f"<h1>{html.escape(title)}</h1>", _toc_html(sections)], 0
    for section in sections:
        tag = f"h{section.level}"
        body.append(f'<{tag} id="{section.anchor}">{html.escape(section.title)}</{tag}>')
        for block in section.blocks:
            if isinstance(block, str):
                body.append(f"<p>{html.escape(block)}</p>")
            elif isinstance(block, list):
                items = "".join(f"<li>{html.escape(item)}</li>" for item in block)
                body.append(f"<ul>{items}</ul>")
            elif isinstance(block, pd.DataFrame):
                body.append(_html_table(block))
            elif isinstance(block, Plot):
                number += 1
                png = _png_base64(folder / "figures" / f"{block.name}.png")
                vector = f' (<a href="figures/{block.name}.svg">SVG</a>)' if block.svg else ""
                body.append(
                    f'<figure id="{block.name}"><img alt="{html.escape(block.title)}" '
                    f'src="data:image/png;base64,{png}"><figcaption>Figure {number}. '
                    f"{html.escape(block.title)}. {html.escape(block.caption)}{vector}"
                    "</figcaption></figure>"
                )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def render_markdown(sections: list[Section], title: str) -> str:
    out, number = [f"# {title}", "", "Contents:", ""], 0
    out += [
        f"{'  ' * (level - 2)}- [{name}](#{anchor})" for level, name, anchor in contents(sections)
    ]
    out.append("")
    for section in sections:
        out += [f"{'#' * section.level} {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, str):
                out += [block, ""]
            elif isinstance(block, list):
                out += [f"- {item}" for item in block] + [""]
            elif isinstance(block, pd.DataFrame):
                # numbers are already formatted: keep "3.4e-02" as written
                table = block.map(lambda v: str(v) if isinstance(v, Link) else v)
                out += [table.to_markdown(index=False, disable_numparse=True), ""]
            elif isinstance(block, Plot):
                number += 1
                out += [
                    f"![{block.title}](figures/{block.name}.png)",
                    "",
                    f"*Figure {number}. {block.title}. {block.caption}*",
                    "",
                ]
    return "\n".join(out)
