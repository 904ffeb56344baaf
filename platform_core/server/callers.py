"""Who a caller is: the customer an offer's API key (or the page's token) places the call for.

Shared by every process that answers /call: the platform (one process or a media worker) and the
cluster's front door, which checks the caller before it relays anything to a worker."""

from __future__ import annotations

from platform_core.config import ServerConfig
from platform_core.server.access import PAGE_TOKEN_PREFIX, PageTokens
from platform_core.server.host import Unauthorized


def is_page_token(api_key: object) -> bool:
    return isinstance(api_key, str) and api_key.startswith(PAGE_TOKEN_PREFIX)


def customer_for(server: ServerConfig, tokens: PageTokens, api_key: object) -> str:
    """The customer whose API key (or this process's page token: the default customer) places a call;
    raises Unauthorized saying what is wrong."""
    customers = server.customers()
    if isinstance(api_key, str) and api_key in customers:
        return customers[api_key]
    if isinstance(api_key, str) and is_page_token(api_key):
        problem = tokens.problem(api_key)
        if problem is None:
            return server.default_customer()
        minutes = tokens.ttl_s / 60
        raise Unauthorized(
            f"unauthorized: {problem}", f"reload the platform's page (its token lasts {minutes:.0f} min)"
        )
    if not api_key:
        raise Unauthorized(
            "unauthorized: the call has no API key",
            "send the platform's API key in the offer's api_key field (`serve` prints it, the desktop app "
            "shows it, the CLI reads --api-key or $CONVERSIMPLE_API_KEY)",
        )
    raise Unauthorized(
        "unauthorized: invalid API key",
        "use an API key configured on the platform (`serve` prints it; the desktop app shows it)",
    )
