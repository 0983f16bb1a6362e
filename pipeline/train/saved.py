"""A trained network's files: written as a run's logged model (``model.pt``, a plain state dict,
and ``spec.json``, the run's settings), and read back into the network it was, without
unpickling code.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from pipeline.config.runs import RunSpec
from pipeline.errors import WeightsError
from pipeline.models import SequenceModel


def build_model(spec: RunSpec) -> SequenceModel:
    """The network ``spec`` trains, freshly initialised (from torch's current random state)."""
    task = spec.task.build()
    return SequenceModel(
        cell=spec.model.cell,
        n_inputs=task.n_inputs,
        n_outputs=task.n_outputs,
        hidden_size=spec.hidden_size,
        readout=task.readout,
        tokens=task.tokens,
        **spec.model_options(),
    )


def save_model(folder: Path, spec: RunSpec, model: torch.nn.Module) -> Path:
    """Write ``model.pt`` (the weights, on the CPU) and ``spec.json`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, folder / "model.pt")
    (folder / "spec.json").write_text(spec.model_dump_json(indent=2))
    return folder


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``model.pt`` as a state dict of tensors, never unpickling code.

    Raises WeightsError naming the file when it is unreadable, holds anything but a mapping of
    names to tensors, or would need arbitrary code to load (``weights_only=True`` refuses it).
    """
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # UnpicklingError for code, RuntimeError/EOFError for bad files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"{path}: not a plain state dict ({first[:200]})") from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise WeightsError(f"{path}: not a state dict (expected names -> tensors)")
    return state


def load_model_folder(folder: str | Path) -> tuple[RunSpec, SequenceModel]:
    """A logged model's files in ``folder``, read back: the run's settings and its trained
    network, in eval mode.
    """
    folder = Path(folder)
    spec = RunSpec.model_validate_json((folder / "spec.json").read_text())
    model = build_model(spec)
    model.load_state_dict(load_weights(folder / "model.pt"))
    return spec, model.eval()


def load_model(model_id: str, uri: str | None = None) -> tuple[RunSpec, SequenceModel]:
    """The logged model ``model_id`` (``m-...``, a run's Models entry in the UI) of the tracking
    store ``uri`` (default: the pipeline's), as ``load_model_folder`` reads it. Raises
    WeightsError for any file but a plain state dict.
    """
    import mlflow.artifacts

    from pipeline.tracking import store

    client = store.client(uri)
    location = store.retry(lambda: client.get_logged_model(model_id)).artifact_location
    with tempfile.TemporaryDirectory() as tmp:
        folder = mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=tmp, tracking_uri=client.tracking_uri
        )
        return load_model_folder(folder)
