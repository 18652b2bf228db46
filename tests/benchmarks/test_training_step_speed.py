"""Training speed of each generative explainer: a fit of a few steps at the mnist ``quick``
profile's settings, on real MNIST 3 vs 8, with the Table 1 black box (channels-last, as the runner runs it).

Compare in one run (timings off by default in the test suite, where each fit runs 2 steps once):

    pytest tests/benchmarks/test_training_step_speed.py --benchmark-enable --benchmark-group-by=param:name

Each explainer in float32 and in bf16 autocast (``--precision``; bf16 only where the CPU computes it
natively), and the exaggeration cGAN also with NCHW networks and inputs, the layout channels-last is compared
against.

A fit is its steps plus what it does once: the labels f gives the training set (computed once per process
and shared, so kept out of the timed region here), exaggeration's 200 standing-statistics batches, SVAE's
centroids. Where one step's time goes (measured with ablations): GCE's
information-flow estimate is most of its step, and f's forward and backward most of that; the GANs
spend their steps in their own convolutions, f under a seventh.
"""

from __future__ import annotations

import pytest
import torch

from bench.inputs.classifier import BlackBox, Table1Classifier
from bench.inputs.suites import SUITES
from bench.execute.runtime import native_bf16
from explainers.registry import EXPLAINERS
from explainers.training import PRECISIONS, training_precision

FITTING = ("gce", "exaggeration", "svae", "ganmex_ig")
STEPS = 10  # timed; 2 when timings are off


@pytest.fixture(scope="module")
def black_box(mnist38):
    torch.manual_seed(0)
    box = BlackBox(Table1Classifier(2), 2)
    box.use_channels_last(mnist38.train.images[:8])
    box.predict(mnist38.train.images)  # f's labels of the training set, remembered: out of the timed fits
    return box


def nchw(explainer) -> None:
    """The exaggeration cGAN with NCHW networks and inputs, the layout channels-last is compared against."""
    for net in (explainer.encoder, explainer.generator, explainer.discriminator):
        net.to(memory_format=torch.contiguous_format)
    explainer._input = lambda x: x.to(explainer.device)


def fit(name: str, black_box, images: torch.Tensor, steps: int, precision: str, layout: str) -> dict:
    settings = {**SUITES["mnist"].profile("quick").explainers.get(name, {}), "steps": steps}
    torch.manual_seed(0)
    explainer = EXPLAINERS.get(name)(black_box, settings)
    if layout == "nchw":
        nchw(explainer)
    with training_precision(precision):
        return explainer.fit(images, generator=torch.Generator().manual_seed(0), log=lambda m: None)


CASES = [(name, precision, "default") for name in FITTING for precision in PRECISIONS]
CASES += [("exaggeration", precision, "nchw") for precision in PRECISIONS]


@pytest.mark.parametrize("name,precision,layout", CASES)
def test_training_speed(benchmark, name, precision, layout, black_box, mnist38):
    if precision == "bf16" and not native_bf16(torch.device("cpu")):
        pytest.skip("this CPU emulates bf16 (no AVX-512 BF16 or AMX): --precision auto trains in fp32 here")
    if not benchmark.enabled and (precision, layout) != ("fp32", "default"):
        pytest.skip("timings only: the test suite's fits of each precision are in tests/test_precision.py")
    steps = STEPS if benchmark.enabled else 2
    images = mnist38.train.images if benchmark.enabled else mnist38.train.images[:1000]  # untimed: short
    record = benchmark.pedantic(fit, args=(name, black_box, images, steps, precision, layout), rounds=3,
                                warmup_rounds=1, iterations=1)
    assert record["steps"] == steps and all(v == v for v in record.values() if isinstance(v, float))  # no NaN
