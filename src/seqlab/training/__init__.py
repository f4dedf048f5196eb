"""Training: the Lightning modules and callbacks (``module``), prediction metrics (``evaluate``), and the
engine that runs a task into a run folder (``pipeline``: ``train(config, out)``, ``evaluate_run(run_dir)``).

The engine sits above the tasks and the modules below them, so this package itself imports nothing:
``from seqlab.training.pipeline import train``.
"""
