"""Analytic FLOPs of MG-FM-RGB pretraining per clip, so a measured step time can be stated as a share of a
device's peak. As for MG-FM-Skele (``mgfm.models.flops``): every matrix product counts 2 FLOPs per multiply-add,
norms / softmax / elementwise work are left out, backward = 2 x forward. The teacher runs forward only.
tests/test_rgb_flops.py checks the student's forward count against torch's FLOP counter.
"""

from __future__ import annotations

from mgfm.models.rgb.student import StudentConfig


def vit_layers(tokens: int, width: int, mlp: int, depth: int) -> int:
    """Forward FLOPs of ``depth`` pre-norm ViT layers on ``tokens`` tokens."""
    per_layer = 2 * tokens * (4 * width * width + 2 * width * mlp) + 2 * 2 * tokens * tokens * width
    return depth * per_layer


def student_forward(cfg: StudentConfig, masked: int, target_dim: int) -> dict[str, int]:
    """Forward FLOPs of one clip: tubelet embedding (``transformers`` embeds every tubelet, then drops the masked
    ones), encoder on the visible tokens, decoder on all tokens."""
    n = cfg.num_tokens
    vis = n - masked
    patch = 3 * cfg.tubelet_size * cfg.patch_size ** 2
    enc_mlp, dec_mlp = int(cfg.hidden * cfg.mlp_ratio), int(cfg.decoder_hidden * cfg.mlp_ratio)
    encoder = 2 * n * patch * cfg.hidden + vit_layers(vis, cfg.hidden, enc_mlp, cfg.depth)
    decoder = (2 * vis * cfg.hidden * cfg.decoder_hidden
               + vit_layers(n, cfg.decoder_hidden, dec_mlp, cfg.decoder_depth)
               + 2 * masked * cfg.decoder_hidden * target_dim)
    return {"encoder": encoder, "decoder": decoder}


def clip_teacher_forward(cfg: StudentConfig, image_size: int, patch_size: int, hidden: int, depth: int,
                         mlp_dim: int) -> int:
    """Forward FLOPs of the CLIP teacher on one clip's T / tubelet frames."""
    tokens = (image_size // patch_size) ** 2 + 1
    per_frame = 2 * (tokens - 1) * 3 * patch_size ** 2 * hidden + vit_layers(tokens, hidden, mlp_dim, depth)
    return cfg.num_frames // cfg.tubelet_size * per_frame


def train_step_per_clip(cfg: StudentConfig, masked: int, target_dim: int, teacher_forward: int) -> dict[str, int]:
    """One training step's FLOPs per clip: student forward + backward (3 x forward) + teacher forward."""
    s = student_forward(cfg, masked, target_dim)
    student = 3 * (s["encoder"] + s["decoder"])
    return {"student": student, "teacher": teacher_forward, "total": student + teacher_forward,
            "encoder_forward": s["encoder"], "decoder_forward": s["decoder"]}
