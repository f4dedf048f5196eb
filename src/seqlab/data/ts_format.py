"""Reader for the UEA/UCR ``.ts`` time-series classification format.

A file is a header of ``@key value`` lines (``@problemName``,
``@timeStamps``, ``@missing``, ``@univariate``, ``@dimensions``,
``@equalLength``, ``@seriesLength``, ``@classLabel true c1 c2 ...`` or, for
regression, ``@targetLabel true``), then ``@data`` and one case per line:
the dimensions separated by ``:``, the values of a dimension by ``,``, and
the class label (or the numeric target) last. Lines starting
with ``#`` or ``%`` are comments. Univariate, multivariate and
variable-length series are read; time-stamped series are not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqlab.errors import SeqlabError


@dataclass
class TsFile:
    """The content of one ``.ts`` file.

    Attributes:
        series: one (T_i, F) float64 array per case.
        labels: the class label (or the target) of each case as text, or None.
        class_names: the labels declared by ``@classLabel``, in header order.
        problem: ``@problemName``.
        targets: the labels are regression targets (``@targetLabel true``).
    """

    series: list[np.ndarray]
    labels: list[str] | None
    class_names: list[str] | None
    problem: str
    targets: bool = False


def _flag(value: str, key: str, path: Path, line_no: int) -> bool:
    word = value.strip().lower()
    if word not in ("true", "false"):
        raise SeqlabError(f"{path}:{line_no}: @{key} expects true or false, got {value.strip()!r}")
    return word == "true"


def read_ts(path: str | Path) -> TsFile:
    path = Path(path)
    if not path.is_file():
        raise SeqlabError(f"{path}: file not found")
    header: dict[str, str] = {}
    class_names: list[str] | None = None
    has_labels = None
    targets = False
    series: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    dimensions = None
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for line_no, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line or line.startswith(("#", "%")):
                continue
            if not in_data:
                if not line.startswith("@"):
                    raise SeqlabError(f"{path}:{line_no}: expected a header line starting with '@' before @data, got {line[:40]!r}")
                key, _, value = line[1:].partition(" ")
                key = key.lower()
                if key == "data":
                    in_data = True
                    if has_labels is None:
                        raise SeqlabError(f"{path}: malformed header: expected a @classLabel (classification) or "
                                          "@targetLabel (regression) line before @data")
                    if "dimensions" in header:
                        try:
                            dimensions = int(header["dimensions"])
                        except ValueError:
                            raise SeqlabError(f"{path}: @dimensions expects an integer, got {header['dimensions']!r}") from None
                    elif header.get("univariate", "").lower() == "true":
                        dimensions = 1
                    continue
                if key == "classlabel":
                    words = value.split()
                    if not words:
                        raise SeqlabError(f"{path}:{line_no}: @classLabel expects true or false")
                    declared = _flag(words[0], "classLabel", path, line_no)
                    if declared and targets:
                        raise SeqlabError(f"{path}:{line_no}: @classLabel true after @targetLabel true; expected "
                                          "one kind of label")
                    if not targets:
                        has_labels = declared
                    class_names = words[1:] if declared else None
                    if declared and not class_names:
                        raise SeqlabError(f"{path}:{line_no}: @classLabel true expects the class names after it")
                elif key == "targetlabel":
                    targets = _flag(value, "targetLabel", path, line_no)
                    if targets and has_labels:
                        raise SeqlabError(f"{path}:{line_no}: @targetLabel true after @classLabel true; expected "
                                          "one kind of label")
                    has_labels = targets or bool(has_labels)
                elif key == "timestamps":
                    if _flag(value, "timeStamps", path, line_no):
                        raise SeqlabError(f"{path}:{line_no}: time-stamped series (@timeStamps true) are not supported")
                elif key in ("missing", "univariate", "equallength"):
                    _flag(value, key, path, line_no)
                elif key not in ("problemname", "dimensions", "serieslength"):
                    raise SeqlabError(f"{path}:{line_no}: unknown header line @{key}")
                header[key] = value.strip()
                continue
            fields = line.split(":")
            if has_labels:
                if len(fields) < 2:
                    raise SeqlabError(f"{path}:{line_no}: expected dimensions and a class label separated by ':', got one field")
                labels.append(fields[-1].strip())
                fields = fields[:-1]
            if dimensions is None:
                dimensions = len(fields)
            if len(fields) != dimensions:
                raise SeqlabError(
                    f"{path}:{line_no}: inconsistent dimensions: expected {dimensions} (from the header or the first case), got {len(fields)}"
                )
            try:
                columns = [np.array([float("nan") if v.strip() == "?" else float(v) for v in f.split(",")]) for f in fields]
            except ValueError:
                raise SeqlabError(f"{path}:{line_no}: expected comma-separated numbers in every dimension") from None
            sizes = {len(c) for c in columns}
            if len(sizes) != 1:
                raise SeqlabError(
                    f"{path}:{line_no}: inconsistent dimensions: the {dimensions} dimensions of this case have lengths {sorted(sizes)}; expected equal lengths"
                )
            case = np.stack(columns, axis=1)  # (T_i, F)
            # Some archives pad variable-length cases with trailing '?': trim them.
            valid = ~np.isnan(case).all(axis=1)
            last = int(np.flatnonzero(valid)[-1]) + 1 if valid.any() else 0
            series.append(case[:last])
    if not in_data:
        raise SeqlabError(f"{path}: malformed header: no @data line found")
    if not series:
        raise SeqlabError(f"{path}: no cases after @data")
    if header.get("equallength", "").lower() == "true" and "serieslength" in header:
        try:
            expected = int(header["serieslength"])
        except ValueError:
            raise SeqlabError(f"{path}: @seriesLength expects an integer, got {header['serieslength']!r}") from None
        for i, s in enumerate(series):
            if len(s) != expected:
                raise SeqlabError(f"{path}: case {i + 1} has {len(s)} steps; @seriesLength declares {expected}")
    return TsFile(series, labels if has_labels else None, class_names, header.get("problemname", path.stem), targets)
