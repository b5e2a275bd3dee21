"""Topic analysis of dark web market listings with LDA.

Listings (JSON Lines or CSV with a title and description) -> preprocessing (``preprocess``) ->
LDA via tomotopy with seeded restarts (``model``) -> per-topic words, labels and representative
products, per-listing mixtures and trends (``summary``) -> topics.json and report.html
(``report``). ``pipeline`` strings these together for the ``darkscope topics`` command.
"""

from darkscope.topics.model import ListingTopicModel, SamplerSettings, fit_best_k
from darkscope.topics.preprocess import Preprocessing

__all__ = ["ListingTopicModel", "Preprocessing", "SamplerSettings", "fit_best_k"]
