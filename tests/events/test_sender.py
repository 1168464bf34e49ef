"""The webhook sender: HTTP/1.1 POSTs on kept connections, reading an answer only when its
end is known; proxies and a URL's user part as httpx handles them."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from bindle_server.events.sender import Sender, SendError
from tests.events.receiver import WAIT, Receiver

Answer = Callable[[int], bytes | None]  # request number -> raw answer, or None: hang up


@dataclass
class _Endpoint:
    """A raw HTTP/1.1 endpoint: it answers each request with what `answer` gives."""

    answer: Answer
    requests: list[tuple[int, bytes]] = field(default_factory=list)  # (connection, head)
    connections: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                self.requests.append((number, head))
                answer = self.answer(len(self.requests))
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


def _run(answer: Answer, scenario: Callable[[Sender, str], Awaitable[None]]) -> _Endpoint:
    endpoint = _Endpoint(answer)

    async def main() -> None:
        server = await asyncio.start_server(endpoint.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sender = Sender(WAIT, "test")
        try:
            await asyncio.wait_for(scenario(sender, f"http://127.0.0.1:{port}/hook"), WAIT)
        finally:
            await sender.aclose()
            server.close()

    asyncio.run(main())
    return endpoint


NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"


def test_answers_with_a_known_end_keep_the_connection_and_others_close_it() -> None:
    answers = {
        1: b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        2: NO_CONTENT,
        3: b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        4: b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        5: NO_CONTENT,
    }
    statuses: list[int] = []

    async def scenario(sender: Sender, url: str) -> None:
        for _ in answers:
            statuses.append(await sender.post(url, b"{}", {"X-Test": "yes"}))

    endpoint = _run(answers.__getitem__, scenario)
    assert statuses == [200, 204, 202, 500, 204]
    # Requests 1-3 on one connection; the chunked answer is not read, so 4 gets a new
    # one; 4's answer says close, so 5 gets another.
    assert [connection for connection, _ in endpoint.requests] == [1, 1, 1, 2, 3]
    first = endpoint.requests[0][1].decode()
    assert first.startswith("POST /hook HTTP/1.1\r\n")
    assert "\r\nX-Test: yes\r\n" in first and "\r\nContent-Length: 2\r\n" in first


def test_a_kept_connection_the_endpoint_drops_is_replaced_at_once() -> None:
    """An endpoint may close an idle connection as the next request goes out on it."""
    statuses: list[int] = []

    async def scenario(sender: Sender, url: str) -> None:
        for _ in range(2):
            statuses.append(await sender.post(url, b"{}", {}))

    # The second request is read and the connection closed without an answer.
    endpoint = _run(lambda number: None if number == 2 else NO_CONTENT, scenario)
    assert statuses == [204, 204]
    assert [connection for connection, _ in endpoint.requests] == [1, 1, 2]


def test_no_answer_is_a_send_error() -> None:
    async def scenario(sender: Sender, url: str) -> None:
        with pytest.raises(SendError):
            await sender.post(url, b"{}", {})  # a new connection: no second try
        with pytest.raises(SendError, match="not an HTTP/1 answer"):
            await sender.post(url, b"{}", {})
        with pytest.raises(SendError, match="cannot connect"):
            await sender.post("http://127.0.0.1:1/hook", b"{}", {})

    answers = {1: None, 2: b"SSH-2.0-OpenSSH\r\n\r\n"}
    _run(answers.__getitem__, scenario)


def test_a_user_in_the_url_is_sent_as_basic_authorization() -> None:
    async def scenario(sender: Sender, url: str) -> None:
        assert await sender.post(url.replace("://", "://ci:p%40ss@"), b"{}", {}) == 204

    endpoint = _run(lambda number: NO_CONTENT, scenario)
    expected = base64.b64encode(b"ci:p@ss").decode()
    assert f"\r\nAuthorization: Basic {expected}\r\n" in endpoint.requests[0][1].decode()


def test_a_url_the_environment_proxies_goes_through_the_proxy(
    monkeypatch: pytest.MonkeyPatch, receivers: Callable[..., Receiver]
) -> None:
    proxy = receivers()
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    target = "http://hooks.example:8080/hook"

    async def scenario() -> int:
        sender = Sender(WAIT, "test")
        try:
            return await sender.post(target, b"{}", {})
        finally:
            await sender.aclose()

    assert asyncio.run(scenario()) == 204
    # A proxy is asked for the whole URL (absolute form).
    assert [item.path for item in proxy.wait_for(1)] == [target]
