"""Plots of a search and its markdown report section (embedded in the run's report.md)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ganaug.classifier import ArchSpec  # noqa: E402
from ganaug.nas.results import ProxyCorrelation, SearchResult, best_fidelity  # noqa: E402
from ganaug.store import atomic_path, atomic_write_text  # noqa: E402

LEADERBOARD_ROWS = 10


def arch_summary(arch: ArchSpec | str) -> str:
    """Compact one-line form, e.g. `16k3max-32k5none | batch relu drop0.25 head128`."""
    arch = ArchSpec.from_json(arch) if isinstance(arch, str) else arch
    blocks = "-".join(f"{b.channels}k{b.kernel}{b.pool}" for b in arch.blocks)
    return f"{blocks} | {arch.norm} {arch.activation} drop{arch.dropout:g} head{arch.head_width}"


def leaderboard(rows: Sequence[dict[str, Any]], limit: int = LEADERBOARD_ROWS) -> list[dict[str, Any]]:
    """Complete trials at the best fidelity, best first."""
    fidelity = best_fidelity(rows)
    done = [r for r in rows if r["state"] == "complete" and r["fidelity"] == fidelity]
    return sorted(done, key=lambda r: (-r["fitness"], r["parameter_count"], r["number"]))[:limit]


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_fitness(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Val accuracy of every finished trial by trial number, with the running best."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for (state, fidelity), style in {("complete", "full"): "o", ("complete", "proxy"): "s",
                                     ("pruned", "full"): "x", ("pruned", "proxy"): "x"}.items():
        pts = [(r["number"], r["fitness"]) for r in rows if r["state"] == state and r["fidelity"] == fidelity]
        if pts:
            ax.scatter(*zip(*pts), marker=style, s=22, label=f"{state} ({fidelity})", alpha=0.8)
    search = sorted((r for r in rows if r["state"] == "complete" and r["role"] == "search"), key=lambda r: r["number"])
    best, line = float("-inf"), []
    for row in search:
        best = max(best, row["fitness"])
        line.append((row["number"], best))
    if line:
        ax.step(*zip(*line), where="post", color="black", linewidth=1, label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("val accuracy")
    ax.set_title("Architecture search: fitness over trials")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def plot_pareto(rows: Sequence[dict[str, Any]], cost_column: str, path: Path) -> Path:
    """Val accuracy against cost (parameters or latency), Pareto-optimal trials joined."""
    fidelity = best_fidelity(rows)
    done = [r for r in rows if r["state"] == "complete" and r["fidelity"] == fidelity and r[cost_column] is not None]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.scatter([r[cost_column] for r in done], [r["fitness"] for r in done], s=18, alpha=0.6, label="trials")
    front = sorted((r for r in done if r["pareto"]), key=lambda r: r[cost_column])
    if front:
        ax.plot([r[cost_column] for r in front], [r["fitness"] for r in front], "o-", color="crimson", label="Pareto front")
    if cost_column == "parameter_count":
        ax.set_xscale("log")
    ax.set_xlabel("parameters" if cost_column == "parameter_count" else "CPU latency (ms / batch)")
    ax.set_ylabel("val accuracy")
    ax.set_title(f"Accuracy vs {'size' if cost_column == 'parameter_count' else 'latency'} ({fidelity} fidelity)")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def _arch_lines(arch: ArchSpec) -> list[str]:
    lines = ["| block | channels | kernel | pool |", "|---|---|---|---|"]
    lines += [f"| {i + 1} | {b.channels} | {b.kernel} | {b.pool} |" for i, b in enumerate(arch.blocks)]
    lines.append("")
    lines.append(f"Norm {arch.norm}, activation {arch.activation}, dropout {arch.dropout:g}, "
                 f"dense head {arch.head_width or 'none'}.")
    return lines


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def report_markdown(result: SearchResult, rows: Sequence[dict[str, Any]], plot_links: Sequence[str]) -> str:
    """A markdown section: summary, best architecture, test scores, proxy correlation, leaderboard, plots."""
    objectives = ", ".join(["val accuracy"] + [f"{o} (minimised)" for o in result.objectives])
    lines = [
        "## Architecture search", "",
        f"Strategy **{result.strategy}**, mode **{result.mode}**, {result.n_trials} search trials "
        f"({result.n_complete} complete, {result.n_pruned} pruned, {result.n_failed} failed); objectives: {objectives}; "
        f"trials trained on: {result.train_data}.",
        "",
        f"**Best architecture**: trial {result.best_trial} ({result.best_fidelity} fidelity), "
        f"val accuracy {result.best_fitness:.4f}, {result.best_parameter_count:,} parameters.", "",
        *_arch_lines(result.best_arch), "",
        "Retrained once and scored on the real test split:", "",
        "| protocol | test accuracy |", "|---|---|",
        f"| real | {_fmt(result.test_accuracy_real)} |",
        f"| augmented | {_fmt(result.test_accuracy_augmented)} |", "",
    ]
    if result.best_augment_strength:
        lines[lines.index("Retrained once and scored on the real test split:")] = (
            f"Retrained once with affine augmentation at strength {result.best_augment_strength:g} and scored on the real test split:")
    if result.proxy is not None:
        lines += _proxy_lines(result.proxy, result.mode)
    if result.pareto_trials and result.objectives:
        lines += [f"Pareto front (accuracy vs {result.objectives[0]}): trials {', '.join(map(str, result.pareto_trials))}.", ""]
    lines += ["| rank | trial | val accuracy | parameters | steps | seconds | architecture |",
              "|---|---|---|---|---|---|---|"]
    for rank, row in enumerate(leaderboard(rows), start=1):
        lines.append(f"| {rank} | {row['number']} | {row['fitness']:.4f} | {row['parameter_count']:,} | "
                     f"{row['steps_run']} | {row['cost_seconds']:.1f} | `{arch_summary(row['arch_json'])}` |")
    lines.append("")
    lines += [f"![{Path(link).stem}]({link})" for link in plot_links]
    return "\n".join(lines) + "\n"


def _proxy_lines(p: ProxyCorrelation, mode: str) -> list[str]:
    used = "the search used it" if mode != "full" else "mode full: measured, not used"

    def label(name: str) -> str:  # the training proxy with what it trains on
        return f"training ({p.training_fidelity})" if name == "training" and p.training_fidelity else name

    lines = [f"Proxy fidelity on {p.sample_size} random architectures: **{label(p.proxy)}**, Spearman {_fmt(p.spearman)}, "
             f"Kendall {_fmt(p.kendall)} against full fidelity; {_fmt(p.cost_ratio)}x cheaper "
             f"({p.proxy_seconds:.1f} s vs {p.full_seconds:.1f} s); {used}.", ""]
    if len(p.candidates) > 1:
        lines += ["| proxy | Spearman | Kendall | cost ratio full/proxy |", "|---|---|---|---|"]
        lines += [f"| {label(c.name)} | {_fmt(c.spearman)} | {_fmt(c.kendall)} | {_fmt(c.cost_ratio)} |" for c in p.candidates]
        lines.append("")
    return lines


def write_report(result: SearchResult, rows: Sequence[dict[str, Any]], plot_links: Sequence[str], path: Path) -> Path:
    return atomic_write_text(path, report_markdown(result, rows, plot_links))
