"""The page people use: create a secret at ``/``, reveal it at ``/s/<id>`` (only on a click).

Everything is served by Bastion itself from memory (no third-party assets), under a strict
Content-Security-Policy without inline scripts or styles. The page talks to the secrets API only.
"""
