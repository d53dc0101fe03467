"""Which SBOM statements of an earlier version a put may take (``reusable_sboms``):
only a CycloneDX statement about exactly the image its referrer names."""

from __future__ import annotations

from pathlib import Path

from builder_resource.attest import sbom
from builder_resource.attest.referrers import (
    IMAGE_DIGEST,
    IMAGE_NAME,
    Attestation,
    attachments,
    publish_attachments,
)
from builder_resource.attest.statement import statement
from builder_resource.attest.version import reusable_sboms
from builder_resource.oci import media_types as mt
from builder_resource.oci.descriptor import Descriptor, canonical_json
from builder_resource.store.layout import LayoutStore

IMAGE = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
BOM = {"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []}


def sbom_about(name: str, digest: str, bom: dict | None = None) -> bytes:
    return statement([(name, digest)], sbom.PREDICATE_TYPE, bom or BOM)


def version_with(store: LayoutStore, found: list[Attestation]) -> str:
    index = canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []})
    digest = store.push_manifest(index, mt.OCI_INDEX, "v1")
    subject = Descriptor(mt.OCI_INDEX, digest, len(index))
    publish_attachments(store, attachments(subject, found, store.location, None), digest)
    return digest


def test_only_a_statement_about_the_image_its_referrer_names(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "store")
    honest = sbom_about("app", IMAGE)
    version = version_with(
        store,
        [
            Attestation(honest, sbom.PREDICATE_TYPE, {IMAGE_NAME: "app", IMAGE_DIGEST: IMAGE}),
            # annotated as one image, about another
            Attestation(
                sbom_about("web", OTHER),
                sbom.PREDICATE_TYPE,
                {IMAGE_NAME: "web", IMAGE_DIGEST: IMAGE},
            ),
            # another CycloneDX version than this resource writes
            Attestation(
                sbom_about("db", IMAGE, {**BOM, "specVersion": "1.4"}),
                sbom.PREDICATE_TYPE,
                {IMAGE_NAME: "db", IMAGE_DIGEST: IMAGE},
            ),
        ],
    )
    assert reusable_sboms(store, version, None) == {("app", IMAGE): honest}


def test_nothing_from_a_version_that_cannot_be_read(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "store")
    assert reusable_sboms(store, OTHER, None) == {}
