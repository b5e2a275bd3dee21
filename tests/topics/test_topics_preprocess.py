import numpy as np

from darkscope.topics.preprocess import (
    Preprocessing,
    build_corpus,
    count_with_vocabulary,
    find_phrases,
    listing_text,
    product_key,
    strip_markup,
    words_of,
)


def test_security_terms_stay_whole_and_noise_goes():
    text = ("<p>Private <b>0day</b> for CVE-2017-0144 (MS17-010) &amp; DDoS panel, 2C-B, "
            "pay in BTC. KilerRat v10.0.0 Full, 20mg x 60, 180-200mg, free shipping.</p>")
    words = words_of([text], Preprocessing())[0]
    for term in ("0day", "cve-2017-0144", "ms17-010", "ddos", "btc", "kilerrat", "panel", "2c-b"):
        assert term in words
    for noise in ("p", "b", "amp", "v10", "10.0.0", "20mg", "mg", "60", "shipping", "180-200mg",
                  "for", "in"):
        assert noise not in words


def test_tokens_of_any_script_and_platform_terms():
    text = ("München Shop: наркотики и оружие, ＢＯＴＮＥＴ ＲＤＰ x64 x86 x86-64 bot, 4G SIM, "
            "Ελληνικά. 20 pcs x 60, 5g, 3.5g")
    words = words_of([text], Preprocessing())[0]
    for term in ("münchen", "наркотики", "оружие", "botnet", "rdp", "x64", "x86", "x86-64", "4g",
                 "ελληνικά", "sim", "bot"):
        assert term in words, term
    for noise in ("nchen", "pcs", "60", "20", "3.5g"):
        assert noise not in words, noise


def test_markup_scripts_are_dropped_and_entities_decoded():
    assert "alert" not in strip_markup("<div>ok<script>alert(1)</script></div>")
    assert strip_markup("fish &amp; chips").split() == ["fish", "&", "chips"]
    assert strip_markup("plain text") == "plain text"


def test_deeply_nested_markup_is_stripped_fast_and_capped():
    import time

    from darkscope.topics.preprocess import MAX_MARKUP_CHARS

    nested = "<div>x " * 40_000  # 280 kB of unclosed nesting: about 2 s in selectolax/lexbor
    started = time.perf_counter()
    text = strip_markup(nested)
    assert time.perf_counter() - started < 0.5
    assert text.split()[:3] == ["x", "x", "x"]
    long = "<p>" + "word " * 100_000 + "</p>"
    assert len(strip_markup(long)) <= MAX_MARKUP_CHARS
    assert strip_markup("<p>a</p><!-- hidden --><p>b &lt;c&gt;</p>").split() == ["a", "b", "<c>"]
    assert strip_markup("<br/>") == "" and strip_markup("   &nbsp; ").strip() == ""


def test_description_repeating_title_is_counted_once():
    texts = listing_text(["Carding guide", "Weed"], ["Carding guide with bins", None])
    assert texts == ["Carding guide with bins", "Weed\n"]


def test_product_key_collapses_amounts_units_and_versions():
    keys = product_key(["Cocaine Grade B x 1 gram", "Cocaine Grade B x 5 gram",
                        "KilerRat v10.0.0 Full", "KilerRat v9.1 Full", "10 x 25mg Xanax pills",
                        "Xanax pills 2mg", "0day for Win10"])
    assert keys[0] == keys[1] == "cocaine grade b"
    assert keys[2] == keys[3] == "kilerrat full"
    assert keys[4] == keys[5] == "xanax pills"
    assert keys[6] == "0day for win10"


def test_document_frequency_pruning_and_empty_documents_keep_their_row():
    texts = ["alpha beta gamma", "alpha beta", "alpha delta", "", "12 mg 3.5g"]
    corpus = build_corpus(texts, Preprocessing(min_df=2, max_df=0.7))
    # gamma and delta are in one listing only; the last two listings have no words at all.
    assert corpus.vocabulary.tolist() == ["alpha", "beta"]
    assert corpus.counts.shape == (5, 2)
    assert corpus.lengths.tolist() == [2, 2, 1, 0, 0]


def test_max_df_removes_words_in_most_listings():
    texts = ["alpha beta", "alpha beta", "alpha gamma", "alpha gamma"]
    corpus = build_corpus(texts, Preprocessing(min_df=2, max_df=0.5))
    assert corpus.vocabulary.tolist() == ["beta", "gamma"]


def test_phrases_join_pairs_that_occur_together():
    texts = ["credit card dumps fresh"] * 6 + ["card reader skimmer", "fresh dumps track",
                                                "nbome nbome nbome nbome nbome nbome"]
    docs = [d.split() for d in texts]
    phrases = find_phrases(docs, min_count=5, threshold=0.3)
    assert "credit_card" in phrases
    assert "nbome_nbome" not in phrases  # a repeated word is not a phrase
    corpus = build_corpus(texts, Preprocessing(min_df=1, max_df=1.0, phrases=True,
                                               phrase_min_count=5, phrase_threshold=0.3))
    assert "credit_card" in corpus.vocabulary.tolist()
    counts = count_with_vocabulary(["credit card"], Preprocessing(), corpus.vocabulary,
                                   corpus.phrases)
    column = corpus.vocabulary.tolist().index("credit_card")
    assert counts[0, column] == 1 and counts.sum() == 1


def test_counts_over_fixed_vocabulary_ignore_unknown_words():
    vocabulary = np.array(["ddos", "botnet"])
    counts = count_with_vocabulary(["DDoS botnet botnet ransomware", "nothing known"],
                                   Preprocessing(), vocabulary, [])
    assert counts.toarray().tolist() == [[1, 2], [0, 0]]


def test_apply_phrases_joins_left_to_right_within_documents():
    from darkscope.topics.preprocess import apply_phrases

    docs = [["a", "a", "a", "a", "a"], ["b", "a", "b", "a"], ["x"], ["y", "credit", "card"], []]
    assert apply_phrases(docs, ["a_a", "a_b", "b_a", "x_y", "credit_card", "no_such"]) == [
        ["a_a", "a_a", "a"], ["b_a", "b_a"], ["x"], ["y", "credit_card"], []]
    assert apply_phrases(docs, []) == docs
