"""mlpcli: multilayer perceptrons on MNIST-format data, backpropagation by hand in NumPy."""

__version__ = "0.1.0"
