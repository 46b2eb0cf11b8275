"""The README's demo command (`python -m sepkit`) prints what it promises."""

from __future__ import annotations

import re

import networkx as nx
import pytest

import sepkit
from sepkit.__main__ import main


def test_demo_prints_entropies_clusters_and_costs(capsys):
    main([])
    out = capsys.readouterr().out
    G = nx.karate_club_graph()
    h1 = float(re.search(r"H1 \(no partition\)\s+= ([0-9.]+) bits", out).group(1))
    assert h1 == pytest.approx(sepkit.structural_entropy_1d(G), abs=1e-6)
    game = re.search(r"reference CoDeSEG game, k=(\d+)\)\s+= ([0-9.]+)", out)
    assert (int(game.group(1)), float(game.group(2))) == (7, pytest.approx(3.284272, abs=1e-6))
    best = re.search(r"sepkit multilevel, k=(\d+)\)\s+= ([0-9.]+)", out)
    assert float(best.group(2)) < float(game.group(2))
    # one line per cluster, each with exactly one representative
    clusters = re.findall(r"^  \d+: (.*)$", out, flags=re.M)
    assert len(clusters) == int(best.group(1))
    assert all(line.count("*") == 1 for line in clusters)
    assert "largest detachment costs" in out


def test_demo_in_nats(capsys):
    main(["--base", "2.718281828459045"])
    assert "nats" in capsys.readouterr().out


def test_demo_shows_the_height_three_tree(capsys):
    main([])
    out = capsys.readouterr().out
    tree = sepkit.coding_tree(nx.karate_club_graph(), height=3, seed=0)
    head = re.search(r"coding tree of height 3: H = ([0-9.]+) bits", out)
    assert float(head.group(1)) == pytest.approx(tree.entropy, abs=1e-6)
    groups = re.findall(r"^  group \d+$", out, flags=re.M)
    clusters = re.findall(r"^    cluster \d+: (.*)$", out, flags=re.M)
    assert (len(groups), len(clusters)) == tree.n_clusters[::-1]
    members = sorted(int(v) for line in clusters for v in line.split(", "))
    assert members == list(range(34))
