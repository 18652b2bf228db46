"""Figures written into a run directory (PNG, matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)  # never a half-written figure
    return path


def factor_bars(name: str, arrays: dict, path: Path) -> Path:
    """Information flow and accuracy drop per latent factor (GCE Fig. 5a-b)."""
    names = arrays["factor_names"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    colors = ["tab:red" if n.startswith("alpha") else "tab:blue" for n in names]
    axes[0].bar(names, arrays["information_flow"].numpy(), color=colors)
    axes[0].set_ylabel("information flow I(z_d; Y) [nats]")
    axes[1].bar(names, arrays["accuracy_drop"].numpy(), color=colors)
    axes[1].set_ylabel("accuracy drop (vs re-encoded)")
    for ax in axes:
        ax.tick_params(axis="x", rotation=45)
    fig.suptitle(f"{name}: per-factor causal effect on the classifier (red: causal, blue: noncausal)")
    return _save(fig, path)


@torch.no_grad()
def latent_sweeps(explainer, classifier, images: torch.Tensor, path: Path, n_values: int = 9) -> Path:
    """For each image (rows), each latent factor swept over [-r, r] (columns), with f's
    probability of class 1 above every panel (GCE Fig. 3/12)."""
    split = explainer.latent_split
    r = float(explainer.settings.get("sweep_range", 3.0))
    values = torch.linspace(-r, r, n_values)
    n_img = len(images)
    fig, axes = plt.subplots(n_img * split.n_latent, n_values,
                             figsize=(n_values * 0.9, n_img * split.n_latent * 1.0), squeeze=False,
                             layout="constrained")
    for d, fname in enumerate(split.names()):
        sweeps = explainer.sweep_factor(images, d, values)  # (N, S, 1, 28, 28)
        probs = classifier(sweeps.flatten(0, 1)).unflatten(0, sweeps.shape[:2])[..., -1].cpu()  # (N, S)
        for i in range(n_img):
            for j in range(n_values):
                ax = axes[i * split.n_latent + d, j]
                ax.imshow(sweeps[i, j, 0].cpu(), cmap="gray", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{probs[i, j]:.2f}", fontsize=6, pad=1)
                if j == 0:
                    ax.set_ylabel(f"x{i} {fname}", fontsize=6)
    fig.suptitle(f"{explainer.name}: latent sweeps {-r:g}..{r:g} (above: f's p(class 1))", fontsize=8)
    return _save(fig, path)
