"""Models behind the trained retrievers: the causal backbone (random or pretrained) and the query encoder."""

from bench.models.backbone import BackboneConfig, build_backbone, count_parameters, load_pretrained, token_embeddings
from bench.models.query_encoder import QueryEncoder

__all__ = ["BackboneConfig", "QueryEncoder", "build_backbone", "count_parameters", "load_pretrained",
           "token_embeddings"]
