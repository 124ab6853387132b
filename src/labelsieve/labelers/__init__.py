"""labelsieve.labelers: foundation-model labelers (zero-shot, few-shot, scores files), threshold
tuning and the hybrid auto + human workflow.

Heavy backends (sentence-transformers, transformers CLIP) are imported only when a model is used.
"""

from labelsieve.labelers.base import (
    DEFAULT_TEMPERATURE,
    ENCODERS,
    LABELERS,
    EmbeddingCache,
    EmbeddingLabeler,
    Encoder,
    Labeler,
    ZeroShotLabeler,
    build_prompts,
    check_classes,
    cosine_logits,
    encoder_specs,
    get_labeler,
    register_encoder,
    register_labeler,
)
from labelsieve.labelers.clip import CLIPEncoder, CLIPLabeler
from labelsieve.labelers.fewshot import (
    FewShotHead,
    FewShotLabeler,
    embed_dataset,
    encoder_from_spec,
    sample_per_class,
    tbal_inputs,
)
from labelsieve.labelers.hybrid import HybridResult, route_hybrid, run_hybrid
from labelsieve.labelers.scores_file import ScoreTable, load_scores, write_scores
from labelsieve.labelers.text import HashingTextEncoder, MiniLMEncoder, TextZeroShotLabeler, make_text_encoder
from labelsieve.labelers.tuning import (
    PRCurve,
    compare_thresholds,
    evaluate_thresholds,
    per_class_pr_curves,
    pr_curve,
    precision_at_recall,
    recall_at_precision,
    tune_thresholds,
)

__all__ = [
    "DEFAULT_TEMPERATURE",
    "ENCODERS",
    "LABELERS",
    "CLIPEncoder",
    "CLIPLabeler",
    "EmbeddingCache",
    "EmbeddingLabeler",
    "Encoder",
    "FewShotHead",
    "FewShotLabeler",
    "HashingTextEncoder",
    "HybridResult",
    "Labeler",
    "MiniLMEncoder",
    "PRCurve",
    "ScoreTable",
    "TextZeroShotLabeler",
    "ZeroShotLabeler",
    "build_prompts",
    "check_classes",
    "compare_thresholds",
    "cosine_logits",
    "embed_dataset",
    "encoder_from_spec",
    "encoder_specs",
    "evaluate_thresholds",
    "get_labeler",
    "load_scores",
    "make_text_encoder",
    "per_class_pr_curves",
    "pr_curve",
    "precision_at_recall",
    "recall_at_precision",
    "register_encoder",
    "register_labeler",
    "route_hybrid",
    "run_hybrid",
    "sample_per_class",
    "tbal_inputs",
    "tune_thresholds",
    "write_scores",
]
