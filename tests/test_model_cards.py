"""Plain-language model cards for presentation mode: the wording an audience reads, from stored metrics."""

from __future__ import annotations

import pytest

from core.evaluation.cards import classifier_card, recommender_card, times_in_ten


@pytest.mark.parametrize(("rate", "said"), [(0.8, "8 times in 10"), (0.834, "8 times in 10"), (0.75, "8 times in 10"),
                                            (0.5, "5 times in 10"), (0.97, "97 times in 100"),
                                            (0.04, "4 times in 100"), (1.0, "100 times in 100"),
                                            (0.0, "0 times in 10")])
def test_rates_are_said_the_way_people_say_them(rate: float, said: str) -> None:
    assert times_in_ten(rate) == said


def test_classifier_card_says_what_it_does_and_how_often_it_is_right() -> None:
    card = classifier_card(labels=["negative", "neutral", "positive"], accuracy=0.81, dataset_name="product reviews",
                           technical="#2 lstm · macro-F1 0.750", n_test=300, items="reviews")
    assert card.what == "Reads a text and says whether it is negative, neutral or positive."
    assert card.how_good == "It was right 8 times in 10 on 300 reviews it never saw during training."
    assert "macro" not in card.what + card.how_good + card.title and card.technical.startswith("#2 lstm")


def test_many_labels_are_summarised_and_a_missing_score_is_said_honestly() -> None:
    card = classifier_card(labels=[f"topic{i}" for i in range(12)], accuracy=None, dataset_name="tickets",
                           technical="")
    assert "which of 12 categories" in card.what and "topic0, topic1, topic2" in card.what
    assert "not been scored" in card.how_good


def test_recommender_card_in_plain_words() -> None:
    card = recommender_card(hit_rate=0.62, k=10, dataset_name="movie ratings", technical="#4 ease · NDCG@10 0.41",
                            n_items=1682)
    assert "catalogue of 1,682" in card.what
    assert card.how_good.startswith("For 6 in 10 people, its top 10 held something they really went on to choose")
    assert "NDCG" not in card.how_good
