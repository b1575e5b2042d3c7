"""``emotionkit models``: list, download, inspect and publish hub classifiers."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import report, run_or_fail

__all__ = ["models"]


@click.group(short_help="List, download, inspect and publish hub models.")
def models() -> None:
    """Classifiers from the model hub (Hugging Face Hub, or a mirror set by HF_ENDPOINT).

    Downloads are cached in the huggingface_hub cache (see `emotionkit models cache-dir`);
    with HF_HUB_OFFLINE=1 only cached models are used.
    """


@models.command("list", short_help="Registered hub models and whether they are cached.")
def list_() -> None:
    """Registered hub models: labels, size, source and whether they are available offline."""
    from ..hub import is_cached, list_hub_models

    rows = [("NAME", "LABELS", "SIZE", "SOURCE", "CACHED")]
    for model in list_hub_models():
        if model.bundled and not model.published:
            source, cached = f"bundled (hub copy {model.spec} not published yet)", "bundled"
        elif model.published:
            source, cached = model.spec, "yes" if is_cached(model.name) else "no"
        else:
            source, cached = f"{model.spec} (not published yet)", "-"
        labels = ",".join(model.labels) or "-"
        rows.append((model.name, labels, _size(model.size_bytes), source, cached))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)]
        click.echo("  ".join([*cells, row[-1]]))


@models.command(short_help="Download models into the cache; print their directories.")
@click.argument("names", nargs=-1, required=True)
@click.option("--revision", help="Branch, tag or commit instead of the pinned one.")
@click.option("--token", envvar="HF_TOKEN", help="Hub token for private repositories "
              "[default: HF_TOKEN or the saved `hf auth login`].")
def download(names: tuple[str, ...], revision: str | None, token: str | None) -> None:
    """Download NAME... (registered names or hf://OWNER/REPO[@REV]) into the cache.

    Prints each model's local directory. Unknown names and malformed specs stop the
    command before any download (exit code 2); a download that fails is reported and the
    others go on (exit code 1).
    """
    from ..errors import EmotionKitError
    from ..hub import download_model, get_hub_model

    for name in names:
        _check_name(name)
    failures = 0
    for name in names:
        try:
            directory = download_model(name, revision=revision, token=token)
        except EmotionKitError as exc:
            failures += 1
            report(str(exc))
            continue
        model = None if name.startswith("hf://") else get_hub_model(name)
        if model is not None and model.bundled and not model.published and revision is None:
            click.echo(f"{name}: bundled with emotionkit, nothing to download ({directory})")
        else:
            click.echo(f"{name}: {directory}")
    if failures:
        raise SystemExit(1)


@models.command(short_help="One hub model's repository, revision, files and sha256.")
@click.argument("name")
def info(name: str) -> None:
    """Details of one hub model: repository, pinned revision, files and their sha256."""
    from ..classifiers.config import CONFIG_NAME, ModelConfig
    from ..hub import download_model, get_hub_model, is_cached, parse_spec

    _check_name(name)
    if name.startswith("hf://"):
        repo_id, revision = parse_spec(name)
        lines = [("name", name), ("repository", repo_id), ("revision", revision or "main")]
    else:
        model = get_hub_model(name)
        lines = [
            ("name", model.name), ("description", model.description),
            ("repository", model.repo_id),
            ("revision", model.revision or ("main, files pinned by sha256" if model.published
                                             else "none pinned (not published yet)")),
            ("labels", ", ".join(model.labels) or "-"), ("size", _size(model.size_bytes)),
            ("bundled", "yes" if model.bundled else "no"),
        ]
        lines += [(f"file {f}", f"sha256 {h}") for f, h in model.files.items()]
    if is_cached(name):
        directory = download_model(name, local_files_only=True)
        config = ModelConfig.read(directory / CONFIG_NAME)
        lines += [
            ("local path", str(directory)),
            ("labels (config)", ", ".join(config.labels)),
            ("input", f"{config.input_size[0]}x{config.input_size[1]}x{config.channels}"),
            ("model file", config.model_file),
        ]
    else:
        lines.append(("local path", "not cached"))
    width = max(len(key) for key, _ in lines)
    for key, value in lines:
        click.echo(f"{key.ljust(width)}  {value}")


@models.command(short_help="Upload a trained model directory to the hub.")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--repo-id", required=True, help="Hub repository OWNER/REPO (created if missing).")
@click.option("--private", is_flag=True, help="Create the repository as private.")
@click.option("--token", envvar="HF_TOKEN", help="Hub token with write access "
              "[default: HF_TOKEN or the saved `hf auth login`].")
@click.option("--message", "-m", help="Commit message.")
def push(directory: Path, repo_id: str, private: bool, token: str | None,
         message: str | None) -> None:
    """Upload the trained model DIRECTORY (config.json + model file) to the hub.

    A README.md model card is generated from config.json and metrics.json unless the
    directory has one. The model is loaded (Keras safe_mode) before uploading.
    """
    from ..hub import push_model

    result = run_or_fail(push_model, directory, repo_id, private=private, token=token,
                         commit_message=message)
    click.echo(f"pushed {len(result.files)} files to {repo_id} (commit {result.commit})")
    click.echo(f"load it with: EmotionRecognizer(classifier=\"{result.spec}\")")


@models.command("cache-dir", short_help="Print the model cache directory.")
def cache_dir_() -> None:
    """Print the directory where downloaded models are cached."""
    from ..hub import cache_dir

    click.echo(str(run_or_fail(cache_dir)))


def _check_name(name: str) -> None:
    """An unknown registered name or a malformed ``hf://`` spec: a usage error (exit
    status 2)."""
    from ..hub import get_hub_model, parse_spec

    run_or_fail(parse_spec if name.startswith("hf://") else get_hub_model, name, exit_code=2)


def _size(size_bytes: int | None) -> str:
    if size_bytes is None:
        return "-"
    size = float(size_bytes)
    for unit in ("B", "KB", "MB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
