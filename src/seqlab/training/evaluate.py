"""Predictions of a trained model, and the metrics of classification, regression and forecasting."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score
from sklearn.metrics import precision_recall_fscore_support
from torch import nn

from seqlab.data.dataset import SequenceSet


@torch.no_grad()
def predict_outputs(model: nn.Module, data: SequenceSet, batch_size: int = 256) -> np.ndarray:
    """The model's outputs (N, C) for every sequence of ``data`` (in memory or a lazy dataset)."""
    model.eval()
    if not isinstance(data, SequenceSet):
        loader = torch.utils.data.DataLoader(data, batch_size=batch_size)
        return np.concatenate([model(x).float().numpy() for x, _, _ in loader])
    variable = data.lengths is not None
    chunks = []
    for start in range(0, len(data), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(data.X[start : start + batch_size]))  # (B, T, F)
        lengths = None
        if variable:
            lengths = torch.from_numpy(data.lengths[start : start + batch_size])  # (B,)
            x = x[:, : int(lengths.max())]
        chunks.append(model(x, lengths).float().numpy())  # (B, C)
    return np.concatenate(chunks, axis=0)


def predict_proba(model: nn.Module, data: SequenceSet, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (N, C) for every sequence of ``data`` (in memory or a lazy dataset)."""
    logits = torch.from_numpy(predict_outputs(model, data, batch_size))  # (N, C)
    return torch.softmax(logits, dim=-1).numpy()


def classification_metrics(probabilities: np.ndarray, y: np.ndarray, num_classes: int,
                           class_names: list[str] | None = None) -> dict:
    """Accuracy, macro-F1, mean cross-entropy and the confusion matrix (rows: true).

    With ``class_names``, also ``per_class`` (for each class its precision,
    recall, F1 and support; 0 where a class is never predicted or absent)
    and ``report``, scikit-learn's classification report as text.
    """
    predicted = probabilities.argmax(axis=1)
    labels = list(range(num_classes))
    picked = probabilities[np.arange(len(y)), y]
    metrics = {
        "accuracy": float(accuracy_score(y, predicted)),
        "macro_f1": float(f1_score(y, predicted, labels=labels, average="macro", zero_division=0)),
        "loss": float(-np.log(np.clip(picked, 1e-12, None)).mean()),
        "n": int(len(y)),
        "confusion_matrix": confusion_matrix(y, predicted, labels=labels).astype(int).tolist(),
    }
    if class_names is not None:
        precision, recall, f1, support = precision_recall_fscore_support(y, predicted, labels=labels,
                                                                         zero_division=0)
        metrics["per_class"] = {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
                                for name, p, r, f, n in zip(class_names, precision, recall, f1, support)}
        metrics["report"] = classification_report(y, predicted, labels=labels, target_names=list(class_names),
                                                  digits=4, zero_division=0)
    return metrics


def regression_metrics(prediction: np.ndarray, truth: np.ndarray) -> dict:
    """RMSE, MAE (over every target value) and R² (1 - SSE / SST, averaged over the K targets) of
    ``prediction`` against ``truth``, both (N, K); R² is null for a target that is constant in ``truth``."""
    error = prediction - truth
    sst = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)  # (K,)
    sse = (error**2).sum(axis=0)  # (K,)
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "r2": float(np.mean(1 - sse / sst)) if np.all(sst > 0) else None,
        "n": int(len(truth)),
    }


def forecast_metrics(prediction: np.ndarray, truth: np.ndarray) -> dict[str, float | None]:
    """MAPE and sMAPE in percent, RMSE and MAE; MAPE is null when a true value is 0."""
    error = prediction - truth
    nonzero = np.all(truth != 0)
    return {
        "mape": float(np.mean(np.abs(error) / np.abs(truth)) * 100) if nonzero else None,
        "smape": float(np.mean(2 * np.abs(error) / (np.abs(truth) + np.abs(prediction) + 1e-12)) * 100),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
    }
