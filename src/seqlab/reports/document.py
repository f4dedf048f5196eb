"""One report, two files: ``report.md`` (plots beside it in ``plots/``) and a self-contained ``report.html``.

A report is a title, an introduction and sections; a section holds
:class:`Table`, :class:`Figure`, :class:`Image` and :class:`Text` blocks.
Each figure is rendered to PNG once: ``report.md`` links the file, ``report.html`` carries
the same bytes inline (a ``data:`` URI), so it opens from disk, offline,
with nothing beside it. Figures are ``matplotlib.figure.Figure`` objects:
nothing here touches pyplot or the global backend.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

from seqlab.io import write_bytes, write_text
from seqlab.reports.tables import format_cell, format_table

PLOTS = "plots"


@dataclass
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[Any]]
    caption: str = ""


@dataclass
class Figure:
    """A matplotlib figure, written as ``plots/NAME.png``."""

    name: str
    figure: Any
    caption: str = ""


@dataclass
class Image:
    """A PNG file already written (a run's plot), copied as ``plots/NAME.png``."""

    name: str
    path: Path
    caption: str = ""


@dataclass
class Text:
    text: str


Block = Union[Table, Figure, Image, Text]


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


def new_figure(width: float, height: float):
    """A figure on its own Agg canvas (no pyplot, no global backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    figure = MplFigure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure, dpi: int = 110) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 1.5em auto;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { font-size: 1.3em; border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: .3em 0; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: .9em; color: #555; }
"""


def write_report(out: Path, title: str, sections: Sequence[Section], intro: str = "") -> tuple[Path, Path]:
    """Write ``out/report.md``, ``out/report.html`` and ``out/plots/*.png``; return the two report paths."""
    out = Path(out)
    markdown = [f"# {title}", ""] + ([intro, ""] if intro else [])
    body = [f"<h1>{html.escape(title)}</h1>"] + ([f"<p>{html.escape(intro)}</p>"] if intro else [])
    for section in sections:
        markdown += [f"## {section.title}", ""]
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, Table):
                if block.caption:
                    markdown += [f"**{block.caption}**", ""]
                markdown += [format_table(block.header, block.rows, markdown=True), ""]
                body.append(_html_table(block))
            elif isinstance(block, (Figure, Image)):
                data = _png(block.figure) if isinstance(block, Figure) else Path(block.path).read_bytes()
                write_bytes(out / PLOTS / f"{block.name}.png", data)
                markdown += [f"![{block.caption or block.name}]({PLOTS}/{block.name}.png)", ""]
                uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
                alt = html.escape(block.caption or block.name)
                body.append(f'<figure><img src="{uri}" alt="{alt}">'
                            + (f"<figcaption>{alt}</figcaption>" if block.caption else "") + "</figure>")
            else:
                markdown += [block.text, ""]
                body.append(f"<p>{html.escape(block.text)}</p>")
    page = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")
    write_text(out / "report.md", "\n".join(markdown))
    write_text(out / "report.html", page)
    return out / "report.md", out / "report.html"


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in table.header)
    rows = []
    for row in table.rows:
        cells = [f'<td class="num">{html.escape(format_cell(v))}</td>' if _numeric(v)
                 else f"<td>{html.escape(format_cell(v))}</td>" for v in row]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    caption = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    return f'<div class="scroll"><table>{caption}<thead><tr>{head}</tr></thead><tbody>' \
           + "".join(rows) + "</tbody></table></div>"


def _numeric(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) or \
        (isinstance(value, str) and value[:1].isdigit())
