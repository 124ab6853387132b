"""labelsieve.active: query strategies, influence functions and salutary labeling.

All strategies implement ``query(state, n, rng) -> positions`` (:class:`QueryState`).
"""

from labelsieve.active.badge import BadgeQuery, gradient_embedding_factors, kmeanspp_seeding
from labelsieve.active.base import QueryState, QueryStrategy
from labelsieve.active.batchbald import BatchBALDQuery, batchbald_select, conditional_entropy, laplace_samples
from labelsieve.active.coreset import CoreSetQuery, k_center_greedy
from labelsieve.active.ibds import IBDSQuery
from labelsieve.active.influence import (
    LogisticInfluence,
    fit_softmax_regression,
    hessian,
    hessian_vector_product,
    labeled_loss_decrease,
    second_order_loss_decrease,
    solve_hessian,
    validation_curvature_matrix,
    validation_gradient,
    validation_loss,
    validation_loss_decrease,
)
from labelsieve.active.isal import ISALQuery, pseudo_label_gain
from labelsieve.active.salutary import (
    SalutaryLabeler,
    SalutaryQuery,
    SalutaryRun,
    salutary_labels,
    salutary_select,
)
from labelsieve.active.surrogate import SoftmaxRegression, fit_surrogate, influence_view, softmax_view
from labelsieve.active.uncertainty import (
    STRATEGIES,
    EntropyQuery,
    LeastConfidenceQuery,
    MarginQuery,
    MarginRandomQuery,
    RandomQuery,
    entropy_utility,
    least_confidence_utility,
    margin_utility,
    top_n,
)

#: Every strategy by CLI name. Influence-based ones take ``X_val``/``y_val`` keyword arguments.
ALL_STRATEGIES = {
    **STRATEGIES,
    "coreset": CoreSetQuery,
    "badge": BadgeQuery,
    "batchbald": BatchBALDQuery,
    "isal": ISALQuery,
    "ibds": IBDSQuery,
    "salutary": SalutaryQuery,
}

__all__ = [
    "ALL_STRATEGIES", "STRATEGIES", "BadgeQuery", "BatchBALDQuery", "CoreSetQuery", "EntropyQuery",
    "IBDSQuery", "ISALQuery", "LeastConfidenceQuery", "LogisticInfluence", "MarginQuery",
    "MarginRandomQuery", "QueryState", "QueryStrategy", "RandomQuery", "SalutaryLabeler",
    "SalutaryQuery", "SalutaryRun", "SoftmaxRegression", "batchbald_select", "conditional_entropy",
    "entropy_utility", "fit_softmax_regression", "fit_surrogate", "gradient_embedding_factors", "hessian",
    "hessian_vector_product", "influence_view", "k_center_greedy", "kmeanspp_seeding", "labeled_loss_decrease",
    "laplace_samples", "least_confidence_utility", "margin_utility", "pseudo_label_gain", "salutary_labels",
    "salutary_select", "second_order_loss_decrease", "softmax_view", "solve_hessian", "top_n", "validation_curvature_matrix", "validation_gradient",
    "validation_loss", "validation_loss_decrease",
]
