"""What a version says about itself, and proof that it says it (issue 14).

- ``statement.py``: in-toto statements and DSSE envelopes, the wrapping of every
  attestation;
- ``provenance.py``: the SLSA v1 provenance predicate of a put;
- ``sbom.py``: what each image's root filesystem holds, as CycloneDX 1.5 JSON;
- ``signing.py``: keys, signatures, and cosign's simple-signing payload;
- ``referrers.py``: the artifact manifests that attach all of it to a version (OCI
  1.1 ``subject``), and reading them back for verification.

Nothing here knows of Concourse's environment or talks to a store by itself; the
steps hand it plain values and a :class:`~builder_resource.store.Store`.
"""
