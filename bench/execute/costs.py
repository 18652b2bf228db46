"""What one fit costs: seconds per training step of an explainer at a profile's settings, measured, so that
a study's cost at the papers' size can be estimated before it is run (README, "Studies").

    python -m bench.execute.costs --device cuda --out costs.json

Each measurement fits twice from the same start, ``warm`` steps and ``warm + steps`` steps, on the suite's
real training images and a GCE Table 1 black box trained for one epoch; the difference over ``steps`` is
the time of a step with warm-up (kernel selection, autotuning, first allocations) excluded. Fits run in the
precision a run would use on that device (``auto``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

#: (label, explainer, settings): the fits of the built-in studies, small and full
FITS = (
    ("gce small (800 steps, 8x8 samples)", "gce", {"n_alpha": 8, "n_beta": 8}),
    ("gce quick (16x16 samples)", "gce", {"n_alpha": 16, "n_beta": 16}),
    ("gce paper (25x100 samples)", "gce", {"n_alpha": 25, "n_beta": 100, "batch_size": 64, "lr": 5e-4}),
    ("gce K=0 (Algorithm 1 step 1)", "gce", {"n_causal": 0, "n_noncausal": 8, "lam": 1.0}),
    ("ganmex small/quick (32 ch, 3 blocks, hinge)", "ganmex_ig", {}),
    ("ganmex paper (64 ch, 6 blocks, wgan-gp)", "ganmex_ig",
     {"channels": 64, "n_res": 6, "adversarial": "wgan-gp", "lambda_cls": 1000.0, "lambda_sim": 100.0,
      "lambda_rec": 0.0, "lr": 2e-5, "lr_d": 1e-4}),
)


def step_seconds(name: str, settings: dict, classifier, images: torch.Tensor, device: torch.device, *,
                 warm: int = 20, steps: int = 100, precision: str = "fp32") -> float:
    """Seconds per training step of ``name`` with ``settings`` (warm-up excluded)."""
    from explainers.registry import EXPLAINERS
    from explainers.training import training_precision

    cls = EXPLAINERS.get(name)
    precision = precision if cls.bf16_fit else "fp32"
    times = []
    for n in (warm, warm + steps):
        torch.manual_seed(0)
        explainer = cls(classifier, {**settings, "steps": n}, device)
        start = time.perf_counter()
        with training_precision(precision):
            explainer.fit(images, generator=torch.Generator().manual_seed(0), log=lambda m: None)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return (times[1] - times[0]) / steps


def main(argv: list[str] | None = None) -> dict:
    from bench.inputs.classifier import BlackBox, ClassifierConfig, train_classifier
    from bench.inputs.data import load_dataset
    from bench.outputs.results import device_info
    from bench.execute.runtime import training_precision_for

    parser = argparse.ArgumentParser(prog="python -m bench.execute.costs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--out", help="write the measurements here (JSON)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    data = load_dataset("mnist", (3, 8))
    network = train_classifier(data.train, 2, ClassifierConfig(epochs=1), seed=0, device=device, log=lambda m: None)
    classifier = BlackBox(network.to(device), 2)
    precision = training_precision_for("auto", device)
    out = {"device": device_info(device), "torch": torch.__version__, "precision": precision,
           "machine": platform.processor() or platform.machine(), "steps_timed": args.steps, "fits": {}}
    for label, name, settings in FITS:
        seconds = step_seconds(name, settings, classifier, data.train.images, device, steps=args.steps, warm=args.warm,
                               precision=precision)
        out["fits"][label] = {"explainer": name, "settings": settings, "seconds_per_step": seconds}
        print(f"{label}: {seconds * 1000:.1f} ms a step", flush=True)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(out, handle, indent=1)
    return out


if __name__ == "__main__":
    main()
