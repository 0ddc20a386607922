"""What a study leaves in its output directory — best.json, trials.json, the plots — and the winner's
training with a run directory (`--train-best`), the one time a tune reads the test split."""

from __future__ import annotations

import io
import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

from gridseq._atomic import atomic_write_bytes, atomic_write_json, ensure_dir
from gridseq.errors import ConfigError
from gridseq.tune import space as spaces

_logger = logging.getLogger(__name__)


def make_dir(out: Path) -> None:
    ensure_dir(out)


def check_same_space(study, space: dict[str, Any], metric: str) -> None:
    """Record the search space and the metric trials are scored by in a new study; refuse to continue a
    study with a different one (a study from before metrics were recorded takes `metric`)."""
    scored = study.user_attrs.get("metric")
    if scored is None:
        study.set_user_attr("metric", metric)
    elif scored != metric:
        raise ConfigError(f"the study {study.study_name!r} scores its trials by {scored}, not {metric}; continue it with "
                          f"--metric {scored}, or start a new one with another --out.")
    recorded = study.user_attrs.get("space")
    current = json.loads(json.dumps(space))
    if recorded is None:
        study.set_user_attr("space", current)
    elif recorded != current:
        changed = sorted(k for k in set(recorded) | set(current) if recorded.get(k) != current.get(k))
        raise ConfigError(f"the study {study.study_name!r} was searched over another space (differs in {', '.join(changed)}); "
                          f"continue it with the same space and settings, or start a new one with another --out.")


def trial_rows(study) -> list[dict[str, Any]]:
    """Every trial: number, state, value, settings, epochs, seconds, and why it stopped or failed."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
        value = t.value if t.value is not None and math.isfinite(t.value) else None
        last = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None
        rows.append({"number": t.number, "state": t.state.name.lower(), "value": value, "last_reported": last,
                     "params": spaces.trial_settings(t), "epochs": t.user_attrs.get("epochs"),
                     "seconds": None if seconds is None else round(seconds, 2),
                     **{k: t.user_attrs[k] for k in ("defaults", "stopped", "error", "surplus") if k in t.user_attrs},
                     **({"retried_from": t.system_attrs["failed_trial"]} if "failed_trial" in t.system_attrs else {}),
                     **({"retried_from": t.user_attrs["retry_of"]} if "retry_of" in t.user_attrs else {})})
    return rows


def top(study, k: int = 5) -> list[dict[str, Any]]:
    """The `k` best complete trials, best first."""
    rows = [r for r in trial_rows(study) if r["state"] == "complete" and r["value"] is not None]
    rows.sort(key=lambda r: r["value"], reverse=study.direction.name == "MAXIMIZE")
    return rows[:k]


def write(study, result, out: Path, *, fixed: dict[str, Any]) -> None:
    """best.json, trials.json and (with matplotlib) history.png and importances.png in `out`."""
    atomic_write_json(out / "best.json", {**result.to_json(), "fixed": fixed})
    atomic_write_json(out / "trials.json", trial_rows(study))
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        _logger.info("matplotlib is not installed: no plots (pip install 'gridseq[plot]')")
        return
    for name, plot in (("history.png", _history), ("importances.png", _importances)):
        png = plot(study)
        if png is not None:
            atomic_write_bytes(out / name, png)


def _png(ax) -> bytes:
    import matplotlib.pyplot as plt

    fig = ax.figure
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _history(study) -> bytes | None:
    import warnings

    from optuna.visualization.matplotlib import plot_optimization_history

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        return _png(plot_optimization_history(study))


def _importances(study) -> bytes | None:
    """fANOVA needs scikit-learn; PED-ANOVA (Optuna's own) does not. None with fewer than two complete
    trials or a single searched setting, where importances say nothing."""
    import warnings

    import optuna
    from optuna.visualization.matplotlib import plot_param_importances

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2 or len({k for t in complete for k in t.params}) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            evaluator = optuna.importance.PedAnovaImportanceEvaluator()
            return _png(plot_param_importances(study, evaluator=evaluator))
        except (RuntimeError, ValueError, ZeroDivisionError) as e:  # too few distinct values to rank
            _logger.info("no importances plot: %s", e)
            return None


def train_best(result, plan, out: Path):
    """Train the best settings with a run directory `out/best-run` and put its test metrics in `result`."""
    from gridseq import recipe, train
    from gridseq.tasks import matching
    from gridseq.tune.study import build_settings

    run_dir = out / "best-run"
    if run_dir.exists():
        shutil.rmtree(run_dir)  # the previous --train-best of this study: ours to replace
    data, spec, reader = recipe.load_for_model(plan.dataset, plan.model, seed=plan.seed, view=plan.view, options=plan.data_options)
    model_kw, train_kw = build_settings(plan.dataset, plan.model, result.params, reader=reader)
    if plan.cv:  # `gridseq train --cv K --refit`: all training items for the epoch count the folds chose
        train_kw = {k: v for k, v in {**train_kw, "epochs": result.epochs}.items() if k not in ("select", "patience")}
        fitted = train.refit(lambda: matching.create_for(plan.model, data.info, **model_kw), data, seed=plan.seed, run_dir=run_dir,
                             data_spec=spec, progress=False, **train_kw)
    else:
        train.seed_everything(plan.seed)
        model = matching.create_for(plan.model, data.info, **model_kw)
        fitted = train.fit(model, data, seed=plan.seed, run_dir=run_dir, data_spec=spec, progress=False, **train_kw)
    result.test, result.run_dir = fitted.test, run_dir
    return result


def read_best(where) -> dict[str, Any]:
    """The best.json of a `gridseq tune` output folder (or the file itself), checked.

    Raises:
        ConfigError: missing, unreadable, or not a tune result.
    """
    import os

    path = Path(where)
    path = path / "best.json" if path.is_dir() else path
    try:
        best = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read {os.fspath(path)}: {e.strerror or e}; give a `gridseq tune` output folder (it holds best.json).") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{os.fspath(path)} is not valid JSON ({e.msg}); it should be the best.json `gridseq tune` wrote.") from None
    missing = [k for k in ("params", "model", "dataset", "value") if not isinstance(best, dict) or k not in best]
    if missing:
        raise ConfigError(f"{os.fspath(path)} is not a `gridseq tune` result (no {', '.join(missing)}).")
    return best


def short(value) -> str:
    """A setting's value for tables and progress lines: floats to 3 digits, channel lists as 32-64."""
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return "-".join(map(str, value))
    return "" if value is None else str(value)


def relative(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
