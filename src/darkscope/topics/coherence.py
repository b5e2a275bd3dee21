"""Topic coherence as NPMI over document co-occurrence, computed with sparse matrix products.

c_v (gensim's ``CoherenceModel``) is the field's usual yardstick and the benchmark reports it, but
it re-reads every text through a sliding window and takes seconds per model. Listings are short
(tens of words), so a sliding window of 110 words is the whole listing anyway: counting
co-occurrence per document is the same signal, and one sparse product gives every pair at once.
That makes it cheap enough to score many candidate models (restarts, each k of a range).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


class CooccurrenceIndex:
    """Binary document-word incidence of a reference corpus, reused for every topic scored."""

    def __init__(self, counts: sp.spmatrix) -> None:
        incidence = sp.csc_matrix(counts, dtype=np.float64, copy=True)
        incidence.data[:] = 1.0
        self.incidence = incidence
        self.n_documents = max(counts.shape[0], 1)
        self.document_frequency = np.asarray(incidence.sum(axis=0)).ravel()

    def npmi(self, top_words: np.ndarray, epsilon: float = 1e-12) -> np.ndarray:
        """Mean pairwise NPMI of each row of word indices (topics x n), in [-1, 1].

        A pair never seen together scores -1; words never seen at all count as such pairs.
        """
        top_words = np.atleast_2d(np.asarray(top_words, dtype=np.int64))
        scores = np.empty(top_words.shape[0])
        n = top_words.shape[1]
        upper = np.triu_indices(n, k=1)
        for row, words in enumerate(top_words):  # one small sparse product per topic
            sub = self.incidence[:, words]
            joint = (sub.T @ sub).toarray()[upper] / self.n_documents
            single = self.document_frequency[words] / self.n_documents
            expected = single[upper[0]] * single[upper[1]]
            with np.errstate(divide="ignore", invalid="ignore"):
                pmi = np.log((joint + epsilon) / np.maximum(expected, epsilon))
                value = np.where(joint > 0, pmi / -np.log(joint + epsilon), -1.0)
            value = np.where(joint >= 1.0 - epsilon, 1.0, value)
            scores[row] = value.mean() if value.size else 0.0
        return scores


def top_word_indices(topic_word: np.ndarray, n: int) -> np.ndarray:
    """Indices of each topic's ``n`` most probable words, most probable first (ties by index)."""
    n = min(n, topic_word.shape[1])
    return np.argsort(-topic_word, axis=1, kind="stable")[:, :n]
