"""The multi-grained decorrelation loss against hand-checkable cases and a plain-loop float64 re-derivation."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from mgfm.models.losses.decorrelation import (
    GRAINS,
    DecorrelationWeights,
    cross_correlation_term,
    multi_grained_decorrelation_loss,
    similarity_term,
    variance_covariance_term,
)
from mgfm.config import resolve

REFERENCE = DecorrelationWeights.from_section(resolve("pretrain", {})["loss"])   # the schema's defaults

# columns 1..4 of the 8x8 Sylvester-Hadamard matrix: entries +-1, zero mean, mutually orthogonal
H8 = torch.tensor([[(-1) ** bin(i & j).count("1") for j in range(8)] for i in range(8)], dtype=torch.float64)
WHITE = H8[:, 1:5]  # (B=8, D=4): biased std 1 (unbiased sqrt(8/7)), uncorrelated


def views_of(z: torch.Tensor, k: int = 4) -> torch.Tensor:
    return z.unsqueeze(0).repeat(k, 1, 1)


def random_views(seed: int, k: int = 4, b: int = 6, d: int = 5, dtype=torch.float64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {grain: torch.randn(k, b, d + i, generator=g, dtype=dtype) for i, grain in enumerate(GRAINS)}


def test_identical_views_have_zero_similarity():
    z = views_of(torch.randn(7, 5, dtype=torch.float64))
    assert similarity_term(z).item() == pytest.approx(0.0, abs=1e-30)  # mean of equal views rounds


def test_similarity_by_hand():
    # views 0..2 equal to a, anchor b: MSE(a, b) three times, MSE(a, mean(a, a, a)) = 0
    a, b = torch.zeros(2, 3, dtype=torch.float64), torch.full((2, 3), 2.0, dtype=torch.float64)
    z = torch.stack([a, a, a, b])
    assert similarity_term(z).item() == pytest.approx(3 * 4.0)
    # views 0, 1, 2 = 0, 0, 3 (anchor equal to the centre 1): MSE to anchor and centre are both (1 + 1 + 4)
    z = torch.stack([torch.zeros(2, 1), torch.zeros(2, 1), torch.full((2, 1), 3.0), torch.ones(2, 1)]).double()
    assert similarity_term(z).item() == pytest.approx(2 * (1 + 1 + 4))


def test_decorrelated_features_have_no_off_diagonal_barlow_and_zero_vac():
    z = views_of(WHITE)
    # standardised with the unbiased std (USDRL), C = z^T z / B = (7/8) I: only the diagonal (1/8)^2 remains,
    # 4 dims x 6 view pairs; a biased std would give 0
    assert cross_correlation_term(z, 0.005).item() == pytest.approx(6 * 4 / 64, rel=1e-12)
    # unbiased variance 8/7 > 1: no variance hinge; covariance (8/7) I: no off-diagonal term
    assert variance_covariance_term(z, 5.0, 1e-4).item() == pytest.approx(0.0, abs=1e-12)


def test_variance_hinge_by_hand():
    z = views_of(0.5 * WHITE)
    std = math.sqrt(0.25 * 8 / 7 + 1e-4)
    assert variance_covariance_term(z, 5.0, 1e-4).item() == pytest.approx(4 * 5 * (1 - std), rel=1e-12)


def test_covariance_term_by_hand():
    col = WHITE[:, :1]
    z = views_of(torch.cat([col, col], dim=1))  # D = 2, cov = 8/7 everywhere
    assert variance_covariance_term(z, 5.0, 1e-4).item() == pytest.approx(4 * (2 * (8 / 7) ** 2) / 2, rel=1e-12)


def test_barlow_by_hand_for_anticorrelated_views():
    # unbiased std: C = -(7/8) I, each diagonal (1 + 7/8)^2, off-diagonal 0
    z = torch.stack([WHITE, -WHITE])
    assert cross_correlation_term(z, 0.005).item() == pytest.approx(4 * (1 + 7 / 8) ** 2, rel=1e-12)


def test_reference_weights_are_the_schema_defaults():
    assert REFERENCE.to_dict() == {"sim_weight": 5.0, "vac_weight": 1.0, "xcorr_weight": 0.001,
                                   "instance_weight": 1.0, "temporal_weight": 0.5, "spatial_weight": 0.5,
                                   "std_weight": 5.0, "var_eps": 0.0001, "barlow_lambda": 0.005}
    with pytest.raises(ValueError, match=r"missing keys \['xcorr_weight'\]"):
        DecorrelationWeights.from_section({k: v for k, v in REFERENCE.to_dict().items() if k != "xcorr_weight"})


def _loops_reference(views: dict[str, torch.Tensor], w: DecorrelationWeights) -> float:
    """Plain-Python float64 re-derivation of the reference-facts formulas."""
    gw = {"instance": w.instance_weight, "temporal": w.temporal_weight, "spatial": w.spatial_weight}
    totals = {"sim": 0.0, "vac": 0.0, "xcorr": 0.0}
    for grain, t in views.items():
        z = t.tolist()
        k, b, d = len(z), len(z[0]), len(z[0][0])

        def mse(p, q):
            return sum((p[i][j] - q[i][j]) ** 2 for i in range(b) for j in range(d)) / (b * d)

        c = [[sum(z[v][i][j] for v in range(k - 1)) / (k - 1) for j in range(d)] for i in range(b)]
        sim = sum(mse(z[v], z[k - 1]) + mse(z[v], c) for v in range(k - 1))
        vac = 0.0
        stdz = []
        for v in range(k):
            mean = [sum(z[v][i][j] for i in range(b)) / b for j in range(d)]
            cen = [[z[v][i][j] - mean[j] for j in range(d)] for i in range(b)]
            var = [sum(cen[i][j] ** 2 for i in range(b)) / (b - 1) for j in range(d)]
            vac += w.std_weight * sum(max(0.0, 1 - math.sqrt(var[j] + w.var_eps)) for j in range(d)) / d
            off = 0.0
            for p in range(d):
                for q in range(d):
                    if p != q:
                        off += (sum(cen[i][p] * cen[i][q] for i in range(b)) / (b - 1)) ** 2
            vac += off / d
            stdz.append([[cen[i][j] / math.sqrt(var[j]) for j in range(d)] for i in range(b)])  # unbiased, no eps
        xcorr = 0.0
        for a, e in itertools.combinations(range(k), 2):
            for p in range(d):
                for q in range(d):
                    cpq = sum(stdz[a][i][p] * stdz[e][i][q] for i in range(b)) / b
                    xcorr += (1 - cpq) ** 2 if p == q else w.barlow_lambda * cpq ** 2
        for name, value in (("sim", sim), ("vac", vac), ("xcorr", xcorr)):
            totals[name] += gw[grain] * value
    return w.sim_weight * totals["sim"] + w.vac_weight * totals["vac"] + w.xcorr_weight * totals["xcorr"]


@pytest.mark.parametrize("weights", [REFERENCE,
                                     DecorrelationWeights(sim_weight=2.0, vac_weight=0.3, xcorr_weight=0.1,
                                                          instance_weight=0.7, temporal_weight=0.2,
                                                          spatial_weight=0.9, std_weight=1.5, var_eps=1e-4,
                                                          barlow_lambda=0.05)])
def test_matches_float64_loop_rederivation(weights):
    views = random_views(0)
    total, terms = multi_grained_decorrelation_loss(views, weights)
    assert total.dtype == torch.float64
    assert total.item() == pytest.approx(_loops_reference(views, weights), rel=1e-10)
    combo = sum(weights.__getattribute__(f"{n}_weight") * terms[n] for n in ("sim", "vac", "xcorr"))
    assert total.item() == pytest.approx(combo.item(), rel=1e-12)


def test_symmetries():
    views = random_views(1)
    total, terms = multi_grained_decorrelation_loss(views, REFERENCE)
    # the three non-anchor views are interchangeable
    for perm in itertools.permutations(range(3)):
        idx = list(perm) + [3]
        t2, _ = multi_grained_decorrelation_loss({g: v[idx] for g, v in views.items()}, REFERENCE)
        assert t2.item() == pytest.approx(total.item(), rel=1e-12)
    # vac and xcorr do not single out the anchor; sim does
    _, t3 = multi_grained_decorrelation_loss({g: v[[3, 1, 2, 0]] for g, v in views.items()}, REFERENCE)
    assert t3["vac"].item() == pytest.approx(terms["vac"].item(), rel=1e-12)
    assert t3["xcorr"].item() == pytest.approx(terms["xcorr"].item(), rel=1e-12)
    assert t3["sim"].item() != pytest.approx(terms["sim"].item(), rel=1e-6)
    # the batch order does not matter (a distributed gather changes it)
    order = torch.randperm(6, generator=torch.Generator().manual_seed(3))
    t4, _ = multi_grained_decorrelation_loss({g: v[:, order] for g, v in views.items()}, REFERENCE)
    assert t4.item() == pytest.approx(total.item(), rel=1e-12)


def test_batch_of_one_is_a_clear_error():
    views = {g: torch.randn(4, 1, 8) for g in GRAINS}
    with pytest.raises(ValueError, match="batch of 1"):
        multi_grained_decorrelation_loss(views, REFERENCE)


def test_missing_grain_and_bad_shape_are_errors():
    with pytest.raises(ValueError, match="missing grains"):
        multi_grained_decorrelation_loss({"instance": torch.randn(4, 3, 2)}, REFERENCE)
    with pytest.raises(ValueError, match=r"\(K, B, D\)"):
        multi_grained_decorrelation_loss({g: torch.randn(3, 2) for g in GRAINS}, REFERENCE)


def test_gradients_reach_every_view_of_every_grain():
    views = {g: v.clone().requires_grad_(True) for g, v in random_views(2, dtype=torch.float32).items()}
    total, _ = multi_grained_decorrelation_loss(views, REFERENCE)
    total.backward()
    for g, v in views.items():
        assert v.grad is not None and torch.isfinite(v.grad).all()
        for k in range(4):
            assert v.grad[k].abs().sum() > 0, f"no gradient to view {k} of grain {g}"


def test_bfloat16_inputs_are_computed_in_float32():
    views = random_views(4, dtype=torch.float32)
    ref, _ = multi_grained_decorrelation_loss(views, REFERENCE)
    low, _ = multi_grained_decorrelation_loss({g: v.bfloat16() for g, v in views.items()}, REFERENCE)
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(ref.item(), rel=0.05)
