"""The HTTP side of Zapline: thin adapters from HTTP to the desk, served by Hypercorn.

``create_asgi(services)`` (``api.app``) is the ASGI application: ``POST /webhooks/whatsapp``
as a bare ASGI handler in front of the Quart app (REST, Meta's verification handshake, health,
config, metrics). ``ApiServices`` (``api.context``) is what it is handed; ``serve_app``
(``api.serve``) runs an app on Hypercorn inside an anyio task group with honest readiness;
``api.fake_cloud`` is a local fake of the Cloud API for development and tests.
"""
