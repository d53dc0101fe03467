"""Issue 14 end to end: examples/hello put to a real registry (distribution 2.8:
no referrers API, so the referrers tag schema) with a signing key made by openssl;
skopeo reads what is attached, openssl verifies the signatures over the exact
bytes, get and check verify with the public key and refuse what they should."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from fixtures.concourse import Concourse
from fixtures.registry import Registry, skopeo_env
from fixtures.tools import require

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hello"
PASSWORD = "key-pass-4f1e"
SECRETS = ("key-pass-4f1e", "s3cr3t-token", "env-value-93ab", "BEGIN ENCRYPTED PRIVATE KEY")

pytestmark = pytest.mark.e2e


def run(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> dict:
    require("buildah", "skopeo", "openssl", "git", "make")
    tmp = tmp_path_factory.mktemp("signed")
    key, pub, other = tmp / "key.pem", tmp / "pub.pem", tmp / "other.pub"
    run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-aes-256-cbc", "-pass", f"pass:{PASSWORD}", "-out", str(key))  # fmt: skip
    run("openssl", "pkey", "-in", str(key), "-passin", f"pass:{PASSWORD}", "-pubout",
        "-out", str(pub))  # fmt: skip
    run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(tmp / "o"))
    run("openssl", "pkey", "-in", str(tmp / "o"), "-pubout", "-out", str(other))
    src = tmp / "put" / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("release", "busybox"))
    run("git", "init", "-q", cwd=src)
    run("git", "-c", "user.name=t", "-c", "user.email=t@e.org", "add", ".", cwd=src)
    run("git", "-c", "user.name=t", "-c", "user.email=t@e.org", "commit", "-qm", "x", cwd=src)
    run("git", "remote", "add", "origin", "https://b:s3cr3t-token@git.example.org/a.git", cwd=src)
    concourse = Concourse(tmp)
    repository = registry.repository("attest/hello")
    plain = {"repository": repository, "insecure": True}
    source = {**plain, "signing_key": key.read_text(), "signing_key_password": PASSWORD}
    params = {"context": "src", "env": {"VERSION": "1.0", "TOKEN": "env-value-93ab"}}
    result = concourse.put(source, {**params, "version": "1.0"}, tmp / "put")
    assert result.returncode == 0, result.stderr
    for secret in SECRETS:
        assert secret not in result.stderr + result.stdout
    return {
        "concourse": concourse,
        "plain": plain,
        "source": source,
        "version": result.json["version"],
        "registry": registry,
        "name": "attest/hello",
        "pub": pub,
        "other": other,
        "tmp": tmp,
        "revision": run("git", "rev-parse", "HEAD", cwd=src).strip(),
    }


def skopeo_raw(reference: str) -> bytes:
    return subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reference}"],
        capture_output=True, check=True, env=skopeo_env(),
    ).stdout  # fmt: skip


def blob(s: dict, digest: str) -> bytes:
    url = f"{s['registry'].url}/v2/{s['name']}/blobs/{digest}"
    data = requests.get(url, timeout=30).content
    assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
    return data


def referrers(s: dict) -> list[dict]:
    """Every referrer of the version, each read by skopeo and checked to name it."""
    digest = s["version"]["digest"]
    repo = s["plain"]["repository"]
    index = json.loads(skopeo_raw(f"{repo}:{digest.replace(':', '-')}"))
    found = []
    for entry in index["manifests"]:
        manifest = json.loads(skopeo_raw(f"{repo}@{entry['digest']}"))
        assert manifest["subject"]["digest"] == digest
        found.append({"entry": entry, "manifest": manifest})
    return found


def openssl_verifies(public: Path, message: bytes, signature: bytes, tmp: Path) -> bool:
    (tmp / "message").write_bytes(message)
    (tmp / "sig").write_bytes(signature)
    done = subprocess.run(
        ["openssl", "dgst", "-sha256", "-verify", str(public), "-signature", str(tmp / "sig"),
         str(tmp / "message")], capture_output=True, text=True,
    )  # fmt: skip
    return done.returncode == 0 and "Verified OK" in done.stdout


def test_everything_attached_is_a_referrer_skopeo_reads(signed: dict) -> None:
    kinds = sorted(
        (r["manifest"].get("annotations") or {}).get("in-toto.io/predicate-type", "signature")
        for r in referrers(signed)
    )
    assert kinds == [
        "https://cyclonedx.org/bom",
        "https://cyclonedx.org/bom",
        "https://slsa.dev/provenance/v1",
        "signature",
    ]
    # and check reports the version alone, not the attachment tags beside it
    assert signed["concourse"].check(signed["plain"]) == [signed["version"]]


def test_cosign_signature_verifies_with_openssl(signed: dict, tmp_path: Path) -> None:
    digest = signed["version"]["digest"]
    repo = signed["plain"]["repository"]
    manifest = json.loads(skopeo_raw(f"{repo}:{digest.replace(':', '-')}.sig"))
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    payload = blob(signed, layer["digest"])
    claims = json.loads(payload)["critical"]
    assert claims["image"]["docker-manifest-digest"] == digest
    assert claims["identity"]["docker-reference"] == repo
    signature = base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"])
    assert openssl_verifies(signed["pub"], payload, signature, tmp_path)
    assert not openssl_verifies(signed["other"], payload, signature, tmp_path)


def statements(signed: dict, tmp: Path) -> list[dict]:
    """Each attestation's DSSE envelope, verified by openssl over its PAE bytes."""
    out = []
    for r in referrers(signed):
        [layer] = r["manifest"]["layers"]
        if layer["mediaType"] != "application/vnd.dsse.envelope.v1+json":
            continue
        envelope = json.loads(blob(signed, layer["digest"]))
        payload = base64.b64decode(envelope["payload"])
        kind = envelope["payloadType"].encode()
        pae = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)
        sig = base64.b64decode(envelope["signatures"][0]["sig"])
        assert openssl_verifies(signed["pub"], pae, sig, tmp)
        out.append({"raw": payload, **json.loads(payload)})
    return out


