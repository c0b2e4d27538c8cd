"""Reference for ``mlp-digits``: SwarmSGD's math for a 64-32-10 MLP as a plain numpy loop.

Per interaction: a uniformly random node takes one SGD step (forward and backward pass of
a ReLU MLP with a softmax cross-entropy head, written out by hand) on a minibatch of its
shard, then averages with a uniformly random neighbour. The loss of the mean model is
evaluated as many times as the simulation records it. Nodes and partners are drawn up
front in bulk; minibatches one step at a time (shard sizes differ between nodes).
"""

from __future__ import annotations

import time

import numpy as np

from gossipsim.experiment.runner import Prepared


def run(prepared: Prepared, interactions: int, evaluations: int, seed: int = 0) -> dict:
    problem = prepared.problem
    objective = problem.objective
    n = len(problem.shard_y)
    lr = prepared.config.algorithm.lr
    sizes_layers = objective.net.sizes  # [64, 32, 10]
    f, h, c = sizes_layers
    neighbours = [np.asarray(sorted(prepared.graph.adj[i])) for i in range(n)]
    degree = np.array([len(v) for v in neighbours])
    rng = np.random.default_rng(seed)
    W = np.tile(objective.init_params(rng, 1.0), (n, 1))
    # Layout of the flat parameters (as gossipsim's DenseNet): W1, b1, W2, b2.
    s1, e1 = 0, f * h
    s2, e2 = e1 + h, e1 + h + h * c
    started = time.perf_counter()
    nodes = rng.integers(0, n, size=interactions)
    picks = (rng.random(interactions) * degree[nodes]).astype(np.int64)
    sizes = np.array([y.shape[0] for y in problem.shard_y])
    batch = np.minimum(problem.batch_size, sizes)
    every = max(1, interactions // evaluations)
    loss = float("nan")
    for t in range(interactions):
        i = nodes[t]
        j = neighbours[i][picks[t]]
        b = batch[i]
        idx = (rng.random(b) * sizes[i]).astype(np.int64)
        X = problem.shard_X[i][idx]
        y = problem.shard_y[i][idx].astype(np.int64)
        w = W[i]
        W1 = w[s1:e1].reshape(f, h)
        b1 = w[e1:s2]
        W2 = w[s2:e2].reshape(h, c)
        b2 = w[e2:]
        Z1 = X @ W1 + b1
        A1 = np.maximum(Z1, 0.0)
        logits = A1 @ W2 + b2
        logits -= logits.max(axis=1, keepdims=True)
        P = np.exp(logits)
        P /= P.sum(axis=1, keepdims=True)
        P[np.arange(b), y] -= 1.0
        P /= b
        gW2 = A1.T @ P
        gb2 = P.sum(axis=0)
        dZ1 = (P @ W2.T) * (Z1 > 0.0)
        gW1 = X.T @ dZ1
        gb1 = dZ1.sum(axis=0)
        w[s1:e1] -= lr * gW1.ravel()
        w[e1:s2] -= lr * gb1
        w[s2:e2] -= lr * gW2.ravel()
        w[e2:] -= lr * gb2
        average = (W[i] + W[j]) * 0.5
        W[i] = average
        W[j] = average
        if (t + 1) % every == 0:
            loss = problem.training_loss(W.mean(axis=0))
    return {"wall_time": time.perf_counter() - started, "loss": loss}
