"""dicomhaven: collect, pseudonymise, de-identify, verify and share medical images for research."""

import logging

__version__ = "0.1.0"

# A library never configures logging; the CLI does.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["__version__"]