def test_provenance_and_sboms_are_signed_and_say_what_was_built(
    signed: dict, tmp_path: Path
) -> None:
    found = statements(signed, tmp_path)
    assert len(found) == 3
    for statement in found:
        for secret in SECRETS:
            assert secret.encode() not in statement["raw"]
    [provenance] = [s for s in found if s["predicateType"] == "https://slsa.dev/provenance/v1"]
    assert provenance["subject"][0]["digest"] == {
        "sha256": signed["version"]["digest"].split(":")[1]
    }
    definition = provenance["predicate"]["buildDefinition"]
    external = definition["externalParameters"]
    assert external["command"] == "make release"
    assert external["source"] == {
        "uri": "https://git.example.org/a.git",
        "revision": signed["revision"],
    }
    assert external["params"]["env"] == ["TOKEN", "VERSION"]
    run_details = provenance["predicate"]["runDetails"]
    assert run_details["builder"]["id"] == (
        "https://ci.example.org/teams/main/pipelines/app/jobs/build"
    )
    assert run_details["metadata"]["invocationId"].endswith("/builds/42")
    assert run_details["metadata"]["startedOn"] <= run_details["metadata"]["finishedOn"]
    # greeter is FROM hello: buildah recorded the base by digest, and so does the provenance
    bases = [d for d in definition["resolvedDependencies"] if d.get("annotations")]
    assert [(b["uri"], b["annotations"]) for b in bases] == [
        ("docker://localhost/hello:1.0", {"image": "greeter"})
    ]
    # hello is FROM scratch with a static busybox: its SBOM lists that binary
    sbom = next(s["predicate"] for s in found if s["subject"][0]["name"] == "hello")
    assert sbom["specVersion"] == "1.5"
    busybox = Path(shutil.which("busybox") or "/bin/busybox").read_bytes()
    [listed] = [c for c in sbom["components"] if c["name"] == "/bin/busybox"]
    assert listed["type"] == "file"
    assert listed["hashes"] == [{"alg": "SHA-256", "content": hashlib.sha256(busybox).hexdigest()}]


def test_get_verifies_and_writes_the_attestations(signed: dict, tmp_path: Path) -> None:
    concourse, version = signed["concourse"], signed["version"]
    source = {**signed["plain"], "verify_keys": [signed["pub"].read_text()]}
    assert concourse.check(source) == [version]
    dest = tmp_path / "get"
    result = concourse.get(source, version, {"attestations": True, "skip_download": True}, dest)
    assert result.returncode == 0, result.stderr
    written = sorted(str(p.relative_to(dest)) for p in (dest / "attestations").rglob("*"))
    assert written == sorted(
        [
            "attestations/provenance.dsse.json",
            "attestations/provenance.json",
            "attestations/sbom",
            "attestations/sbom/greeter.cdx.json",
            "attestations/sbom/greeter.cdx.dsse.json",
            "attestations/sbom/hello.cdx.dsse.json",
            "attestations/sbom/hello.cdx.json",
        ]
    )
    assert json.loads((dest / "attestations/sbom/hello.cdx.json").read_text())["bomFormat"] == (
        "CycloneDX"
    )
    assert not (dest / "release" / "attestations").exists()


def test_a_wrong_key_is_refused_by_get_and_skipped_by_check(signed: dict, tmp_path: Path) -> None:
    concourse, version = signed["concourse"], signed["version"]
    source = {**signed["plain"], "verify_keys": [signed["other"].read_text()]}
    result = concourse.run("check", {"source": source, "version": None})
    assert result.returncode == 0 and result.json == []
    assert f"skipping version 1.0: version {version['digest']}" in result.stderr
    dest = tmp_path / "get"
    result = concourse.get(source, version, None, dest)
    assert result.returncode != 0
    assert result.error_line.startswith(f"error: version {version['digest']}: its signature")
    assert list(dest.iterdir()) == []


def test_an_unsigned_version_is_refused(signed: dict, tmp_path: Path) -> None:
    concourse = signed["concourse"]
    plain = {**signed["plain"], "repository": signed["plain"]["repository"] + "-plain"}
    result = concourse.put(
        {**plain, "sbom": False},
        {"context": "src", "command": "make release VERSION=2.0", "version": "2.0"},
        signed["tmp"] / "put",
    )
    assert result.returncode == 0, result.stderr
    version = result.json["version"]
    verifying = {**plain, "verify_keys": [signed["pub"].read_text()]}
    dest = tmp_path / "get"
    result = concourse.get(verifying, version, None, dest)
    assert result.error_line == (
        f"error: version {version['digest']} is not signed: no "
        f"{version['digest'].replace(':', '-')}.sig in {plain['repository']}"
    )
    assert list(dest.iterdir()) == []
    assert concourse.check(verifying) == []
    # sbom: false attaches the provenance alone
    index = json.loads(skopeo_raw(f"{plain['repository']}:{version['digest'].replace(':', '-')}"))
    assert [m["annotations"]["in-toto.io/predicate-type"] for m in index["manifests"]] == [
        "https://slsa.dev/provenance/v1"
    ]
