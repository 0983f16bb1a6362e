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
"""


def render_html(sections: list[Section], title: str, folder: Path) -> str:
    """The page; figures are embedded (base64 PNG) so the file alone shows everything."""
    body, number = [f"<h1>{html.escape(title)}</h1>"], 0
    for section in sections:
        body.append(f"<h2>{html.escape(section.title)}</h2>")
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
    out, number = [f"# {title}", ""], 0
    for section in sections:
        out += [f"## {section.title}", ""]
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
