"""Issue 14's formats, each checked against something independent of the code
that writes it: openssl verifies the signatures over the exact bytes, a real
layout store holds what is attached, and refusals are tried one by one."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from builder_resource.attest import cosign, sbom
from builder_resource.attest.provenance import PutFacts, provenance_statement
from builder_resource.attest.referrers import (
    Attestation,
    VerificationError,
    attachments,
    find,
    publish_attachments,
    verify_version,
)
from builder_resource.attest.signing import load_signer, load_verifier
from builder_resource.attest.statement import envelope, open_envelope, pae
from builder_resource.errors import ConfigError
from builder_resource.oci import media_types as mt
from builder_resource.oci.blobs import BytesBlob
from builder_resource.oci.descriptor import Descriptor, canonical_json
from builder_resource.store.layout import LayoutStore
from fixtures.tools import require

PASSWORD = "correct horse battery staple"


def openssl(*args: str, input: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=input, capture_output=True, check=True).stdout


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Keys made by openssl: an encrypted P-256 key, its public half, another key."""
    require("openssl")
    d = tmp_path_factory.mktemp("keys")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-aes-256-cbc", "-pass", f"pass:{PASSWORD}", "-out", str(d / "key.pem"))  # fmt: skip
    openssl("pkey", "-in", str(d / "key.pem"), "-passin", f"pass:{PASSWORD}",
            "-pubout", "-out", str(d / "pub.pem"))  # fmt: skip
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(d / "other.pem"))
    openssl("pkey", "-in", str(d / "other.pem"), "-pubout", "-out", str(d / "other.pub"))
    return {n: d / f for n, f in [("key", "key.pem"), ("pub", "pub.pem"), ("other", "other.pub")]}


def openssl_verifies(public: Path, message: bytes, signature: bytes, tmp: Path) -> bool:
    (tmp / "message").write_bytes(message)
    (tmp / "signature").write_bytes(signature)
    done = subprocess.run(
        [
            "openssl",
            "dgst",
            "-sha256",
            "-verify",
            str(public),
            "-signature",
            str(tmp / "signature"),
            str(tmp / "message"),
        ],  # fmt: skip
        capture_output=True,
        text=True,
    )
    return done.returncode == 0 and "Verified OK" in done.stdout


def test_keys_load_only_with_the_right_password(keys: dict[str, Path]) -> None:
    pem = keys["key"].read_text()
    assert load_signer(pem, PASSWORD).key_id.startswith("sha256:")
    for password, message in [(None, "give signing_key_password"), ("nope", "is wrong")]:
        with pytest.raises(ConfigError, match=message) as e:
            load_signer(pem, password)
        assert PASSWORD not in str(e.value) and "BEGIN" not in str(e.value)
    with pytest.raises(ConfigError, match=r"source.verify_keys.0: not a PEM public key"):
        load_verifier(["garbage"])


def test_cosign_signature_verifies_with_openssl(keys: dict[str, Path], tmp_path: Path) -> None:
    signer = load_signer(keys["key"].read_text(), PASSWORD)
    subject = Descriptor(mt.OCI_INDEX, "sha256:" + "ab" * 32, 123)
    image = cosign.signature_image("registry.example.org/app", subject, signer)
    manifest = json.loads(image.manifest)
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert manifest["subject"]["digest"] == subject.digest
    payload = next(b.data for b in image.blobs if b.digest == layer["digest"])
    # cosign's payload, byte for byte
    assert payload == (
        b'{"critical":{"identity":{"docker-reference":"registry.example.org/app"},'
        b'"image":{"docker-manifest-digest":"sha256:' + b"ab" * 32 + b'"},'
        b'"type":"cosign container image signature"},"optional":null}'
    )
    signature = base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"])
    assert openssl_verifies(keys["pub"], payload, signature, tmp_path)
    assert not openssl_verifies(keys["other"], payload, signature, tmp_path)
    assert not openssl_verifies(keys["pub"], payload.replace(b"ab", b"ba", 1), signature, tmp_path)


def test_dsse_envelope_verifies_with_openssl(keys: dict[str, Path], tmp_path: Path) -> None:
    signer = load_signer(keys["key"].read_text(), PASSWORD)
    body = b'{"_type":"https://in-toto.io/Statement/v1"}'
    sealed = json.loads(envelope(body, signer))
    payload = base64.b64decode(sealed["payload"])
    assert payload == body
    signed = b"DSSEv1 28 application/vnd.in-toto+json %d %s" % (len(body), body)
    assert pae(sealed["payloadType"], payload) == signed
    sig = base64.b64decode(sealed["signatures"][0]["sig"])
    assert openssl_verifies(keys["pub"], signed, sig, tmp_path)
    verifier = load_verifier([keys["pub"].read_text()])
    assert open_envelope(envelope(body, signer), verifier) == body
    tampered = {**sealed, "payload": base64.b64encode(body + b" ").decode()}
    assert open_envelope(json.dumps(tampered).encode(), verifier) is None
    wrong = load_verifier([keys["other"].read_text()])
    assert open_envelope(envelope(body, signer), wrong) is None


