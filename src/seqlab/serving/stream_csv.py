"""``seqlab stream``: CSV frames in, one prediction per frame (or per window) out.

Each row of the input is one frame of F numbers (a header row is skipped);
each row of the output names the frame (or the window's last frame), the
predicted class and the probability of every class. A run folder whose model
cannot run step by step is read window by window.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import IO

import numpy as np

from seqlab.errors import SeqlabError
from seqlab.runs import load_run
from seqlab.serving.streamer import CannotStream, Streamer, WindowClassifier


def stream_file(run_dir: str | Path, source: IO[str], name: str, out: IO[str], window: int = 0, stride: int = 0,
                backend: str = "compiled") -> int:
    """Read CSV frames (one per row; a header row is skipped) and write one prediction per frame,
    or per window of ``window`` frames every ``stride`` frames (each window from a fresh state).
    A run folder whose model cannot run step by step is read window by window with its
    whole-sequence model (``--window`` is then required). Returns the number of predictions written."""
    check_window(window, stride)
    if window and Path(run_dir).is_dir():
        run = load_run(run_dir)
        try:
            streamer = Streamer(run, backend)
        except CannotStream:
            streamer = WindowClassifier(run, window)
    else:
        streamer = Streamer(run_dir, backend)
    writer = csv.writer(out, lineterminator="\n")
    header = "frame" if not window else "window_end"
    writer.writerow([header, "predicted"] + [f"prob_{c}" for c in streamer.class_names])
    try:
        return _stream_rows(streamer, source, name, writer, out, window, stride)
    except UnicodeDecodeError:
        raise SeqlabError(f"{name}: not UTF-8 text; expected CSV rows of numbers") from None


def check_window(window: int, stride: int) -> None:
    if window < 0 or stride < 0 or (window > 0) != (stride > 0):
        raise SeqlabError(f"--window and --stride: expected two positive frame counts (or neither), "
                          f"got {window} and {stride}")


def _classify_window(streamer, frames) -> np.ndarray:
    """The prediction after a window of frames, read from a fresh state."""
    if isinstance(streamer, WindowClassifier):
        return streamer.classify(frames)
    streamer.reset()
    for frame in frames:
        probabilities = streamer.push(frame)
    return probabilities


def _stream_rows(streamer, source, name: str, writer, out, window: int, stride: int) -> int:
    classes = streamer.class_names
    count, buffer, skip = 0, [], 0
    for line_no, row in enumerate(csv.reader(source), start=1):
        if not row or not "".join(row).strip():
            continue
        try:
            frame = [float(v) for v in row]
        except ValueError:
            if line_no == 1:
                continue  # a header
            raise SeqlabError(f"{name}:{line_no}: expected {streamer.features} numbers, got {row[:4]}...") from None
        if len(frame) != streamer.features:
            raise SeqlabError(f"{name}:{line_no}: expected {streamer.features} features per frame, got {len(frame)}")
        if not all(math.isfinite(v) for v in frame):
            raise SeqlabError(f"{name}:{line_no}: expected finite numbers, got {row[:4]}...")
        if not window:
            probabilities = streamer.push(frame)
            writer.writerow([line_no, classes[int(np.argmax(probabilities))]] + [f"{p:.6f}" for p in probabilities])
            count += 1
            continue
        if skip:  # a stride longer than the window jumps over frames
            skip -= 1
            continue
        buffer.append(frame)
        if len(buffer) == window:
            probabilities = _classify_window(streamer, buffer)
            writer.writerow([line_no, classes[int(np.argmax(probabilities))]] + [f"{p:.6f}" for p in probabilities])
            count += 1
            buffer = buffer[stride:]
            skip = max(0, stride - window)
        out.flush()
    return count
