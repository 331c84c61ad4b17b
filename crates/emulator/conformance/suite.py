"""Conformance of the deskbridge emulator with Microsoft's own Python clients (msal, azure-identity,
msgraph-sdk).

Usage: python suite.py SUMMARY_JSON_FILE
The summary is the emulator's first stdout line. Exits non-zero on the first failure.
"""
import asyncio
import json
import logging
import ssl
import sys
import time
import urllib.request

import httpx
import msal
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential
from kiota_abstractions.authentication import AccessTokenProvider, AllowedHostsValidator
from kiota_abstractions.authentication.base_bearer_token_authentication_provider import (
    BaseBearerTokenAuthenticationProvider,
)
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder
from msgraph.generated.groups.delta.delta_request_builder import DeltaRequestBuilder as GroupsDelta
from msgraph.generated.users.delta.delta_request_builder import DeltaRequestBuilder as UsersDelta
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph_core import GraphClientFactory
from msgraph_core.requests.batch_request_content import BatchRequestContent
from msgraph_core.requests.batch_request_item import BatchRequestItem
from msgraph_core.tasks.page_iterator import PageIterator

GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]


def check(condition, message):
    if not condition:
        raise AssertionError(message)


class Context:
    def __init__(self, summary):
        self.summary = summary
        self.base = summary["base_url"]
        self.ca = summary["ca_cert_file"]
        self.ssl = ssl.create_default_context(cafile=self.ca)
        self.tenant = summary["tenants"][0]

    def app(self, kind):
        return next(a for a in self.summary["apps"] if a["kind"] == kind)

    def admin(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.summary['admin_url']}{path}", data=data, method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=self.ssl) as response:
            text = response.read()
            return json.loads(text) if text else None

    def msal_app(self, kind, credential):
        return msal.ConfidentialClientApplication(
            self.app(kind)["client_id"],
            client_credential=credential,
            authority=f"{self.base}/{self.tenant['id']}",
            validate_authority=False,
            instance_discovery=False,
            verify=self.ca,
        )


def token_with_secret(ctx):
    app = ctx.app("multi_tenant_secret")
    result = ctx.msal_app("multi_tenant_secret", app["client_secret"]).acquire_token_for_client(scopes=GRAPH_SCOPE)
    check("access_token" in result, f"msal secret flow failed: {result}")
    check(result.get("token_type") == "Bearer", f"unexpected token type: {result}")
    print("ok   msal ConfidentialClientApplication with a client secret")
    # A wrong secret surfaces Entra's error code through msal.
    bad = ctx.msal_app("multi_tenant_secret", "not-the-secret").acquire_token_for_client(scopes=GRAPH_SCOPE)
    check(bad.get("error") == "invalid_client" and 7000215 in bad.get("error_codes", []), f"wrong secret: {bad}")
    print("ok   msal reports AADSTS7000215 for a wrong secret")
    return result["access_token"]


def token_with_certificate(ctx):
    app = ctx.app("certificate")
    variants = {
        "RS256 + x5t (SHA-1 thumbprint)": {"private_key": app["private_key_pem"], "thumbprint": app["thumbprint"]},
        # Given the certificate itself, msal computes the SHA-256 thumbprint and signs with PS256.
        "PS256 + x5t#S256 (from the public certificate)": {
            "private_key": app["private_key_pem"], "public_certificate": app["certificate_pem"],
        },
    }
    for name, credential in variants.items():
        result = ctx.msal_app("certificate", credential).acquire_token_for_client(scopes=GRAPH_SCOPE)
        check("access_token" in result, f"msal certificate flow ({name}) failed: {result}")
        print(f"ok   msal ConfidentialClientApplication with a certificate, {name}")


class StaticTokenProvider(AccessTokenProvider):
    def __init__(self, token):
        self.token = token

    async def get_authorization_token(self, uri, additional_authentication_context=None):
        return self.token

    def get_allowed_hosts_validator(self):
        return AllowedHostsValidator(["127.0.0.1"])


def graph_client(ctx, token):
    http = GraphClientFactory.create_with_default_middleware(client=httpx.AsyncClient(verify=ctx.ssl, timeout=60))
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(StaticTokenProvider(token)), client=http)
    adapter.base_url = f"{ctx.base}/v1.0"
    return GraphServiceClient(request_adapter=adapter), adapter


async def page_through_users(ctx, client, adapter):
    query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
        select=["id", "displayName", "userPrincipalName", "accountEnabled"], top=999,
    )
    first = await client.users.get(request_configuration=RequestConfiguration(query_parameters=query))
    seen = []

    def collect(user):
        seen.append(user.id)
        return True

    await PageIterator(first, adapter).iterate(collect)
    expected = ctx.tenant["users"]
    check(len(seen) == expected, f"page iterator saw {len(seen)} users, expected {expected}")
    check(len(set(seen)) == len(seen), "a user appeared twice while paging")
    print(f"ok   PageIterator paged through {len(seen)} users")


