"""The models the eval stage hands to inference, written in the models folder's formats (``mgfm.infer.bundle``
loads them): the ``finetune`` protocol's classifier of the first seed and the emotion aggregator.

Layout under the models folder (``results/models`` in the workflow):

```
classifiers/{modality}/{stream}/   encoder.safetensors + card.json (mgfm.models.artifact), head.safetensors,
                                   classifier.json (classes, joints, clip preprocessing, validation videos)
emotion/                           aggregator.safetensors + emotion.json (members, feature scaling)
```

Everything is safetensors or JSON, so loading never unpickles. The protocols export the very model they trained
and scored, so inference fuses the classifiers the tables report, not retrained copies.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mgfm.common.atomic import atomic_path

CLASSIFIER_FORMAT = "mgfm-classifier/1"
CLASSIFIER_NAME = "classifier.json"
HEAD_NAME = "head.safetensors"
AGGREGATOR_NAME = "aggregator.safetensors"
EMOTION_NAME = "emotion.json"


def classifier_dir(models_dir: str | os.PathLike, modality: str, stream: str) -> Path:
    return Path(models_dir) / "classifiers" / modality / stream


def emotion_dir(models_dir: str | os.PathLike) -> Path:
    return Path(models_dir) / "emotion"


def write_json(path: str | os.PathLike, obj: dict) -> Path:
    """``obj`` as sorted, indented JSON, atomically (a reader never sees half a description)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    return path


def save_head(path: str | os.PathLike, head: nn.Linear) -> None:
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in head.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"format": CLASSIFIER_FORMAT})


def unwrap(model: nn.Module) -> nn.Module:
    """The module itself when ``model`` is DDP-wrapped (its state dict keys then carry no ``module.`` prefix)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def save_classifier(out_dir: str | os.PathLike, model: nn.Module, info: dict) -> Path:
    """A fine-tuned classifier (``encoder`` + linear ``head``, e.g. ``mgfm.eval.finetune.Classifier``) into
    ``out_dir``: the encoder with its card (the fine-tuning architecture, so ``load_encoder`` rebuilds it), the
    head, then the description (``info``, its ``format`` set here) last, so a description always has its weights."""
    from mgfm.models.artifact import save_encoder

    model = unwrap(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_encoder(out, model.encoder, model.encoder.card)
    save_head(out / HEAD_NAME, model.head)
    write_json(out / CLASSIFIER_NAME, {**info, "format": CLASSIFIER_FORMAT})
    return out


def save_aggregator(out_dir: str | os.PathLike, model: nn.Module, mean: torch.Tensor, std: torch.Tensor,
                    info: dict) -> Path:
    """The emotion aggregator's weights with the feature scaling it was trained on (``feature_mean``,
    ``feature_std``), then its description."""
    out = Path(out_dir)
    state = {k: v.detach().contiguous() for k, v in unwrap(model).state_dict().items()}
    state["feature_mean"], state["feature_std"] = mean, std
    with atomic_path(out / AGGREGATOR_NAME) as tmp:
        save_file(state, str(tmp))
    write_json(out / EMOTION_NAME, info)
    return out
