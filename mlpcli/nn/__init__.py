"""The math: activations and costs, the network (forward, BP1–BP4), its kernels, the update rules, scoring and the gradient check."""
