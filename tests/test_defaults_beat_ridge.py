"""The defaults on data we did not make (issue 15): a default ``fusion-bench run --root DIR`` on
test-made feature folders of two shapes beats the ridge row on test CCC for every target.

Slow (a full default run per folder, ~10 s each). The folders are those of
``scripts/defaults_check.py`` (data seed 1), where the margins are wide (README "Real data":
many-short-2m .70/.51 against .53/.29, ar-1m .96/.96 against .86/.79): a default that stops
serving such data fails here, a change of CPU rounding does not.
"""

from __future__ import annotations

import json

import pytest

from .conftest import script


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["many-short-2m", "ar-1m"])
def test_the_default_run_on_a_test_made_folder_beats_the_ridge_on_every_target(shape, cli_run,
                                                                                tmp_path):
    folder = tmp_path / shape
    script("defaults_check").SHAPES[shape](folder, 1)
    code, out, err = cli_run("run", "--root", folder, "--seed", "0", "--quiet",
                             "--out", tmp_path / "store", "--json")
    assert code == 0, err
    rec = json.loads(out)
    assert rec["config"]["train"]["eval_each_pass"] is True  # the defaults, nothing set
    test, ridge = rec["metrics"]["test"], rec["baseline"]["metrics"]["test"]
    assert set(rec["dataset"]["targets"]) == {"valence", "arousal"}
    for target in rec["dataset"]["targets"]:
        assert test[target] > ridge[target] + 0.05, (shape, target, test[target], ridge[target])
