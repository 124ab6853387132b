"""labelsieve: turn an unlabeled pool into a trustworthy labeled data set."""

__version__ = "0.1.0"
