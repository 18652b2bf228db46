"""Figures written into a run directory (PNG, matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)  # never a half-written figure
    return path


def _pixels(images: torch.Tensor) -> torch.Tensor:
    """Images ``(..., C, H, W)`` as drawn: ``(..., H, W)`` grey for one channel, ``(..., H, W, 3)`` RGB for three."""
    images = images.detach().cpu()
    return images[..., 0, :, :] if images.shape[-3] == 1 else images.movedim(-3, -1).clamp(0, 1)


def _image_grid(cells: np.ndarray, *, cmap: str, vmin: float, vmax: float, background: float,
                titles=None, title_colors=None, row_labels=None, col_labels=None, col_titles=None,
                frame: tuple[int, int] | None = None, inches_per_cell: tuple[float, float] = (0.9, 1.0)):
    """A grid of images ``cells`` ``(R, C, H, W)`` (or RGB ``(R, C, H, W, 3)``) drawn as ONE image on one axes,
    with a title above each
    cell (``titles[r][c]``), labels left of each row and under each column, an optional framed cell.

    One axes instead of R x C subplots: the same picture, drawn in a fraction of the time (matplotlib's
    per-axes cost dominated the runner's figures: 19 of a smoke run's 35 s of GCE and SVAE scoring).
    """
    rows, cols, h, w = cells.shape[:4]
    gap, head = 2, (9 if titles is not None else 2)  # pixels between cells, and above each for its title
    canvas = np.full((rows * (h + head), cols * (w + gap), *cells.shape[4:]), background, dtype=np.float32)
    for r in range(rows):
        for c in range(cols):
            y, x = r * (h + head) + head, c * (w + gap)
            canvas[y:y + h, x:x + w] = cells[r, c]
    fig = plt.figure(figsize=(cols * inches_per_cell[0], rows * inches_per_cell[1]))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(canvas, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_axis_off()
    for r in range(rows):
        top = r * (h + head) + head
        if row_labels is not None:
            ax.text(-2, top + h / 2, row_labels[r], ha="right", va="center", fontsize=6)
        for c in range(cols):
            left = c * (w + gap)
            if titles is not None:
                ax.text(left + w / 2, top - 1, titles[r][c], ha="center", va="bottom", fontsize=6,
                        color=title_colors[r][c] if title_colors is not None else "black")
    for c in range(cols):
        centre = c * (w + gap) + w / 2
        if col_labels is not None:
            ax.text(centre, rows * (h + head) + 1, col_labels[c], ha="center", va="top", fontsize=6)
        if col_titles is not None:
            ax.text(centre, -1, col_titles[c], ha="center", va="bottom", fontsize=6)
    if frame is not None:
        r, c = frame
        ax.add_patch(Rectangle((c * (w + gap) - 1, r * (h + head) + head - 1), w + 1, h + 1, fill=False,
                               edgecolor="tab:red", linewidth=2))
    return fig, ax


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
    n_img, names = len(images), split.names()
    cells, titles = [], []
    for d in range(split.n_latent):
        sweeps = explainer.sweep_factor(images, d, values)  # (N, S, C, H, W)
        probs = classifier(sweeps.flatten(0, 1)).unflatten(0, sweeps.shape[:2])[..., -1].cpu()  # (N, S)
        cells.append(_pixels(sweeps))
        titles.append([[f"{p:.2f}" for p in row] for row in probs.tolist()])
    # rows: image i, factor d (image-major, as the panels were)
    grid = torch.stack(cells, 1).flatten(0, 1).numpy()  # (N * D, S, H, W[, 3])
    fig, _ = _image_grid(grid, cmap="gray", vmin=0, vmax=1, background=1.0,
                         titles=[titles[d][i] for i in range(n_img) for d in range(split.n_latent)],
                         row_labels=[f"x{i} {names[d]}" for i in range(n_img) for d in range(split.n_latent)])
    fig.suptitle(f"{explainer.name}: latent sweeps z_d{-r:+g}..z_d{r:+g} around each image's code "
                 "(above: f's p(class 1))", fontsize=8, y=1.0, va="bottom")
    return _save(fig, path)


def counterfactual_sweeps(name: str, queries: torch.Tensor, sweeps: torch.Tensor, target_probs: torch.Tensor,
                          query_probs: torch.Tensor, targets: torch.Tensor, path: Path,
                          class_names: list[str] | None = None) -> Path:
    """Each row: the query image, then its sweep toward the target class, f(x)[target] above every panel
    (exaggeration Fig. 2). ``sweeps`` ``(N, S, C, H, W)``, ``target_probs`` ``(N, S)``, ``query_probs`` ``(N,)``."""
    n, s = sweeps.shape[:2]
    grid = torch.cat([_pixels(queries[:, None]), _pixels(sweeps)], 1).numpy()  # (N, S + 1, H, W[, 3])
    titles = [[f"x: {query_probs[i]:.2f}"] + [f"{target_probs[i, j]:.2f}" for j in range(s)] for i in range(n)]
    labels = [f"to {class_names[int(t)] if class_names else int(t)}" for t in targets]
    fig, _ = _image_grid(grid, cmap="gray", vmin=0, vmax=1, background=1.0, titles=titles, row_labels=labels,
                         inches_per_cell=(0.9, 1.05))
    fig.suptitle(f"{name}: query, then its sweep toward a class f does not predict (row label; "
                 "above: f(x)[target])", fontsize=8, y=1.0, va="bottom")
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
    preds = probs.argmax(1)
    titles = [[f"{class_names[int(preds[k])] if class_names else int(preds[k])}: {float(probs[k, preds[k]]):.2f}"
               for k in range(i * n_side, (i + 1) * n_side)] for i in range(n_side)]
    colors = [["black" if int(preds[k]) == label0 else "tab:red" for k in range(i * n_side, (i + 1) * n_side)]
              for i in range(n_side)]
    ticks = [f"{o:+.1f}" for o in offsets.tolist()]
    fig, _ = _image_grid(_pixels(images).unflatten(0, (n_side, n_side)).numpy(), cmap="gray", vmin=0, vmax=1,
                         background=1.0, titles=titles, title_colors=colors, row_labels=ticks, col_labels=ticks,
                         frame=(n_side // 2, n_side // 2), inches_per_cell=(0.85, 0.95))
    fig.suptitle(f"{explainer.name}: {names[dims[0]]} (rows) x {names[dims[1]]} (columns) around the framed "
                 f"original's code;\nabove: f's class and its probability (red: f's label changed)", fontsize=7,
                 y=1.0, va="bottom")
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
    # each map on its own symmetric scale: divided by its largest |value|, drawn on [-1, 1]; the image
    # (in [0, 1]) drawn as its map would be, white for 0 is the background of both
    cells = [[images[i].mean(0).cpu() * 2 - 1] + [_symmetric(maps[name][i].sum(0).cpu()) for name in names]
             for i in range(n)]
    grid = torch.stack([torch.stack(row) for row in cells]).numpy()
    fig, ax = _image_grid(grid, cmap="bwr", vmin=-1, vmax=1, background=0.0,
                          row_labels=[f"f: {label}" for label in labels],
                          col_titles=["image"] + [name.replace("_", "\n") for name in names],
                          inches_per_cell=(1.0, 1.1))
    _, _, h, w = grid.shape
    for i in range(n):  # the image column in grey: drawn again over its cells
        ax.imshow(_pixels(images[i]).numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest",
                  extent=(-0.5, w - 0.5, i * (h + 2) + 2 + h - 0.5, i * (h + 2) + 2 - 0.5))
    ax.set_xlim(-0.5, grid.shape[1] * (w + 2) - 0.5)
    ax.set_ylim(n * (h + 2) - 0.5, -0.5)
    fig.suptitle("saliency maps of f's predicted class", fontsize=8, y=1.0, va="bottom")
    return _save(fig, path)


def _symmetric(m: torch.Tensor) -> torch.Tensor:
    """``m`` divided by its largest absolute value (unchanged when it is all zero)."""
    scale = float(m.abs().max()) or 1.0
    return m / scale


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


def proxy_scatter(records: list[dict], pairs: list[tuple[str, str, str]], path: Path) -> Path:
    """Each proxy against its ground-truth metric (the proxy-validity table's points), one panel per
    ``(capability, proxy, truth)`` of ``pairs``: an explainer's own value as a large dot, its noise-blended
    degradations as smaller dots of its colour, every seed of ``records``."""
    from bench.outputs.validity import points

    seeds = [points(r) for r in records]
    names = sorted({name for s in seeds for _, name, _ in s})
    colours = {n: plt.get_cmap("tab20")(i % 20) for i, n in enumerate(names)}
    cols = min(4, len(pairs))
    rows = -(-len(pairs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    for ax, (capability, proxy, truth) in zip(axes.flat, pairs):
        for s in seeds:
            for (c, name, level), values in s.items():
                x, y = values.get(proxy), values.get(truth)
                if c == capability and x is not None and y is not None:
                    ax.scatter(x, y, s=36 if level == 0 else 10, color=colours[name], alpha=1.0 if level == 0 else 0.5,
                               linewidths=0)
        ax.set_xlabel(proxy, fontsize=8)
        ax.set_ylabel(truth, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=colours[n], label=n) for n in names]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    fig.suptitle("proxy against ground truth (large: the explainer; small: blended with noise)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
