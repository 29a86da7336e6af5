"""TransFG (He et al., AAAI 2022) in Jittor and PyTorch, with shared configs, weights and data."""
