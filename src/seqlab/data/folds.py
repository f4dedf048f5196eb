"""K-fold splits for cross-validation: ``data.fold`` picks one fold of a (repeated, optionally grouped)
stratified K-fold split as the test split of a run.

``seqlab cv`` sets ``data.fold`` for each of its runs; every run then loads
the whole source (train and test parts pooled), holds fold ``index`` out as
its test split, and splits validation off the rest. Normalisation is fitted
on that run's training split, so inside each fold. With ``groups``, whole
groups (subjects, sessions) go to one side: StratifiedGroupKFold keeps the
class balance as far as the groups allow.
"""

from __future__ import annotations


import numpy as np

from seqlab.config import FoldSpec
from seqlab.data.dataset import SequenceSet
from seqlab.errors import SeqlabError


def check_folds(y: np.ndarray, class_names: list[str], folds: int, source: str,
                groups: np.ndarray | None = None) -> None:
    """Refuse more folds than the smallest class has sequences (or than there are groups)."""
    counts = np.bincount(y, minlength=len(class_names))
    present = counts[counts > 0]
    smallest = int(present.min())
    if groups is None and folds > smallest:
        name = class_names[int(np.flatnonzero(counts == smallest)[0])]
        raise SeqlabError(f"--folds {folds}: larger than the smallest class of {source} ({name!r}: {smallest} "
                          f"sequences); expected at most {smallest}, so that every fold holds every class")
    if groups is not None and folds > len(np.unique(groups)):
        raise SeqlabError(f"--folds {folds}: larger than the {len(np.unique(groups))} groups of {source}; "
                          "expected at most one fold per group")


def split_fold(pool: SequenceSet, groups: np.ndarray | None, spec: FoldSpec, seed: int, class_names: list[str],
               source: str) -> tuple[SequenceSet, SequenceSet]:
    """(rest, test): fold ``spec.index`` of the seeded stratified (group) K-fold split of ``pool``."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if spec.groups and groups is None:
        raise SeqlabError(f"data.fold.groups: {source} has no groups; expected a groups array in the .npz, a "
                          "group column in the CSV, or deap:DIR (its subjects)")
    use = groups if spec.groups else None
    check_folds(pool.y, class_names, spec.folds, source, use)
    random_state = (seed + spec.repeat) % 2**32
    if use is None:
        splitter = StratifiedKFold(spec.folds, shuffle=True, random_state=random_state)
        parts = list(splitter.split(np.zeros(len(pool)), pool.y))
    else:
        splitter = StratifiedGroupKFold(spec.folds, shuffle=True, random_state=random_state)
        parts = list(splitter.split(np.zeros(len(pool)), pool.y, use))
    rest, test = parts[spec.index]
    return pool.subset(np.sort(rest)), pool.subset(np.sort(test))
