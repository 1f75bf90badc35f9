"""Small models for tests, built as the stages build them: the schema-resolved model section -> its typed config
(``from_section``) -> the model."""

from __future__ import annotations


def dste_config(**sizes):
    """The DSTEConfig of the resolved ``pretrain.model`` section with ``sizes`` set."""
    from mgfm.config import resolve
    from mgfm.models.dste import DSTEConfig

    return DSTEConfig.from_section(resolve("pretrain", {"model": sizes})["model"])


def dste(**sizes):
    """A freshly initialised DSTE of the resolved ``pretrain.model`` section with ``sizes`` set."""
    from mgfm.models.dste import DSTE

    return DSTE(dste_config(**sizes))


def projectors(projector_dims, instance_projector_dims):
    """A ProjectorConfig of these widths."""
    from mgfm.models.projectors import ProjectorConfig

    return ProjectorConfig(tuple(projector_dims), tuple(instance_projector_dims))


def student_config(**sizes):
    """The StudentConfig of the resolved ``rgb_pretrain.model`` section with ``sizes`` set."""
    from mgfm.config import resolve
    from mgfm.models.rgb.student import StudentConfig

    return StudentConfig.from_section(resolve("rgb_pretrain", {"model": sizes})["model"])
