"""labelsieve.active: query strategies, influence functions and salutary labeling.

All strategies implement ``query(state, n, rng) -> positions`` (:class:`QueryState`) and register
by name in :data:`QUERY_STRATEGIES` (:func:`register_strategy`, :func:`get_strategy`).
"""

from labelsieve.active.badge import BadgeQuery, gradient_embedding_factors, kmeanspp_seeding
from labelsieve.active.base import (
    QUERY_STRATEGIES,
    QueryState,
    QueryStrategy,
    get_strategy,
    register_strategy,
)
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

#: The old name of :data:`QUERY_STRATEGIES` (the same registry object).
ALL_STRATEGIES = QUERY_STRATEGIES

__all__ = [
    "ALL_STRATEGIES",
    "QUERY_STRATEGIES",
    "BadgeQuery",
    "BatchBALDQuery",
    "CoreSetQuery",
    "EntropyQuery",
    "IBDSQuery",
    "ISALQuery",
    "LeastConfidenceQuery",
    "LogisticInfluence",
    "MarginQuery",
    "MarginRandomQuery",
    "QueryState",
    "QueryStrategy",
    "RandomQuery",
    "SalutaryLabeler",
    "SalutaryQuery",
    "SalutaryRun",
    "SoftmaxRegression",
    "batchbald_select",
    "conditional_entropy",
    "entropy_utility",
    "fit_softmax_regression",
    "fit_surrogate",
    "get_strategy",
    "gradient_embedding_factors",
    "hessian",
    "hessian_vector_product",
    "influence_view",
    "k_center_greedy",
    "kmeanspp_seeding",
    "labeled_loss_decrease",
    "laplace_samples",
    "least_confidence_utility",
    "margin_utility",
    "pseudo_label_gain",
    "register_strategy",
    "salutary_labels",
    "salutary_select",
    "second_order_loss_decrease",
    "softmax_view",
    "solve_hessian",
    "top_n",
    "validation_curvature_matrix",
    "validation_gradient",
    "validation_loss",
    "validation_loss_decrease",
]
