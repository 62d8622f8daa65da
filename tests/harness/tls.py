"""TLS connections made by hand, for what http.request() hides: the protocol version and suite,
the SNI name (or none), session resumption, and connections held open or left half-sent."""

import socket
import ssl

TLS12, TLS13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3


def tls_context(version=None, ciphers=None):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the test's own certificate
    if version:
        context.minimum_version = context.maximum_version = version
    if ciphers:
        context.set_ciphers(ciphers)
    return context


def tls_connect(nginx, *, sni="localhost", source="127.0.0.1", context=None, session=None):
    """A TLS connection to nginx's HTTPS port, naming sni (None: no name, as for an IP address)."""
    sock = socket.create_connection(("127.0.0.1", nginx.https_port), 10, (source, 0))
    try:
        return (context or tls_context()).wrap_socket(sock, server_hostname=sni, session=session)
    except BaseException:
        sock.close()
        raise


def handshake(nginx, context=None, **options):
    """One request over a fresh TLS connection; returns the connection's (version, suite, session,
    resumed). The answer is read first: TLS 1.3 sends its session tickets after the handshake."""
    with tls_connect(nginx, context=context, **options) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert conn.recv(64).startswith(b"HTTP/1.1 200")
        return conn.version(), conn.cipher()[0], conn.session, conn.session_reused


# TLS 1.2: nothing arrives after the handshake until an answer (TLS 1.3 sends session tickets),
# so a connection that becomes readable has been answered or closed.
QUIET = tls_context(TLS12)
