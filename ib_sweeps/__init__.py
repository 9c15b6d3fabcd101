"""ib-sweeps: information-plane experiments on neural networks, tracked in MLflow.

Importing the package is cheap: TensorFlow, MLflow and Ray are imported only by
the modules that need them (``train``, ``trial``, ``tracking``).
"""

__version__ = "0.1.0"
