"""Topic clusters across conversations (``embeddings`` extra).

What users talk about, grouped without labels: each conversation becomes a TF-IDF vector of
the words of its user turns (English stop words dropped, words in at least two conversations
and at most half of them), and k-means groups the vectors. Each cluster is described by its
heaviest words and a few conversation ids. Offline, deterministic (fixed seed), and light:
no model download.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from opsloom.insights.conversation import Conversation

#: Words that describe a cluster.
TOP_WORDS = 8
#: Conversation ids shown per cluster.
EXAMPLES = 5


class TopicsUnavailable(RuntimeError):
    """The ``embeddings`` extra (scikit-learn) is not installed."""


def default_clusters(count: int) -> int:
    """A cluster count for ``count`` conversations: about sqrt(n / 2), 2 to 30."""
    return max(2, min(30, round(math.sqrt(count / 2))))


def topic_clusters(
    conversations: Iterable[Conversation], clusters: int | None = None
) -> dict[str, Any]:
    """Cluster conversations by what their users wrote.

    Returns ``{"conversations": n, "clusters": [{"id", "size", "words", "examples"}, ...]}``
    with the clusters largest first; conversations with no usable words are counted under
    ``"unclustered"``.
    """
    try:
        from sklearn.cluster import KMeans
        from sklearn.feature_extraction.text import TfidfVectorizer
    except ImportError as missing:
        raise TopicsUnavailable(
            "topic clusters need scikit-learn: pip install 'opsloom[embeddings]'"
        ) from missing
    ids: list[str] = []
    texts: list[str] = []
    for conversation in conversations:
        ids.append(conversation.id)
        texts.append(" ".join(t.text for t in conversation.turns if t.role == "user"))
    result: dict[str, Any] = {"conversations": len(ids), "clusters": [], "unclustered": 0}
    if len(ids) < 2:
        result["unclustered"] = len(ids)
        return result
    vectorizer = TfidfVectorizer(
        stop_words="english",
        min_df=2,
        max_df=0.5,
        sublinear_tf=True,
        token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z0-9_-]{2,}\b",
    )
    try:
        matrix = vectorizer.fit_transform(texts)
    except ValueError:  # no word occurs in two conversations
        result["unclustered"] = len(ids)
        return result
    usable = [i for i in range(len(ids)) if matrix[i].nnz]
    result["unclustered"] = len(ids) - len(usable)
    k = min(clusters or default_clusters(len(usable)), len(usable))
    if k < 1:
        return result
    model = KMeans(n_clusters=k, n_init=4, random_state=0)
    labels = model.fit_predict(matrix[usable])
    words = vectorizer.get_feature_names_out()
    members: dict[int, list[str]] = {}
    for row, label in zip(usable, labels, strict=True):
        members.setdefault(int(label), []).append(ids[row])
    for label, names in sorted(members.items(), key=lambda item: (-len(item[1]), item[0])):
        centre = model.cluster_centers_[label]
        heaviest = centre.argsort()[::-1][:TOP_WORDS]
        result["clusters"].append(
            {
                "id": len(result["clusters"]),
                "size": len(names),
                "words": [str(words[i]) for i in heaviest if centre[i] > 0],
                "examples": names[:EXAMPLES],
            }
        )
    return result