async def delta_round(builder_get, with_url, link=None):
    """Follows a delta round; returns (items, deltaLink)."""
    items = []
    page = await (with_url(link).get() if link else builder_get())
    while True:
        items.extend(page.value or [])
        if page.odata_next_link:
            page = await with_url(page.odata_next_link).get()
            continue
        check(page.odata_delta_link, "the last page has no deltaLink")
        return items, page.odata_delta_link


def removed_reason(item):
    removed = (item.additional_data or {}).get("@removed")
    return removed.get("reason") if isinstance(removed, dict) else None


async def users_delta(ctx, client):
    tid = ctx.tenant["id"]
    query = UsersDelta.DeltaRequestBuilderGetQueryParameters(select=["displayName", "jobTitle"])
    get = lambda: client.users.delta.get(  # noqa: E731
        request_configuration=RequestConfiguration(query_parameters=query))
    with_url = client.users.delta.with_url
    initial, link = await delta_round(get, with_url)
    check(len(initial) == ctx.tenant["users"], f"initial users delta had {len(initial)} users")
    a, b, c = initial[1].id, initial[2].id, initial[3].id
    ctx.admin("DELETE", f"/tenants/{tid}/users/{a}")
    ctx.admin("DELETE", f"/tenants/{tid}/users/{b}")
    ctx.admin("POST", f"/tenants/{tid}/users/{b}/restore")
    ctx.admin("PATCH", f"/tenants/{tid}/users/{c}", {"jobTitle": "Delta Tester"})
    changes, link = await delta_round(get, with_url, link)
    by_id = {u.id: u for u in changes}
    check(removed_reason(by_id[a]) == "changed", f"soft-deleted user not reported as removed: {by_id.get(a)}")
    check(b in by_id and removed_reason(by_id[b]) is None, "restored user not reported as a normal entry")
    check(by_id[c].job_title == "Delta Tester", "updated jobTitle not in delta")
    ctx.admin("POST", f"/tenants/{tid}/users/{a}/restore")
    changes, _ = await delta_round(get, with_url, link)
    check([u.id for u in changes] == [a], f"expected only the restored user, got {[u.id for u in changes]}")
    print("ok   users delta round-trip across soft-delete, restore and update")


async def groups_delta(ctx, client):
    tid = ctx.tenant["id"]
    query = GroupsDelta.DeltaRequestBuilderGetQueryParameters(select=["displayName", "members"])
    config = RequestConfiguration(query_parameters=query)
    get = lambda: client.groups.delta.get(request_configuration=config)  # noqa: E731
    with_url = client.groups.delta.with_url
    initial, link = await delta_round(get, with_url)
    newsletter = next(g for g in initial if g.display_name == "Newsletter")
    members = set()
    for g in initial:
        if g.id == newsletter.id:
            members.update(str(m["id"]) for m in (g.additional_data or {}).get("members@delta", []))
    users = await client.users.get()
    outsider = next(u.id for u in users.value if u.id not in members)
    leaver = sorted(members)[0]
    ctx.admin("POST", f"/tenants/{tid}/groups/{newsletter.id}/members", {"id": outsider})
    ctx.admin("DELETE", f"/tenants/{tid}/groups/{newsletter.id}/members/{leaver}")
    changes, _ = await delta_round(get, with_url, link)
    entries = [g for g in changes if g.id == newsletter.id]
    check(entries, "membership change not reported in groups delta")
    # The SDK parses ids of untyped members into UUID objects: compare as strings.
    delta = [dict(m, id=str(m["id"])) for g in entries for m in (g.additional_data or {}).get("members@delta", [])]
    check(any(m["id"] == outsider and "@removed" not in m for m in delta), f"added member missing: {delta}")
    check(any(m["id"] == leaver and m.get("@removed", {}).get("reason") == "deleted" for m in delta),
          f"removed member missing: {delta}")
    print("ok   groups delta round-trip across a membership change")


async def batch(ctx, client):
    content = BatchRequestContent()
    users = BatchRequestItem(request_information=client.users.to_get_request_information(), id="users")
    org = BatchRequestItem(request_information=client.organization.to_get_request_information(), id="org",
                           depends_on=["users"])
    skus = BatchRequestItem(request_information=client.subscribed_skus.to_get_request_information(), id="skus")
    for item in (users, org, skus):
        content.add_request(item.id, item)
    response = await client.batch.post(batch_request_content=content)
    statuses = response.get_response_status_codes()
    check(statuses == {"users": 200, "org": 200, "skus": 200}, f"unexpected batch statuses: {statuses}")
    print("ok   $batch with dependsOn through the SDK's BatchRequestContent")


def azure_identity_credential(ctx, secret=None):
    """azure-identity pointed at the emulator: its base URL as the authority, no instance
    discovery (the authority is not one of Microsoft's), and the emulator's CA for TLS."""
    app = ctx.app("multi_tenant_secret")
    return ClientSecretCredential(
        ctx.tenant["id"], app["client_id"], secret or app["client_secret"],
        authority=ctx.base, disable_instance_discovery=True, connection_verify=ctx.ca,
    )


