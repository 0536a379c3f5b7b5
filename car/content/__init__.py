"""Content dependency: APE entity embeddings (NCE) and sparse alert-alert similarity."""

from car.content.ape import EntityEmbedding, fit_ape, unique_tuples
from car.content.similarity import knn_similarity, tuple_knn

__all__ = ["EntityEmbedding", "fit_ape", "knn_similarity", "tuple_knn", "unique_tuples"]
