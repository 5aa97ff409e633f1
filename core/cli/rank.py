"""``graft rank``: which backbone to start from, scored on the user's data before fine-tuning."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from graftzoo.cli._output import ModalityChoice, echo_json, format_table

if TYPE_CHECKING:
    from graftzoo.data import LabelledData
    from graftzoo.diagnostics.rank import RankResult


@click.command("rank")
@click.argument("data")
@click.option("--models", "-m", "model_ids", multiple=True, metavar="ID",
              help="Candidate model ids (repeatable; ID:scratch = random init). Default: every model of the "
                   "data's modality.")
@click.option("--include-scratch", is_flag=True,
              help="Also score each candidate's architecture at random initialisation, for comparison.")
@click.option("--modality", type=ModalityChoice(), default=None,
              help="Modality of DATA when its format does not say (e.g. a CSV).")
@click.option("--format", "data_format", default=None, help="Data format when it cannot be detected.")
@click.option("--limit", type=click.IntRange(min=4), default=None,
              help="Score a stratified sample of at most N examples (faster).")
@click.option("--limit-per-class", type=click.IntRange(min=2), default=None,
              help="Few-shot: score at most N examples per class (same selection as 'graft tune --limit-per-class "
                   "N --val-split 0' with the same seed).")
@click.option("--image-size", type=click.IntRange(min=8), default=None,
              help="Resize images to this size for every vision candidate (less compute).")
@click.option("--by", type=click.Choice(["logme", "knn", "linear"]), default="logme", show_default=True,
              help="Score to sort by.")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Cross-validation folds of kNN and linear probe.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def rank(data: str, model_ids: tuple[str, ...], include_scratch: bool, modality: str | None,
         data_format: str | None, limit: int | None, limit_per_class: int | None, image_size: int | None,
         by: str, folds: int, batch_size: int, seed: int, as_json: bool) -> None:
    """Score candidate backbones for DATA with LogME, kNN and linear-probe accuracy.

    Features are computed once per model and cached (a later 'graft tune
    --policy frozen' reuses them). Higher is better for every score; LogME
    compares models on the same data only.

    \b
    Examples:
      graft rank digits --include-scratch --image-size 64
      graft rank data/ --models mobilenetv2_100.tv_in1k --json
      graft rank data/ --models hf://timm/resnet18.a1_in1k --models mobilenetv2_100.tv_in1k

    Models whose weights cannot be loaded now (a missing file://, or not
    cached while offline: HF_HUB_OFFLINE=1, or the hub or package index
    cannot be reached) are skipped with one line.
    """
    import time

    from graftzoo.data import load_data
    from graftzoo.diagnostics.rank import candidate, candidates_for, rank_models, skip_unavailable, stratified_limit
    from graftzoo.errors import DataError
    from graftzoo.registry import load_registry

    registry = load_registry()
    if modality is None and model_ids:
        modality = candidate(model_ids[0], registry).entry.modality
    dataset = load_data(data, modality=modality, format=data_format)
    modality = modality or dataset.modality
    if modality is None:
        raise DataError(f"{data}: cannot tell the data's modality; pass --modality or --models")
    total = len(dataset)
    if limit_per_class is not None:
        from graftzoo.train.split import limit_per_class as per_class

        dataset = dataset.subset(per_class(range(total), dataset.labels, limit_per_class, seed))
    dataset = stratified_limit(dataset, limit, seed)
    candidates, skipped = skip_unavailable(candidates_for(modality, model_ids, include_scratch, registry))
    _say_skipped(skipped, bool(candidates))
    options = {"image_size": image_size} if image_size is not None else {}
    start = time.perf_counter()
    results = rank_models(dataset, candidates, options=options, by=by, batch_size=batch_size, folds=folds,
                          seed=seed, progress=not as_json)
    elapsed = time.perf_counter() - start
    from graftzoo.train.parallel import is_main_process

    if not is_main_process():  # under accelerate launch: every process has the gathered results; one prints
        return
    if as_json:
        echo_json({"data": dataset.name, "samples": len(dataset), "samples_total": total,
                   "classes": len(dataset.classes), "by": by, "seconds": elapsed,
                   "results": [r.to_dict() for r in results], "skipped": skipped})
        return
    _print_results(dataset, total, results, by, elapsed)


def _say_skipped(skipped: dict[str, str], any_left: bool) -> None:
    """One line for every model whose weights cannot be loaded now; an error when nothing is left to rank."""
    if not skipped:
        return
    from graftzoo.sources._hf import offline
    from graftzoo.sources.availability import unreachable_hosts

    reasons = []
    for why in sorted(set(skipped.values())):
        ids = ", ".join(model for model, reason in skipped.items() if reason == why)
        if why != "needs network":
            reasons.append(f"weights {why}: {ids}")
            continue
        hosts = unreachable_hosts()
        offline_because = ("HF_HUB_OFFLINE is set" if offline() else
                           f"no connection to {', '.join(hosts)}" if hosts else "offline")
        reasons.append(f"weights need the network ({offline_because}): {ids}")
    line = (f"{len(skipped)} model(s) skipped, {'; '.join(reasons)}. "
            "'graft pull ID' while online makes one usable ('graft list' shows which are)")
    if not any_left:
        from graftzoo.errors import SourceError

        raise SourceError(f"no candidate can be loaded now: {line}")
    click.echo(line, err=True)


def _print_results(dataset: LabelledData, total: int, results: list[RankResult], by: str, elapsed: float) -> None:
    rows = []
    for i, r in enumerate(results, 1):
        name = r.model if r.pretrained else f"{r.model} (random init)"
        if r.error is not None:
            rows.append(["-", name, "-", "-", "-", f"{r.seconds:.1f}", f"failed: {r.error}"])
            continue
        rows.append([str(i), name, f"{r.logme:.4f}", f"{r.knn:.3f}", f"{r.linear:.3f}", f"{r.seconds:.1f}",
                     "cached features" if r.cached else ""])
    click.echo(f"{dataset.name}: {len(dataset)} samples"
               f"{f' (of {total})' if len(dataset) != total else ''}, {len(dataset.classes)} classes; "
               f"sorted by {by}")
    click.echo(format_table(["#", "model", "logme", "knn", "linear", "seconds", "note"], rows))
    click.echo(f"total {elapsed:.1f} s")
    failed = [r for r in results if r.error is not None]
    if failed and len(failed) == len(results):
        raise click.ClickException("every candidate failed; see the table above")
