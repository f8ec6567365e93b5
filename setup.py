"""keras-anytime: anytime neural networks (multi-exit models) for Keras 3, with AdaLoss."""

from setuptools import setup

setup(
    name="keras-anytime",
    version="0.1.0",
    description="Anytime neural networks for Keras 3: multi-exit builders, AdaLoss, a model zoo.",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=[
        "keras_anytime",
        "keras_anytime.applications",
        "keras_anytime.datasets",
        "keras_anytime.inference",
        "keras_anytime.training",
        "keras_anytime._zoo",
    ],
    # The repository's top-level zoo/ folder ships inside the package as keras_anytime/_zoo.
    package_dir={"keras_anytime._zoo": "zoo"},
    package_data={"keras_anytime._zoo": ["*.json", "*.weights.h5"]},
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.15,<3.16",  # the tested range: inference.py uses private graph APIs
        "tensorflow-datasets",
        "keras-tuner",
        "tensorboard",  # keras-tuner imports it on the TensorFlow backend
        "numpy",
        "matplotlib",
    ],
    extras_require={
        "test": [
            "pytest",
            "pytest-xdist",
            "jax[cpu]",
            "torch==2.13.0",
            "ruff",
            "ai-edge-litert",
            "pdoc",
        ],
        # running exported LiteRT models (EarlyExitPredictor.export(format="litert"))
        "export": ["ai-edge-litert"],
        "notebooks": ["jupyter", "nbconvert", "nbformat", "matplotlib"],
        # benchmarks/train_throughput.py's plain-PyTorch reference (the CPU build)
        "bench": ["torch==2.13.0"],
    },
    entry_points={"console_scripts": ["keras-anytime=keras_anytime.cli:main"]},
)
