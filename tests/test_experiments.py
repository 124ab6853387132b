"""The experiments layer: the library never imports it, nothing calls ``matplotlib.use``, and the
experiment figures work headless without touching the caller's matplotlib backend."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "labelsieve"
#: Packages allowed to import labelsieve.experiments: the experiments themselves and the CLI.
ABOVE_LIBRARY = ("experiments", "commands", "cli.py", "__main__.py")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: Path, module: str | None = None) -> list[tuple[int, str]]:
    """Every module an import statement of ``path`` names (function-level and relative imports
    included); ``module`` is its dotted name (default: from its place under src/)."""
    module = module or _module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            mod = ".".join([*base, node.module] if node.module else base)
            out += [(node.lineno, mod)] + [(node.lineno, f"{mod}.{a.name}") for a in node.names]
    return out


def test_import_parser_sees_nested_and_relative_imports(tmp_path):
    # the layer check below must be able to fail: function-level and relative imports are found
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from ..experiments import gtx_tables\n"
                     "    import labelsieve.experiments.tbal_seeds\n")
    names = [m for _, m in _imported(probe, "labelsieve.crowd.probe")]
    assert "labelsieve.experiments.gtx_tables" in names
    assert "labelsieve.experiments.tbal_seeds" in names


def test_library_never_imports_experiments():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] in ABOVE_LIBRARY:
            continue
        offenders += [f"{rel}:{line} {mod}" for line, mod in _imported(path)
                      if mod == "labelsieve.experiments" or mod.startswith("labelsieve.experiments.")]
    assert offenders == []


def _matplotlib_use_calls(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.Import)
               for a in n.names if a.name == "matplotlib"}
    from_use = any(isinstance(n, ast.ImportFrom) and n.module == "matplotlib" and any(a.name == "use" for a in n.names)
                   for n in ast.walk(tree))
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call) and (
        (isinstance(n.func, ast.Attribute) and n.func.attr == "use" and isinstance(n.func.value, ast.Name)
         and n.func.value.id in aliases)
        or (from_use and isinstance(n.func, ast.Name) and n.func.id == "use"))]


def test_no_matplotlib_use_anywhere_in_the_package(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    import matplotlib as mpl\n\n    mpl.use('Agg')\n")
    assert _matplotlib_use_calls(probe) == [4]  # the check can fail
    calls = {str(p.relative_to(SRC)): c for p in SRC.rglob("*.py") if (c := _matplotlib_use_calls(p))}
    assert calls == {}


_PLOT_ALL = r"""
import json, sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

out = Path(sys.argv[1])
import matplotlib

from labelsieve.detect.synthetic import SimulatedDetector, make_scenes
from labelsieve.detect.thresholds import plot_pr_curves
from labelsieve.experiments.confidence_grid import plot_coverage_vs_epsilon, plot_score_density
from labelsieve.experiments.gtx_figures import plot_figure1, plot_figure2
from labelsieve.experiments.gtx_tables import simulate_table1, simulate_table2
from labelsieve.experiments.salutary_protocol import plot_rounds

rng = np.random.default_rng(0)
plot_figure1(simulate_table1("more_accurate", repeats=1, budget=200, taus=[0.9, 0.95]), out / "f1.png")
plot_figure2({"more_accurate": simulate_table2("more_accurate", repeats=2, n_items=30)}, out / "f2.png", n_items=30)
res = pd.DataFrame({"strategy": np.repeat(["random", "ours-sl"], 6), "seed": np.tile(np.repeat([0, 1], 3), 2),
                    "round": np.tile([0, 1, 2], 4), "test_accuracy": rng.uniform(0.7, 0.9, 12)})
plot_rounds(res, str(out / "sal.png"), title="t")
summ = pd.DataFrame({"dataset": "d", "train_time": "ce", "post_hoc": np.repeat(["softmax", "temperature"], 2),
                     "epsilon": [0.05, 0.1] * 2, "coverage_mean": [0.2, 0.4, 0.3, 0.5], "coverage_sd": 0.05})
plot_coverage_vs_epsilon(summ, out / "cov.png")
c = rng.uniform(0.3, 1.0, 200)
rounds = [{"post_hoc": p, "confidence": c, "correct": rng.random(200) < c, "threshold": 0.8, "coverage": 0.3,
           "error": 0.05} for p in ("softmax", "temperature")]
plot_score_density(rounds, out / "dens.png", title="t")
gt, _ = make_scenes(20, n_classes=2, render=False, random_state=rng)
plot_pr_curves(SimulatedDetector().predict(gt, random_state=rng), gt, str(out / "pr.png"))

sizes = {p.name: list(Image.open(p).size) for p in sorted(out.glob("*.png"))}
print(json.dumps({"sizes": sizes, "pyplot": "matplotlib.pyplot" in sys.modules,
                  "backend": matplotlib.get_backend()}))
"""


def _run_plots(tmp_path: Path, backend: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DISPLAY", "WAYLAND_DISPLAY")}
    if backend is not None:
        env["MPLBACKEND"] = backend
    proc = subprocess.run([sys.executable, "-c", _PLOT_ALL, str(tmp_path)], check=False, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", [None, "svg"])
def test_experiment_figures_headless_and_leave_the_backend_alone(tmp_path, backend):
    """No display, MPLBACKEND unset (or set by the caller to svg): every PNG is written at the size
    its figure asks for (inches x dpi), pyplot is never imported, the caller's backend stays."""
    got = _run_plots(tmp_path, backend)
    assert got["pyplot"] is False
    if backend is not None:
        assert got["backend"] == backend  # matplotlib.use("Agg") would have switched it
    sizes = got["sizes"]
    assert set(sizes) == {"f1.png", "f2.png", "sal.png", "cov.png", "dens.png", "pr.png"}
    assert sizes["sal.png"] == [780, 504]  # (6.5, 4.2) in at 120 dpi
    assert sizes["cov.png"] == [720, 480]  # (6, 4) in at 120 dpi
    assert sizes["dens.png"] == [1008, 408]  # 2 panels x (4.2, 3.4) in at 120 dpi
    for name in ("f1.png", "f2.png", "pr.png"):  # bbox_inches="tight": cropped, but not empty
        assert min(sizes[name]) > 100
