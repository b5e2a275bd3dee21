"""darkscope topics vs gensim LdaModel vs scikit-learn batch LDA vs tomotopy.

Every library gets the same vocabulary and counts (darkscope's preprocessing) and the same k; we
measure CPU seconds of fitting (process time, all threads) and c_v coherence of each topic's top
10 words with gensim's CoherenceModel (the field's usual yardstick, computed on the same
preprocessed listings), and for the synthetic corpus how well planted topics are recovered (mean
best top-20 word overlap). Seeds 0..n-1.

    .venv/bin/python benchmarks/topics.py                      # Agora sample + 20k synthetic
    .venv/bin/python benchmarks/topics.py --corpus agora --seeds 1
    .venv/bin/python benchmarks/topics.py --blas-threads  # BLAS on all cores
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from darkscope.topics.listings import read_listings
from darkscope.topics.model import ListingTopicModel, documents_as_words
from darkscope.topics.preprocess import Corpus, Preprocessing, build_corpus, listing_text
from darkscope.topics.synthetic import PlantedCorpus, planted_corpus

REPO = Path(__file__).resolve().parents[1]
AGORA = REPO / ".." / "shared" / "data" / "darkweb" / "agora_vendorall_0114_sample2000.csv"

Fitter = Callable[[Corpus, int, int], np.ndarray]  # corpus, k, seed -> topic-word (k x V)


def fit_darkscope(corpus: Corpus, k: int, seed: int) -> np.ndarray:
    return ListingTopicModel(k, seed=seed).fit_corpus(corpus).topic_word_


def fit_tomotopy(iterations: int) -> Fitter:
    def fit(corpus: Corpus, k: int, seed: int) -> np.ndarray:
        import tomotopy as tp

        model = tp.LDAModel(k=k, seed=seed)
        for words in documents_as_words(corpus.counts, corpus.vocabulary):
            if words:
                model.add_doc(words)
        model.train(iterations, workers=1, parallel=tp.ParallelScheme.NONE)
        index = {w: i for i, w in enumerate(model.used_vocabs)}
        columns = np.array([index[w] for w in corpus.vocabulary])
        return np.array([model.get_topic_word_dist(t) for t in range(k)])[:, columns]
    return fit


def fit_sklearn(corpus: Corpus, k: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import LatentDirichletAllocation

    model = LatentDirichletAllocation(k, learning_method="batch", random_state=seed, n_jobs=1)
    return model.fit(corpus.counts).components_


def fit_gensim(corpus: Corpus, k: int, seed: int) -> np.ndarray:
    from gensim.matutils import Sparse2Corpus
    from gensim.models import LdaModel

    bow = Sparse2Corpus(sp.csc_matrix(corpus.counts.T))
    id2word = dict(enumerate(corpus.vocabulary.tolist()))
    model = LdaModel(bow, num_topics=k, id2word=id2word, passes=10, random_state=seed)
    return model.get_topics()


LIBRARIES: dict[str, Fitter] = {
    "darkscope": fit_darkscope,
    "gensim LdaModel (10 passes)": fit_gensim,
    "sklearn batch (10 iter)": fit_sklearn,
    "tomotopy (1000 iter)": fit_tomotopy(1000),
    "tomotopy (100 iter)": fit_tomotopy(100),
}


class CvScorer:
    """gensim c_v over the preprocessed listings (bag of words; listings are shorter than its
    110-word window, so word order does not matter)."""

    def __init__(self, corpus: Corpus) -> None:
        from gensim.corpora import Dictionary

        self.texts = [d for d in documents_as_words(corpus.counts, corpus.vocabulary) if d]
        self.dictionary = Dictionary(self.texts)
        self.vocabulary = corpus.vocabulary

    def __call__(self, topic_word: np.ndarray) -> float:
        from gensim.models.coherencemodel import CoherenceModel

        tops = [[str(self.vocabulary[i]) for i in np.argsort(-row, kind="stable")[:10]]
                for row in topic_word]
        return float(CoherenceModel(topics=tops, texts=self.texts, dictionary=self.dictionary,
                                    coherence="c_v", topn=10, processes=1).get_coherence())


def recovery(planted: PlantedCorpus, vocabulary: np.ndarray, topic_word: np.ndarray) -> float:
    found = [set(vocabulary[np.argsort(-row)[:20]]) for row in topic_word]
    return float(np.mean([max(len(set(planted.top_words(z, 20)) & f) / 20 for f in found)
                          for z in range(planted.topic_words.shape[0])]))


def run(name: str, corpus: Corpus, k: int, seeds: int, libraries: list[str],
        planted: PlantedCorpus | None) -> list[dict]:
    scorer = CvScorer(corpus)
    # Untimed warm-up: the first fit of a library pays its imports and one-off set-up, which
    # would otherwise be charged to whichever library happens to run first.
    head = corpus.counts[:200]
    present = np.flatnonzero(np.asarray(head.sum(axis=0)).ravel())
    sample = Corpus(head[:, present].tocsr(), corpus.vocabulary[present])
    for library in libraries:
        LIBRARIES[library](sample, 2, 0)
    print(f"\n## {name}: {corpus.counts.shape[0]} listings, vocabulary {corpus.vocabulary.size}, "
          f"{int(corpus.counts.sum())} tokens, k={k}, seeds 0..{seeds - 1}", flush=True)
    rows = []
    for library in libraries:
        cpu, cv, rec = [], [], []
        for seed in range(seeds):
            start = time.process_time()
            topic_word = LIBRARIES[library](corpus, k, seed)
            cpu.append(time.process_time() - start)
            cv.append(scorer(topic_word))
            if planted is not None:
                rec.append(recovery(planted, corpus.vocabulary, topic_word))
        row = {"corpus": name, "library": library, "cpu_s": statistics.mean(cpu),
               "c_v": statistics.mean(cv), "c_v_min": min(cv), "c_v_max": max(cv),
               "recovery": statistics.mean(rec) if rec else None}
        rows.append(row)
        print(f"{library:28s} CPU {row['cpu_s']:7.2f} s  c_v {row['c_v']:.3f} "
              f"[{row['c_v_min']:.3f}, {row['c_v_max']:.3f}]"
              + (f"  recovery {row['recovery']:.3f}" if rec else ""), flush=True)
    base = next((r for r in rows if r["library"] == "darkscope"), None)
    if base:
        print("ratios vs darkscope (CPU time, c_v difference):")
        for row in rows:
            if row is not base:
                print(f"  {row['library']:28s} {row['cpu_s'] / base['cpu_s']:5.2f}x CPU, "
                      f"c_v {row['c_v'] - base['c_v']:+.3f}")
        best = max(r["c_v"] for r in rows)
        near = [r for r in rows if r["c_v"] >= best - 0.05]
        fastest_near = min(near, key=lambda r: r["cpu_s"])
        print(f"goal: best c_v {best:.3f}; fastest within 0.05: {fastest_near['library']} "
              f"({fastest_near['cpu_s']:.2f} s); darkscope {base['c_v']:.3f} in "
              f"{base['cpu_s']:.2f} s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=["agora", "synthetic", "both"], default="both")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--documents", type=int, default=20000)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--libraries", default=",".join(LIBRARIES),
                        help="comma-separated subset of: " + ", ".join(LIBRARIES))
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--blas-threads", action="store_true",
                        help="let BLAS use all cores (default: one thread for every library)")
    args = parser.parse_args(argv)
    libraries = [name.strip() for name in args.libraries.split(",")]
    unknown = [name for name in libraries if name not in LIBRARIES]
    if unknown:
        parser.error(f"unknown libraries {unknown}")
    warnings.filterwarnings("ignore")
    rows: list[dict] = []
    if not args.blas_threads:
        # All libraries on one BLAS thread: on these small matrices extra BLAS threads mostly
        # spin, which inflates CPU seconds by up to 5x and would measure the BLAS, not the LDA.
        threadpool_limits(1)
    if args.corpus in ("agora", "both"):
        if AGORA.is_file():
            listings = read_listings(AGORA)
            texts = listing_text(listings.column("title").to_pylist(),
                                 listings.column("description").to_pylist())
            corpus = build_corpus(texts, Preprocessing())
            rows += run("Agora sample", corpus, args.k, args.seeds, libraries, None)
        else:
            print(f"skipping Agora: {AGORA} not found (needs ../shared beside the repo)")
    if args.corpus in ("synthetic", "both"):
        planted = planted_corpus(n_documents=args.documents, k=args.k, seed=1)
        texts = listing_text([r["title"] for r in planted.listings],
                             [r["description"] for r in planted.listings])
        corpus = build_corpus(texts, Preprocessing())
        rows += run(f"synthetic {args.documents}", corpus, args.k, args.seeds, libraries,
                    planted)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
