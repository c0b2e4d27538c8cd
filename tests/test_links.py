"""Per-link networks: a links file and per-link draws set each link's latency and bandwidth,
and every algorithm charges its messages over the links they travel."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from gossipsim.cli import main
from gossipsim.engine.executor import PairAverage, PushReceive, PushSend
from gossipsim.experiment.config import ConfigError
from gossipsim.experiment.runner import build_simulation, prepare
from tests.conftest import make_config
from tests.test_programs import CASES, FAULTS, RecordingExecutor, check_same, schedule_of

LATENCY = {(0, 1): 0.1, (1, 2): 1.0}  # the path 0 – 1 – 2


def path_files(tmp_path: Path) -> tuple[str, str]:
    edges = tmp_path / "path.txt"
    edges.write_text("0 1\n1 2\n")
    links = tmp_path / "links.txt"
    links.write_text("# u v latency bandwidth\n0 1 0.1 inf\n\n2 1 1.0 inf  # a slow link\n")
    return str(edges), str(links)


def path_config(tmp_path: Path, algorithm: dict, **overrides):
    edges, links = path_files(tmp_path)
    return make_config(
        **{
            "topology": {"kind": "edge_list", "path": edges},
            "compute": {"kind": "constant", "mean": 1.0},
            "network": {"latency": 0.5, "bandwidth": 1.0e6, "links": links},
            "algorithm": {"lr": 0.05, **algorithm},
            "stop": {"time": 12.5},
            **overrides,
        }
    )


def latency(i: int, j: int) -> float:
    return LATENCY[(min(i, j), max(i, j))]


# -- the links file ------------------------------------------------------------------------


def test_links_file_sets_both_directions_and_leaves_the_rest(tmp_path):
    network = prepare(path_config(tmp_path, {"kind": "sgp"})).network
    assert network.link(0, 1) == network.link(1, 0) == (0.1, math.inf)
    assert network.link(2, 1) == (1.0, math.inf)
    assert not network.uniform
    # A pair off the topology has the numbers.
    assert network.link(0, 2) == (0.5, 1.0e6)
    assert network.message_time(8.0, 1, 2) == 1.0


def test_sgp_messages_arrive_one_link_latency_after_they_are_sent(tmp_path):
    """Constant compute, peers in table order: node i pushes at t = 1, 2, …; each message
    arrives after exactly the latency of its link (bandwidth infinite)."""
    config = path_config(tmp_path, {"kind": "sgp", "peers": "topology", "overlap": "unbounded"})
    for lean in (False, True):
        log, _, facts, _, sim = schedule_of(config, lean=lean)
        sent = {op.message: (t, op.i, op.j) for t, op in log if isinstance(op, PushSend)}
        arrivals = [(t, op.message) for t, op in log if isinstance(op, PushReceive)]
        assert len(arrivals) > 20
        for t, message in arrivals:
            t_sent, i, j = sent[message]
            assert t == t_sent + latency(i, j)
        # Node 1 alternates: to 0 at t = 1 (arrives 1.1), to 2 at t = 2 (arrives 3.0).
        first = [(t, sent[m][1:]) for t, m in arrivals if sent[m][1] == 1][:2]
        assert first == [(1.1, (1, 0)), (3.0, (1, 2))]
        # Communication time: every push's link latency, sent by t = 12.5 (12 steps each).
        pushes = [(i, j) for t, i, j in sent.values()]
        assert len(pushes) == 36
        assert facts[4] == pytest.approx(sum(latency(i, j) for i, j in pushes))


@pytest.mark.parametrize("nonblocking", [False, True])
def test_swarmsgd_charges_each_exchange_its_links_time(tmp_path, nonblocking):
    config = path_config(tmp_path, {"kind": "swarmsgd", "nonblocking": nonblocking})
    log, _, facts, _, _ = check_same(config)
    pairs = [(op.i, op.j) for _, op in log if not hasattr(op, "steps")]
    assert len(pairs) > 10
    # Blocking: both messages of an exchange (2 × latency); non-blocking: request, reply
    # and write (3 × latency).
    per = 3 if nonblocking else 2
    assert facts[4] == pytest.approx(per * sum(latency(i, j) for i, j in pairs))
    if not nonblocking:
        assert all(isinstance(op, PairAverage) for _, op in log if not hasattr(op, "steps"))


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("swarmsgd", {}),
        ("swarmsgd", {"nonblocking": True}),
        ("adpsgd", {}),
        ("sgp", {}),
        ("sgp", {"peers": "topology", "overlap": 1}),
    ],
)
def test_both_interpreters_replay_the_oracle_on_a_links_file(tmp_path, kind, extra):
    edges = tmp_path / "edges.txt"
    edges.write_text("".join(f"{i} {(i + 1) % 6}\n{i} {(i + 2) % 6}\n" for i in range(6)))
    links = tmp_path / "links.txt"
    links.write_text("0 1 0.02 1e5\n3 5 2.0 1e7\n4 5 0.3 2e4\n")
    config = make_config(
        **{
            "topology": {"kind": "edge_list", "path": str(edges)},
            "network": {
                "latency": {"kind": "uniform", "low": 0.0, "high": 0.2},
                "bandwidth": 1.0e6,
                "links": str(links),
            },
            "algorithm": {"kind": kind, "lr": 0.05, **extra},
        }
    )
    check_same(config)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 1 0.1\n", "links.txt:1: expected 'u v latency bandwidth', got 3 field(s)"),
        ("# ok\n0 1 0.1 1e6\n0 x 0.1 1e6\n", "links.txt:3: node ids must be integers"),
        ("0 1 fast 1e6\n", "links.txt:1: latency and bandwidth must be numbers"),
        ("\n0 1 -0.1 1e6\n", "links.txt:2: latency must be finite and >= 0, got -0.1"),
        ("0 1 0.1 0\n", "links.txt:1: bandwidth must be > 0, got 0"),
        ("0 2 0.1 1e6\n", "links.txt:1: 0–2 is not an edge of the run's topology"),
        ("0 3 0.1 1e6\n", "links.txt:1: node id 3 out of range 0..2"),
    ],
)
def test_links_file_errors_name_file_and_line(tmp_path, text, message):
    config = path_config(tmp_path, {"kind": "swarmsgd"})
    Path(config.network.links).write_text(text)
    with pytest.raises(ConfigError) as caught:
        prepare(config)
    assert message in str(caught.value)
    assert "network.links" in str(caught.value)


def test_cli_reports_a_bad_links_file_on_one_line(tmp_path, capsys):
    edges, links = path_files(tmp_path)
    Path(links).write_text("0 1 0.1 1e6\n1 2 0.1\n")
    config = tmp_path / "run.yaml"
    config.write_text(
        "name: bad-links\n"
        "objective: {kind: logistic, dataset: {kind: synthetic, n_samples: 200}}\n"
        f"topology: {{kind: edge_list, path: {edges}}}\n"
        f"network: {{latency: 0.01, links: {links}}}\n"
        "algorithm: {kind: swarmsgd, lr: 0.05}\n"
        "stop: {time: 1.0}\n"
    )
    assert main(["validate", str(config)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "links.txt:2" in line]
    assert len(lines) == 1 and "expected 'u v latency bandwidth'" in lines[0]


def test_missing_links_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="links file not found"):
        make_config(**{"network.links": str(tmp_path / "nope.txt")})


# -- drawn per-link values -----------------------------------------------------------------

DRAWN = {
    "latency": {"kind": "lognormal", "mean": 0.01, "sigma": 0.5},
    "bandwidth": {"kind": "uniform", "low": 1.0e5, "high": 1.0e7},
}


def drawn_links(seed: int, **overrides) -> dict:
    config = make_config(seed=seed, network=DRAWN, **overrides)
    prepared = prepare(config)
    return {edge: prepared.network.link(*edge) for edge in sorted(prepared.graph.edges())}


def test_drawn_links_are_deterministic_per_seed_and_differ_across_seeds():
    a, b, c = drawn_links(3), drawn_links(3), drawn_links(4)
    assert a == b
    assert a.keys() != c.keys() or a != c
    values = np.array(list(a.values()))
    assert len(set(values[:, 0])) == len(a)  # one draw per link
    assert (values[:, 1] >= 1.0e5).all() and (values[:, 1] <= 1.0e7).all()


def test_drawn_links_follow_sorted_edges_from_their_stream():
    from gossipsim.system.rng import Streams

    links = drawn_links(5, **{"topology": {"kind": "ring", "n": 6}})
    rng = Streams(5).generator("network/links")
    sigma = 0.5
    lat = rng.lognormal(math.log(0.01) - sigma**2 / 2, sigma, size=6)
    bw = rng.uniform(1.0e5, 1.0e7, size=6)
    assert [v[0] for v in links.values()] == lat.tolist()
    assert [v[1] for v in links.values()] == bw.tolist()


def test_drawn_links_are_the_same_for_both_executors():
    config = make_config(network=DRAWN)
    runs = [
        schedule_of(config.model_copy(update={"engine": config.engine}), lean=lean)
        for lean in (False, True)
    ]
    assert runs[0][0] == runs[1][0]
    assert runs[0][2] == runs[1][2]


def test_a_links_file_overrides_the_draws(tmp_path):
    config = path_config(tmp_path, {"kind": "swarmsgd"})
    config.network.latency = DRAWN["latency"]
    network = prepare(config).network
    assert network.link(0, 1) == (0.1, math.inf)


def test_uniform_links_are_bit_identical_to_no_links(tmp_path):
    """A constant written as a distribution is the plain number: the same run exactly."""
    for kind in ("swarmsgd", "adpsgd", "sgp", "dpsgd", "allreduce"):
        plain = make_config(**{"algorithm.kind": kind})
        constant = make_config(
            **{
                "algorithm.kind": kind,
                "network": {
                    "latency": {"kind": "constant", "value": 0.01},
                    "bandwidth": {"kind": "constant", "value": 1.0e6},
                },
            }
        )
        for lean in (False, True):
            a, b = schedule_of(plain, lean=lean), schedule_of(constant, lean=lean)
            assert a[0] == b[0] and repr(a[1]) == repr(b[1]) and a[2] == b[2]


def test_lognormal_links_have_the_configured_mean():
    config = make_config(
        network={"latency": {"kind": "lognormal", "mean": 0.02, "sigma": 0.5}},
        topology={"kind": "complete", "n": 60},
    )
    network = prepare(config).network
    sim = build_simulation(prepare(config), executor_class=RecordingExecutor)
    lat, _ = sim.network.neighbour_links(sim.neighbours)
    assert lat.mean() == pytest.approx(0.02, rel=0.1)
    assert network.latency == 0.02


@pytest.mark.parametrize("fault", ["every-fault", "latency-spikes", "message-loss"])
@pytest.mark.parametrize(("kind", "extra"), CASES)
def test_per_link_times_under_faults_replay_the_oracle(kind, extra, fault):
    """Exchanges and messages under faults take their link's time (spikes stretch it)."""
    config = make_config(
        **{
            "network": DRAWN,
            "algorithm": {"kind": kind, "lr": 0.05, **extra},
            "faults": {**FAULTS[fault], "timeout": 0.3},
        }
    )
    run = check_same(config)
    assert sum(run[4].faults.counts.values()) > 0


