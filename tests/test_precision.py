"""Training precision: fits in bf16 autocast where the CPU computes bf16 natively, float32
elsewhere; explanations and metrics always float32; the precision is in the fit's cache key and the record."""

from __future__ import annotations

import json

import pytest
import torch

from bench.cli import main
from bench.execute.steps import fitted_explainer
from bench.execute.runtime import native_bf16, training_precision_for
from explainers.base import Capability
from explainers.registry import EXPLAINERS
from explainers.training import autocast, training_precision

CPU = torch.device("cpu")


def test_autocast_is_bf16_only_inside_a_bf16_block():
    conv = torch.nn.Conv2d(1, 2, 3)
    x = torch.rand(2, 1, 8, 8)
    with autocast(CPU):
        assert conv(x).dtype == torch.float32  # outside any block: as written
    with training_precision("bf16"), autocast(CPU):
        assert conv(x).dtype == torch.bfloat16
    with training_precision("fp32"), autocast(CPU):
        assert conv(x).dtype == torch.float32
    with pytest.raises(ValueError, match="precision must be one of"):
        with training_precision("fp16"):
            pass


def test_auto_precision_follows_the_cpu():
    assert training_precision_for("auto", CPU) == ("bf16" if native_bf16(CPU) else "fp32")
    assert training_precision_for("fp32", CPU) == "fp32" and training_precision_for("bf16", CPU) == "bf16"
    with pytest.raises(ValueError, match="auto, fp32, bf16"):
        training_precision_for("half", CPU)


