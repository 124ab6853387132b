"""Crowd labels: aggregation (MV, WMV, SV, GTX, Dawid-Skene), labeler accuracy, budgeted collection,
and the GTX paper's simulation. Input is a long table with columns ``task, worker, label``."""

from labelsieve.crowd._base import AGGREGATORS, Aggregator, get_aggregator, register_aggregator
from labelsieve.crowd._table import DEFAULT_ACCURACY_PRIOR, DEFAULT_UNKNOWN_ACCURACY, CrowdTable, encode_table
from labelsieve.crowd.accuracy import (
    accuracies_from_estimate,
    accuracy_mle,
    beta_posterior,
    estimate_accuracies,
)
from labelsieve.crowd.collection import ThresholdCollector, UncertaintyCollector, uncertainty
from labelsieve.crowd.dawid_skene import DawidSkene, OneCoinDawidSkene
from labelsieve.crowd.gtx import GTX, gtx_posterior
from labelsieve.crowd.majority_vote import MajorityVote, majority_vote_proba
from labelsieve.crowd.simulator import SimulatedCrowd, run_collection
from labelsieve.crowd.soft_vote import SoftVote, soft_vote_proba
from labelsieve.crowd.wmv import WeightedMajorityVote, weighted_vote_proba

__all__ = [
    "AGGREGATORS",
    "DEFAULT_ACCURACY_PRIOR",
    "DEFAULT_UNKNOWN_ACCURACY",
    "GTX",
    "Aggregator",
    "CrowdTable",
    "DawidSkene",
    "MajorityVote",
    "OneCoinDawidSkene",
    "SimulatedCrowd",
    "SoftVote",
    "ThresholdCollector",
    "UncertaintyCollector",
    "WeightedMajorityVote",
    "accuracies_from_estimate",
    "accuracy_mle",
    "beta_posterior",
    "encode_table",
    "estimate_accuracies",
    "get_aggregator",
    "gtx_posterior",
    "majority_vote_proba",
    "register_aggregator",
    "run_collection",
    "soft_vote_proba",
    "uncertainty",
    "weighted_vote_proba",
]
