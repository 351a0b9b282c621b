"""The one thing pyproject.toml cannot say: the optional C extension of the hot path.

``optional=True``: where no C compiler is found the build says so and goes on, and tickerterm runs its
pure-Python path (tickerterm/core/native.py), which gives the same results, more slowly.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "tickerterm.core._native",
            ["tickerterm/core/_native.c"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
