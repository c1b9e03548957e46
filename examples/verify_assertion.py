#!/usr/bin/env python3
"""Verify clever-gateway's X-Clever-Assertion in a Python app (PyJWT with cryptography).

Paste `verify_assertion` into the app; call it with the request's X-Clever-Assertion header and
trust the identity only when it returns. Needs: PyJWT >= 2.6 with cryptography
(`pip install "PyJWT[crypto]"`, or Debian's python3-jwt and python3-cryptography).

Run as a script to check one token against a live gateway (used by the gateway's CI):

    python3 verify_assertion.py --jwks http://127.0.0.1:8080/_gateway/jwks.json \
        --issuer https://apps.example-district.org --audience gradebook TOKEN

It prints the verified claims as JSON and exits 0, or prints why and exits 1.
"""

import argparse
import json
import sys

import jwt  # PyJWT

# One client per process: it caches the gateway's keys and refetches them when a token names
# a key it has not seen (key rotation).
_jwks_clients = {}


def verify_assertion(token, jwks_url, issuer, audience):
    """Return the verified claims of an X-Clever-Assertion token, or raise jwt.PyJWTError."""
    client = _jwks_clients.get(jwks_url)
    if client is None:
        client = _jwks_clients[jwks_url] = jwt.PyJWKClient(jwks_url, cache_keys=True)
    key = client.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key.key,
        algorithms=["ES256"],  # never accept "none" or HMAC
        audience=audience,
        issuer=issuer,
        leeway=30,  # seconds of clock skew between the gateway and the app
        options={"require": ["iss", "aud", "sub", "iat", "exp", "jti"]},
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jwks", required=True, help="URL of the gateway's /_gateway/jwks.json")
    p.add_argument("--issuer", required=True, help="the gateway's public URL (iss)")
    p.add_argument("--audience", required=True, help="the upstream's name or assertion_audience")
    p.add_argument("token")
    a = p.parse_args()
    try:
        claims = verify_assertion(a.token, a.jwks, a.issuer, a.audience)
    except jwt.PyJWTError as e:
        print(f"invalid assertion: {e}", file=sys.stderr)
        return 1
    print(json.dumps(claims, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
