"""The gradient-coding paper's figures, on the simulator's own protocol functions.

    python experiments/gradient_coding_paper.py all [--trials 400] [--out experiments/figures]

Every trial is one iteration: per-chunk compute durations drawn from the compute model (as
a run draws them), random chunk gradients, and the schedule and linear algebra the
simulator uses (``partial_schedule`` / ``baseline_schedule``, ``Encoder``,
``mds_encoding``, ``decode_blocks``). No training: the decode error and completion time of
one iteration are what the paper's figures measure. Writes ``gc_paper_*.png`` and
``gc_paper_summary.md`` (the numbers ``experiments/gradient_coding_paper.md`` quotes).

Settings (the paper's are not known here): N = m = 24 workers and chunks; cyclic load
δ = 4, and two graph assignments, G1 = a random 3-regular graph (δ = 4) and G2 = the 4 × 6
torus (δ = 5), both built by ``gossipsim.system.topology``; chunk times shifted-exponential
(0.5 s + Exp, mean 1 s) with lognormal per-worker speeds (σ = 0.3) and 10% of the workers
persistently 5× slower (the compute model of ``configs/gc_compare.yaml``); network 5 ms
latency, 100 Mbit/s; gradients of dimension d = 60 with i.i.d. N(0, 1) chunk gradients;
a progress report after every chunk.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gossipsim.algorithms.coding.assignment import (  # noqa: E402
    Assignment,
    cyclic_assignment,
    graph_assignment,
)
from gossipsim.algorithms.coding.encoding import mds_encoding  # noqa: E402
from gossipsim.algorithms.coding.ordering import (  # noqa: E402
    natural_orders,
    optimized_orders,
    qmax_of,
    qmax_orders,
    random_orders,
    reversed_orders,
    sample_slot_durations,
)
from gossipsim.algorithms.coding.partial import (  # noqa: E402
    Encoder,
    decoding_matrix,
    join_blocks,
    positions,
    processed,
    split_blocks,
)
from gossipsim.algorithms.coding.schedule import (  # noqa: E402
    MessageTimes,
    baseline_schedule,
    coded_bits,
    partial_schedule,
)
from gossipsim.system.timing import ComputeModel, Network  # noqa: E402
from gossipsim.system.topology import build_graph  # noqa: E402

N, D_MODEL = 24, 60
DEADLINES = np.round(np.arange(0.75, 6.01, 0.25), 2)


def compute_model(seed: int = 1) -> ComputeModel:
    return ComputeModel(
        N,
        "shifted_exponential",
        np.random.default_rng(seed),
        mean=1.0,
        shift=0.5,
        heterogeneity={"kind": "lognormal", "sigma": 0.3},
        stragglers={"fraction": 0.1, "slowdown": 5.0, "mode": "persistent"},
    )


def assignments() -> dict[str, Assignment]:
    rng = np.random.default_rng(0)
    return {
        "cyclic (δ=4)": cyclic_assignment(N, N, 4),
        "G1: random 3-regular (δ=4)": graph_assignment(
            build_graph("random_regular", N, rng, degree=3), N
        ),
        "G2: 4×6 torus (δ=5)": graph_assignment(build_graph("torus", N, rng), N),
    }


def messages(parts: int) -> MessageTimes:
    net = Network(0.005, 1e8)
    coded = coded_bits(D_MODEL, parts)
    return MessageTimes(
        model=net.message_time(64 * D_MODEL),
        report=net.message_time(32),
        signal=net.message_time(32 * N),
        coded=net.message_time(coded),
        model_bits=64 * D_MODEL,
        report_bits=32,
        signal_bits=32 * N,
        coded_bits=coded,
    )


class Trial:
    """One assignment, ℓ and ordering; the decoders fixed as in a run."""

    def __init__(self, a: Assignment, parts: int, orders) -> None:
        self.a, self.parts = a, parts
        self.pos = positions(a, orders)
        self.encoder = Encoder(decoding_matrix(parts, N, np.random.default_rng(5), a.support))
        self.B = mds_encoding(a, parts, np.random.default_rng(6))
        self.net = messages(parts)

    def proposed(self, D: np.ndarray, G: np.ndarray, deadline: float | None):
        s = partial_schedule(D, self.pos, self.net, 0.0, deadline, self.parts, self.a.loads)
        encoding = self.encoder.encode(processed(self.pos, s.state))
        F = np.einsum("ijk,jkb->ib", encoding.E, split_blocks(G, self.parts))
        return s.decode_time, join_blocks(self.encoder.R @ F, G.shape[1])

    def original(self, D: np.ndarray, G: np.ndarray, deadline: float | None):
        s = baseline_schedule("original", D, self.net, self.B, loads=self.a.loads,
                              deadline=deadline)  # fmt: skip
        rows = s.decoding.rows
        if rows.size == 0:
            return s.decode_time, np.zeros(G.shape[1])
        F = np.einsum("ijk,jkb->ib", self.B[rows], split_blocks(G, self.parts))
        return s.decode_time, join_blocks(s.decoding.a @ F, G.shape[1])


def draws(a: Assignment, trials: int, seed: int) -> np.ndarray:
    return sample_slot_durations(
        compute_model(), int(a.loads.max()), trials, np.random.default_rng(seed)
    )


def relative_sq_error(estimate: np.ndarray, g: np.ndarray) -> float:
    return float(np.sum((estimate - g) ** 2) / np.sum(g**2))


def mse_curves(trial: Trial, trials: int, seed: int, who: str) -> np.ndarray:
    """Mean over trials of ‖ĝ − g‖²/‖g‖² at every deadline."""
    rng = np.random.default_rng(seed + 1)
    Ds = draws(trial.a, trials, seed)
    out = np.zeros(DEADLINES.size)
    for D in Ds:
        G = rng.standard_normal((trial.a.chunks, D_MODEL))
        g = G.sum(axis=0)
        for index, T in enumerate(DEADLINES):
            _, estimate = getattr(trial, who)(D, G, float(T))
            out[index] += relative_sq_error(estimate, g)
    return out / len(Ds)


def completion_times(trial: Trial, trials: int, seed: int, who: str) -> np.ndarray:
    G = np.ones((trial.a.chunks, D_MODEL))
    return np.array([getattr(trial, who)(D, G, None)[0] for D in draws(trial.a, trials, seed)])


def fig_a(trials: int, out: Path, lines: list[str]) -> None:
    """(a) MSE against the deadline, several ℓ, proposed vs original (cyclic δ = 4)."""
    a = assignments()["cyclic (δ=4)"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    floor = 1e-30
    lines += ["## (a) Approximate recovery: MSE against the deadline T (cyclic, δ = 4)", ""]
    lines += ["| ℓ | T (s) | proposed MSE | original MSE |", "|---|---|---|---|"]
    for parts, color in zip((1, 2, 3), ("C0", "C1", "C2"), strict=True):
        trial = Trial(a, parts, qmax_orders(a, parts))
        ours = mse_curves(trial, trials, 11, "proposed")
        theirs = mse_curves(trial, trials, 11, "original")
        ax.semilogy(
            DEADLINES, np.maximum(ours, floor), "-", color=color, label=f"proposed ℓ={parts}"
        )
        ax.semilogy(DEADLINES, np.maximum(theirs, floor), "--", color=color,
                    label=f"original ℓ={parts}")  # fmt: skip
        for T in (1.5, 2.5, 3.5, 5.0):
            i = int(np.argmin(np.abs(DEADLINES - T)))
            lines.append(f"| {parts} | {DEADLINES[i]:g} | {ours[i]:.3g} | {theirs[i]:.3g} |")
    ax.set_xlabel("deadline T (s after the model broadcast)")
    ax.set_ylabel("MSE  mean ‖ĝ − g‖² / ‖g‖²  (exact decodes drawn at 1e-30)")
    ax.set_title(f"(a) approximate recovery, cyclic N = m = {N}, δ = 4, {trials} trials")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "gc_paper_a_mse.png", dpi=130)
    plt.close(fig)
    lines.append("")


def fig_b(trials: int, out: Path, lines: list[str]) -> None:
    """(b) Exact completion time for several assignments, proposed vs original."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    lines += ["## (b) Exact recovery: completion time (s), mean ± sd", ""]
    lines += [
        "| assignment | ℓ | proposed | original | original / proposed |",
        "|---|---|---|---|---|",
    ]
    labels, x = [], 0
    for name, a in assignments().items():
        for parts in (1, 2):
            trial = Trial(a, parts, qmax_orders(a, parts))
            ours = completion_times(trial, trials, 21, "proposed")
            theirs = completion_times(trial, trials, 21, "original")
            ratio = float(np.mean(theirs / ours))
            lines.append(
                f"| {name} | {parts} | {ours.mean():.3f} ± {ours.std(ddof=1):.3f} | "
                f"{theirs.mean():.3f} ± {theirs.std(ddof=1):.3f} | {ratio:.2f} |"
            )
            ax.bar(x - 0.2, ours.mean(), 0.4, yerr=ours.std(ddof=1), color="C0",
                   label="proposed" if x == 0 else None)  # fmt: skip
            ax.bar(x + 0.2, theirs.mean(), 0.4, yerr=theirs.std(ddof=1), color="C3",
                   label="original" if x == 0 else None)  # fmt: skip
            labels.append(f"{name.split(':')[0].split(' ')[0]}\nℓ={parts}")
            x += 1
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylabel("exact completion time of an iteration (s), ± sd")
    ax.set_title(f"(b) exact recovery, N = m = {N}, {trials} trials")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "gc_paper_b_exact.png", dpi=130)
    plt.close(fig)
    lines.append("")


