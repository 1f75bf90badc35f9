"""Name mapping from a reference USDRL state dict (wengwanjiang/USDRL, ``model/DSTE.py``) to ``PretrainModel``.

USDRL names its two layers per stream ``t_tr``/``t_tr1`` and ``s_tr``/``s_tr1``, stores the shared attention of
each layer twice (``CA.attn`` and ``DSA.attn``, the same tensors), keeps its 200-row sinusoid as a buffer
(``tpe.pe``) and calls the projectors ``t_proj``/``s_proj``/``i_proj``. ``usdrl_to_mgfm`` is the one mapping
between the two: it is how the parity test loads the reference's numbers and how a published USDRL checkpoint
(``backbone.*`` and optionally the projectors) can be loaded into our modules.
"""

from __future__ import annotations

import re

import torch

from mgfm.models.dste import sinusoidal_encoding

STREAMS = {"t": "temporal", "s": "spatial"}
PROJECTORS = {"t_proj": "temporal_projector", "s_proj": "spatial_projector", "i_proj": "instance_projector"}
SUBMODULES = {"CA.conv1": "ca.conv1", "CA.norm1": "ca.norm1", "CA.norm2": "ca.norm2", "CA.mlp": "ca.mlp",
              "DSA.wt1": "dsa.wt1", "DSA.wt2": "dsa.wt2", "DSA.norm1": "dsa.norm1", "DSA.norm2": "dsa.norm2",
              "DSA.mlp": "dsa.mlp", "CA.attn": "attn", "DSA.attn": "attn"}
LAYER = re.compile(r"^(t|s)_tr(\d*)\.(CA|DSA)\.(\w+)\.(.+)$")


def _encoder_key(key: str) -> str | None:
    """Our encoder name of a ``backbone.*`` key without its prefix; None for the dropped sinusoid buffer."""
    if key == "tpe.pe":
        return None
    if key == "spe":
        return "spatial.pos"
    m = re.match(r"^ske_emb\.(t|s)_embedding\.(.+)$", key)
    if m:
        return f"{STREAMS[m[1]]}.embed.{m[2]}"
    m = LAYER.match(key)
    if m:
        stream, index, block, module, rest = m.groups()
        return f"{STREAMS[stream]}.layers.{int(index or 0)}.{SUBMODULES[f'{block}.{module}']}.{rest}"
    raise KeyError(f"USDRL state dict: no mgfm name for backbone key {key!r}")


def usdrl_to_mgfm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a USDRL state dict (``backbone.*``, ``t_proj.*``, ...) to ``PretrainModel`` keys (``encoder.*``, ...).

    Checks what it drops: the two copies of each shared attention must be equal, and ``tpe.pe`` must be the
    sinusoid that ``DSTE`` recomputes (ours covers exactly ``num_frames`` rows, the reference's 200).
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        prefix, _, rest = key.partition(".")
        if prefix == "backbone":
            name = _encoder_key(rest)
            if name is None:
                want = sinusoidal_encoding(value.shape[1], value.shape[2])
                if not torch.allclose(value.float().cpu(), want, atol=1e-6):
                    raise ValueError("USDRL state dict: backbone.tpe.pe is not the standard sinusoid")
                continue
            name = f"encoder.{name}"
        elif prefix in PROJECTORS:
            name = f"{PROJECTORS[prefix]}.{rest}"
        else:
            raise KeyError(f"USDRL state dict: no mgfm name for key {key!r}")
        if name in out and not torch.equal(out[name], value):
            raise ValueError(f"USDRL state dict: {key} differs from the other copy of the shared {name}")
        out[name] = value
    return out
