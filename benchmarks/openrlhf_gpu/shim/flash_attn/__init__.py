"""Stand-in for flash_attn (which cannot be carried to the lent GPU: it is built per torch/CUDA).
OpenRLHF 0.11.2 imports these names at module level but calls them only with --ds.packing_samples
or ring attention, which these runs do not use. No dist-info: transformers sees no flash_attn."""
__version__ = "0.0.0+stand-in"
