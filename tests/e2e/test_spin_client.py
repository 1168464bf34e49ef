"""A client playing Spin 1.x against a live server: push, re-push, fetch, yank."""

from __future__ import annotations

import httpx
import pytest
import tomli

from tests.factories import as_submitted, spin_invoice, spin_invoice_toml
from tests.servers import ServerProcess


@pytest.mark.parametrize("version", ["1.0.0", "1.0.0+build.42"])
def test_spin_push_and_fetch_round_trip(live_server: ServerProcess, version: str) -> None:
    doc, parcels = spin_invoice(version)
    body = spin_invoice_toml(doc)
    bindle_id = doc.bindle_id
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        created = client.post("/_i", content=body, headers={"Content-Type": "application/toml"})
        assert created.status_code == 202
        created_doc = tomli.loads(created.text)
        assert len(created_doc["missing"]) == 3
        manifest_label = created_doc["invoice"]["parcel"][0]["label"]
        assert manifest_label["annotations"] == {"fermyon:spin:delete_on_write": "."}
        assert created_doc["invoice"]["parcel"][1]["conditions"] == {}

        for p in parcels:
            upload = client.post(f"/_i/{bindle_id}@{p.sha256}", content=p.data)
            assert upload.status_code == 200, upload.text

        again = client.post("/_i", content=body, headers={"Content-Type": "application/toml"})
        assert again.status_code == 409

        missing = client.get(f"/_r/missing/{bindle_id}")
        assert tomli.loads(missing.text) == {"missing": []}

        invoice = client.get(f"/_i/{bindle_id}")
        assert invoice.status_code == 200
        assert as_submitted(tomli.loads(invoice.text)) == tomli.loads(body.decode())
        for p in parcels:
            download = client.get(f"/_i/{bindle_id}@{p.sha256}")
            assert download.status_code == 200
            assert download.content == p.data
            assert download.headers["content-type"] == p.media_type

        assert client.delete(f"/_i/{bindle_id}").status_code == 200
        assert client.get(f"/_i/{bindle_id}").status_code == 403
        yanked = client.get(f"/_i/{bindle_id}", params={"yanked": "true"})
        assert yanked.status_code == 200
        assert tomli.loads(yanked.text)["yanked"] is True
