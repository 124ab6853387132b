"""Experiment harnesses: the seeded audits, grids and paper reproductions behind ``labelsieve bench``
and ``labelsieve detect audit``.

One module per experiment, each built only on the library's public objects:

* :mod:`~labelsieve.experiments.tbal_seeds` — TBAL over many seeds (``bench tbal``);
* :mod:`~labelsieve.experiments.noisy_audit` — the noise-aware guarantee's audit and cost table
  (``bench noisy``);
* :mod:`~labelsieve.experiments.confidence_grid` — train-time loss x post-hoc confidence grid
  (``bench confidence``);
* :mod:`~labelsieve.experiments.gtx_tables`, :mod:`~labelsieve.experiments.gtx_figures` — the GTX
  paper's Tables 1-2 and Figures 1-2 (``bench gtx``);
* :mod:`~labelsieve.experiments.salutary_protocol` — the salutary-labeling paper's protocol
  (``bench salutary``);
* :mod:`~labelsieve.experiments.detect_audit` — the box-precision guarantee's audit (``detect audit``).

Layering: this package may import any library package; no library package (``confidence``,
``autolabel``, ``active``, ``detect``, ``crowd``, ...) imports from it. The CLI's ``commands``
import it lazily, inside the command that runs the experiment.

Why a package and not ``benchmarks/``: the ``labelsieve bench ...`` commands must work from an
installed copy, and ``benchmarks/`` (scripts for timings and one-off reproductions) is not
installed, so the CLI could not import it. Keeping the harnesses here, under one name, keeps them
importable and out of the library's packages at the same time.

Figures are drawn on a standalone ``matplotlib.figure.Figure`` with its own Agg canvas (see
:mod:`~labelsieve.experiments._figure`), as :mod:`labelsieve.metrics.plots` does: no
``matplotlib.use`` call, pyplot's global state untouched, and headless machines work.

This ``__init__`` imports nothing, so ``import labelsieve.experiments`` stays cheap.
"""
