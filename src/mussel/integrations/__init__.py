"""Integrations of Mussel with other systems, each an optional extra of ``mussel-kv``.

They sit on top of the layers (beside ``mussel.cli``) and use Mussel only through
``mussel.client``: an integration is a client of a running server like any other.
"""
