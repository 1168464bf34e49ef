"""Every `bindle` command as a real process: output, files, exit codes and error lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import tomli
import tomli_w

from bindle_server import __version__
from bindle_server.client import BindleClient
from bindle_server.model import SignatureRole, parse_invoice
from bindle_server.signing import KeyRing, SecretKeyFile, signature_verifies
from tests.client.cli import BindleCli
from tests.factories import make_invoice, parcel
from tests.servers import ServerProcess


def test_help_and_version_name_the_reference_commands_and_flags(bindle: BindleCli) -> None:
    shown = bindle.run("--help").stdout
    for flag in ("--server", "BINDLE_URL", "--bindle-dir", "--keyring", "--token-file"):
        assert flag in shown
    for flag in ("--http-user", "--http-password", "--insecure", "--debug"):
        assert flag in shown
    for command in (
        "info", "get", "get-invoice", "get-parcel", "push", "push-invoice", "push-file",
        "generate-label", "search", "yank", "package", "keys", "sign-invoice", "push-dir", "pull",
    ):  # fmt: skip
        assert f"  {command} " in shown
    assert bindle.run("--version").stdout.strip() == f"bindle {__version__}"
    assert "Search for bindles" in bindle.run("search", "--help").stdout


def test_push_invoice_push_file_info_and_get_invoice(bindle: BindleCli, work: Path) -> None:
    readme = parcel("# Read me\n", media_type="text/markdown", name="README.md")
    doc = make_invoice("example.com/cli", "0.3.0", parcels=[readme])
    (work / "invoice.toml").write_bytes(doc.toml())
    (work / "README.md").write_text("# Read me\n")

    created = bindle.run("push-invoice")  # ./invoice.toml by default, as the reference
    assert created.stdout.splitlines() == [
        "Invoice example.com/cli/0.3.0 created",
        f"missing parcel {readme.sha256} README.md",
    ]
    pushed = bindle.run("push-file", doc.bindle_id, "README.md")
    assert pushed.stdout.splitlines() == [
        "Uploading file README.md to server",
        "File successfully uploaded",
    ]
    assert "push README.md: 10 B of 10 B in" in pushed.stderr  # a plain progress line

    shown = tomli.loads(bindle.run("info", doc.bindle_id).stdout)
    assert shown["parcel"][0]["label"]["name"] == "README.md"
    as_json = json.loads(bindle.run("info", doc.bindle_id, "-f", "json").stdout)
    assert as_json["bindle"] == shown["bindle"] | {"description": None, "authors": None}

    bindle.run("get-invoice", doc.bindle_id, "-o", "copy.toml")
    assert (
        parse_invoice((work / "copy.toml").read_bytes()).bindle_id
        == parse_invoice(doc.toml()).bindle_id
    )
    again = bindle.run("get-invoice", doc.bindle_id, "-o", "copy.toml", check=False)
    assert again.returncode == 1 and "FileExistsError" in again.stderr

    bindle.run("get-parcel", doc.bindle_id, readme.sha256, "-o", "fetched.md")
    assert (work / "fetched.md").read_text() == "# Read me\n"
    duplicate = bindle.run("push-invoice", "invoice.toml", check=False)
    assert duplicate.returncode == 1
    assert duplicate.stderr.strip().splitlines()[-1].startswith("InvoiceExists: ")


def test_generate_label_prints_a_label_table(bindle: BindleCli, work: Path) -> None:
    (work / "app.wasm").write_bytes(b"\x00asm")
    label = tomli.loads(bindle.run("generate-label", "app.wasm").stdout)
    assert label == {
        "sha256": parcel(b"\x00asm").sha256,
        "mediaType": "application/wasm",
        "name": "app.wasm",
        "size": 4,
    }
    named = tomli.loads(bindle.run("generate-label", "app.wasm", "-n", "x", "-m", "a/b").stdout)
    assert (named["name"], named["mediaType"]) == ("x", "a/b")


def test_search_pages_filters_and_formats(live_server: ServerProcess, bindle: BindleCli) -> None:
    with BindleClient(live_server.url) as client:
        for version in ("1.0.0", "1.1.0", "2.0.0"):
            document = make_invoice("example.com/searchme", version).document()
            document["bindle"]["description"] = f"release {version}"
            client.create_invoice(tomli_w.dumps(document).encode())
        client.create_invoice(make_invoice("example.com/undescribed", "1.0.0").toml())
        client.yank_invoice("example.com/searchme/2.0.0")

    plain = bindle.run("search", "-q", "undescribed").stdout.splitlines()
    assert plain[0] == "example.com/undescribed/1.0.0:\t[no description available]"
    table = bindle.run("search", "-q", "searchme", "--limit", "1").stdout.splitlines()
    assert table == [
        "example.com/searchme/1.0.0:\trelease 1.0.0",
        "=== Showing results 1 to 1 of 2 (limit: 1) - More results are available with --offset=1",
    ]
    page2 = bindle.run("search", "-q", "searchme", "--limit", "1", "--offset", "1").stdout
    assert page2.startswith("example.com/searchme/1.1.0:")
    as_toml = tomli.loads(bindle.run("search", "-q", "searchme", "-f", "toml").stdout)
    assert [i["bindle"]["version"] for i in as_toml["invoices"]] == ["1.0.0", "1.1.0"]
    with_yanked = json.loads(
        bindle.run("search", "-q", "searchme", "--yanked", "true", "-f", "json").stdout
    )
    assert (with_yanked["total"], with_yanked["yanked"]) == (3, True)
    ranged = bindle.run("search", "-q", "searchme", "-b", "^1.1", "--strict", "true").stdout
    assert ranged.splitlines()[0].startswith("example.com/searchme/1.1.0:")
    nothing = bindle.run("search", "-q", "no-such-bindle").stdout
    assert nothing.strip() == "No matching bindles were found"
    bad = bindle.run("search", "--strict", "maybe", check=False)
    assert bad.returncode == 2 and "expected true or false" in bad.stderr


def test_yank_then_info_needs_the_yanked_flag(
    live_server: ServerProcess, bindle: BindleCli
) -> None:
    doc = make_invoice("example.com/yankme", "1.0.0")
    with BindleClient(live_server.url) as client:
        client.create_invoice(doc.toml())
    assert bindle.run("yank", doc.bindle_id).stdout.strip() == f"Bindle {doc.bindle_id} yanked"
    refused = bindle.run("info", doc.bindle_id, check=False)
    assert refused.returncode == 1
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith(f"BindleYanked: invoice {doc.bindle_id} is yanked; add -y (--yanked)")
    assert "?yanked=true" not in refused.stderr  # the server's parameter, not the CLI's flag
    fetch = bindle.run("get", doc.bindle_id, check=False)
    assert fetch.returncode == 1 and "add -y (--yanked) to fetch it anyway" in fetch.stderr
    assert tomli.loads(bindle.run("info", "-y", doc.bindle_id).stdout)["yanked"] is True


def test_errors_are_one_red_line_and_debug_adds_the_traceback(bindle: BindleCli) -> None:
    plain = bindle.run("info", "example.com/missing/1.0.0", check=False)
    assert plain.returncode == 1
    assert plain.stderr.count("\n") == 1
    assert plain.stderr.startswith("InvoiceNotFound: invoice example.com/missing/1.0.0 not found")
    debug = bindle.run("--debug", "info", "example.com/missing/1.0.0", check=False)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1].startswith("InvoiceNotFound: ")
    unreachable = bindle.run("info", "a/1.0.0", server="http://127.0.0.1:9/v1", check=False)
    assert unreachable.returncode == 1 and unreachable.stderr.startswith("ConnectionFailed: ")
    invalid = bindle.run("info", "no-version", check=False)
    assert invalid.returncode == 1 and invalid.stderr.startswith("InvalidInput: ")
    usage = bindle.run("--http-user", "me", "info", "a/1.0.0", check=False)
    assert usage.returncode == 2 and "--http-user and --http-password go together" in usage.stderr


def test_server_url_comes_from_bindle_url(live_server: ServerProcess, work: Path) -> None:
    doc = make_invoice("example.com/env", "1.0.0")
    with BindleClient(live_server.url) as client:
        client.create_invoice(doc.toml())
    env = {k: v for k, v in os.environ.items() if not k.startswith("BINDLE_")}
    env["BINDLE_URL"] = live_server.url
    shown = subprocess.run(
        [sys.executable, "-P", "-m", "bindle_server.cli.client", "info", doc.bindle_id],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=work,
        check=True,
    )
    assert tomli.loads(shown.stdout)["bindle"]["name"] == "example.com/env"


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Authorization"))
        body = b'error = "invoice a/1.0.0 not found"\n'
        self.send_response(404)
        self.send_header("Content-Type", "application/toml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str | None]]]:
    """A loopback HTTP server that answers 404 and records Authorization headers."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", _Recorder.seen
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def test_basic_credentials_and_token_files_are_sent(
    recorder: tuple[str, list[str | None]], work: Path
) -> None:
    url, seen = recorder
    cli = BindleCli(url, work, env={"BINDLE_HTTP_USER": "ci", "BINDLE_HTTP_PASSWORD": "s3cret"})
    assert cli.run("info", "a/1.0.0", check=False).returncode == 1
    (work / "token").write_text("abc.def.ghi\n")
    (work / "login.toml").write_text('access_token = "x"\nid_token = "oidc.id.token"\n')
    cli.run("-t", "token", "info", "a/1.0.0", check=False)
    cli.run("-t", "login.toml", "info", "a/1.0.0", check=False)
    assert seen == ["Basic Y2k6czNjcmV0", "Bearer abc.def.ghi", "Bearer oidc.id.token"]


