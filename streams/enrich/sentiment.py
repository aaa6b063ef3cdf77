"""Sentiment of social text with VADER (a lexicon and rule-based model for social media)."""

from __future__ import annotations

from functools import lru_cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer


@lru_cache(maxsize=1)
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


def sentiment_score(text: str | None) -> float | None:
    """VADER compound score, -1 (most negative) to 1 (most positive); None without text."""
    if not text or not text.strip():
        return None
    return round(_analyzer().polarity_scores(text[:5000])["compound"], 4)
