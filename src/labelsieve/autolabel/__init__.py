"""Threshold-based auto-labeling: certified thresholds, the TBAL loop, oracles, resumable runs."""

from labelsieve.autolabel.certify import BOUNDS, Certificate, certify_thresholds, scan_threshold, upper_bound
from labelsieve.autolabel.oracles import (
    Answers,
    AwaitingAnswers,
    FileOracle,
    RecordingOracle,
    SimulatedOracle,
)
from labelsieve.autolabel.tbal import TBAL, TBALResult, delta_schedule

__all__ = [
    "BOUNDS",
    "TBAL",
    "Answers",
    "AwaitingAnswers",
    "Certificate",
    "FileOracle",
    "RecordingOracle",
    "SimulatedOracle",
    "TBALResult",
    "certify_thresholds",
    "delta_schedule",
    "scan_threshold",
    "upper_bound",
]
