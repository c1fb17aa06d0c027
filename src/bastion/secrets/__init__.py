"""One-time secrets: create, reveal once (or N times), expire; the API behind the page of ``bastion.web``.

Note the name: inside this package ``import secrets`` still means the standard library (imports are
absolute), but the package itself is always ``bastion.secrets``.
"""
