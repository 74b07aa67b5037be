"""Normalisation: what the features see of a post."""

from classify.lexicon import concepts
from classify.text import lemmas_and_concepts, normalise, segment, tokens


def test_campaign_hashtag_is_stripped_other_hashtags_become_words():
    out = normalise("Meer thuiswerken #innoverheid #HetNieuweWerken #INNOVERHEID")
    assert "innoverheid" not in out
    assert "het nieuwe werken" in out


def test_run_together_hashtag_is_split_into_dutch_words():
    assert segment("hetnieuwewerken") == ("het", "nieuwe", "werken")
    assert "open overheid" in normalise("Yes! #openoverheid")


def test_urls_mentions_and_rt_prefix_become_placeholders():
    out = normalise("RT @regio_nieuws: Nieuwe pilot https://t.co/abc123 en example.org/x met @anne_devries")
    assert out.startswith("_rt_ ")
    assert "regio_nieuws" not in out and "anne_devries" not in out and "t.co" not in out
    assert out.count("_url_") == 2 and "_user_" in out


def test_rt_in_the_middle_is_not_a_retweet():
    assert not normalise("Ik zou dit RT @x: doen").startswith("_rt_")


def test_emoji_are_kept_as_tokens_and_case_and_accents_are_folded():
    toks = tokens(normalise("Één café👍🏽Top"))
    assert "een" in toks and "👍" in toks and "cafe" in toks


def test_abbreviations_are_written_out():
    assert "in plaats van" in normalise("Videobellen ipv reizen")
    assert "met betrekking tot" in normalise("m.b.t. de regels")


def test_dates_and_times_become_tokens():
    out = normalise("Di 12 maart om 14:00 uur in Utrecht")
    assert "_date_" in out and "_time_" in out


def test_lemmas_unite_word_forms_and_concepts_unite_synonyms():
    a = lemmas_and_concepts(normalise("De vergaderingen van de teamleiders"))
    b = lemmas_and_concepts(normalise("Een vergadering met de chef"))
    assert "vergadering" in a.split() and "vergadering" in b.split()
    assert "_c_leiding_" in a.split() and "_c_leiding_" in b.split()


def test_concepts_match_inside_compounds():
    text = normalise("Een vaste thuiswerkdag voor iedereen")
    assert "_c_flex_" in concepts(text, tokens(text))