def test_cli_rejects_an_unknown_precision(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--precision", "fp16"])
    assert exit_info.value.code == 2 and "invalid choice: 'fp16'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["gce", "exaggeration", "svae", "ganmex_ig"])
def test_a_bf16_fit_trains_in_bf16_and_keeps_float32_weights(name, black_box, mnist38):
    """The same seed and steps in fp32 and bf16: the weights differ (autocast really ran the steps in bf16)
    but stay float32 and finite, and the fit's explanations are float32."""
    images = mnist38.train.images[:512]
    fits = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        explainer = EXPLAINERS.get(name)(black_box, {"steps": 3, "batch_size": 16})
        with training_precision(precision):
            record = explainer.fit(images, generator=torch.Generator().manual_seed(0), log=lambda m: None)
        assert all(v == v for v in record.values() if isinstance(v, float))  # no NaN loss
        fits[precision] = explainer
    weights = {p: torch.cat([t.flatten().float() for net in e.state_dict().values() if isinstance(net, dict)
                             for t in net.values() if t.is_floating_point()]) for p, e in fits.items()}
    assert all(t.dtype == torch.float32 for e in fits.values() for net in e.state_dict().values()
               if isinstance(net, dict) for t in net.values() if t.is_floating_point())
    assert torch.isfinite(weights["bf16"]).all() and not torch.equal(weights["fp32"], weights["bf16"])
    x = mnist38.test.images[:4]
    if fits["bf16"].supports(Capability.SWEEP):
        sweep = fits["bf16"].sweep(x, torch.ones(4, dtype=torch.long), 3)
        assert sweep.dtype == torch.float32


def test_precision_is_in_the_fit_key_unless_fp32(black_box, mnist38, tmp_path, monkeypatch):
    """An fp32 fit's key is the one computed without a precision; a bf16 fit is another cache entry."""
    monkeypatch.setenv("GENEXBENCH_CACHE", str(tmp_path))
    keys = {}
    for precision in ("fp32", "bf16", "fp32"):
        _, fit = fitted_explainer(EXPLAINERS.get("svae"), classifier=black_box, settings={"steps": 2},
                                  train_images=mnist38.train.images[:256], classifier_key="box", suite_key={},
                                  seed=0, device=CPU, log=lambda m: None, precision=precision)
        keys.setdefault(precision, []).append((fit["cache_key"], fit["cached"], fit["precision"]))
    (fp32_key, cached, _), (again, cached_again, _) = keys["fp32"]
    assert fp32_key == again and not cached and cached_again  # the second fp32 fit is read back
    assert keys["bf16"][0][0] != fp32_key and not keys["bf16"][0][1]
    assert {p for entries in keys.values() for *_, p in entries} == {"fp32", "bf16"}


def test_an_explainer_bf16_costs_quality_fits_in_float32(black_box, mnist38, tmp_path, monkeypatch):
    """The exaggeration cGAN opts out (``bf16_fit = False``): asked for bf16, it fits in float32, under the
    float32 fit's key."""
    monkeypatch.setenv("GENEXBENCH_CACHE", str(tmp_path))
    fits = [fitted_explainer(EXPLAINERS.get("exaggeration"), classifier=black_box, settings={"steps": 2},
                             train_images=mnist38.train.images[:256], classifier_key="box", suite_key={}, seed=0,
                             device=CPU, log=lambda m: None, precision=precision)[1] for precision in ("bf16", "fp32")]
    assert [f["precision"] for f in fits] == ["fp32", "fp32"] and fits[0]["cache_key"] == fits[1]["cache_key"]
    assert fits[1]["cached"] and EXPLAINERS.get("exaggeration").bf16_fit is False
    assert all(EXPLAINERS.get(n).bf16_fit for n in ("gce", "svae", "ganmex_ig"))


def test_exaggeration_channels_last_explains_as_nchw(black_box, mnist38):
    """The channels-last networks and inputs are a layout, not another model: the same weights in NCHW give
    the same explanations up to float rounding."""
    torch.manual_seed(0)
    fast = EXPLAINERS.get("exaggeration")(black_box, {"steps": 2})
    fast.fit(mnist38.train.images[:256], generator=torch.Generator().manual_seed(0), log=lambda m: None)
    torch.manual_seed(0)
    plain = EXPLAINERS.get("exaggeration")(black_box, {"steps": 2})
    plain.load_state_dict(fast.state_dict())
    for net in (plain.encoder, plain.generator, plain.discriminator):
        net.to(memory_format=torch.contiguous_format)
    plain._input = lambda x: x.to(plain.device)
    x, p = mnist38.test.images[:16], torch.linspace(0, 1, 16)
    with torch.no_grad():
        a, b = fast.explain(x, p), plain.explain(x, p)
    conv = fast.generator.out.weight  # a (1, 16, 3, 3) weight: channels-last is another layout than NCHW here
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert plain.generator.out.weight.is_contiguous()
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_a_bf16_fit_computes_its_losses_from_float32_outputs(black_box, mnist38):
    """CPU autocast leaves softmax, logs and sigmoids in bf16: the networks' outputs that losses, logs and bins
    are computed from come back in float32 (explainers.training.float32), while their convolutions run in bf16."""
    x = mnist38.train.images[:4]
    made = {name: EXPLAINERS.get(name)(black_box, {}) for name in ("gce", "svae", "exaggeration", "ganmex_ig")}
    seen = []
    hook = lambda module, args, out: seen.append(out.dtype)  # noqa: E731
    with training_precision("bf16"), autocast(CPU):
        made["gce"].encoder.conv1.register_forward_hook(hook)
        mu, logvar = made["gce"].encoder(x)
        outputs = {"black box": black_box(x), "logits": black_box.logits(x), "gce mu": mu, "gce logvar": logvar,
                   "gce decoder": made["gce"].decoder(mu),
                   "svae q(z|x)": made["svae"].encoders.q_x(made["svae"].encoders.trunk(x))[0],
                   "exaggeration G": made["exaggeration"].explain(x, torch.rand(4)),
                   "exaggeration D": made["exaggeration"].discriminator(x, torch.zeros(4, dtype=torch.long)),
                   "ganmex G": made["ganmex_ig"].generator(x, torch.zeros(4, dtype=torch.long)),
                   "ganmex D": made["ganmex_ig"].discriminator(x)}
    assert seen == [torch.bfloat16]  # the convolution itself ran in bf16
    assert {k: v.dtype for k, v in outputs.items()} == {k: torch.float32 for k in outputs}


def test_the_record_names_the_precision(smoke_run):
    meta = json.loads((smoke_run[0] / "results.json").read_text())["metadata"]
    assert meta["precision"] == {"option": "auto", "training": training_precision_for("auto", CPU),
                                 "native_bf16": native_bf16(CPU)}