def fig_c(trials: int, out: Path, lines: list[str]) -> None:
    """(c) qmax against random ordering: MSE against T (ℓ = 2), exact time against ℓ."""
    graphs = {k: v for k, v in assignments().items() if k.startswith("G")}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    lines += ["## (c) qmax against random ordering (proposed protocol)", ""]
    lines += ["| assignment | ℓ | T (s) | MSE qmax | MSE random |", "|---|---|---|---|---|"]
    for (name, a), color in zip(graphs.items(), ("C0", "C1"), strict=True):
        short = name.split(":")[0]
        rand = random_orders(a, [np.random.default_rng(40 + i) for i in range(N)])
        best = Trial(a, 2, qmax_orders(a, 2))
        other = Trial(a, 2, rand)
        mse_q = mse_curves(best, trials, 31, "proposed")
        mse_r = mse_curves(other, trials, 31, "proposed")
        axes[0].semilogy(DEADLINES, np.maximum(mse_q, 1e-30), "-", color=color,
                         label=f"{short} qmax")  # fmt: skip
        axes[0].semilogy(DEADLINES, np.maximum(mse_r, 1e-30), "--", color=color,
                         label=f"{short} random")  # fmt: skip
        for T in (2.0, 3.0, 4.0):
            i = int(np.argmin(np.abs(DEADLINES - T)))
            lines.append(f"| {short} | 2 | {DEADLINES[i]:g} | {mse_q[i]:.3g} | {mse_r[i]:.3g} |")
        ell = list(range(1, int(a.loads.max()) + 1))
        tq, tr = [], []
        for parts in ell:
            tq.append(completion_times(Trial(a, parts, qmax_orders(a, parts)), trials, 32,
                                       "proposed"))  # fmt: skip
            tr.append(completion_times(Trial(a, parts, rand), trials, 32, "proposed"))
        axes[1].errorbar(ell, [t.mean() for t in tq], [t.std(ddof=1) for t in tq], fmt="o-",
                         color=color, label=f"{short} qmax", capsize=3)  # fmt: skip
        axes[1].errorbar(ell, [t.mean() for t in tr], [t.std(ddof=1) for t in tr], fmt="s--",
                         color=color, label=f"{short} random", capsize=3)  # fmt: skip
        lines.append("")
        lines.append(f"Exact completion time (s) on {short}, qmax / random ordering:")
        lines.append("")
        for parts, q, r in zip(ell, tq, tr, strict=True):
            lines.append(
                f"- ℓ = {parts}: {q.mean():.3f} ± {q.std(ddof=1):.3f} / "
                f"{r.mean():.3f} ± {r.std(ddof=1):.3f}"
            )
        lines += ["", "| assignment | ℓ | T (s) | MSE qmax | MSE random |", "|---|---|---|---|---|"]
    lines.pop()
    lines.pop()
    axes[0].set_xlabel("deadline T (s)")
    axes[0].set_ylabel("MSE  mean ‖ĝ − g‖² / ‖g‖²  (ℓ = 2)")
    axes[0].legend(fontsize=7)
    axes[1].set_xlabel("ℓ (parts)")
    axes[1].set_ylabel("exact completion time (s), ± sd")
    axes[1].legend(fontsize=7)
    fig.suptitle(f"(c) qmax against random ordering, {trials} trials")
    fig.tight_layout()
    fig.savefig(out / "gc_paper_c_ordering.png", dpi=130)
    plt.close(fig)
    lines.append("")


