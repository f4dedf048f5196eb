"""What the demo's baselines cost: each one on the demo's own data, timed alone.

    python benchmarks/baseline_cost.py

Times (wall and this process's CPU seconds) the baselines that need fitting,
as ``seqlab demo`` computes them: MiniRocket once per classification data set
(its result is remembered for the other models on the same data), ETS and
ARIMA on the airline preset's history, the n-gram (order search and refit) on
``text:founding``. The closed-form baselines cost nothing measurable.
"""

from __future__ import annotations

import time

from seqlab.baselines.classification import minirocket_predict
from seqlab.baselines.forecast import arima, ets
from seqlab.baselines.lm import lm_baselines
from seqlab.config import read_config_file, resolve_config
from seqlab.data.series import load_series
from seqlab.data.text import load_text
from seqlab.reports.tables import format_table
from seqlab.tasks.classification import prepare_bundle


def timed(rows: list, name: str, work) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    rows.append([name, time.perf_counter() - wall, time.process_time() - cpu])


def main() -> None:
    rows: list[list] = []
    for spec in ("digits", "aeon:JapaneseVowels", "aeon:BasicMotions"):
        bundle, _ = prepare_bundle(resolve_config({"data": {"spec": spec}}))
        timed(rows, f"minirocket {spec}", lambda: minirocket_predict([bundle.train, bundle.val], bundle.test))
    history = load_series("airline").values[: 144 - read_config_file("airline")["forecast"]["test_size"]]
    timed(rows, "ets airline", lambda: ets(history, 36, 12))
    timed(rows, "arima airline", lambda: arima(history, 36, 12))
    text = load_text("text:founding", 0.1)
    timed(rows, "ngram text:founding", lambda: lm_baselines(text.train, text.val, len(text.vocab)))
    rows.append(["total", sum(r[1] for r in rows), sum(r[2] for r in rows)])
    print(format_table(["baseline", "wall s", "cpu s"], rows))


if __name__ == "__main__":
    main()
