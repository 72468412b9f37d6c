"""Transformer parts: blocks (``blocks``), patch embeddings (``patch_embed``), the token encoder."""

from slimpose.models.transformer.blocks import (
    Attention, Mlp, TokenBlock, attention_explicit, sine_position_embedding,
)
from slimpose.models.transformer.encoder import (
    POS_EMBEDDINGS, PosEmbedding, Tokens, TokenStack, TokenTransformer,
)
from slimpose.models.transformer.patch_embed import FeaturePatchEmbed, PatchEmbed, patchify
from slimpose.models.transformer.pruning import PruningTokenBlock, TokenPruning, set_keep_ratio

__all__ = [
    "Attention", "Mlp", "TokenBlock", "attention_explicit", "sine_position_embedding", "POS_EMBEDDINGS",
    "PosEmbedding", "Tokens", "TokenStack", "TokenTransformer", "FeaturePatchEmbed", "PatchEmbed", "patchify",
    "PruningTokenBlock", "TokenPruning", "set_keep_ratio",
]