def _version(store: LayoutStore, marker: str) -> Descriptor:
    """A stand-in version index in ``store``."""
    raw = canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [],
                          "annotations": {"m": marker}})  # fmt: skip
    digest = store.push_manifest(raw, mt.OCI_INDEX, f"v-{marker}")
    return Descriptor(mt.OCI_INDEX, digest, len(raw))


def test_verification_refuses_each_way_a_signature_can_be_wrong(
    keys: dict[str, Path], tmp_path: Path
) -> None:
    store = LayoutStore(tmp_path / "store")
    signer = load_signer(keys["key"].read_text(), PASSWORD)
    verifier = load_verifier([keys["other"].read_text(), keys["pub"].read_text()])
    signed, unsigned, other = (_version(store, m) for m in ("signed", "unsigned", "other"))
    publish_attachments(store, attachments(signed, [], store.location, signer), signed.digest)
    verify_version(store, signed.digest, verifier)  # any one of the keys will do

    with pytest.raises(VerificationError, match=f"version {unsigned.digest} is not signed"):
        verify_version(store, unsigned.digest, verifier)
    with pytest.raises(VerificationError, match="does not verify"):
        verify_version(store, signed.digest, load_verifier([keys["other"].read_text()]))

    # a valid signature of another digest, put where this version's would be
    image = cosign.signature_image(store.location, signed, signer)
    for blob in image.blobs:
        store.push_blob(blob)
    store.push_manifest(image.manifest, mt.OCI_MANIFEST, cosign.signature_tag(other.digest))
    with pytest.raises(VerificationError, match=f"version {other.digest}: its signature"):
        verify_version(store, other.digest, verifier)

    # the payload changed after signing, its signature kept
    manifest = json.loads(image.manifest)
    payload = next(b for b in image.blobs if b.digest == manifest["layers"][0]["digest"])
    forged = BytesBlob(payload.data.replace(b"app", b"evil").replace(
        signed.digest.encode(), unsigned.digest.encode()))  # fmt: skip
    store.push_blob(forged)
    manifest["layers"][0].update(digest=forged.digest, size=forged.size)
    store.push_manifest(canonical_json(manifest), mt.OCI_MANIFEST,
                        cosign.signature_tag(unsigned.digest))  # fmt: skip
    with pytest.raises(VerificationError, match=f"version {unsigned.digest}: its signature"):
        verify_version(store, unsigned.digest, verifier)


def test_attestations_are_referrers_signed_or_not(keys: dict[str, Path], tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "store")
    signer = load_signer(keys["key"].read_text(), PASSWORD)
    verifier = load_verifier([keys["pub"].read_text()])
    statement = b'{"predicateType":"x"}'
    plain, sealed = _version(store, "plain"), _version(store, "sealed")
    for subject, key in ((plain, None), (sealed, signer)):
        attached = attachments(subject, [Attestation(statement, "x")], store.location, key)
        publish_attachments(store, attached, subject.digest)
    assert [f.statement for f in find(store, plain.digest, None)] == [statement]
    assert [f.statement for f in find(store, sealed.digest, verifier)] == [statement]
    with pytest.raises(VerificationError, match="is not signed"):
        find(store, plain.digest, verifier)
    with pytest.raises(VerificationError, match="not signed by any of verify_keys"):
        find(store, sealed.digest, load_verifier([keys["other"].read_text()]))
    # Nothing attached is a version: only the two stand-in tags and the .sig are tags.
    assert sorted(store.list_tags()) == sorted(
        ["v-plain", "v-sealed", cosign.signature_tag(sealed.digest)]
    )


def _layer(files: dict[str, bytes | None], mode: int = 0o644) -> bytes:
    """A tar layer; None is a directory."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


DPKG = b"""Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.15-2+b2

Package: gone
Status: deinstall ok config-files
Version: 1.0

Package: coreutils
Status: install ok installed
Architecture: amd64
Version: 9.1-1
Description: GNU core utilities
 continuation: not a field
