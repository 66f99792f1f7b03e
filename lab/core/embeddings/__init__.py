"""Embedding rows, nearest neighbours, a PCA projection, positional encodings, and how a
word's hidden state changes with its context.

What lives where:

- ``matrices``: the model's embedding matrices (cached per model) and a prompt's rows
- ``geometry``: nearest neighbours by cosine, the 2-D PCA projection
- ``positions``: positional encodings (learned, sinusoidal, RoPE, relative biases)
- ``context``: one word's hidden state across layers in two sentences
"""
from lab.core.embeddings.context import (
                                         BANK_PRESET,
                                         ContextSimilarity,
                                         context_similarity,
                                         hidden_states,
                                         word_span,
                                         word_tokens,
)
from lab.core.embeddings.geometry import Neighbour, Neighbours, Projection, neighbours, neighbours_csv, pca, projection
from lab.core.embeddings.matrices import (
                                         INPUT,
                                         OUTPUT,
                                         EmbeddingRows,
                                         NeighbourIndex,
                                         has_output_embeddings,
                                         index,
                                         piece_label,
                                         rows,
                                         tied,
)
from lab.core.embeddings.positions import (
                                         ROPE_SOURCE,
                                         SINUSOID_SOURCE,
                                         T5_SOURCE,
                                         Positions,
                                         cosine_matrix,
                                         positional,
                                         rope_table,
                                         sinusoidal,
)

__all__ = ["NeighbourIndex", "index", "tied", "has_output_embeddings", "rows", "EmbeddingRows", "piece_label",
           "INPUT", "OUTPUT", "neighbours", "neighbours_csv", "Neighbour", "Neighbours", "pca", "projection",
           "Projection", "positional", "Positions", "sinusoidal", "rope_table", "cosine_matrix", "ROPE_SOURCE",
           "SINUSOID_SOURCE", "T5_SOURCE", "context_similarity", "ContextSimilarity", "hidden_states", "word_span",
           "word_tokens", "BANK_PRESET"]
