"""Selective disclosure (IETF SD-JWT, RFC 9901) for sender-signed envelopes.

``disclosure`` issues, presents and verifies SD-JWTs over any JSON object; ``envelope``
holds the gateway's own profile of it: every member and array element of an envelope is
selectively disclosable, so a recipient can check, with only the sender's public key,
every field it was given after the sharing policy withheld others (docs/evidence.md).
No I/O and no import of any other gateway layer but ``gateway.keys``.
"""