"""


def test_sbom_reads_package_databases_through_whiteouts() -> None:
    layers = [
        _layer({"etc/": None, "etc/os-release": b'ID=debian\nVERSION_ID="12"\n',
                "var/lib/dpkg/status": DPKG,
                "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA":
                    b"Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n\nbody\nName: no\n",
                "usr/lib/python3/dist-packages/Old_Pkg-2.dist-info/METADATA":
                    b"Name: Old_Pkg\nVersion: 2\n",
                "lib/apk/db/installed": b"P:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\n\n"}),
        # a later layer: removes the apk database, hides a directory, adds a package
        _layer({"lib/apk/db/.wh.installed": b"", "usr/": None, "usr/lib/": None,
                "usr/lib/python3/dist-packages/.wh..wh..opq": b"",
                "usr/local/lib/python3.11/site-packages/pip-24.0.dist-info/METADATA":
                    b"Name: pip\nVersion: 24.0\n"}),
    ]  # fmt: skip
    files = sbom.package_files([lambda data=data: io.BytesIO(data) for data in layers])
    found = {(p.kind, p.name, p.version) for p in sbom.packages(files)}
    assert found == {
        ("deb", "bash", "5.2.15-2+b2"),
        ("deb", "coreutils", "9.1-1"),
        ("pypi", "pip", "24.0"),
    }
    document = json.loads(sbom.cyclonedx("app", "sha256:" + "0" * 64, files, datetime.now(UTC)))
    assert document["bomFormat"] == "CycloneDX" and document["specVersion"] == "1.5"
    purls = sorted(c["purl"] for c in document["components"])
    assert purls == [
        "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12",
        "pkg:deb/debian/coreutils@9.1-1?arch=amd64&distro=debian-12",
        "pkg:pypi/pip@24.0",
    ]
    assert document["metadata"]["component"]["name"] == "app"


def test_sbom_of_a_scratch_image_lists_its_executables() -> None:
    import hashlib

    binary = b"\x7fELF static"
    layers = [_layer({"bin/tool": binary}, mode=0o755), _layer({"etc/motd": b"hi"})]
    files = sbom.package_files([lambda data=data: io.BytesIO(data) for data in layers])
    document = json.loads(sbom.cyclonedx("tool", "sha256:" + "0" * 64, files, datetime.now(UTC)))
    [component] = document["components"]
    assert component["type"] == "file" and component["name"] == "/bin/tool"
    assert component["hashes"] == [{"alg": "SHA-256",
                                    "content": hashlib.sha256(binary).hexdigest()}]  # fmt: skip


def test_provenance_holds_no_secret_and_names_the_build() -> None:
    from builder_resource.attesting import concourse, public_params
    from builder_resource.config import OutRequest, parse_request

    request = parse_request(OutRequest, {
        "source": {"repository": "/s", "password": "src-pass", "username": "u",
                   "env": {"TOKEN": "env-secret"}, "signing_key": "KEY",
                   "signing_key_password": "key-pass",
                   "registries": [{"host": "h", "username": "u", "password": "reg-pass"}]},
        "params": {"context": "src", "env": {"API": "param-secret"}, "version": "1.0"},
    })  # fmt: skip
    env = {
        "BUILD_TEAM_NAME": "main",
        "BUILD_PIPELINE_NAME": "app",
        "BUILD_JOB_NAME": "build",
        "BUILD_NAME": "7",
        "ATC_EXTERNAL_URL": "https://ci.example.org",
        "BUILD_ID": "99",
    }
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    facts = PutFacts(
        repository="registry.example.org/app", tag="1.0", command="make release",
        output="release", params=public_params(request.source, request.params),
        builder="buildah", git_remote="https://git.example.org/app.git",
        git_revision="a" * 40, concourse=concourse(env), started=when, finished=when,
    )  # fmt: skip
    raw = provenance_statement(facts, "sha256:" + "c" * 64)
    for secret in ("src-pass", "env-secret", "param-secret", "key-pass", "reg-pass", "KEY"):
        assert secret.encode() not in raw
    statement = json.loads(raw)
    assert statement["subject"] == [{"name": "registry.example.org/app:1.0",
                                     "digest": {"sha256": "c" * 64}}]  # fmt: skip
    predicate = statement["predicate"]
    external = predicate["buildDefinition"]["externalParameters"]
    assert external["params"] == {"context": "src", "env": ["API", "TOKEN"], "version": "1.0"}
    assert external["source"] == {"uri": "https://git.example.org/app.git", "revision": "a" * 40}
    run = predicate["runDetails"]
    assert run["builder"]["id"] == "https://ci.example.org/teams/main/pipelines/app/jobs/build"
    assert run["metadata"] == {"invocationId": "https://ci.example.org/builds/99",
                               "startedOn": "2026-01-02T03:04:05Z",
                               "finishedOn": "2026-01-02T03:04:05Z"}  # fmt: skip
