"""labelsieve.runs: one run pipeline from one spec, written to a sink.

:class:`~labelsieve.runs.spec.RunSpec` defines a run and generates the CLI flags;
:mod:`labelsieve.runs.directory` runs it into a run directory (``labelsieve run --out``) and
:mod:`labelsieve.runs.project` into a project store (``labelsieve run --project``, ``project-run``).
Both build the same :class:`~labelsieve.autolabel.tbal.TBAL` with :func:`~labelsieve.runs.directory.build_tbal`
and finish a ``--guarantee dataset`` run with :func:`~labelsieve.autolabel.pac_run.finish_dataset_guarantee`.
"""

from labelsieve.runs.spec import RunSpec, add_spec_arguments, check_sink, given

__all__ = ["RunSpec", "add_spec_arguments", "check_sink", "given"]
