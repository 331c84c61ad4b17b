//! Graph resources: users, groups, memberships, licences, organization, devices, GDAP.
use std::collections::HashSet;
use std::sync::PoisonError;

use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::render::{
    GROUP_PROPS, USER_DEFAULT, USER_PROPS, USER_SINGLE_PROPS, group_prop, render_group, render_member,
    render_user, user_prop,
};
use super::*;
use crate::EmulatorError;
use crate::filter::{self, Expr};
use crate::limits::Faults;
use crate::world::{AssignedLicense, ManagedDevice, MemberRef, ObjectKind, Tenant, User, World};

#[derive(Serialize, Deserialize)]
struct SkipToken {
    p: usize,
}

pub(crate) fn route(state: &AppState, req: &Req<'_>, caller: &Caller, faults: &Faults) -> GResult<Resp> {
    let trimmed = req.path.trim_matches('/').to_owned();
    // Ids and user principal names arrive percent-encoded (`%40` for `@`, `%23EXT%23` for a
    // guest's `#EXT#`): every segment is decoded once before routing and lookup.
    let mut segs: Vec<String> = trimmed.split('/').map(super::decode_segment).collect();
    // `/me` is the signed-in user of a delegated token.
    if segs.first().is_some_and(|s| s == "me") {
        let oid = caller
            .user_oid
            .clone()
            .ok_or_else(|| bad_request("/me request is only valid with delegated authentication flow."))?;
        segs.splice(0..1, ["users".to_owned(), oid]);
    }
    for s in &mut segs {
        match super::strip_namespace(s) {
            "delta()" | "delta" => *s = "delta".into(),
            "assignLicense" if s != "assignLicense" => *s = "assignLicense".into(),
            _ => {}
        }
    }
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    if s.first().is_some_and(|f| *f == "users" || *f == "groups") && s.get(1) == Some(&"delta") {
        return super::delta::handle(state, req, caller, faults, s[0] == "users");
    }
    if req.method == Method::POST {
        return match s.as_slice() {
            ["users", id, "assignLicense"] => assign_license(state, req, caller, id),
            _ => Err(err(
                StatusCode::METHOD_NOT_ALLOWED,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request target.",
            )),
        };
    }
    if req.method != Method::GET {
        return Err(err(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        ));
    }
    let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
    let t = world
        .tenant(&caller.tenant_id)
        .ok_or_else(|| not_found(&caller.tenant_id))?;
    let ctx = Ctx {
        state,
        req,
        caller,
        t,
        faults,
        world: &world,
    };
    match s.as_slice() {
        ["users"] => ctx.list_users(),
        ["users", "$count"] => ctx.count_users(),
        ["users", id] => ctx.get_user(id),
        ["users", id, "manager"] => ctx.manager(id),
        ["users", id, "memberOf", rest @ ..] => ctx.member_of(id, false, rest.first().copied()),
        ["users", id, "transitiveMemberOf", rest @ ..] => ctx.member_of(id, true, rest.first().copied()),
        ["users", id, "licenseDetails"] => ctx.license_details(id),
        ["users", id, "managedDevices"] => ctx.user_managed_devices(id),
        ["users", id, "managedDevices", "$count"] => Err(bad_request(format!(
            "No OData route exists that match template ~/entityset/key/navigation/$count with http verb GET \
             for request /DeviceFE/StatelessDeviceFEService/users('{id}')/managedDevices/$count."
        ))
        .with_code("BadRequest")),
        ["users", id, "managedDevices", device] => ctx.user_managed_device(id, device),
        ["groups"] => ctx.list_groups(),
        ["groups", id] => ctx.get_group(id),
        ["groups", id, "members", rest @ ..] => ctx.members(id, false, rest.first().copied()),
        ["groups", id, "transitiveMembers", rest @ ..] => ctx.members(id, true, rest.first().copied()),
        ["subscribedSkus"] => ctx.subscribed_skus(),
        ["organization"] => ctx.organization(None),
        ["organization", id] => ctx.organization(Some(id)),
        ["directoryRoles"] => ctx.directory_roles(),
        ["deviceManagement", "managedDevices"] => ctx.managed_devices(),
        ["deviceManagement", "managedDevices", "$count"] => Err(bad_request(
            "No OData route exists that match template ~/singleton/navigation/$count with http verb GET for \
             request /DeviceFE/StatelessDeviceFEService/deviceManagement/managedDevices/$count.",
        )
        .with_code("BadRequest")),
        ["deviceManagement", "managedDevices", id] => ctx.managed_device(id),
        ["contracts"] => ctx.contracts(None),
        ["contracts", id] => ctx.contracts(Some(id)),
        ["tenantRelationships", "delegatedAdminRelationships"] => ctx.gdap(None),
        ["tenantRelationships", "delegatedAdminRelationships", id] => ctx.gdap(Some(id)),
        [
            "tenantRelationships",
            "delegatedAdminRelationships",
            id,
            "accessAssignments",
        ] => ctx.gdap_assignments(id),
        _ => Err(err(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "Resource not found for the segment '{}'.",
                s.last().copied().unwrap_or_default()
            ),
        )),
    }
}

impl GraphError {
    fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }
}

