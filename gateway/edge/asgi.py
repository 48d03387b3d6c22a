"""The ASGI entry point of ``deltagate serve``: each worker builds its gateway from the config.

``DELTAGATE_CONFIG`` names the configuration file (set by ``deltagate serve
--config``); the ``DELTAGATE_*`` environment applies on top of it.
"""

from __future__ import annotations

import os

from gateway.edge.app import Gateway, GatewayApp, create_app
from gateway.edge.settings import load_settings


def create() -> GatewayApp:
    settings = load_settings(os.environ.get("DELTAGATE_CONFIG"))
    return create_app(Gateway.from_settings(settings))
