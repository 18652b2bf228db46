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
    colors = ["tab:red" if d < arrays["n_causal"] else "tab:blue" for d in range(len(names))]
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
    """For each image (rows), each latent factor swept over [z_d - r, z_d + r] around the image's own
    code (columns; the centre is the reconstruction), with f's probability of class 1 above every panel
    (GCE Fig. 3/12)."""
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
                ax.imshow(sweeps[i, j, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{probs[i, j]:.2f}", fontsize=6, pad=1)
                if j == 0:
                    ax.set_ylabel(f"x{i} {fname}", fontsize=6)
    fig.suptitle(f"{explainer.name}: latent sweeps z_d{-r:+g}..z_d{r:+g} around each image's code "
                 "(above: f's p(class 1))", fontsize=8)
    return _save(fig, path)


def counterfactual_sweeps(name: str, queries: torch.Tensor, sweeps: torch.Tensor, target_probs: torch.Tensor,
                          query_probs: torch.Tensor, targets: torch.Tensor, path: Path,
                          class_names: list[str] | None = None) -> Path:
    """Each row: the query image, then its sweep toward the target class, f(x)[target] above every panel
    (exaggeration Fig. 2). ``sweeps`` ``(N, S, 1, H, W)``, ``target_probs`` ``(N, S)``, ``query_probs`` ``(N,)``."""
    n, s = sweeps.shape[:2]
    fig, axes = plt.subplots(n, s + 1, figsize=((s + 1) * 0.9, n * 1.05), squeeze=False, layout="constrained")
    for i in range(n):
        label = class_names[int(targets[i])] if class_names else str(int(targets[i]))
        panels = [(queries[i, 0], f"x: {query_probs[i]:.2f}")] + [
            (sweeps[i, j, 0], f"{target_probs[i, j]:.2f}") for j in range(s)]
        for j, (image, title) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(image.cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=6, pad=1)
            if j == 0:
                ax.set_ylabel(f"to {label}", fontsize=6)
    fig.suptitle(f"{name}: query, then its sweep toward a class f does not predict (row label; "
                 "above: f(x)[target])", fontsize=8)
    return _save(fig, path)


def compatibility(name: str, requested: torch.Tensor, obtained: torch.Tensor, path: Path) -> Path:
    """Requested f(x)+delta against obtained f(x_delta), every step of every sweep (exaggeration Fig. 3)."""
    fig, ax = plt.subplots(figsize=(3.6, 3.4))
    ax.hist2d(requested.flatten().numpy(), obtained.flatten().numpy(), bins=20, range=[[0, 1], [0, 1]],
              cmap="Blues", cmin=1)
    ax.plot([0, 1], [0, 1], color="tab:red", lw=0.8, ls="--")
    ax.set_xlabel("requested target probability f(x) + δ")
    ax.set_ylabel("obtained f(x_δ)")
    ax.set_title(f"{name}: compatibility with f", fontsize=9)
    return _save(fig, path)


@torch.no_grad()
def invariant_grid(explainer, classifier, image: torch.Tensor, dims: tuple[int, int], path: Path,
                   n_side: int = 7, step: float = 0.5, class_names: list[str] | None = None) -> Path:
    """Invariantly transformed samples (SVAE Fig. 3): ``image`` (1, C, H, W) encoded, two noncausal
    latents ``dims`` crossed in ``n_side`` fixed steps around its code, so the original's
    reconstruction sits in the centre (framed); f's predicted class and its probability above each."""
    z = explainer.encode(image)  # (1, D)
    offsets = (torch.arange(n_side) - n_side // 2).float() * step
    zs = z.repeat(n_side * n_side, 1)
    zs[:, dims[0]] += offsets.repeat_interleave(n_side).to(z)
    zs[:, dims[1]] += offsets.repeat(n_side).to(z)
    images = explainer.decode(zs).cpu()
    probs = classifier(images.to(z.device)).cpu()
    label0 = int(classifier(image).argmax(1))
    names = explainer.latent_split.names()
    fig, axes = plt.subplots(n_side, n_side, figsize=(n_side * 0.85, n_side * 0.95), layout="constrained")
    for i in range(n_side):
        for j in range(n_side):
            k = i * n_side + j
            ax = axes[i, j]
            ax.imshow(images[k, 0].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            pred = int(probs[k].argmax())
            label = class_names[pred] if class_names else str(pred)
            ax.set_title(f"{label}: {float(probs[k, pred]):.2f}", fontsize=6, pad=1,
                         color="black" if pred == label0 else "tab:red")
            if i == j == n_side // 2:
                for spine in ax.spines.values():
                    spine.set_edgecolor("tab:red")
                    spine.set_linewidth(2)
            if j == 0:
                ax.set_ylabel(f"{offsets[i]:+.1f}", fontsize=6)
            if i == n_side - 1:
                ax.set_xlabel(f"{offsets[j]:+.1f}", fontsize=6)
    fig.suptitle(f"{explainer.name}: {names[dims[0]]} (rows) x {names[dims[1]]} (columns) around the framed "
                 f"original's code;\nabove: f's class and its probability (red: f's label changed)", fontsize=7)
    return _save(fig, path)


def invariance_curves(curves: dict[str, dict], path: Path) -> Path:
    """Fraction of test images keeping f's label vs the sigma of the redrawn noncausal latents,
    one line per latent explainer (SVAE Fig. 2)."""
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    for name, curve in curves.items():
        ax.plot(curve["sigmas"], curve["kept"], marker="o", ms=3, label=name)
    ax.axvline(1.0, color="gray", lw=0.6, ls=":")
    ax.set_xlabel("σ of the redrawn noncausal latents")
    ax.set_ylabel("fraction keeping f's label")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    ax.set_title("invariance test (SVAE Fig. 2), judged by f", fontsize=9)
    return _save(fig, path)


def saliency_maps(images: torch.Tensor, maps: dict[str, torch.Tensor], labels: list[str], path: Path) -> Path:
    """Each row a test image, then every method's map of f's predicted class side by side; each map
    on a symmetric colour scale (red: for the class, blue: against), as GANMEX Fig. 2-4."""
    n, names = len(images), list(maps)
    fig, axes = plt.subplots(n, len(names) + 1, figsize=((len(names) + 1) * 1.0, n * 1.1), squeeze=False,
                             layout="constrained")
    for i in range(n):
        axes[i, 0].imshow(images[i, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        axes[i, 0].set_ylabel(f"f: {labels[i]}", fontsize=6)
        for j, name in enumerate(names):
            m = maps[name][i].sum(0).cpu()
            scale = float(m.abs().max()) or 1.0
            axes[i, j + 1].imshow(m.numpy(), cmap="bwr", vmin=-scale, vmax=scale)
            if i == 0:
                axes[i, j + 1].set_title(name.replace("_", "\n"), fontsize=6)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_title("image", fontsize=6)
    fig.suptitle("saliency maps of f's predicted class", fontsize=8)
    return _save(fig, path)


def removal_curves(arrays: dict[str, dict], path: Path) -> Path:
    """f's accuracy as pixels are replaced by noise, most relevant first (solid) and least relevant first
    (dashed), one colour per method; the random map in black (exaggeration Fig. 4c)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    others = [n for n in arrays if n != "random"]
    for k, name in enumerate(others + (["random"] if "random" in arrays else [])):
        a = arrays[name]
        color = "black" if name == "random" else colors[k % len(colors)]
        axes[0].plot(a["fractions"], a["morf_accuracy"], color=color, label=name, lw=2 if name == "random" else 1)
        axes[1].plot(a["fractions"], a["lerf_accuracy"], color=color, ls="--", lw=2 if name == "random" else 1)
    axes[0].set_title("most relevant removed first (lower is better)", fontsize=8)
    axes[1].set_title("least relevant removed first (higher is better)", fontsize=8)
    for ax in axes:
        ax.set_xlabel("fraction of pixels replaced by uniform noise")
    axes[0].set_ylabel("f's accuracy (vs its own labels)")
    axes[0].legend(fontsize=6, ncol=2)
    return _save(fig, path)