def table_d(lines: list[str]) -> None:
    """(d) Qmax of every ordering on those assignments."""
    lines += ["## (d) Qmax of every ordering", ""]
    lines += ["| assignment | ℓ | natural | reversed | random (20 draws) | qmax | expected |"]
    lines += ["|---|---|---|---|---|---|---|"]
    compute = compute_model()
    for name, a in assignments().items():
        for parts in range(1, int(a.loads.max()) + 1):
            rand = [
                qmax_of(
                    a,
                    random_orders(a, [np.random.default_rng(100 * s + i) for i in range(N)]),
                    parts,
                )  # fmt: skip
                for s in range(20)
            ]
            expected = optimized_orders(a, compute, np.random.default_rng(2), parts=parts)[0]
            lines.append(
                f"| {name} | {parts} | {qmax_of(a, natural_orders(a), parts):g} | "
                f"{qmax_of(a, reversed_orders(a), parts):g} | "
                f"{np.mean(rand):.1f} ± {np.std(rand):.1f} | "
                f"{qmax_of(a, qmax_orders(a, parts), parts):g} | "
                f"{qmax_of(a, expected, parts):g} |"
            )
    lines.append("")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["all", "a", "b", "c", "qmax"])
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--out", default="experiments/figures")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# Gradient coding: the paper's figures ({args.trials} trials per point)", ""]
    if args.what in ("all", "a"):
        fig_a(args.trials, out, lines)
    if args.what in ("all", "b"):
        fig_b(args.trials, out, lines)
    if args.what in ("all", "c"):
        fig_c(args.trials, out, lines)
    if args.what in ("all", "qmax"):
        table_d(lines)
    text = "\n".join(lines) + "\n"
    (
        out / ("gc_paper_summary.md" if args.what == "all" else f"gc_paper_{args.what}.md")
    ).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
