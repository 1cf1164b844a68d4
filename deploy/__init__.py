"""Deployment: the nginx site and its renderer, gunicorn's configuration, systemd units
and the environment-file template (see docs/operators/deployment.md)."""
