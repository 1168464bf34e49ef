"""--upstream-verify: a mirrored invoice must carry a valid host signature by a key its
upstream publishes at /bindle-keys."""

from __future__ import annotations

import httpx
import tomli

from bindle_server.model import BindleId
from tests.mirror.conftest import MirrorFactory, invoice_stored, pushed
from tests.mirror.fake_upstream import fake_upstream
from tests.servers import ServerProcess


def test_an_invoice_host_signed_by_its_upstream_is_mirrored(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    doc, item = pushed(upstream)
    mirror = mirror_factory(upstream.url, extra=("--upstream-verify",))
    assert httpx.get(f"{mirror.url}/_i/{doc.bindle_id}").status_code == 200
    assert httpx.get(f"{mirror.url}/_i/{doc.bindle_id}@{item.sha256}").content == item.data


def test_a_host_signature_by_a_key_the_upstream_does_not_publish_is_refused(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    doc, _ = pushed(upstream)
    signed = httpx.get(f"{upstream.url}/_i/{doc.bindle_id}").content
    real_keys = httpx.get(f"{upstream.url}/bindle-keys", params={"roles": "host"}).content
    with fake_upstream() as fake:
        fake.invoices[doc.bindle_id] = signed  # the fake publishes no keys at all
        refusing = mirror_factory(fake.url, extra=("--upstream-verify",))
        response = httpx.get(f"{refusing.url}/_i/{doc.bindle_id}")
        assert response.status_code == 503
        assert "host signature" in tomli.loads(response.text)["error"]
        assert not invoice_stored(refusing, doc)

        fake.keys = real_keys  # now it publishes the key that signed the invoice
        accepting = mirror_factory(fake.url, extra=("--upstream-verify",))
        assert httpx.get(f"{accepting.url}/_i/{doc.bindle_id}").status_code == 200


def test_an_altered_invoice_fails_the_host_signature_check(
    upstream: ServerProcess, mirror_factory: MirrorFactory
) -> None:
    doc, item = pushed(upstream)
    signed = httpx.get(f"{upstream.url}/_i/{doc.bindle_id}").text
    real_keys = httpx.get(f"{upstream.url}/bindle-keys", params={"roles": "host"}).content
    # Signatures cover the parcels' digests: point the label at other bytes.
    altered = signed.replace(item.sha256, "0" * 64)
    assert altered != signed
    with fake_upstream() as fake:
        fake.invoices[doc.bindle_id] = altered.encode()
        fake.keys = real_keys
        mirror = mirror_factory(fake.url, extra=("--upstream-verify",))
        assert httpx.get(f"{mirror.url}/_i/{doc.bindle_id}").status_code == 503
    assert not invoice_stored(mirror, doc)


def test_without_upstream_verify_an_unsigned_invoice_is_mirrored(
    mirror_factory: MirrorFactory,
) -> None:
    with fake_upstream() as fake:
        fake.invoices["example.com/unsigned/1.0.0"] = (
            b'bindleVersion = "1.0.0"\n[bindle]\nname = "example.com/unsigned"\nversion = "1.0.0"\n'
        )
        mirror = mirror_factory(fake.url)
        assert httpx.get(f"{mirror.url}/_i/example.com/unsigned/1.0.0").status_code == 200
    key = BindleId.parse("example.com/unsigned/1.0.0").key
    assert (mirror.data_dir / "invoices" / key / "invoice.toml").is_file()
