"""The robustness tables of a run record: test CCC with each modality dropped, and mean CCC
against the level of Gaussian noise added to each modality."""

from __future__ import annotations


def robustness_table(rob: dict) -> str:
    """Test mean CCC with each modality dropped, and against noise level per noised modality."""
    from tabulate import tabulate

    lines = []
    if rob["drop"]:  # a column per target the scores have (valence, arousal in older records)
        cols = [*(t for t in next(iter(rob["drop"].values())) if t != "mean"), "mean"]
        lines.append(tabulate([[m, *(s[t] for t in cols)] for m, s in rob["drop"].items()],
                              headers=["test CCC, dropped", *cols], floatfmt=".3f"))
    rows = [[m, *[s["mean"] for s in curve], rob["area"][m]] for m, curve in rob["noise"].items()]
    lines.append(tabulate(rows, headers=["test mean CCC, noise on", *map(str, rob["noise_levels"]), "area"],
                          floatfmt=".3f"))
    return "\n\n".join(lines) + ("\nnoise level = std of the added noise in units of each feature's "
                                 "train-split std; area = mean CCC over the levels (trapezoid)")
