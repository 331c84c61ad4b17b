"""The baseline of `deskbridge bench baseline`: Microsoft's Graph SDK for Python (msgraph-sdk)
pages every user of each tenant and writes them to SQLite, as a typical MSP script does.

Usage: python users_to_sqlite.py CONFIG_JSON
CONFIG_JSON: {"graph_url": "http://127.0.0.1:PORT/v1.0", "database": "PATH",
              "select": ["id", ...], "tenants": [{"id": "...", "token": "..."}]}
The harness fetches each tenant's app token from the emulator beforehand, so what is timed is
paging, the SDK's model layer and the SQLite writes. Prints one JSON line: users, pages, seconds.
"""
import asyncio
import json
import sqlite3
import sys
import time

import httpx
from kiota_abstractions.authentication import AccessTokenProvider, AllowedHostsValidator
from kiota_abstractions.authentication.base_bearer_token_authentication_provider import (
    BaseBearerTokenAuthenticationProvider,
)
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph_core import GraphClientFactory
from msgraph_core.tasks.page_iterator import PageIterator


class StaticTokenProvider(AccessTokenProvider):
    def __init__(self, token):
        self.token = token

    async def get_authorization_token(self, uri, additional_authentication_context=None):
        return self.token

    def get_allowed_hosts_validator(self):
        return AllowedHostsValidator(["127.0.0.1"])


async def sync_tenant(config, tenant, db):
    http = GraphClientFactory.create_with_default_middleware(client=httpx.AsyncClient(timeout=120))
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(StaticTokenProvider(tenant["token"])), client=http)
    adapter.base_url = config["graph_url"]
    client = GraphServiceClient(request_adapter=adapter)
    query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(select=config["select"], top=999)
    first = await client.users.get(request_configuration=RequestConfiguration(query_parameters=query))
    rows = []

    def collect(user):
        rows.append((
            tenant["id"], user.id, user.display_name, user.user_principal_name, user.mail,
            1 if user.account_enabled else 0, user.user_type, user.department, user.job_title,
        ))
        return True

    await PageIterator(first, adapter).iterate(collect)
    db.executemany(
        "INSERT OR REPLACE INTO users (tenant_id, id, display_name, upn, mail, enabled, user_type, department, job_title)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    db.commit()
    return len(rows)


async def main(path):
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    db = sqlite3.connect(config["database"])
    db.execute(
        "CREATE TABLE IF NOT EXISTS users (tenant_id TEXT, id TEXT, display_name TEXT, upn TEXT, mail TEXT,"
        " enabled INTEGER, user_type TEXT, department TEXT, job_title TEXT, PRIMARY KEY (tenant_id, id))"
    )
    started = time.perf_counter()
    users = 0
    for tenant in config["tenants"]:
        users += await sync_tenant(config, tenant, db)
    seconds = time.perf_counter() - started
    stored = db.execute("SELECT COUNT(*) FROM users").fetchone()[0]
    db.close()
    print(json.dumps({"users": users, "stored": stored, "seconds": seconds}))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: users_to_sqlite.py CONFIG_JSON")
    asyncio.run(main(sys.argv[1]))