# -- synchronous rounds ----------------------------------------------------------------------


def slow_path_config(tmp_path: Path, algorithm: dict):
    links = tmp_path / "slow.txt"
    links.write_text("0 1 0.1 1e3\n1 2 1.0 2e3\n")
    return path_config(tmp_path, algorithm, **{"network.links": str(links), "stop": {"time": 9.0}})


@pytest.mark.parametrize("variant", ["lian", "atc"])
def test_dpsgd_rounds_take_each_nodes_sends_over_its_links(tmp_path, variant):
    config = slow_path_config(tmp_path, {"kind": "dpsgd", "variant": variant})
    for lean in (False, True):
        log, _, facts, _, sim = schedule_of(config, lean=lean)
        bits = sim.executor.quantizer.message_bits(sim.models.shape[1])
        # Node i: Σ_j bits/bandwidth_ij + max_j latency_ij.
        sends = [bits / 1e3 + 0.1, bits / 1e3 + bits / 2e3 + 1.0, bits / 2e3 + 1.0]
        if variant == "lian":  # computing (1 s) overlaps the sends
            period = max(1.0, *sends)
            times = sorted({t for t, op in log if isinstance(op, tuple) and op[0] == "MixGradient"})
        else:  # steps, then the slowest node's sends
            period = 1.0 + max(sends)
            times = sorted({t for t, op in log if isinstance(op, tuple) and op[0] == "Mix"})
        assert times == pytest.approx([period * (r + 1) for r in range(len(times))])
        assert len(times) == int(9.0 // period)
        if variant == "lian":
            # The overlapped sends are charged when their round is done.
            assert facts[4] == pytest.approx(len(times) * sum(sends))
        else:
            assert facts[4] == pytest.approx(len(times) * 3 * max(sends))


def test_dpsgd_uniform_send_time_is_latency_plus_degree_messages():
    config = make_config(**{"algorithm.kind": "dpsgd"})
    sim = build_simulation(prepare(config))
    from gossipsim.algorithms.gossip.dpsgd import send_times

    degrees = np.array([len(t) for t in sim.neighbours])
    bits = 100.0
    assert (send_times(sim, bits) == 0.01 + degrees * bits / 1.0e6).all()


@pytest.mark.parametrize("kind", ["allreduce", "local_sgd"])
def test_allreduce_steps_wait_for_the_slowest_ring_link(tmp_path, kind):
    config = slow_path_config(tmp_path, {"kind": kind})
    log, _, _, _, sim = schedule_of(config, lean=False)
    chunk = sim.network.float_bits * sim.models.shape[1] / 3
    # Ring 0→1→2→0; 2–0 is not a topology edge: the network's numbers (0.5 s, 1e6 b/s).
    step = max(0.1 + chunk / 1e3, 1.0 + chunk / 2e3, 0.5 + chunk / 1e6)
    assert sim.network.allreduce_time(3, 3 * chunk) == pytest.approx(4 * step)
    steps = getattr(config.algorithm, "local_steps", None)
    period = (1.0 if steps is None else steps.value) + 4 * step
    name = "AllReduceStep" if kind == "allreduce" else "GlobalAverage"
    times = [t for t, op in log if type(op).__name__ == name]
    assert times == pytest.approx([period * (r + 1) for r in range(len(times))])
    assert len(times) == int(9.0 // period) >= 1


def test_uniform_allreduce_time_is_the_ring_formula():
    from gossipsim.system.timing import Network

    net = Network(0.01, 1.0e6)
    assert net.allreduce_time(5, 1000.0) == 2 * 4 * 0.01 + 2 * 4 / 5 * 1000.0 / 1.0e6


# -- gradient coding: each worker's link to the PS -----------------------------------------

GC_LATENCY = [0.1, 0.2, 1.5]  # worker i – PS (node 3)


def gc_run(tmp_path: Path, scheme: str, links: bool = True, **algorithm):
    from tests.test_gradient_coding_sim import run

    extra: dict = {"compute": {"kind": "constant", "mean": 1.0}, "stop": {"iterations": 4}}
    if links:
        path = tmp_path / "ps_links.txt"
        path.write_text("".join(f"3 {i} {lat} inf\n" for i, lat in enumerate(GC_LATENCY)))
        extra["network"] = {"latency": 0.05, "bandwidth": 1.0e9, "links": str(path)}
    config = make_config(
        **{
            "algorithm": {
                "kind": "gradient_coding",
                "scheme": scheme,
                "workers": 3,
                "lr": 0.5,
                **algorithm,
            },
            "objective.dataset.n_samples": 300,
            **extra,
        }
    )
    return run(config)


def test_gradient_coding_waits_for_each_workers_link(tmp_path):
    """Uncoded: the PS waits for every vector; worker i's arrives after its link's latency
    twice (model out, vector back) plus its 1 s chunk: the slowest link sets the pace."""
    _, sim, state = gc_run(tmp_path, "uncoded")
    assert state.iteration_times == [2 * 1.5 + 1.0] * len(state.iteration_times)
    # Communication time: per iteration, a model and a vector over every link.
    done = len(state.iteration_times)
    assert sim.comm_time == pytest.approx(done * 2 * sum(GC_LATENCY), rel=1e-9)


def test_gradient_coding_ignores_the_slowest_link(tmp_path):
    _, _, state = gc_run(tmp_path, "ignore_stragglers", load=2)
    # s = 1: the fastest two vectors, over the 0.1 s and 0.2 s links.
    assert state.iteration_times[0] == 2 * 0.2 + 1.0


def test_gradient_coding_partial_protocol_uses_each_workers_link(tmp_path):
    _, _, state = gc_run(tmp_path, "partial", load=2)
    assert all(t > 2 * 0.2 + 1.0 for t in state.iteration_times)
    _, _, plain = gc_run(tmp_path, "partial", links=False, load=2)
    assert state.iteration_times != plain.iteration_times