def test_keys_create_add_print_fetch_and_sign_invoice(
    live_server: ServerProcess, bindle: BindleCli, work: Path
) -> None:
    created = bindle.run("keys", "create", "Ada <ada@example.com>", "-f", "secrets.toml")
    assert "Writing keys to secrets.toml" in created.stdout
    secret = SecretKeyFile.load(work / "secrets.toml").keys[0]
    assert secret.roles == (SignatureRole.CREATOR,)
    assert (work / "secrets.toml").stat().st_mode & 0o077 == 0
    printed = KeyRing.loads(bindle.run("keys", "print", "-f", "secrets.toml").stdout)
    assert [entry.key for entry in printed.entries] == [secret.public_key]
    assert (
        bindle.run("keys", "print", "-f", "secrets.toml", "-m", "nobody").stdout.count("[[key]]")
        == 0
    )

    bindle.run("keys", "add", "Bob", "approver,proxy", secret.public_key)
    assert bindle.run("keys", "fetch").stdout.splitlines()[-1].startswith("Wrote 1 keys")
    assert bindle.run("keys", "fetch").stdout.splitlines()[-1].startswith("Wrote 0 keys")
    keyring = KeyRing.load(bindle.keyring)
    assert [sorted(r.value for r in entry.roles) for entry in keyring.entries] == [
        ["creator"],
        ["approver", "proxy"],
        ["host"],
    ]
    bad = bindle.run("keys", "add", "Eve", "creator", "not-a-key", check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("InvalidInput: 'not-a-key'")

    (work / "invoice.toml").write_bytes(make_invoice("example.com/signed", "1.0.0").toml())
    signed = bindle.run("sign-invoice", "invoice.toml", "-f", "secrets.toml", "-o", "signed.toml")
    assert "with role as 'creator', label as 'Ada <ada@example.com>'" in signed.stdout
    invoice = parse_invoice((work / "signed.toml").read_bytes())
    (signature,) = invoice.signature or []
    assert signature.key == secret.public_key and signature_verifies(invoice, signature)
    no_key = bindle.run(
        "sign-invoice", "invoice.toml", "-f", "secrets.toml", "-r", "host", check=False
    )
    assert no_key.returncode == 2 and "no key with the host role" in no_key.stderr


def test_strategy_verifies_fetched_invoices_against_the_keyring(
    live_server: ServerProcess, bindle: BindleCli
) -> None:
    doc = make_invoice("example.com/verified", "1.0.0")
    with BindleClient(live_server.url) as client:
        client.create_invoice(doc.toml())
    strategy = ("--strategy", "MultipleAttestationGreedy[Host]")
    untrusted = bindle.run(*strategy, "info", doc.bindle_id, check=False)
    assert untrusted.returncode == 1 and untrusted.stderr.startswith("SignatureRejected: ")
    bindle.run("keys", "fetch")
    assert "example.com/verified" in bindle.run(*strategy, "info", doc.bindle_id).stdout


def test_get_fills_the_bindle_directory_and_clean_empties_it(
    live_server: ServerProcess, bindle: BindleCli
) -> None:
    payload = parcel("cached bytes", name="c.txt")
    doc = make_invoice("example.com/cache", "1.0.0", parcels=[payload])
    with BindleClient(live_server.url) as client:
        client.create_invoice(doc.toml())
        client.upload_parcel(doc.bindle_id, payload.sha256, payload.data)
    bindle.run("get", doc.bindle_id)
    assert (bindle.cache / "parcels" / payload.sha256 / "parcel.dat").read_text() == "cached bytes"
    assert list((bindle.cache / "invoices").rglob("invoice.toml"))
    assert "Clean up successful" in bindle.run("clean").stdout
    assert sorted(p.name for p in bindle.cache.iterdir()) == []


def test_progress_bars_are_drawn_when_stderr_is_a_terminal(
    live_server: ServerProcess, work: Path
) -> None:
    payload = parcel(os.urandom(4 * 1024 * 1024), name="big.bin")
    doc = make_invoice("example.com/tty", "1.0.0", parcels=[payload])
    with BindleClient(live_server.url) as client:
        client.create_invoice(doc.toml())
        client.upload_parcel(doc.bindle_id, payload.sha256, payload.data)
    primary, secondary = os.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BINDLE_")}
    env.update(COLUMNS="120", TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    command = [sys.executable, "-P", "-m", "bindle_server.cli.client", "-s", live_server.url]
    process = subprocess.Popen(
        [*command, "get-parcel", doc.bindle_id, payload.sha256, "-o", "big.bin"],
        stdout=subprocess.PIPE,
        stderr=secondary,
        cwd=work,
        env=env,
    )
    os.close(secondary)
    drawn = bytearray()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        drawn.extend(chunk)
    os.close(primary)
    assert process.wait(timeout=60) == 0
    assert process.stdout is not None and b"Wrote parcel" in process.stdout.read()
    process.stdout.close()
    text = drawn.decode(errors="replace")
    assert "\x1b[" in text  # drawn with terminal control sequences
    assert "get big.bin" in text and "4.0/4.0 MiB" in text
