"""An MCP server built with FastMCP (PyPI `fastmcp`), whose authorization
server is the MCP Python SDK's (`mcp.server.auth`, as FastMCP and Python
MCP servers with built-in auth serve it), on 127.0.0.1 only.

Its provider approves every authorization at once (no login page), issues
confidential clients at registration and, like every server built on that
SDK, reads `client_id` from the token request's form body before anything
else, even for a `client_secret_basic` client. One tool, `echo`.

Usage: python fastmcp_server.py [--port N]
Prints one JSON line {"origin": ..., "port": ...} once it accepts connections.
"""

import argparse
import json
import socket
import threading
import time

from fastmcp import FastMCP
from fastmcp.server.auth.auth import ClientRegistrationOptions
from fastmcp.server.auth.providers.in_memory import InMemoryOAuthProvider


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def announce_when_ready(port: int, origin: str) -> None:
    for _ in range(600):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                print(json.dumps({"origin": origin, "port": port}), flush=True)
                return
        except OSError:
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    port = args.port or free_port()
    origin = f"http://127.0.0.1:{port}"
    auth = InMemoryOAuthProvider(
        base_url=origin,
        client_registration_options=ClientRegistrationOptions(enabled=True),
    )
    mcp = FastMCP("FastMCP test server", auth=auth)

    @mcp.tool
    def echo(text: str) -> str:
        """Answers what it was given."""
        return text

    threading.Thread(target=announce_when_ready, args=(port, origin), daemon=True).start()
    mcp.run(transport="http", host="127.0.0.1", port=port, show_banner=False, log_level="warning")


if __name__ == "__main__":
    main()
