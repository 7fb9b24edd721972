"""wss:// with Python `websockets` over the ssl module: an OpenSSL client
against rustls, with certificates made in the test by trustme."""
import asyncio
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

TIMEOUT = 10


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def tls_version(ws):
    return ws.transport.get_extra_info("ssl_object").version()


def test_wss_echoes_text_and_binary(start_server, tls_files):
    server = start_server(*tls_files.server_args())
    assert server.url.startswith("wss://127.0.0.1:")

    async def scenario():
        async with connect(server.url, ssl=tls_files.client_context(), max_size=None) as ws:
            for message in ["hello", "héllo €𝄞", b"\x00\xff", bytes(range(256)) * 4096]:
                await ws.send(message)
                assert await ws.recv() == message
            assert tls_version(ws) == "TLSv1.3"

    run(scenario())


def test_a_pfx_made_by_openssl_loads_with_its_password(start_server, tls_files, tmp_path):
    key = serialization.load_pem_private_key(tls_files.server.private_key_pem.bytes(), None)
    cert, *chain = (
        x509.load_pem_x509_certificate(blob.bytes()) for blob in tls_files.server.cert_chain_pems
    )
    pfx = tmp_path / "server.pfx"
    pfx.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"server", key, cert, chain, serialization.BestAvailableEncryption(b"s3cret")
        )
    )
    server = start_server(
        "--set", "UseSSL=True",
        "--set", "SSLCertStoreType=PFXFile",
        "--set", f"SSLCertStore={pfx}",
        "--set", "SSLCertStorePassword=s3cret",
    )

    async def scenario():
        async with connect(server.url, ssl=tls_files.client_context()) as ws:
            await ws.send("from a PFX")
            assert await ws.recv() == "from a PFX"

    run(scenario())


@pytest.mark.parametrize("mask, version", [("3072", "TLSv1.2"), ("12288", "TLSv1.3")])
def test_the_enabled_protocol_is_what_openssl_negotiates(start_server, tls_files, mask, version):
    server = start_server(*tls_files.server_args("--set", f"SSLEnabledProtocols={mask}"))

    async def scenario():
        async with connect(server.url, ssl=tls_files.client_context()) as ws:
            assert tls_version(ws) == version
            await ws.send(version)
            assert await ws.recv() == version

    run(scenario())


def test_mutual_tls_needs_a_certificate_of_the_client_ca(start_server, tls_files):
    server = start_server(
        *tls_files.server_args(
            "--set", "SSLAuthenticateClients=True",
            "--set", f"SSLClientCACerts={tls_files.ca.cert_pem.bytes().decode()}",
        )
    )

    async def with_certificate():
        context = tls_files.client_context(with_certificate=True)
        async with connect(server.url, ssl=context) as ws:
            await ws.send("alice")
            assert await ws.recv() == "alice"

    async def without_certificate():
        with pytest.raises((OSError, WebSocketException)):
            async with connect(server.url, ssl=tls_files.client_context()) as ws:
                await ws.recv()

    run(with_certificate())
    run(without_certificate())
