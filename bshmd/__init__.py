"""bshmd: a hot-folder daemon that cuts people out of photos with the BSHM matting model."""

# The one place the version is written: pyproject.toml reads it at build time, `bshmd --version`
# and the daemon's start-up line print it. Not importlib.metadata: an editable install keeps the
# version it was installed with until it is reinstalled. Bump it together with CHANGELOG.md.
__version__ = "0.3.0"
