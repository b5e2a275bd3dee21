"""LDA over listings with tomotopy's collapsed Gibbs sampler, started from NMF-informed priors.

Why tomotopy: measured on this machine (benchmarks/RESULTS.md) its sampler is the cheapest way to
a given coherence; scikit-learn's batch variational LDA recovers planted topics well but costs
several times the CPU, gensim's online LDA is slower still. A plain Gibbs chain, though, often
settles with two real topics merged and another split in two (on the 20k planted corpus 7 chains
of 8 did), and more sweeps never undo it. So the chain starts nudged: NMF of the tf-idf matrix
(deterministic NNDSVDa start, well under a second) proposes k topics, and each word's Dirichlet
prior gets ``init_strength`` pseudo-counts spread by those proposals, a handful against the
thousands of tokens per topic, enough to break the symmetry the right way and too few to bias
the result. Optionally several chains run a short burn-in and the most likely one is kept.
Everything runs on one thread from fixed seeds: the same seed gives the same model.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from darkscope import __version__
from darkscope.errors import DarkscopeError
from darkscope.progress import track
from darkscope.topics.coherence import CooccurrenceIndex, top_word_indices
from darkscope.topics.preprocess import (
    Corpus,
    Preprocessing,
    build_corpus,
    count_with_vocabulary,
    token_ids,
)

MODEL_FORMAT = 1
ENGINE = "tomotopy"


class EmptyCorpusError(DarkscopeError):
    """No listing has a word left to model."""


def _tomotopy():  # imported lazily: loading the C extension costs time `--help` should not pay
    import tomotopy

    return tomotopy


def _engine_version() -> str:
    return str(_tomotopy().__version__)


@dataclass(frozen=True)
class SamplerSettings:
    """How the Gibbs sampler runs; saved with the model."""

    alpha: float = 0.1
    eta: float = 0.01
    iterations: int = 60
    init: str = "nmf"  # or "random": plain Gibbs from random assignments
    init_strength: float = 10.0  # pseudo-counts per topic placed by the NMF proposal
    restarts: int = 1
    burn_in: int = 25
    infer_iterations: int = 100
    update_strength: float = 100.0  # pseudo-counts per topic anchoring an update to the topics
    update_iterations: int = 30
    select_by: str = "likelihood"  # or "coherence": NPMI of the chains' top words


def documents_as_words(counts: sp.csr_matrix, vocabulary: np.ndarray) -> list[list[str]]:
    """Each row of a count matrix as the word list the sampler takes (order is irrelevant)."""
    counts = sp.csr_matrix(counts)
    words = vocabulary[np.repeat(counts.indices, counts.data)]
    bounds = np.concatenate(([0], np.cumsum(np.asarray(counts.sum(axis=1)).ravel())))
    return [words[bounds[i]:bounds[i + 1]].tolist() for i in range(counts.shape[0])]


class ListingTopicModel:
    """LDA topic model of listings (scikit-learn style: ``fit``, ``transform``).

    Learned attributes: ``vocabulary_`` (words), ``phrases_`` (joined bigrams),
    ``topic_word_`` (k x vocabulary, rows sum to 1, topics ordered by prevalence),
    ``doc_topic_`` (training listings x k; NaN rows for listings without words),
    ``coherence_`` (NPMI of each topic's top words on the training listings),
    ``log_likelihood_`` (per word, of the kept chain), ``counts_`` (training count matrix).
    """

    def __init__(self, n_topics: int = 10, *, seed: int = 0,
                 preprocessing: Preprocessing | None = None,
                 sampler: SamplerSettings | None = None, coherence_top_n: int = 10) -> None:
        self.n_topics = n_topics
        self.seed = seed
        self.preprocessing = preprocessing or Preprocessing()
        self.sampler = sampler or SamplerSettings()
        self.coherence_top_n = coherence_top_n

    def fit(self, texts: Sequence[str]) -> ListingTopicModel:
        """Learn the vocabulary from ``texts`` and fit the topics."""
        return self.fit_corpus(build_corpus(texts, self.preprocessing))

    def fit_corpus(self, corpus: Corpus) -> ListingTopicModel:
        """Fit on an already built corpus (lets a k search build the vocabulary once)."""
        lengths = corpus.lengths
        used = np.flatnonzero(lengths > 0)
        if corpus.counts.shape[0] == 0:
            raise EmptyCorpusError("no listings to model: the input is empty")
        if used.size == 0:
            raise EmptyCorpusError(
                f"none of the {corpus.counts.shape[0]} listings has a word left after "
                "preprocessing (markup, numbers, stop words and words in fewer than "
                f"--min-df={self.preprocessing.min_df} listings are removed)")
        if self.n_topics < 1:
            raise DarkscopeError(f"the number of topics must be at least 1, not {self.n_topics}")
        if self.n_topics > used.size:
            raise DarkscopeError(
                f"k={self.n_topics} topics is more than the {used.size} listings that have "
                "words after preprocessing; choose k <= the number of listings")
        docs = documents_as_words(corpus.counts[used], corpus.vocabulary)
        prior = self._initial_topics(corpus.counts[used])
        chain = self._best_chain(docs, corpus.vocabulary, prior)
        self._set_learned(chain, corpus, used)
        return self

    def _initial_topics(self, counts: sp.csr_matrix) -> np.ndarray | None:
        """k topic proposals (rows sum to 1) from NMF of tf-idf, or None for a random start."""
        if self.sampler.init == "random":
            return None
        if self.sampler.init != "nmf":
            raise DarkscopeError(f"init must be 'nmf' or 'random', not {self.sampler.init!r}")
        if self.n_topics > min(counts.shape):  # NNDSVD needs k <= rank bound
            return None
        from sklearn.decomposition import NMF
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.feature_extraction.text import TfidfTransformer
        from threadpoolctl import threadpool_limits

        tfidf = TfidfTransformer().fit_transform(counts)
        # One BLAS thread: on small matrices extra threads mostly spin (measured: 5x the CPU
        # time on the 20k benchmark corpus for the same result).
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore", ConvergenceWarning)  # a rough proposal is enough
            proposal = NMF(self.n_topics, init="nndsvda", max_iter=50,
                           random_state=self.seed).fit(tfidf).components_
        totals = proposal.sum(axis=1, keepdims=True)
        return np.where(totals > 0, proposal / np.maximum(totals, 1e-300), 1.0 / counts.shape[1])

    def _new_chain(self, docs: list[list[str]], seed: int, vocabulary: np.ndarray,
                   prior: np.ndarray | None, strength: float):
        tp = _tomotopy()
        settings = self.sampler
        chain = tp.LDAModel(k=self.n_topics, alpha=settings.alpha, eta=settings.eta, seed=seed)
        if prior is not None:
            word_priors = settings.eta + strength * prior
            for column, word in enumerate(vocabulary):
                chain.set_word_prior(str(word), word_priors[:, column].tolist())
        for words in docs:
            chain.add_doc(words)
        return chain

    def _best_chain(self, docs: list[list[str]], vocabulary: np.ndarray,
                    prior: np.ndarray | None):
        tp = _tomotopy()
        settings = self.sampler
        burn_in = min(settings.burn_in, settings.iterations)
        restarts = max(settings.restarts, 1)
        with track("fitting topics", total=restarts * burn_in + settings.iterations - burn_in,
                   unit="sweeps") as progress:
            chains = []
            for restart in range(restarts):
                chain = self._new_chain(docs, self.seed * 1009 + restart, vocabulary, prior,
                                        settings.init_strength)
                chain.train(burn_in, workers=1, parallel=tp.ParallelScheme.NONE)
                chains.append(chain)
                progress.advance(burn_in)
            best = chains[0] if len(chains) == 1 else max(chains, key=self._chain_score(docs))
            best.train(settings.iterations - burn_in, workers=1,
                       parallel=tp.ParallelScheme.NONE)
            progress.advance(settings.iterations - burn_in)
        return best

    def _chain_score(self, docs: list[list[str]]) -> Callable[[object], float]:
        """How restarts are compared: log-likelihood per word, or NPMI of the top words."""
        if self.sampler.select_by == "likelihood":
            return lambda chain: chain.ll_per_word
        if self.sampler.select_by != "coherence":
            raise DarkscopeError(f"select_by must be 'likelihood' or 'coherence', "
                                 f"not {self.sampler.select_by!r}")
        columns, rows, vocabulary = token_ids(docs)
        vocabulary = vocabulary.astype(str)
        index = CooccurrenceIndex(sp.csr_matrix(
            (np.ones(columns.size), (rows, columns)), shape=(len(docs), len(vocabulary))))

        def coherence(chain) -> float:
            engine = np.searchsorted(vocabulary, np.array(list(chain.used_vocabs), dtype=str))
            phi = np.zeros((chain.k, len(vocabulary)))
            phi[:, engine] = [chain.get_topic_word_dist(t) for t in range(chain.k)]
            return float(index.npmi(top_word_indices(phi, self.coherence_top_n)).mean())
        return coherence

    def update(self, texts: Sequence[str]) -> ListingTopicModel:
        """Add listings from a new crawl; topics keep their ids (see :meth:`update_counts`)."""
        counts = count_with_vocabulary(texts, self.preprocessing, self.vocabulary_, self.phrases_)
        return self.update_counts(counts)

    def update_counts(self, counts: sp.csr_matrix) -> ListingTopicModel:
        """Retrain on the training listings plus ``counts``, warm-started from the current topics.

        tomotopy cannot add documents to a trained sampler, so this starts a new chain over old
        and new listings whose word priors carry ``update_strength`` pseudo-counts of each current
        topic: topic t stays topic t (trends stay comparable across crawls) and the chain starts
        near its optimum, so ``update_iterations`` sweeps suffice. The vocabulary is kept as
        fitted (the features do not change); words it lacks are ignored.
        """
        self._fitted_chain()
        combined = sp.vstack([self.counts_, sp.csr_matrix(counts)]).tocsr()
        corpus = Corpus(combined, self.vocabulary_, self.phrases_)
        used = np.flatnonzero(corpus.lengths > 0)
        docs = documents_as_words(combined[used], self.vocabulary_)
        settings = self.sampler
        chain = self._new_chain(docs, self.seed * 1009 + 7919, self.vocabulary_,
                                self.topic_word_, settings.update_strength)
        with track("updating topics", total=settings.update_iterations, unit="sweeps") as bar:
            chain.train(settings.update_iterations, workers=1,
                        parallel=_tomotopy().ParallelScheme.NONE)
            bar.advance(settings.update_iterations)
        self._set_learned(chain, corpus, used, order=np.arange(self.n_topics))
        return self

    def _set_learned(self, chain, corpus: Corpus, used: np.ndarray,
                     order: np.ndarray | None = None) -> None:
        self._chain = chain
        self.vocabulary_ = corpus.vocabulary
        self.phrases_ = list(corpus.phrases)
        self.counts_ = corpus.counts
        engine_vocab = {w: i for i, w in enumerate(chain.used_vocabs)}
        to_engine = np.array([engine_vocab[w] for w in corpus.vocabulary], dtype=np.int64)
        raw_topic_word = np.array([chain.get_topic_word_dist(t) for t in range(chain.k)])
        raw_topic_word = raw_topic_word[:, to_engine]
        raw_doc_topic = np.array([d.get_topic_dist() for d in chain.docs])
        # Topics ordered by their share of all words (topic 0 the most common) on a first fit;
        # an update keeps the order it was started with.
        prevalence = np.asarray(chain.get_count_by_topics(), dtype=np.float64)
        self.topic_order_ = np.argsort(-prevalence, kind="stable") if order is None else order
        self.topic_word_ = raw_topic_word[self.topic_order_]
        self.topic_word_ /= self.topic_word_.sum(axis=1, keepdims=True)
        self.doc_topic_ = np.full((corpus.counts.shape[0], chain.k), np.nan)
        self.doc_topic_[used] = raw_doc_topic[:, self.topic_order_]
        self.log_likelihood_ = float(chain.ll_per_word)
        index = CooccurrenceIndex(corpus.counts)
        self.coherence_ = index.npmi(top_word_indices(self.topic_word_, self.coherence_top_n))

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Topic mixtures of new listings (rows of NaN where no known word is left)."""
        counts = count_with_vocabulary(texts, self.preprocessing, self.vocabulary_, self.phrases_)
        return self.transform_counts(counts)

    def transform_counts(self, counts: sp.csr_matrix) -> np.ndarray:
        tp = _tomotopy()
        chain = self._fitted_chain()
        lengths = np.asarray(counts.sum(axis=1)).ravel()
        used = np.flatnonzero(lengths > 0)
        mixtures = np.full((counts.shape[0], self.n_topics), np.nan)
        if used.size:
            docs = [chain.make_doc(words) for words in
                    documents_as_words(counts[used], self.vocabulary_)]
            inferred, _ = chain.infer(docs, iterations=self.sampler.infer_iterations,
                                      workers=1, parallel=tp.ParallelScheme.NONE)
            mixtures[used] = np.asarray(inferred)[:, self.topic_order_]
        return mixtures

    def _fitted_chain(self):
        chain = getattr(self, "_chain", None)
        if chain is None:
            raise DarkscopeError("the topic model is not fitted yet")
        return chain

    def save(self, directory: str | Path) -> None:
        """Write the model into ``directory`` (created): sampler state and settings."""
        chain = self._fitted_chain()
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        chain.save(str(folder / "model.bin"), full=True)
        sp.save_npz(folder / "counts.npz", sp.csr_matrix(self.counts_))
        np.savez_compressed(folder / "arrays.npz", topic_order=self.topic_order_,
                            doc_topic=self.doc_topic_, coherence=self.coherence_)
        meta = {
            "format": MODEL_FORMAT,
            "darkscope_version": __version__,
            "engine": ENGINE,
            "engine_version": _engine_version(),
            "n_topics": self.n_topics,
            "seed": self.seed,
            "coherence_top_n": self.coherence_top_n,
            "preprocessing": asdict(self.preprocessing),
            "sampler": asdict(self.sampler),
            "vocabulary": self.vocabulary_.tolist(),
            "phrases": self.phrases_,
            "log_likelihood": self.log_likelihood_,
        }
        (folder / "model.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> ListingTopicModel:
        """Read a model saved by :meth:`save`; refuse one from another format or engine."""
        folder = Path(directory)
        meta_path = folder / "model.json"
        if not meta_path.is_file():
            raise DarkscopeError(f"{folder} is not a topic model directory (no model.json); "
                                 "make one with `darkscope topics fit`")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DarkscopeError(f"{meta_path}: not valid JSON: {exc}") from None
        if meta.get("format") != MODEL_FORMAT or meta.get("engine") != ENGINE:
            raise DarkscopeError(
                f"{meta_path}: model format {meta.get('format')!r}/{meta.get('engine')!r} "
                f"(darkscope {meta.get('darkscope_version')}) cannot be read by darkscope "
                f"{__version__} (format {MODEL_FORMAT}/{ENGINE}); refit the model")
        saved, running = meta.get("engine_version", ""), _engine_version()
        if saved.split(".")[:2] != running.split(".")[:2]:
            raise DarkscopeError(f"{meta_path}: fitted with tomotopy {saved}, this is tomotopy "
                                 f"{running}; refit the model or install tomotopy {saved}")
        model = cls(meta["n_topics"], seed=meta["seed"],
                    preprocessing=Preprocessing(**{
                        **meta["preprocessing"],
                        "extra_stop_words": tuple(meta["preprocessing"]["extra_stop_words"])}),
                    sampler=SamplerSettings(**meta["sampler"]),
                    coherence_top_n=meta["coherence_top_n"])
        model._chain = _tomotopy().LDAModel.load(str(folder / "model.bin"))
        arrays = np.load(folder / "arrays.npz")
        model.vocabulary_ = np.array(meta["vocabulary"], dtype=object).astype(str)
        model.phrases_ = list(meta["phrases"])
        model.counts_ = sp.load_npz(folder / "counts.npz").tocsr()
        model.topic_order_ = arrays["topic_order"]
        model.doc_topic_ = arrays["doc_topic"]
        model.coherence_ = arrays["coherence"]
        model.log_likelihood_ = meta["log_likelihood"]
        engine_vocab = {w: i for i, w in enumerate(model._chain.used_vocabs)}
        to_engine = np.array([engine_vocab[w] for w in model.vocabulary_], dtype=np.int64)
        raw = np.array([model._chain.get_topic_word_dist(t) for t in range(model._chain.k)])
        topic_word = raw[:, to_engine][model.topic_order_]
        model.topic_word_ = topic_word / topic_word.sum(axis=1, keepdims=True)
        return model


@dataclass(frozen=True)
class KSearch:
    """Coherence of each candidate number of topics, and the chosen one."""

    scores: dict[int, float]
    best_k: int


def fit_best_k(texts: Sequence[str], k_values: Sequence[int], *, seed: int = 0,
               preprocessing: Preprocessing | None = None,
               sampler: SamplerSettings | None = None,
               tolerance: float = 0.01) -> tuple[ListingTopicModel, KSearch]:
    """Fit one model per k; keep the smallest k whose mean NPMI is within ``tolerance`` of the best.

    Splitting a real topic in two leaves both halves coherent, so coherence alone drifts towards
    too many topics by margins below its seed noise; among near-ties fewer topics read better.
    """
    preprocessing = preprocessing or Preprocessing()
    corpus = build_corpus(texts, preprocessing)
    usable = int((corpus.lengths > 0).sum())
    candidates = sorted(set(k_values))
    if not candidates:
        raise DarkscopeError("the k range is empty")
    if usable and candidates[0] > usable:
        raise DarkscopeError(f"every k in the range ({candidates[0]}..{candidates[-1]}) is more "
                             f"than the {usable} listings that have words after preprocessing")
    models: dict[int, ListingTopicModel] = {}
    scores: dict[int, float] = {}
    for k in candidates:
        if usable and k > usable:
            break
        # An empty corpus or one without words raises its precise message here.
        models[k] = ListingTopicModel(k, seed=seed, preprocessing=preprocessing,
                                      sampler=sampler).fit_corpus(corpus)
        scores[k] = float(np.mean(models[k].coherence_))
        # Keep only models that can still win, so memory stays at a few models.
        floor = max(scores.values()) - tolerance
        models = {kept: m for kept, m in models.items() if scores[kept] >= floor}
    top = max(scores.values())
    best_k = min(k for k, score in scores.items() if score >= top - tolerance)
    return models[best_k], KSearch(scores, best_k)