def azure_identity_tokens(ctx):
    token = azure_identity_credential(ctx).get_token(*GRAPH_SCOPE)
    check(token.token and token.expires_on > time.time(), f"azure-identity token: {token}")
    # azure-identity logs the refusal as a warning before raising it; the check below is the report.
    logging.getLogger("azure.identity").setLevel(logging.ERROR)
    try:
        azure_identity_credential(ctx, "not-the-secret").get_token(*GRAPH_SCOPE)
        check(False, "azure-identity accepted a wrong secret")
    except ClientAuthenticationError as e:
        check("AADSTS7000215" in str(e), f"wrong secret through azure-identity: {e}")
    print("ok   azure-identity ClientSecretCredential (emulator authority, no instance discovery), "
          "and AADSTS7000215 for a wrong secret")


def azure_identity_graph_client(ctx):
    """GraphServiceClient authenticated by azure-identity, as an application would build it."""
    provider = AzureIdentityAuthenticationProvider(
        azure_identity_credential(ctx), scopes=GRAPH_SCOPE, allowed_hosts=["127.0.0.1"])
    http = GraphClientFactory.create_with_default_middleware(client=httpx.AsyncClient(verify=ctx.ssl, timeout=60))
    adapter = GraphRequestAdapter(provider, client=http)
    adapter.base_url = f"{ctx.base}/v1.0"
    return GraphServiceClient(request_adapter=adapter)


async def sdk_paths(ctx, client):
    """The request builders' own URLs: keys percent-encoded (`%40`, `%23EXT%23`), the short
    casts `graph.user` / `graph.group`, `$select` of any group property, `/organization/{id}`."""
    query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
        select=["id", "userPrincipalName", "userType"], top=999)
    users = (await client.users.get(request_configuration=RequestConfiguration(query_parameters=query))).value
    member = next(u for u in users if u.user_type == "Member")
    guest = next(u for u in users if "#EXT#" in u.user_principal_name)
    for user in (member, guest):
        found = await client.users.by_user_id(user.user_principal_name).get()
        check(found.id == user.id, f"users.by_user_id({user.user_principal_name!r}) found {found.id}")
        groups = await client.users.by_user_id(user.user_principal_name).member_of.graph_group.get()
        check(groups.value is not None, f"memberOf/graph.group of {user.user_principal_name}")
    print("ok   users.by_user_id(UPN) for a member and an #EXT# guest, and their memberOf/graph.group")

    query = GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(
        select=["id", "displayName", "resourceProvisioningOptions", "assignedLicenses", "isAssignableToRole",
                "securityIdentifier", "onPremisesSamAccountName"], top=999)
    groups = (await client.groups.get(request_configuration=RequestConfiguration(query_parameters=query))).value
    check(groups and all(g.resource_provisioning_options == [] and g.assigned_licenses == [] for g in groups),
          "groups $select of resourceProvisioningOptions and assignedLicenses")
    check(all((g.security_identifier or "").startswith("S-1-12-1-") for g in groups), "securityIdentifier")
    parent = next(g for g in groups if g.display_name == "All Departments")
    direct = await client.groups.by_group_id(parent.id).members.graph_user.get()
    transitive = await client.groups.by_group_id(parent.id).transitive_members.graph_user.get()
    check(direct.value and transitive.value and len(transitive.value) >= len(direct.value),
          "members/graph.user and transitiveMembers/graph.user")
    subgroups = await client.groups.by_group_id(parent.id).members.graph_group.get()
    check(subgroups.value, "members/graph.group")
    print(f"ok   groups $select beyond the defaults ({len(groups)} groups); members/graph.user "
          f"({len(direct.value)}), transitiveMembers/graph.user ({len(transitive.value)}), members/graph.group")

    org = await client.organization.by_organization_id(ctx.tenant["id"]).get()
    check(org.id == ctx.tenant["id"] and org.verified_domains, f"organization by id: {org}")
    try:
        await client.organization.by_organization_id("00000000-0000-0000-0000-000000000000").get()
        check(False, "an unknown organization id was found")
    except Exception as e:  # the SDK raises its ODataError
        code = getattr(getattr(e, "error", None), "code", None)
        check(getattr(e, "response_status_code", None) == 404 and code == "Request_ResourceNotFound",
              f"unknown organization: {e!r}")
    print("ok   organization.by_organization_id (and Request_ResourceNotFound for an unknown id)")


async def main(path):
    with open(path, encoding="utf-8") as f:
        ctx = Context(json.loads(f.readline()))
    check(ctx.base.startswith("https://"), "run the emulator with --tls")
    started = time.monotonic()
    token = token_with_secret(ctx)
    token_with_certificate(ctx)
    azure_identity_tokens(ctx)
    client, adapter = graph_client(ctx, token)
    for step in (page_through_users, users_delta, groups_delta, batch):
        t0 = time.monotonic()
        await (step(ctx, client, adapter) if step is page_through_users else step(ctx, client))
        print(f"     ({step.__name__}: {time.monotonic() - t0:.1f} s)")
    t0 = time.monotonic()
    await sdk_paths(ctx, azure_identity_graph_client(ctx))
    print(f"     (sdk_paths through azure-identity: {time.monotonic() - t0:.1f} s)")
    print(f"     (total {time.monotonic() - started:.1f} s)")
    print("all Python conformance checks passed")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
