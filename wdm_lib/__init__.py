"""wdm_lib: seed, load and check microservice shops that speak the course's shop API."""

__version__ = "0.1.0"