struct Ctx<'a> {
    state: &'a AppState,
    req: &'a Req<'a>,
    caller: &'a Caller,
    t: &'a Tenant,
    faults: &'a Faults,
    #[allow(dead_code)]
    world: &'a World,
}

pub(crate) fn ok_json(body: Value) -> Resp {
    Resp::json(StatusCode::OK, body)
}

pub(crate) fn metadata(state: &AppState, fragment: &str) -> String {
    format!("{}/v1.0/$metadata#{fragment}", state.base_url)
}

fn parse_filter(raw: Option<&str>, allowed: &[&str], type_name: &str) -> GResult<Option<Expr>> {
    let Some(raw) = raw else { return Ok(None) };
    let expr = filter::parse(raw).map_err(|e| bad_request(format!("Invalid filter clause: {e}")))?;
    let mut props = Vec::new();
    expr.properties(&mut props);
    for p in props {
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(&p)) {
            return Err(bad_request(format!(
                "Could not find a property named '{p}' on type 'microsoft.graph.{type_name}'."
            )));
        }
    }
    Ok(Some(expr))
}

fn canonical<'a>(allowed: &'a [&'a str], name: &str) -> &'a str {
    allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(name))
        .copied()
        .unwrap_or("")
}

impl Ctx<'_> {
    fn page_size(&self, default: usize, max: usize) -> GResult<usize> {
        let asked = match self.req.param("$top") {
            None => default,
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => n,
                Ok(n) if n > max && max == 500 => max,
                _ => {
                    return Err(bad_request(format!(
                        "Invalid page size specified: '{raw}'. Must be between 1 and {max} inclusive."
                    )));
                }
            },
        };
        Ok(self
            .faults
            .max_page_size
            .map_or(asked, |cap| asked.min(cap.max(1))))
    }

    fn start(&self) -> GResult<usize> {
        match self.req.param("$skiptoken") {
            None => Ok(0),
            Some(tok) => super::decode_token::<SkipToken>(tok)
                .map(|t| t.p)
                .ok_or_else(|| bad_request("Invalid $skiptoken value.")),
        }
    }

    fn reject_skip(&self) -> GResult<()> {
        if self.req.param("$skip").is_some() {
            return Err(bad_request("'$skip' is not supported by the service."));
        }
        Ok(())
    }

    fn next_link(&self, position: usize) -> String {
        let mut params: Vec<(String, String)> = self
            .req
            .query
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("$skiptoken"))
            .cloned()
            .collect();
        params.push((
            "$skiptoken".into(),
            super::encode_token(&SkipToken { p: position }),
        ));
        format!(
            "{}/v1.0{}?{}",
            self.state.base_url,
            self.req.path,
            super::encode_query(&params)
        )
    }

    fn collection(
        &self,
        fragment: &str,
        values: Vec<Value>,
        next: Option<usize>,
        count: Option<usize>,
    ) -> Resp {
        let mut body = Map::new();
        body.insert(
            "@odata.context".into(),
            Value::String(metadata(self.state, fragment)),
        );
        if let Some(c) = count {
            body.insert("@odata.count".into(), json!(c));
        }
        if let Some(p) = next {
            body.insert("@odata.nextLink".into(), Value::String(self.next_link(p)));
        }
        body.insert("value".into(), Value::Array(values));
        ok_json(Value::Object(body))
    }

    fn count_requested(&self) -> GResult<bool> {
        match self.req.param("$count") {
            None | Some("false") => Ok(false),
            Some("true") => {
                if self.req.eventual() {
                    Ok(true)
                } else {
                    Err(unsupported("$count is not currently supported."))
                }
            }
            Some(other) => Err(bad_request(format!("Invalid value '{other}' for $count."))),
        }
    }

    /// The `$search` term as (property, needle), requiring the eventual-consistency header.
    fn search(&self) -> GResult<Option<(String, String)>> {
        let Some(raw) = self.req.param("$search") else {
            return Ok(None);
        };
        if !self.req.eventual() {
            return Err(unsupported(
                "Request with $search query parameter only works through MSGraph with a special request header: \
                 'ConsistencyLevel: eventual'",
            ));
        }
        let inner = raw.trim().trim_matches('"');
        let (prop, needle) = inner.split_once(':').ok_or_else(|| {
            bad_request("Syntax error: character '\"' is not valid at position 0 in '$search'.")
        })?;
        Ok(Some((prop.trim().to_owned(), needle.trim().to_lowercase())))
    }

    fn check_advanced_filter(&self, filter: &Option<Expr>, resource: &str) -> GResult<()> {
        if let Some(f) = filter
            && f.is_advanced()
            && !(self.req.eventual() && self.req.param("$count") == Some("true"))
        {
            let mut props = Vec::new();
            f.properties(&mut props);
            return Err(unsupported(format!(
                "Unsupported or invalid query filter clause specified for property '{}' of resource '{resource}'.",
                props.first().cloned().unwrap_or_default()
            )));
        }
        Ok(())
    }

    fn user_expand(&self) -> GResult<Option<Selection>> {
        let Some(raw) = self.req.param("$expand") else {
            return Ok(None);
        };
        let raw = raw.trim();
        if raw == "manager" {
            return Ok(Some(Selection(None)));
        }
        if let Some(inner) = raw.strip_prefix("manager(").and_then(|r| r.strip_suffix(')')) {
            let select = inner
                .strip_prefix("$select=")
                .ok_or_else(|| bad_request("Invalid $expand options."))?;
            return Ok(Some(Selection::parse(Some(select), &USER_PROPS, &[], "user")?));
        }
        Err(bad_request(format!(
            "Could not find a property named '{raw}' on type 'microsoft.graph.user'."
        )))
    }

    fn render_user_full(&self, u: &User, sel: &Selection, expand: &Option<Selection>) -> Value {
        let mut map = render_user(u, sel);
        for (id, property, value) in &self.faults.corrupt_user_properties {
            if id == &u.id {
                map.insert(property.clone(), value.clone());
            }
        }
        if let Some(msel) = expand
            && let Some(m) = u.manager_id.as_deref().and_then(|id| self.t.user(id))
        {
            let mut mm = Map::new();
            mm.insert("@odata.type".into(), json!("#microsoft.graph.user"));
            mm.extend(render_user(m, msel));
            map.insert("manager".into(), Value::Object(mm));
        }
        Value::Object(map)
    }

    fn sign_in_checks(&self, sel: &Selection, filter: &Option<Expr>) -> GResult<bool> {
        let mut props = Vec::new();
        if let Some(f) = filter {
            f.properties(&mut props);
        }
        let wants =
            sel.contains("signInActivity") || props.iter().any(|p| p.eq_ignore_ascii_case("signInActivity"));
        if wants {
            self.caller.require(&["AuditLog.Read.All"])?;
            if !self.t.premium {
                return Err(err(
                    StatusCode::FORBIDDEN,
                    "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                    "Neither tenant is B2C or tenant doesn't have premium license",
                ));
            }
        }
        Ok(wants)
    }

    fn user_matches(&self, u: &User, filter: &Option<Expr>, search: &Option<(String, String)>) -> bool {
        if u.deleted_date_time.is_some() {
            return false;
        }
        if let Some(f) = filter
            && !f.eval(&|p| user_prop(u, canonical(&USER_PROPS, p)).unwrap_or(Value::Null))
        {
            return false;
        }
        if let Some((prop, needle)) = search {
            let v = user_prop(u, canonical(&USER_PROPS, prop)).unwrap_or(Value::Null);
            if !v
                .as_str()
                .is_some_and(|s| s.to_lowercase().contains(needle.as_str()))
            {
                return false;
            }
        }
        true
    }

    fn order(
        &self,
        names: &[&str],
        key: &dyn Fn(usize, &str) -> String,
        len: usize,
    ) -> GResult<Option<Vec<usize>>> {
        let Some(raw) = self.req.param("$orderby") else {
            return Ok(None);
        };
        let mut parts = raw.split_whitespace();
        let prop = parts.next().unwrap_or_default();
        let desc = parts.next().is_some_and(|d| d.eq_ignore_ascii_case("desc"));
        let prop = names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(prop))
            .ok_or_else(|| unsupported(format!("Sorting not supported for '{prop}'.")))?;
        if self.req.param("$filter").is_some() && !self.req.eventual() {
            return Err(unsupported("Sorting not supported for current query."));
        }
        let mut order: Vec<usize> = (0..len).collect();
        order.sort_by_cached_key(|i| key(*i, prop).to_lowercase());
        if desc {
            order.reverse();
        }
        Ok(Some(order))
    }

    fn list_users(&self) -> GResult<Resp> {
        self.caller.require(READ_USERS)?;
        self.reject_skip()?;
        let sel = Selection::parse(self.req.param("$select"), &USER_PROPS, &[], "user")?;
        let filter = parse_filter(self.req.param("$filter"), &USER_PROPS, "user")?;
        self.check_advanced_filter(&filter, "User")?;
        let search = self.search()?;
        let count = self.count_requested()?;
        let sign_in = self.sign_in_checks(&sel, &filter)?;
        let expand = self.user_expand()?;
        let size = self.page_size(100, if sign_in { 500 } else { 999 })?;
        if let Some(broken) = self.faults.malformed_users_page
            && self.start()? / size + 1 == broken
        {
            return Ok(Resp {
                body: super::Body::Malformed(r#"{"@odata.context":"…","value":[{"id":"#.into()),
                ..Resp::json(StatusCode::OK, Value::Null)
            });
        }
        let users = &self.t.users;
        let order = self.order(
            &["displayName", "userPrincipalName"],
            &|i, p| {
                user_prop(&users[i], p)
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            },
            users.len(),
        )?;
        let at = |k: usize| order.as_ref().map_or(k, |o| o[k]);
        let mut values = Vec::with_capacity(size.min(users.len()));
        let mut k = self.start()?;
        let mut next = None;
        while k < users.len() {
            let u = &users[at(k)];
            if self.user_matches(u, &filter, &search) {
                if values.len() == size {
                    next = Some(k);
                    break;
                }
                values.push(self.render_user_full(u, &sel, &expand));
            }
            k += 1;
        }
        let total = count.then(|| {
            users
                .iter()
                .filter(|u| self.user_matches(u, &filter, &search))
                .count()
        });
        Ok(self.collection(&format!("users{}", sel.context_suffix()), values, next, total))
    }

    fn count_users(&self) -> GResult<Resp> {
        self.caller.require(READ_USERS)?;
        if !self.req.eventual() {
            return Err(unsupported("$count is not currently supported."));
        }
        let accept = self.req.header("accept").unwrap_or("*/*").to_ascii_lowercase();
        if accept.contains("application/json") && !accept.contains("text/plain") && !accept.contains("*/*") {
            return Err(err(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Request_BadRequest",
                "The requested media type is not supported for $count; use Accept: text/plain.",
            ));
        }
        let filter = parse_filter(self.req.param("$filter"), &USER_PROPS, "user")?;
        let search = self.search()?;
        let n = self
            .t
            .users
            .iter()
            .filter(|u| self.user_matches(u, &filter, &search))
            .count();
        Ok(Resp {
            body: Body::Text(n.to_string()),
            ..ok_json(Value::Null)
        })
    }

    fn live_user(&self, id: &str) -> GResult<&User> {
        self.t.user(id).ok_or_else(|| not_found(id))
    }

    fn get_user(&self, id: &str) -> GResult<Resp> {
        let own = self.caller.user_oid.as_deref() == Some(id);
        if !own {
            self.caller.require(READ_USERS)?;
        }
        let sel = Selection::parse(self.req.param("$select"), &USER_SINGLE_PROPS, &[], "user")?;
        self.sign_in_checks(&sel, &None)?;
        let expand = self.user_expand()?;
        let u = self.live_user(id)?;
        let mut body = Map::new();
        body.insert(
            "@odata.context".into(),
            Value::String(metadata(
                self.state,
                &format!("users{}/$entity", sel.context_suffix()),
            )),
        );
        if let Value::Object(m) = self.render_user_full(u, &sel, &expand) {
            body.extend(m);
        }
        Ok(ok_json(Value::Object(body)))
    }

    fn manager(&self, id: &str) -> GResult<Resp> {
        self.caller.require(READ_USERS)?;
        let u = self.live_user(id)?;
        let m = u
            .manager_id
            .as_deref()
            .and_then(|m| self.t.user(m))
            .ok_or_else(|| not_found("manager"))?;
        let sel = Selection::parse(self.req.param("$select"), &USER_PROPS, &[], "user")?;
        let mut body = Map::new();
        body.insert(
            "@odata.context".into(),
            Value::String(metadata(self.state, "directoryObjects/$entity")),
        );
        body.insert("@odata.type".into(), json!("#microsoft.graph.user"));
        body.extend(render_user(m, &sel));
        Ok(ok_json(Value::Object(body)))
    }

    /// Groups that directly contain `id`, then (transitively) their parents.
    fn containing_groups(&self, id: &str, transitive: bool) -> Vec<usize> {
        let mut found: Vec<usize> = Vec::new();
        let mut frontier = vec![id.to_owned()];
        while let Some(current) = frontier.pop() {
            for (i, g) in self.t.groups.iter().enumerate() {
                if g.deleted_date_time.is_none()
                    && !found.contains(&i)
                    && g.members.iter().any(|m| m.id == current)
                {
                    found.push(i);
                    if transitive {
                        frontier.push(g.id.clone());
                    }
                }
            }
        }
        found
    }

    fn paged_refs(&self, refs: &[MemberRef], sel: &Selection, fragment: &str) -> GResult<Resp> {
        let size = self.page_size(100, 999)?;
        let start = self.start()?;
        let end = start.saturating_add(size).min(refs.len());
        let values = refs
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .filter_map(|m| render_member(self.t, m, sel))
            .collect();
        let next = (end < refs.len()).then_some(end);
        let count = self.count_requested()?.then_some(refs.len());
        Ok(self.collection(fragment, values, next, count))
    }

    fn cast_kind(cast: Option<&str>) -> GResult<Option<ObjectKind>> {
        let Some(cast) = cast else { return Ok(None) };
        let kinds = [
            ObjectKind::User,
            ObjectKind::Group,
            ObjectKind::Device,
            ObjectKind::ServicePrincipal,
            ObjectKind::OrgContact,
        ];
        // `microsoft.graph.user` or, as Microsoft's SDKs send it, `graph.user`.
        let lower = cast.to_ascii_lowercase();
        let bare = lower
            .strip_prefix("microsoft.graph.")
            .or_else(|| lower.strip_prefix("graph."));
        kinds
            .into_iter()
            .find(|k| bare.is_some_and(|b| strip_namespace(k.cast_name()).eq_ignore_ascii_case(b)))
            .map(Some)
            .ok_or_else(|| bad_request(format!("Resource not found for the segment '{cast}'.")))
    }

    fn member_of(&self, id: &str, transitive: bool, cast: Option<&str>) -> GResult<Resp> {
        self.caller.require(READ_USERS)?;
        let kind = Self::cast_kind(cast)?;
        let u = self.live_user(id)?;
        let sel = Selection::parse(
            self.req.param("$select"),
            GROUP_PROPS,
            &["roleTemplateId"],
            "group",
        )?;
        let mut refs: Vec<MemberRef> = self
            .containing_groups(&u.id, transitive)
            .into_iter()
            .map(|i| MemberRef {
                kind: ObjectKind::Group,
                id: self.t.groups[i].id.clone(),
                display_name: None,
            })
            .collect();
        if kind.is_none_or(|k| k == ObjectKind::Group) {
            // Directory roles are rendered below; only keep groups for a cast.
        }
        if let Some(k) = kind {
            refs.retain(|r| r.kind == k);
        }
        let roles: Vec<Value> = if kind.is_none() {
            self.t
                .directory_roles
                .iter()
                .filter(|r| r.member_ids.contains(&u.id))
                .map(|r| {
                    json!({"@odata.type": "#microsoft.graph.directoryRole", "id": r.id, "deletedDateTime": null,
                           "description": r.description, "displayName": r.display_name,
                           "roleTemplateId": r.role_template_id})
                })
                .collect()
        } else {
            vec![]
        };
        let fragment = match kind {
            Some(ObjectKind::Group) => "groups",
            _ => "directoryObjects",
        };
        let mut resp = self.paged_refs(&refs, &sel, fragment)?;
        if let Body::Json(Value::Object(body)) = &mut resp.body
            && !body.contains_key("@odata.nextLink")
            && let Some(Value::Array(values)) = body.get_mut("value")
        {
            values.extend(roles);
        }
        Ok(resp)
    }

    fn license_details(&self, id: &str) -> GResult<Resp> {
        self.caller.require(READ_USERS)?;
        let u = self.live_user(id)?;
        let values = u
            .assigned_licenses
            .iter()
            .filter_map(|l| {
                let sku = self.t.skus.iter().find(|s| s.sku_id.eq_ignore_ascii_case(&l.sku_id))?;
                Some(json!({
                    "id": license_detail_id(&u.id, &sku.sku_id),
                    "skuId": sku.sku_id,
                    "skuPartNumber": sku.sku_part_number,
                    "servicePlans": sku.service_plans.iter().map(|p| json!({
                        "servicePlanId": p.service_plan_id,
                        "servicePlanName": p.service_plan_name,
                        "provisioningStatus": if l.disabled_plans.contains(&p.service_plan_id) { "Disabled" } else { "Success" },
                        "appliesTo": p.applies_to,
                    })).collect::<Vec<_>>(),
                }))
            })
            .collect();
        Ok(self.collection(&format!("users('{}')/licenseDetails", u.id), values, None, None))
    }

    fn list_groups(&self) -> GResult<Resp> {
        self.caller.require(READ_GROUPS)?;
        self.reject_skip()?;
        let sel = Selection::parse(self.req.param("$select"), GROUP_PROPS, &[], "group")?;
        let filter = parse_filter(self.req.param("$filter"), GROUP_PROPS, "group")?;
        self.check_advanced_filter(&filter, "Group")?;
        let count = self.count_requested()?;
        let size = self.page_size(100, 999)?;
        let groups = &self.t.groups;
        let matches = |i: usize| {
            let g = &groups[i];
            g.deleted_date_time.is_none()
                && filter.as_ref().is_none_or(|f| {
                    f.eval(&|p| group_prop(g, canonical(GROUP_PROPS, p)).unwrap_or(Value::Null))
                })
        };
        let order = self.order(
            &["displayName"],
            &|i, _| groups[i].display_name.clone(),
            groups.len(),
        )?;
        let at = |k: usize| order.as_ref().map_or(k, |o| o[k]);
        let mut values = Vec::new();
        let mut k = self.start()?;
        let mut next = None;
        while k < groups.len() {
            if matches(at(k)) {
                if values.len() == size {
                    next = Some(k);
                    break;
                }
                values.push(Value::Object(render_group(&groups[at(k)], &sel)));
            }
            k += 1;
        }
        let total = count.then(|| (0..groups.len()).filter(|i| matches(*i)).count());
        Ok(self.collection(&format!("groups{}", sel.context_suffix()), values, next, total))
    }

    fn get_group(&self, id: &str) -> GResult<Resp> {
        self.caller.require(READ_GROUPS)?;
        let sel = Selection::parse(self.req.param("$select"), GROUP_PROPS, &[], "group")?;
        let g = self.t.group(id).ok_or_else(|| not_found(id))?;
        let mut body = Map::new();
        body.insert(
            "@odata.context".into(),
            Value::String(metadata(
                self.state,
                &format!("groups{}/$entity", sel.context_suffix()),
            )),
        );
        body.extend(render_group(g, &sel));
        Ok(ok_json(Value::Object(body)))
    }

    fn members(&self, id: &str, transitive: bool, cast: Option<&str>) -> GResult<Resp> {
        self.caller.require(READ_GROUPS)?;
        let kind = Self::cast_kind(cast)?;
        let g = self.t.group(id).ok_or_else(|| not_found(id))?;
        let mut all_props: Vec<&str> = USER_PROPS.to_vec();
        all_props.extend(GROUP_PROPS.iter().filter(|p| !USER_PROPS.contains(*p)));
        let sel = Selection::parse(self.req.param("$select"), &all_props, &[], "directoryObject")?;
        let mut refs: Vec<MemberRef> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        let mut stack = vec![g];
        while let Some(group) = stack.pop() {
            for m in &group.members {
                if !self.t.member_is_live(m) || !seen.insert(m.id.as_str()) {
                    continue;
                }
                refs.push(m.clone());
                if transitive
                    && m.kind == ObjectKind::Group
                    && let Some(inner) = self.t.group(&m.id)
                {
                    stack.push(inner);
                }
            }
        }
        if let Some(k) = kind {
            refs.retain(|r| r.kind == k);
        }
        let fragment = match kind {
            Some(ObjectKind::User) => "users",
            Some(ObjectKind::Group) => "groups",
            _ => "directoryObjects",
        };
        let mut resp = self.paged_refs(&refs, &sel, fragment)?;
        if kind.is_some()
            && let Body::Json(Value::Object(body)) = &mut resp.body
            && let Some(Value::Array(values)) = body.get_mut("value")
        {
            // A cast collection is homogeneous: no per-item @odata.type.
            for v in values {
                if let Value::Object(o) = v {
                    o.remove("@odata.type");
                }
            }
        }
        Ok(resp)
    }

    fn subscribed_skus(&self) -> GResult<Resp> {
        self.caller
            .require(&[READ_ORG, &["LicenseAssignment.Read.All"]].concat())?;
        if self.req.param("$top").is_some() {
            return Err(unsupported(
                "This resource does not support custom page sizes. Please retry without a page size argument.",
            ));
        }
        let values = self
            .t
            .skus
            .iter()
            .map(|s| {
                json!({
                    "accountName": self.t.display_name,
                    "accountId": self.t.id,
                    "appliesTo": s.applies_to,
                    "capabilityStatus": s.capability_status,
                    "consumedUnits": self.t.consumed_units(&s.sku_id),
                    "id": format!("{}_{}", self.t.id, s.sku_id),
                    "skuId": s.sku_id,
                    "skuPartNumber": s.sku_part_number,
                    "subscriptionIds": s.subscription_ids,
                    "prepaidUnits": {"enabled": s.prepaid_enabled, "suspended": s.prepaid_suspended,
                                     "warning": s.prepaid_warning, "lockedOut": 0},
                    "servicePlans": s.service_plans.iter().map(|p| json!({
                        "servicePlanId": p.service_plan_id, "servicePlanName": p.service_plan_name,
                        "provisioningStatus": "Success", "appliesTo": p.applies_to,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        Ok(self.collection("subscribedSkus", values, None, None))
    }

    /// `/organization` (a collection of the one tenant) or `/organization/{id}` (that object as an
    /// entity; an id other than the tenant's is 404 `Request_ResourceNotFound`).
    fn organization(&self, id: Option<&str>) -> GResult<Resp> {
        self.caller.require(&[READ_ORG, &["User.Read"]].concat())?;
        let value = self.organization_value();
        let Some(id) = id else {
            return Ok(self.collection("organization", vec![value], None, None));
        };
        if !id.eq_ignore_ascii_case(&self.t.id) {
            return Err(not_found(id));
        }
        let mut body = Map::new();
        body.insert(
            "@odata.context".into(),
            Value::String(metadata(self.state, "organization/$entity")),
        );
        if let Value::Object(m) = value {
            body.extend(m);
        }
        Ok(ok_json(Value::Object(body)))
    }

    fn organization_value(&self) -> Value {
        let t = self.t;
        let created = t.created_date_time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let mut domains = vec![json!({"capabilities": "Email, OfficeCommunicationsOnline",
            "isDefault": t.extra_domains.is_empty(), "isInitial": true, "name": t.domain, "type": "Managed"})];
        for (i, d) in t.extra_domains.iter().enumerate() {
            domains.push(
                json!({"capabilities": "Email, OfficeCommunicationsOnline", "isDefault": i == 0,
                "isInitial": false, "name": d, "type": "Managed"}),
            );
        }
        let mut assigned = Vec::new();
        let mut provisioned = Vec::new();
        for s in &t.skus {
            for p in &s.service_plans {
                let service = p
                    .service_plan_name
                    .split('_')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                assigned.push(json!({"assignedDateTime": created, "capabilityStatus": "Enabled",
                    "service": service, "servicePlanId": p.service_plan_id}));
                provisioned.push(
                    json!({"capabilityStatus": "Enabled", "provisioningStatus": "Success",
                    "service": service}),
                );
            }
        }
        let synced = t.users.iter().any(|u| u.on_premises_sync_enabled == Some(true));
        json!({
            "id": t.id,
            "deletedDateTime": null,
            "businessPhones": ["+1 425 555 0100"],
            "city": null,
            "country": null,
            "countryLetterCode": t.country_letter_code,
            "createdDateTime": created,
            "defaultUsageLocation": null,
            "displayName": t.display_name,
            "marketingNotificationEmails": [],
            "onPremisesLastSyncDateTime": if synced { Value::String(created.clone()) } else { Value::Null },
            "onPremisesSyncEnabled": if synced { Value::Bool(true) } else { Value::Null },
            "postalCode": null,
            "preferredLanguage": "en",
            "securityComplianceNotificationMails": [],
            "securityComplianceNotificationPhones": [],
            "state": null,
            "street": null,
            "technicalNotificationMails": [format!("admin@{}", t.domain)],
            "tenantType": "AAD",
            "assignedPlans": assigned,
            "privacyProfile": null,
            "provisionedPlans": provisioned,
            "verifiedDomains": domains,
        })
    }

    fn directory_roles(&self) -> GResult<Resp> {
        self.caller.require(&[
            "RoleManagement.Read.Directory",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ])?;
        if self.req.param("$top").is_some() {
            return Err(unsupported(
                "This resource does not support custom page sizes. Please retry without a page size argument.",
            ));
        }
        let values = self
            .t
            .directory_roles
            .iter()
            .map(|r| {
                json!({"id": r.id, "deletedDateTime": null, "description": r.description,
                       "displayName": r.display_name, "roleTemplateId": r.role_template_id})
            })
            .collect();
        Ok(self.collection("directoryRoles", values, None, None))
    }

    /// The device as Graph sends it (the world's serialisation uses Graph's property names).
    fn device_json(d: &ManagedDevice) -> Value {
        serde_json::to_value(d).unwrap_or(Value::Null)
    }

    fn require_devices(&self) -> GResult<()> {
        self.caller.require(&[
            "DeviceManagementManagedDevices.Read.All",
            "DeviceManagementManagedDevices.ReadWrite.All",
        ])
    }

    /// One page of devices: pages of up to 1,000, `$select` keeping the named properties.
    fn device_page(&self, devices: &[&ManagedDevice], fragment: &str) -> GResult<Resp> {
        let size = self.page_size(1000, 1000)?;
        let select = self
            .req
            .param("$select")
            .map(|s| s.split(',').map(str::trim).collect::<Vec<_>>());
        let start = self.start()?;
        let end = start.saturating_add(size).min(devices.len());
        let values = devices
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .map(|d| {
                let full = Self::device_json(d);
                match (&select, full) {
                    (Some(sel), Value::Object(map)) => Value::Object(
                        map.into_iter()
                            .filter(|(k, _)| sel.iter().any(|s| s.eq_ignore_ascii_case(k)))
                            .collect(),
                    ),
                    (_, v) => v,
                }
            })
            .collect();
        Ok(self.collection(fragment, values, (end < devices.len()).then_some(end), None))
    }

    fn device_entity(d: &ManagedDevice, context: String) -> Resp {
        let mut body = Map::new();
        body.insert("@odata.context".into(), Value::String(context));
        if let Value::Object(m) = Self::device_json(d) {
            body.extend(m);
        }
        ok_json(Value::Object(body))
    }

    fn managed_devices(&self) -> GResult<Resp> {
        self.require_devices()?;
        let devices: Vec<&ManagedDevice> = self.t.devices.iter().collect();
        self.device_page(&devices, "deviceManagement/managedDevices")
    }

    fn managed_device(&self, id: &str) -> GResult<Resp> {
        self.require_devices()?;
        let d = self.t.device(id).ok_or_else(|| not_found(id))?;
        Ok(Self::device_entity(
            d,
            metadata(self.state, "deviceManagement/managedDevices/$entity"),
        ))
    }

    /// `/users/{id|upn}/managedDevices`: the devices whose `userId` is the user's, with the
    /// permissions, paging and `$select` of the tenant-wide list. A user Graph does not know (or
    /// a deleted one) is 404 like the other user routes.
    fn user_managed_devices(&self, id: &str) -> GResult<Resp> {
        self.require_devices()?;
        let u = self.live_user(id)?;
        let devices: Vec<&ManagedDevice> = self.t.devices.iter().filter(|d| d.user_id == u.id).collect();
        self.device_page(&devices, &format!("users('{}')/managedDevices", u.id))
    }

    fn user_managed_device(&self, id: &str, device: &str) -> GResult<Resp> {
        self.require_devices()?;
        let u = self.live_user(id)?;
        let d = self
            .t
            .device(device)
            .filter(|d| d.user_id == u.id)
            .ok_or_else(|| not_found(device))?;
        Ok(Self::device_entity(
            d,
            metadata(self.state, &format!("users('{}')/managedDevices/$entity", u.id)),
        ))
    }

    /// Access assignments of a relationship: an active relationship grants its roles to the
    /// partner's `AdminAgents` group (the first security group when there is none).
    fn gdap_assignments(&self, id: &str) -> GResult<Resp> {
        self.caller.require(&[
            "DelegatedAdminRelationship.Read.All",
            "DelegatedAdminRelationship.ReadWrite.All",
        ])?;
        let r = self
            .t
            .gdap_relationships
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| not_found(id))?;
        let container = self
            .t
            .live_groups()
            .find(|g| g.display_name == "AdminAgents")
            .or_else(|| self.t.live_groups().find(|g| g.security_enabled));
        let fmt = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let values: Vec<Value> = match (r.status.as_str(), container) {
            ("active", Some(g)) => vec![json!({
                "@odata.etag": format!("W/\"{}\"", g.id.chars().take(8).collect::<String>()),
                "id": format!("{}-{}", g.id, r.id),
                "status": "active",
                "createdDateTime": fmt(r.activated_date_time.unwrap_or(r.created_date_time)),
                "lastModifiedDateTime": fmt(r.last_modified_date_time),
                "accessContainer": {"accessContainerId": g.id, "accessContainerType": "securityGroup"},
                "accessDetails": {"unifiedRoles": r.role_definition_ids.iter()
                    .map(|id| json!({"roleDefinitionId": id})).collect::<Vec<_>>()},
            })],
            _ => vec![],
        };
        Ok(self.collection(
            &format!("tenantRelationships/delegatedAdminRelationships('{id}')/accessAssignments"),
            values,
            None,
            None,
        ))
    }

    fn gdap(&self, id: Option<&str>) -> GResult<Resp> {
        self.caller.require(&[
            "DelegatedAdminRelationship.Read.All",
            "DelegatedAdminRelationship.ReadWrite.All",
        ])?;
        let render = |r: &crate::world::GdapRelationship| {
            let fmt = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
            json!({
                "@odata.type": "#microsoft.graph.delegatedAdminRelationship",
                "@odata.etag": format!("W/\"{}\"", r.id.chars().take(8).collect::<String>()),
                "id": r.id,
                "displayName": r.display_name,
                "duration": r.duration,
                "status": r.status,
                "autoExtendDuration": r.auto_extend_duration,
                "createdDateTime": fmt(r.created_date_time),
                "lastModifiedDateTime": fmt(r.last_modified_date_time),
                "activatedDateTime": r.activated_date_time.map(fmt),
                "endDateTime": r.end_date_time.map(fmt),
                "customer": {"tenantId": r.customer_tenant_id, "displayName": r.customer_display_name},
                "accessDetails": {"unifiedRoles": r.role_definition_ids.iter()
                    .map(|id| json!({"roleDefinitionId": id})).collect::<Vec<_>>()},
            })
        };
        let rels = &self.t.gdap_relationships;
        if let Some(id) = id {
            let r = rels.iter().find(|r| r.id == id).ok_or_else(|| not_found(id))?;
            let mut v = render(r);
            if let Value::Object(m) = &mut v {
                m.insert(
                    "@odata.context".into(),
                    json!(metadata(
                        self.state,
                        "tenantRelationships/delegatedAdminRelationships/$entity"
                    )),
                );
            }
            return Ok(ok_json(v));
        }
        let size = self.page_size(300, 300)?;
        let start = self.start()?;
        let end = start.saturating_add(size).min(rels.len());
        let values = rels
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .map(render)
            .collect();
        Ok(self.collection(
            "tenantRelationships/delegatedAdminRelationships",
            values,
            (end < rels.len()).then_some(end),
            None,
        ))
    }
}

impl Ctx<'_> {
    /// `GET /contracts[/{id}]`: the partner tenant's contracts (DAP customers); empty elsewhere.
    fn contracts(&self, id: Option<&str>) -> GResult<Resp> {
        self.caller
            .require(&["Directory.Read.All", "Directory.ReadWrite.All"])?;
        let render = |c: &crate::world::Contract| {
            json!({
                "@odata.type": "#microsoft.graph.contract",
                "id": c.id,
                "deletedDateTime": null,
                "contractType": c.contract_type,
                "customerId": c.customer_id,
                "defaultDomainName": c.default_domain_name,
                "displayName": c.display_name,
            })
        };
        let contracts = &self.t.contracts;
        if let Some(id) = id {
            let c = contracts
                .iter()
                .find(|c| c.id == id)
                .ok_or_else(|| not_found(id))?;
            let mut v = render(c);
            if let Value::Object(m) = &mut v {
                m.insert(
                    "@odata.context".into(),
                    json!(metadata(self.state, "contracts/$entity")),
                );
            }
            return Ok(ok_json(v));
        }
        let size = self.page_size(100, 999)?;
        let start = self.start()?;
        let end = start.saturating_add(size).min(contracts.len());
        let values = contracts
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .map(render)
            .collect();
        Ok(self.collection("contracts", values, (end < contracts.len()).then_some(end), None))
    }
}

fn license_detail_id(user_id: &str, sku_id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{user_id}{sku_id}").as_bytes())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssignLicenseBody {
    add_licenses: Option<Vec<AssignedLicense>>,
    remove_licenses: Option<Vec<String>>,
}

fn assign_license(state: &AppState, req: &Req<'_>, caller: &Caller, id: &str) -> GResult<Resp> {
    caller.require(WRITE_LICENSES)?;
    let body: AssignLicenseBody =
        serde_json::from_slice(req.body).map_err(|e| bad_request(format!("Invalid request body: {e}")))?;
    let (Some(add), Some(remove)) = (body.add_licenses, body.remove_licenses) else {
        return Err(bad_request(
            "Invalid request: both 'addLicenses' and 'removeLicenses' are required (either may be empty).",
        ));
    };
    let mut world = state.world.write().unwrap_or_else(PoisonError::into_inner);
    let user = world
        .set_user_licenses(&caller.tenant_id, id, &add, &remove)
        .map_err(|e| match e {
            EmulatorError::NotFound(_) => not_found(id),
            EmulatorError::InvalidUsageLocation => {
                bad_request("License assignment cannot be done for user with invalid usage location.")
            }
            other => bad_request(other.to_string().trim_start_matches("bad request: ").to_owned()),
        })?;
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(metadata(state, "users/$entity")),
    );
    body.extend(render_user(&user, &Selection(None)));
    let _ = USER_DEFAULT;
    Ok(ok_json(Value::Object(body)))
}
