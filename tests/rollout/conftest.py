"""The served models of tests/serving (real flights, a template registry home) for the
rollout tests that run a real server."""

from tests.serving.conftest import faults_dir, flights, models, template_home

__all__ = ["faults_dir", "flights", "models", "template_home"]
